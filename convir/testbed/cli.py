"""``convir testbed ...`` commands: make a gallery, train the shipped testbed models."""

from __future__ import annotations

from pathlib import Path

import typer

from convir.errors import InputError

testbed_app = typer.Typer(
    help="The synthetic testbed world and its small models.", no_args_is_help=True
)

ASSETS = Path(__file__).resolve().parent / "assets"


@testbed_app.command("make")
def make_command(
    out: Path = typer.Option(..., "--out", help="Folder to write the gallery into."),
    size: int = typer.Option(1000, "--size", help="Number of images (100 to 1,000,000)."),
    seed: int = typer.Option(0, "--seed", help="World seed: same seed, same gallery."),
    image_size: int = typer.Option(64, "--image-size", help="Image side in pixels."),
    edit_rate: float = typer.Option(0.5, "--edit-rate", help="Share of odd scenes that are edits."),
) -> None:
    """Write a seeded testbed gallery: images, attributes.jsonl, captions.jsonl, triplets.jsonl."""
    from convir.testbed.gallery import write_gallery
    from convir.testbed.world import World

    if not 100 <= size <= 1_000_000:
        raise InputError(f"--size must be between 100 and 1,000,000, got {size}")
    if not 16 <= image_size <= 1024:
        raise InputError(f"--image-size must be between 16 and 1024, got {image_size}")
    if not 0.0 <= edit_rate <= 1.0:
        raise InputError(f"--edit-rate must be in [0, 1], got {edit_rate}")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    write_gallery(World(seed=seed, size=size, edit_rate=edit_rate), out, image_size)
    typer.echo(f"wrote {size} images to {out}")


@testbed_app.command("train-clip")
def train_clip_command(
    out: Path = typer.Option(ASSETS, "--out", help="Folder for the checkpoint, config and vocab."),
    steps: int = typer.Option(1500, "--steps", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=2),
    lr: float = typer.Option(5e-4, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    hard_negatives: float = typer.Option(
        0.5, "--hard-negatives", min=0.0, max=1.0, help="Share of a batch in (scene, edit) pairs."
    ),
    fine_grained: float = typer.Option(
        0.5, "--fine-grained", min=0.0, help="Weight of the token-patch term (0: off)."
    ),
) -> None:
    """Train the tiny testbed CLIP (open_clip, contrastive) and report held-out numbers."""
    from convir.testbed.clip_train import TrainConfig, train_clip

    cfg = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        hard_negative_share=hard_negatives,
        fine_grained_weight=fine_grained,
    )
    metrics = train_clip(out, cfg)
    typer.echo(" ".join(f"{k}={v:.3f}" for k, v in metrics.items()))


@testbed_app.command("train-captioner")
def train_captioner_command(
    out: Path = typer.Option(
        ASSETS / "captioner", "--out", help="Folder for the model, tokenizer and processor."
    ),
    steps: int = typer.Option(3000, "--steps", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=2),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the testbed captioner (transformers ViT + GPT-2) and report held-out accuracy."""
    from convir.testbed.captioner_train import CaptionerConfig, train_captioner

    cfg = CaptionerConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    metrics = train_captioner(out, cfg)
    typer.echo(" ".join(f"{k}={v:.3f}" for k, v in metrics.items()))


@testbed_app.command("train-generator")
def train_generator_command(
    out: Path = typer.Option(
        ASSETS / "generator", "--out", help="Folder for unet/ and scheduler/."
    ),
    steps: int = typer.Option(2800, "--steps", min=1),
    batch_size: int = typer.Option(64, "--batch-size", min=2),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the small testbed diffusion model (diffusers UNet + DDIM) on testbed CLIP text."""
    from convir.testbed.generator_train import GeneratorConfig, train_generator

    cfg = GeneratorConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    metrics = train_generator(out, cfg)
    typer.echo(" ".join(f"{k}={v}" for k, v in metrics.items()))
