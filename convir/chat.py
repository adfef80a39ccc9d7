"""``convir chat``: talk to the agent in a terminal, one line per message.

Each line the user types is one turn: the agent's tools run (their names are printed to
stderr as each finishes), then the top results and the agent's question are printed to
stdout. Answering the question is simply typing the next line. ``/transcript`` prints what
the agent did so far, ``/why N`` (a rank, or a gallery id) the terms of that result's score,
``/quit`` or end of input ends the chat. Input may be piped (one
message per line), which is how the tests drive it.

Conversations live in a LangGraph checkpointer: ``--checkpoint sqlite:chats.db --thread t1``
keeps them in a file, and running the same command again continues thread ``t1`` where it
stopped instead of starting over.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from convir.errors import InputError
from convir.state import STRATEGIES

if TYPE_CHECKING:
    from convir.agents.conversation import ConvirAgent
    from convir.gallery.resources import Resources
    from convir.turn import TurnResult

PROMPT = "you> "
HIDDEN_NODES = ("receive", "policy")  # bookkeeping nodes, not worth a line of progress
SHEET_SIZE = 10  # images on the --show contact sheet


def chat_command(
    index_path: Path | None = typer.Option(
        None, "--index", help="Index file from `convir index` (default: the testbed gallery)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="open_clip model for --index (default: the one it records)."
    ),
    pretrained: str | None = typer.Option(
        None, "--pretrained", help="Weights for --model (default: the ones --index records)."
    ),
    gallery_size: int | None = typer.Option(
        None, "--gallery-size", help="Testbed images to search, without --index [1000]."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Testbed gallery seed [0]."),
    strategy: str = typer.Option("auto", "--strategy", help=", ".join(STRATEGIES) + "."),
    stitch: str = typer.Option(
        "published",
        "--stitch",
        help="STiTch form: published (5 descriptions x views) or token-ot (ours; docs/stitch.md).",
    ),
    policy: str = typer.Option(
        "rules",
        "--policy",
        help="rules, llm (needs CONVIR_LLM_URL), or package.module:Class (your own policy).",
    ),
    questions: str | None = typer.Option(
        None,
        "--questions",
        help="package.module:Class: your own question bank (default: the gallery's).",
    ),
    reference: str | None = typer.Option(
        None, "--reference", help="Gallery id of a reference image; the first message edits it."
    ),
    checkpoint: str = typer.Option(
        "memory",
        "--checkpoint",
        help="Where conversations live: memory, sqlite:PATH or postgres://...",
    ),
    thread: str | None = typer.Option(
        None, "--thread", help="Conversation id; an existing one is continued (default: new)."
    ),
    top: int = typer.Option(5, "--top", help="Results shown per turn."),
    show: Path | None = typer.Option(
        None, "--show", help=f"Write a contact sheet of the top {SHEET_SIZE} here each turn."
    ),
    generate: bool = typer.Option(
        True, "--generate/--no-generate", help="Let DAR generate images (slower)."
    ),
) -> None:
    """Chat with the retrieval agent: describe an image, answer its questions."""
    from convir.cli_options import agent_from_options, check_agent_options, check_gallery_options

    check_agent_options(strategy, policy, questions)
    if not 1 <= top <= 100:
        raise InputError(f"--top must be between 1 and 100, got {top}")
    if show is not None and show.suffix.lower() != ".png":
        raise InputError(f"--show {show}: give a .png file name, e.g. results.png")
    if thread is not None and not thread.strip():
        raise InputError("--thread must not be empty; leave it out for a new conversation")
    check_gallery_options(index_path, model, pretrained, gallery_size, seed)
    if strategy == "stitch" and reference is None and thread is None:
        raise InputError("--strategy stitch needs --reference ID (the image to edit)")

    def check_gallery(resources: Resources) -> None:
        if not resources.has_images:
            _check_captions_only(strategy, reference, show)
        if reference is not None and reference not in set(resources.index.ids):
            raise InputError(
                f"--reference {reference!r} is not in the gallery; give an id that a search "
                f"returned (e.g. {resources.index.id_of(0)!r})"
            )

    agent = agent_from_options(
        index_path=index_path,
        model=model,
        pretrained=pretrained,
        gallery_size=gallery_size,
        seed=seed,
        strategy=strategy,
        stitch=stitch,
        policy=policy,
        questions=questions,
        checkpoint=checkpoint,
        generate=generate,
        check_gallery=check_gallery,
    )
    thread = thread or f"chat-{uuid.uuid4().hex[:8]}"
    _resume_check(agent, thread, reference, strategy)
    _greet(agent, thread, checkpoint)
    try:
        chat_loop(agent, thread, _lines(), reference=reference, top=top, show=show)
    except KeyboardInterrupt:
        typer.echo("", err=True)
        raise typer.Exit(130) from None


def chat_loop(
    agent: ConvirAgent,
    thread: str,
    lines: Iterator[str],
    *,
    reference: str | None = None,
    top: int = 5,
    show: Path | None = None,
) -> None:
    """Run one turn per line until ``/quit`` or the lines run out. A number answers with
    that option of the question just asked."""
    options: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line == "/quit":
            return
        if line == "/transcript":
            _print_transcript(agent, thread)
            continue
        if line == "/why" or line.startswith("/why "):
            _print_why(agent, thread, line[4:].strip() or "1")
            continue
        if line.startswith("/") and " " not in line:
            typer.echo(f"unknown command {line}; {_COMMANDS}", err=True)
            continue
        if agent.state(thread):
            line = _chosen_option(line, options)
            events = agent.reply_stream(thread, line)
        else:
            events = agent.start_stream(thread, line, reference)
        result = _follow(events)
        options = list(result.options) if result.question else []
        _print_turn(agent, result, top)
        if show is not None:
            _write_sheet(agent.resources, result, show)


def _check_captions_only(strategy: str, reference: str | None, show: Path | None) -> None:
    """What a gallery without images cannot do, refused before the first turn."""
    if show is not None:
        raise InputError(
            "--show writes a contact sheet of images, and this gallery is captions only; "
            "drop --show (the results print their texts)"
        )
    if strategy == "stitch" or reference is not None:
        raise InputError(
            "STiTch edits a reference image, and this gallery is captions only; drop "
            "--reference and use --strategy text (or auto)"
        )


def _resume_check(agent: ConvirAgent, thread: str, reference: str | None, strategy: str) -> None:
    """Options that only make sense for a new conversation must agree with a saved one."""
    state = agent.state(thread)
    if not state:
        if strategy == "stitch" and reference is None:
            raise InputError("--strategy stitch needs --reference ID (the image to edit)")
        return
    saved = state.get("reference_id")
    if reference is not None and reference != saved:
        raise InputError(
            f"thread {thread!r} was started with reference {saved!r}; drop --reference to "
            "continue it, or pass a new --thread"
        )


def _greet(agent: ConvirAgent, thread: str, checkpoint: str) -> None:
    state = agent.state(thread)
    n = agent.resources.index.count
    if state:
        messages = len(state.get("dialogue", []))
        typer.echo(f"continuing thread {thread} ({messages} messages so far)", err=True)
        question = agent.pending_question(thread)
        if question:
            typer.echo(f"convir> {question}")
    else:
        resume = ""
        if checkpoint not in ("", "memory"):
            resume = f"; continue later with --checkpoint {checkpoint} --thread {thread}"
        kind = "images" if agent.resources.has_images else "texts (captions only)"
        typer.echo(f"thread {thread}, gallery of {n} {kind}{resume}", err=True)
    typer.echo(f"describe the image you look for; {_COMMANDS}", err=True)


def _lines() -> Iterator[str]:
    """Lines from stdin: with a prompt on a terminal, echoed after ``you>`` when piped."""
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            try:
                line = input(PROMPT)
            except EOFError:
                typer.echo("")
                return
        else:
            line = sys.stdin.readline()
            if not line:
                return
            line = line.rstrip("\n")
            if line.strip():
                typer.echo(f"{PROMPT}{line}")
        yield line


def _follow(events: Iterator[tuple[str, dict] | TurnResult]) -> TurnResult:
    """Print each finished tool node on one stderr line; return the turn's result."""
    from convir.turn import TurnResult

    shown = False
    result = None
    for event in events:
        if isinstance(event, TurnResult):
            result = event
        elif event[0] not in HIDDEN_NODES:
            sys.stderr.write(f"{'  ' if not shown else ' '}[{event[0]}]")
            sys.stderr.flush()
            shown = True
    if shown:
        sys.stderr.write("\n")
        sys.stderr.flush()
    assert result is not None
    return result


def _chosen_option(line: str, options: list[str]) -> str:
    """The option a number picks ("2" -> the second), else the line as typed."""
    if line.isdigit() and 1 <= int(line) <= len(options):
        return options[int(line) - 1]
    return line


def _print_turn(agent: ConvirAgent, result: TurnResult, top: int) -> None:
    index = agent.resources.index
    if not result.ranking:
        typer.echo("  (no results)")
    for rank, (item, score) in enumerate(zip(result.ranking, result.scores, strict=False), 1):
        if rank > top:
            break
        position = index.position_of(item)
        if agent.resources.has_images:
            typer.echo(f"  {rank:>3}  {item}  {index.path_of(position)}  {score:.3f}")
        else:  # a captions-only gallery: its text is what there is to show
            text = index.caption_of(position) or ""
            typer.echo(f"  {rank:>3}  {item}  {score:.3f}  {_clip(text)}")
    if result.question:
        typer.echo(f"convir> {result.question}")
        if result.options:
            numbered = "  ".join(f"{i}) {o}" for i, o in enumerate(result.options, 1))
            typer.echo(f"        {numbered}   (a number answers with that option)")
    else:
        typer.echo("convir> (no question this turn; add a detail, or /quit)")


def _clip(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


_COMMANDS = "/transcript shows the log, /why N explains result N, /quit ends"


def _print_why(agent: ConvirAgent, thread: str, which: str) -> None:
    """The terms of a result's score: ``which`` is a rank (1 = top) or a gallery id."""
    ranking = agent.state(thread).get("candidates", [])
    if not ranking:
        typer.echo("(no results yet)", err=True)
        return
    item = ranking[int(which) - 1] if which.isdigit() and 1 <= int(which) <= len(ranking) else which
    try:
        why = agent.explain(thread, item)
    except KeyError:
        typer.echo(f"no gallery image {which!r}: give a rank (1-{len(ranking)}) or an id", err=True)
        return
    place = f"#{why.rank}, score {why.score:.3f}" if why.rank else "not ranked"
    typer.echo(f"  {why.image_id}: {place} (searched with {why.how})")
    for term in why.terms:
        typer.echo(f"    {term.value:+8.3f}  {term.label}")


def _print_transcript(agent: ConvirAgent, thread: str) -> None:
    lines = agent.state(thread).get("transcript", [])
    if not lines:
        typer.echo("(no conversation yet)")
    for line in lines:
        typer.echo(f"  | {line}")


def _write_sheet(resources: Resources, result: TurnResult, path: Path) -> None:
    from convir.contact_sheet import contact_sheet

    ids = result.ranking[:SHEET_SIZE]
    if not ids:
        return
    images = [resources.load_image(resources.index.position_of(i)) for i in ids]
    labels = [f"#{rank} {i}" for rank, i in enumerate(ids, 1)]
    contact_sheet(images, labels, path)
    typer.echo(f"  wrote {path}", err=True)
