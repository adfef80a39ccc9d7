"""What ``convir chat`` and ``convir serve`` share: their agent options (gallery, strategy,
STiTch form, policy, question bank, checkpoint), checked before any model loads, then the
gallery opened and the agent built, the same way for both."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from convir.errors import InputError
from convir.state import check_strategy, stitch_form

if TYPE_CHECKING:
    from convir.agents.conversation import ConvirAgent
    from convir.gallery.resources import Resources


def check_gallery_options(
    index_path: Path | None,
    model: str | None,
    pretrained: str | None,
    gallery_size: int | None,
    seed: int | None,
) -> None:
    """``--index`` with its model, or the testbed with its size and seed, not a mix."""
    if index_path is not None and (gallery_size is not None or seed is not None):
        raise InputError("--gallery-size and --seed describe the testbed; drop them with --index")
    if index_path is None and (model is not None or pretrained is not None):
        raise InputError("--model and --pretrained are for --index; the testbed has its own CLIP")


def check_agent_options(strategy: str, policy: str, questions: str | None) -> None:
    """The strategy, the policy (a name or an importable class) and the question bank (an
    importable class, or none)."""
    from convir.plugins import check_bank_path, check_policy_name

    check_strategy(strategy)
    check_policy_name(policy)  # plug-in classes are imported and checked here
    check_bank_path(questions)


def open_gallery(
    index_path: Path | None,
    model: str | None,
    pretrained: str | None,
    gallery_size: int | None,
    seed: int | None,
    generate: bool,
    want_llm: bool,
) -> Resources:
    """The testbed in memory, or a saved index with its models (``Resources.open``)."""
    from convir.gallery.resources import Resources

    llm = None
    if want_llm:
        from convir.models.llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM()
    if index_path is None:
        size = 1000 if gallery_size is None else gallery_size
        if not 10 <= size <= 100_000:
            raise InputError(f"--gallery-size must be between 10 and 100,000, got {size}")
        typer.echo(f"building the testbed gallery ({size} images)...", err=True)
        from convir.testbed.resources import testbed_resources

        return testbed_resources(
            size, seed or 0, llm=llm, generator=generate, progress=sys.stderr.isatty()
        )
    resources = Resources.open(
        index_path, model=model, pretrained=pretrained, generator=generate, llm=llm
    )
    if not resources.has_images:
        typer.echo("note: a captions-only gallery: results show their texts", err=True)
    elif generate and resources.generator_factory is None:
        typer.echo(
            f"note: no image generator for {resources.embedder.name}; DAR searches with text",
            err=True,
        )
    return resources


def agent_from_options(
    *,
    index_path: Path | None,
    model: str | None,
    pretrained: str | None,
    gallery_size: int | None,
    seed: int | None,
    strategy: str,
    stitch: str,
    policy: str,
    questions: str | None,
    checkpoint: str,
    generate: bool,
    check_gallery: Callable[[Resources], None] | None = None,
) -> ConvirAgent:
    """The agent chat and serve run: options checked (call :func:`check_agent_options` and
    :func:`check_gallery_options` first for errors before anything else), the STiTch form
    and the checkpoint checked before any model loads, then the gallery opened,
    ``check_gallery`` run on it (what a face refuses on a gallery, e.g. chat's --show on a
    captions-only one), the question bank plugged in and the agent built."""
    from convir.agents.checkpointers import checkpointer
    from convir.plugins import agent_with, use_question_bank

    form = stitch_form(stitch)  # a bad name fails before any model loads
    saver = checkpointer(checkpoint)  # a bad spec fails before any model loads
    resources = open_gallery(
        index_path, model, pretrained, gallery_size, seed, generate, policy == "llm"
    )
    use_question_bank(resources, questions)
    if check_gallery is not None:
        check_gallery(resources)
    # the in-memory testbed's texts are its ground truth: answers are not read off them
    return agent_with(
        resources,
        strategy,
        policy,
        checkpoint=saver,
        read_captions=index_path is not None,
        **form,
    )
