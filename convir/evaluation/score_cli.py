"""``convir eval score``, ``convir eval submission`` and ``convir data inspect``: score run
files, write server submissions, inspect benchmark files. Heavy work lives in ``runfile`` /
``scoring`` / ``submission`` / ``loaders``, imported when a command runs."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from convir.errors import InputError
from convir.evaluation.cli import data_app, eval_app

if TYPE_CHECKING:
    from convir.evaluation.scoring import ChatIRScores


class ScoringProtocol(StrEnum):
    chatir = "chatir"
    circo = "circo"
    cirr = "cirr"
    fashioniq = "fashioniq"


class ServerProtocol(StrEnum):
    cirr = "cirr"
    circo = "circo"


ANNOTATIONS_HINT = {
    "circo": "CIRCO's val.json",
    "cirr": "CIRR's captions file cap.rc2.<split>.json",
    "fashioniq": "FashionIQ's captions file cap.<category>.<split>.json",
}


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def _print_chatir(s: ChatIRScores) -> None:
    typer.echo(f"ChatIR protocol: {s.dialogues} dialogues, {len(s.hits_at_k)} rounds, K={s.k}")
    typer.echo(f"{'round':>5}  {f'Hits@{s.k}':>9}  {f'Recall@{s.k}':>9}")
    for t, (h, r) in enumerate(zip(s.hits_at_k, s.recall_at_k, strict=True)):
        typer.echo(f"{t:>5}  {h:>9.4f}  {r:>9.4f}")
    typer.echo(f"BRI {s.bri:.4f} (best log rank integral, lower is better)")


def _print_query_scores(protocol: str, results: dict[str, dict[int, float]]) -> None:
    names = {"map_at": "mAP", "recall_at": "Recall", "recall_subset_at": "Recall_subset"}
    typer.echo(f"{protocol} protocol")
    for key, values in results.items():
        typer.echo("  ".join(f"{names[key]}@{k} {v:.4f}" for k, v in values.items()))


@eval_app.command("score")
def score_command(
    protocol: ScoringProtocol = typer.Option(..., "--protocol", help="Which benchmark's metrics."),
    run: Path = typer.Option(..., "--run", help="Run file (.jsonl), one JSON line per query."),
    annotations: Path | None = typer.Option(
        None, "--annotations", help="Ground truth: CIRCO val.json / CIRR or FashionIQ captions."
    ),
    search_space: Path | None = typer.Option(
        None,
        "--search-space",
        help="Gallery file; ids outside it are errors (chatir: also BRI's rank for misses).",
    ),
    k: int | None = typer.Option(None, "--k", help="K of Hits@K/Recall@K (chatir; default 10)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Score a run file: ChatIR Hits@K/Recall@K/BRI per round, CIRCO mAP@K, CIRR Recall@K and
    Recall_subset@K, FashionIQ R@10/R@50. Metrics are fractions in [0, 1]."""
    from convir.evaluation import loaders, runfile, scoring

    space = loaders.load_search_space(search_space) if search_space is not None else None
    if protocol is ScoringProtocol.chatir:
        if annotations is not None:
            raise InputError(
                "--annotations is not used by --protocol chatir (targets are in the run)"
            )
        k = 10 if k is None else k
        if k < 1:
            raise InputError(f"--k must be >= 1, got {k}")
        scores = scoring.score_chatir(
            runfile.read_chatir_run(run, space), k, len(space) if space else None
        )
        if scores.not_found and space is None:
            _warn(
                f"{scores.not_found} (dialogue, round) targets were not in their rankings; BRI "
                f"ranks them {int(scores.missing_rank)} (the longest ranking): pass "
                "--search-space for the full-gallery rank"
            )
        if as_json:
            typer.echo(json.dumps(scores.as_json()))
        else:
            _print_chatir(scores)
        return

    if k is not None:
        raise InputError(
            f"--k applies to --protocol chatir only; {protocol.value} reports its fixed K list"
        )
    if annotations is None:
        raise InputError(
            f"--protocol {protocol.value} needs --annotations: pass "
            f"{ANNOTATIONS_HINT[protocol.value]}"
        )
    query_run = runfile.read_query_run(run, space)
    if protocol is ScoringProtocol.circo:
        result = scoring.score_circo(query_run, loaders.load_circo(annotations))
    elif protocol is ScoringProtocol.cirr:
        result = scoring.score_cirr(query_run, loaders.load_cirr_captions(annotations))
    else:
        result = scoring.score_fashioniq(query_run, loaders.load_fashioniq_captions(annotations))
    if result.short_misses:
        _warn(
            f"{result.short_misses} queries missed with rankings shorter than the largest K; "
            "they count as misses: write longer rankings if that is not intended"
        )
    if result.subset_undetermined:
        _warn(
            f"{result.subset_undetermined} queries rank neither the target nor every img_set "
            "member; Recall_subset counts them as misses: include all img_set members"
        )
    if as_json:
        typer.echo(json.dumps(result.as_json()))
    else:
        _print_query_scores(protocol.value, result.as_json())


@eval_app.command("submission")
def submission_command(
    protocol: ServerProtocol = typer.Option(..., "--protocol", help="cirr or circo test server."),
    run: Path = typer.Option(..., "--run", help="Run file (.jsonl) on the test split."),
    out: Path = typer.Option(..., "--out", help="Submission JSON to write."),
    annotations: Path | None = typer.Option(
        None,
        "--annotations",
        help="cirr: cap.rc2.test1.json (required); circo: test.json (checks coverage).",
    ),
    out_subset: Path | None = typer.Option(
        None, "--out-subset", help="cirr: the Recall_subset file (default: <out>_subset.json)."
    ),
) -> None:
    """Write the official test-server file(s): CIRR recall + recall_subset, or CIRCO top-50."""
    from convir.evaluation import loaders, runfile, submission

    query_run = runfile.read_query_run(run)
    if protocol is ServerProtocol.cirr:
        if annotations is None:
            raise InputError(
                "--protocol cirr needs --annotations cap.rc2.test1.json "
                "(the reference and img_set of each pairid)"
            )
        recall, subset = submission.cirr_submission(
            query_run, loaders.load_cirr_captions(annotations)
        )
        subset_path = out_subset or out.with_name(f"{out.stem}_subset{out.suffix or '.json'}")
        submission.write_json(out, recall)
        submission.write_json(subset_path, subset)
        typer.echo(f"wrote {out} (recall) and {subset_path} (recall_subset)")
        return
    if out_subset is not None:
        raise InputError("--out-subset is for --protocol cirr only")
    queries = loaders.load_circo(annotations) if annotations is not None else None
    top50 = submission.circo_submission(query_run, queries)
    short = sum(len(v) < 50 for v in top50.values())
    if short:
        _warn(f"{short} queries have fewer than 50 ranked ids; the server expects the top 50")
    submission.write_json(out, top50)
    typer.echo(f"wrote {out} ({len(top50)} queries)")


@data_app.command("inspect")
def inspect_command(
    path: Path = typer.Argument(..., help="A benchmark JSON file (annotations, split, dialogues)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Detect a benchmark file's format from its content, validate it, and summarise it."""
    from convir.evaluation.loaders import inspect_file

    summary = inspect_file(path)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for key, value in summary.items():
            typer.echo(f"{key}: {value}")
