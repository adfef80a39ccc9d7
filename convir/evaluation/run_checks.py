"""What ``convir eval run`` accepts: its choices (benchmarks, systems, engines, question
banks, caption sources) and the checks that refuse a run before anything is built, each in
the user's words (the option to change and why)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from convir.errors import InputError


class Benchmark(StrEnum):
    testbed = "testbed"
    chatir = "chatir"
    captions = "captions"


class SystemName(StrEnum):
    concat = "concat"
    text = "text"
    dar = "dar"
    dar_published = "dar-published"
    dar_ours = "dar-ours"
    stitch = "stitch"
    auto = "auto"


class Engine(StrEnum):
    batched = "batched"
    graph = "graph"


class Questions(StrEnum):
    info_gain = "info_gain"
    random = "random"
    testbed = "testbed"
    llm = "llm"


class CaptionSource(StrEnum):
    testbed = "testbed"
    none = "none"
    metadata = "metadata"


def check_run_options(rounds: int, workers: int) -> None:
    """Bounds every benchmark shares (a 500-round run is a typo, not an experiment)."""
    if not 0 <= rounds <= 50:
        raise InputError(f"--rounds must be between 0 and 50, got {rounds}")
    if not 1 <= workers <= 64:
        raise InputError(f"--workers must be between 1 and 64, got {workers}")


def check_testbed_options(dialogues: int, gallery_size: int, error_rate: float) -> None:
    """A testbed run draws its targets from its own gallery: no more dialogues than images."""
    if not 100 <= gallery_size <= 100_000:
        raise InputError(f"--gallery-size must be between 100 and 100,000, got {gallery_size}")
    if not 1 <= dialogues <= gallery_size:
        raise InputError(
            f"--dialogues must be between 1 and --gallery-size ({gallery_size}), got {dialogues}"
        )
    if not 0.0 <= error_rate <= 1.0:
        raise InputError(f"--error-rate must be between 0 and 1, got {error_rate}")


def check_chatir_options(
    index: Path | None,
    dialogues_file: Path | None,
    testbed_only: list[str],
    policy: str,
    modes: list[str],
    agents: bool,
) -> None:
    """Replayed dialogues fix the user side: only options that still mean something pass."""
    if index is None or dialogues_file is None:
        raise InputError(
            "--benchmark chatir needs --index INDEX (built by `convir index FOLDER`) and "
            "--dialogues-file FILE (ChatIR dialogues, e.g. VisDial_v1.0_queries_val.json)"
        )
    if testbed_only:
        raise InputError(
            f"{' and '.join(testbed_only)} apply to --benchmark testbed only: chatir's gallery "
            "is the index (or --search-space) and its answers are recorded"
        )
    if agents and (policy == "llm" or modes != [Questions.info_gain.value]):
        raise InputError(
            "--benchmark chatir replays the recorded questions, so the agent must ask none "
            "of its own: use --policy rules and leave out --questions"
        )


def check_captions_options(
    annotations: Path | None,
    text_model: str | None,
    others: list[str],
    labels: list[str],
    modes: list[str],
    gallery_size: int | None,
    dialogues: int | None,
    error_rate: float | None,
) -> None:
    """A captions run builds its own captions-only gallery and users: no images, no DAR."""
    if annotations is None or text_model is None:
        raise InputError(
            '--benchmark captions needs --annotations FILE.jsonl ({"id", "captions": [...]} '
            "per line) and --text-model NAME_OR_PATH (e.g. all-MiniLM-L6-v2)"
        )
    if others:
        raise InputError(
            f"{' and '.join(others)} do not apply to --benchmark captions: it builds its own "
            "gallery from --annotations (sampled with --gallery-size and --seed)"
        )
    imaging = [s for s in labels if s not in ("concat", "text", "auto")]
    if imaging:
        raise InputError(
            f"--strategy {imaging[0]} needs an image model; a captions gallery has texts only: "
            "use --strategy concat, text or auto"
        )
    if "testbed" in modes:
        raise InputError("--questions testbed asks the testbed's templates; not on captions")
    if gallery_size is not None and gallery_size < 2:
        raise InputError(f"--gallery-size must be at least 2, got {gallery_size}")
    if dialogues is not None and dialogues < 1:
        raise InputError(f"--dialogues must be at least 1, got {dialogues}")
    if error_rate is not None and not 0.0 <= error_rate <= 1.0:
        raise InputError(f"--error-rate must be between 0 and 1, got {error_rate}")


def check_plugins(policy: str, modes: list[str], user: str | None, chatir: bool) -> None:
    """Names a built-in knows, or importable classes with the protocol's methods."""
    from convir.plugins import check_policy_name, is_plugin_path, load_class

    check_policy_name(policy)
    for mode in modes:
        if is_plugin_path(mode):
            load_class(mode, "questions")
        elif mode not in {q.value for q in Questions}:
            raise InputError(
                f"--questions must be one of {', '.join(q.value for q in Questions)} or "
                f"package.module:Class (your own question bank), got {mode!r}"
            )
    if user is not None:
        if chatir:
            raise InputError(
                "--user replaces the simulated user; --benchmark chatir replays recorded "
                "dialogues (the record is the user)"
            )
        if not is_plugin_path(user):
            raise InputError(f"--user takes package.module:Class (your own user), got {user!r}")
        load_class(user, "user")
