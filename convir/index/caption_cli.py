"""``convir caption``: caption image files with a captioning model, one line per image."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from convir.errors import InputError


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given, folders as the images under them (sorted), in argument order."""
    from convir.index.folder import list_images

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += list_images(p)
        elif p.exists():
            out.append(p)
        else:
            raise InputError(f"no file or folder at {p}")
    return out


def caption_command(
    paths: list[Path] = typer.Argument(..., metavar="PATH...", help="Image files or folders."),
    captioner: str = typer.Option(
        "testbed",
        "--captioner",
        help="'testbed' (the shipped model), a local transformers image-to-text folder, or "
        "vlm:MODEL (an OpenAI-compatible vision-language server at CONVIR_LLM_URL).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help='Print one JSON line {"path", "caption"} per image.'
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per model call."),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, ..."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Caption images; unreadable files and failed captions are skipped with a warning each.
    The JSON lines are a valid --captions file for `convir index`."""
    from convir.index.captions import caption_images
    from convir.models.captioner import load_captioner

    files = _expand(paths)
    model = load_captioner(captioner, device)
    texts, report = caption_images(
        model, [str(f) for f in files], batch_size=batch_size, progress=progress
    )
    for path, text in zip(files, texts, strict=True):
        if text is None:
            continue
        if as_json:
            typer.echo(json.dumps({"path": str(path), "caption": text}, ensure_ascii=False))
        else:
            typer.echo(f"{path}\t{text}")
    if report.invalid:
        typer.echo(f"{report.summary()} of {len(files)} images", err=True)
