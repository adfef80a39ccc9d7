"""``convir eval run``: simulated or replayed dialogues (options parsed here, the run itself in
``experiment``). The command groups live in ``apps``; importing this module also registers
the other commands: ``score_cli`` (score, submission, compare, inspect) and ``composed_cli``
(composed)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from convir.errors import InputError
from convir.evaluation.apps import data_app, eval_app  # noqa: F401  (convir.cli adds both)
from convir.evaluation.experiment import (
    HITS_K,
    RunSpec,
    agent_knobs,
    build_systems,
    local_runs,
    ray_runs,
    summary_entry,
)
from convir.evaluation.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, check_resamples
from convir.ray_cluster import ADDRESS_HELP

if TYPE_CHECKING:
    from convir.evaluation.run_config import RunOptions


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


def _check_run_options(rounds: int, workers: int) -> None:
    if not 0 <= rounds <= 50:
        raise InputError(f"--rounds must be between 0 and 50, got {rounds}")
    if not 1 <= workers <= 64:
        raise InputError(f"--workers must be between 1 and 64, got {workers}")


def _check_testbed_options(dialogues: int, gallery_size: int, error_rate: float) -> None:
    if not 100 <= gallery_size <= 100_000:
        raise InputError(f"--gallery-size must be between 100 and 100,000, got {gallery_size}")
    if not 1 <= dialogues <= gallery_size:
        raise InputError(
            f"--dialogues must be between 1 and --gallery-size ({gallery_size}), got {dialogues}"
        )
    if not 0.0 <= error_rate <= 1.0:
        raise InputError(f"--error-rate must be between 0 and 1, got {error_rate}")


def _check_chatir_options(
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


def _check_captions_options(
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


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else path.resolve()


@eval_app.command("run")
def run_command(
    ctx: typer.Context,
    benchmark: Benchmark = typer.Option(
        Benchmark.testbed,
        "--benchmark",
        help="testbed (simulated users on testbed scenes), chatir (recorded dialogues "
        "replayed on real images) or captions (simulated users on a caption file: "
        "--annotations, --text-model).",
    ),
    strategies: list[SystemName] = typer.Option(
        [SystemName.concat],
        "--strategy",
        help="A system to run; repeat to compare. concat: ChatIR's text-only baseline (the "
        "joined dialogue; random questions: the testbed's templates on the testbed, the "
        "gallery's own bank on captions (labelled concat/bank), none on chatir); "
        "text|dar|auto: the agent.",
    ),
    policy: str = typer.Option(
        "rules",
        "--policy",
        help="Agent policy: rules, llm, or package.module:Class (your own; docs/evaluation.md).",
    ),
    questions: list[str] = typer.Option(
        ["info_gain"],
        "--questions",
        help="Agent questioner: info_gain, random, testbed, llm, or package.module:Class (your "
        "own question bank); repeat to compare (testbed and captions: chatir replays the "
        "recorded questions).",
    ),
    user: str | None = typer.Option(
        None,
        "--user",
        help="package.module:Class: your own simulated user, built with the benchmark's "
        "user's arguments (testbed: TestbedUser's, captions: CaptionUser's).",
    ),
    rounds: int = typer.Option(10, "--rounds", help="Question rounds after the opening."),
    annotations: Path | None = typer.Option(
        None,
        "--annotations",
        help='captions: a JSON-lines file, {"id": ..., "captions": [...]} per line (caption '
        "1 opens the dialogue, captions 2-3 are the gallery's text).",
    ),
    text_model: str | None = typer.Option(
        None,
        "--text-model",
        help="captions: the sentence model that embeds the gallery's texts and the queries "
        "(a name such as all-MiniLM-L6-v2, or a sentence-transformers folder). testbed with "
        "--via-index: the index also stores caption vectors of the --captioner's texts, fused "
        "into retrieval by --agent-config caption_weight=W.",
    ),
    dialogues: int | None = typer.Option(
        None,
        "--dialogues",
        help="Dialogues to run: testbed and captions targets (default 200, at most the "
        "gallery); chatir: the file's first N (default all).",
    ),
    gallery_size: int | None = typer.Option(
        None,
        "--gallery-size",
        help="Testbed images to search (default 1000); captions: items sampled from the file "
        "with --seed (default all).",
    ),
    seed: int = typer.Option(0, "--seed", help="World, targets, openings and noise seed."),
    error_rate: float | None = typer.Option(
        None,
        "--error-rate",
        help="Probability that the simulated testbed user answers wrongly (default 0).",
    ),
    index: Path | None = typer.Option(
        None, "--index", help="chatir: the gallery, an index file from `convir index FOLDER`."
    ),
    dialogues_file: Path | None = typer.Option(
        None, "--dialogues-file", help="chatir: ChatIR dialogues (VisDial_v1.0_queries_val.json)."
    ),
    search_space: Path | None = typer.Option(
        None,
        "--search-space",
        help="chatir: rank among these images only (Search_Space_val_50k.json); the index "
        "must hold all of them.",
    ),
    workers: int = typer.Option(
        8,
        "--workers",
        help="Dialogues run at once (threads) by --engine graph; the concat baseline and the "
        "batched engine run a round at a time in batches instead.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for run files, summary.json, config.json, plot (with --config: default "
        "DIR/rerun).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    use_ray: bool = typer.Option(
        False,
        "--ray",
        help="Spread the dialogues over Ray actors (extra: convir[ray]); same run files at equal "
        "torch thread counts.",
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help=ADDRESS_HELP,
    ),
    ray_actors: int | None = typer.Option(
        None,
        "--ray-actors",
        min=1,
        help="--ray: actors, each building its own gallery and systems (default: one per "
        "CPU of the cluster); --workers threads run inside each.",
    ),
    via_index: bool = typer.Option(
        False,
        "--via-index",
        help="testbed: write the gallery as image files under --out, index it with `convir "
        "index` and give the agent only that index (the path a user's folder takes).",
    ),
    captioner: CaptionSource = typer.Option(
        CaptionSource.testbed,
        "--captioner",
        help="--via-index: the gallery's texts: testbed (the shipped captioner), metadata "
        "(the gallery's captions.jsonl) or none.",
    ),
    engine: Engine = typer.Option(
        Engine.batched,
        "--engine",
        help="How agents run: batched (the agent's nodes without the graph runtime, a round "
        "of all dialogues per call: fastest, same rankings up to float rounding) or graph "
        "(the LangGraph agent chat and serve run, --workers dialogues at a time).",
    ),
    agent_config: list[str] = typer.Option(
        [],
        "--agent-config",
        help="KEY=VALUE, repeatable: an AgentConfig knob for every agent of the run (e.g. "
        "dar_image_weight_early=0.1); docs/agent.md lists them.",
    ),
    resamples: int = typer.Option(
        DEFAULT_RESAMPLES,
        "--resamples",
        help="Bootstrap resamples of the dialogues behind each 95% interval (0: none).",
    ),
    bootstrap_seed: int = typer.Option(
        DEFAULT_SEED, "--bootstrap-seed", help="Seed of the bootstrap resamples."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="DIR/config.json of an earlier run: rerun it as recorded (only --out, --json "
        "and --progress may be given with it).",
    ),
) -> None:
    """Simulated or replayed dialogues against each --strategy; writes
    DIR/<strategy>.run.jsonl, DIR/summary.json (with 95% bootstrap intervals),
    DIR/config.json (everything needed to rerun it: --config), DIR/dialogues.jsonl (every
    dialogue's questions, options and answers) and DIR/hits_at_10.png (Hits@10 per round,
    one line per strategy). On --benchmark captions systems are labelled strategy/questions
    (concat/bank, text/info_gain; run files strategy-questions.run.jsonl) and the gallery's
    index is kept in DIR/index."""
    if config is not None:
        given = [  # typer vendors its own click: the source is compared by name
            param.opts[0]
            for param in ctx.command.params
            if param.name not in DISPLAY_OPTIONS
            and getattr(ctx.get_parameter_source(param.name or ""), "name", "") == "COMMANDLINE"
        ]
        if given:
            raise InputError(
                f"--config reruns a recorded run as it was; drop {given[0]} (to change it, "
                'start a new run from the "command" in config.json)'
            )
        from convir.evaluation.run_config import CONFIG_NAME, read_config

        source = config / CONFIG_NAME if config.is_dir() else config
        options, record = read_config(source)
        run_evaluation(options, out or source.parent / "rerun", as_json, progress, record, source)
        return
    if out is None:
        raise InputError(
            "give --out DIR (the folder for run files, summary.json, config.json), or "
            "--config DIR/config.json to rerun a recorded run"
        )
    from convir.evaluation.run_config import RunOptions

    options = RunOptions(
        benchmark=benchmark.value,
        strategies=tuple(s.value for s in strategies),
        policy=policy,
        questions=tuple(questions),
        user=user,
        rounds=rounds,
        annotations=_path_text(annotations),
        text_model=text_model,
        dialogues=dialogues,
        gallery_size=gallery_size,
        seed=seed,
        error_rate=error_rate,
        index=_path_text(index),
        dialogues_file=_path_text(dialogues_file),
        search_space=_path_text(search_space),
        workers=workers,
        use_ray=use_ray,
        ray_address=ray_address,
        ray_actors=ray_actors,
        via_index=via_index,
        captioner=captioner.value,
        engine=engine.value,
        agent_config=tuple(agent_config),
        resamples=resamples,
        bootstrap_seed=bootstrap_seed,
    )
    run_evaluation(options, out, as_json, progress)


DISPLAY_OPTIONS = ("config", "out", "as_json", "progress")


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())


def _check_plugins(policy: str, modes: list[str], user: str | None, chatir: bool) -> None:
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


def run_evaluation(
    options: RunOptions,
    out: Path,
    as_json: bool,
    progress: bool,
    recorded: dict[str, Any] | None = None,
    recorded_at: Path | None = None,
) -> None:
    """Check the options, run every system, write the folder and print the tables;
    ``recorded`` (a ``--config`` rerun): its versions are compared with this machine's and
    the rerun's files with the recorded run's."""
    o = options
    rounds, workers, policy, captioner = o.rounds, o.workers, o.policy, o.captioner
    gallery_size, dialogues, error_rate = o.gallery_size, o.dialogues, o.error_rate
    text_model, via_index, use_ray = o.text_model, o.via_index, o.use_ray
    annotations, index, dialogues_file, search_space = (
        None if v is None else Path(v)
        for v in (o.annotations, o.index, o.dialogues_file, o.search_space)
    )
    check_resamples(o.resamples)
    _check_run_options(rounds, workers)
    knobs = agent_knobs(list(o.agent_config))
    if not use_ray and (o.ray_address is not None or o.ray_actors is not None):
        raise InputError("--ray-address and --ray-actors apply with --ray only; add --ray")
    captions_run = o.benchmark == Benchmark.captions
    chatir = o.benchmark == Benchmark.chatir
    if not captions_run and annotations is not None:
        raise InputError("--annotations is for --benchmark captions")
    if via_index and o.benchmark != Benchmark.testbed:
        raise InputError("--via-index is for --benchmark testbed (chatir already uses --index)")
    if text_model is not None and not captions_run and not via_index:
        raise InputError(
            "--text-model is for --benchmark captions, or --benchmark testbed with --via-index "
            "(the index then stores caption vectors of the --captioner's texts); chatir's "
            "index carries its own (`convir index FOLDER --captions F --text-model NAME`)"
        )
    if via_index:
        from convir.evaluation.via_index import check_text_model

        check_text_model(captioner, text_model)
    if knobs.get("caption_weight", 0) > 0 and o.benchmark == Benchmark.testbed and not text_model:
        raise InputError(
            f"--agent-config caption_weight={knobs['caption_weight']} has no effect without "
            "caption vectors: add --via-index --text-model all-MiniLM-L6-v2"
        )
    labels = list(o.strategies)
    agents = [s for s in labels if s != "concat"]
    modes = list(dict.fromkeys(o.questions))
    _check_plugins(policy, modes if agents else [], o.user, chatir)
    if captions_run:
        others = [
            name
            for name, value in (
                ("--index", index),
                ("--dialogues-file", dialogues_file),
                ("--search-space", search_space),
            )
            if value is not None
        ]
        _check_captions_options(
            annotations, text_model, others, labels, modes, gallery_size, dialogues, error_rate
        )
        error_rate = 0.0 if error_rate is None else error_rate
    elif chatir:
        testbed_only = [
            name
            for name, value in (("--gallery-size", gallery_size), ("--error-rate", error_rate))
            if value is not None
        ]
        _check_chatir_options(index, dialogues_file, testbed_only, policy, modes, bool(agents))
    else:
        if index is not None or dialogues_file is not None or search_space is not None:
            raise InputError(
                "--index, --dialogues-file and --search-space are for --benchmark chatir; "
                "the testbed builds its own gallery (--gallery-size)"
            )
        gallery_size = 1000 if gallery_size is None else gallery_size
        dialogues = 200 if dialogues is None else dialogues
        error_rate = 0.0 if error_rate is None else error_rate
        _check_testbed_options(dialogues, gallery_size, error_rate)
    if len(set(labels)) != len(labels):
        raise InputError(f"--strategy repeats a value ({', '.join(labels)}); give each once")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; pass a folder (it is created if missing)")
    if "stitch" in labels:
        raise InputError(
            "--strategy stitch needs composed queries (a reference image and an edit); "
            "measure it with `convir eval composed`"
        )
    if use_ray:
        from convir.ray_cluster import require_ray

        require_ray()  # before building anything

    from convir.evaluation.loop import (
        as_run,
        dialogue_lines,
        summarize,
        write_run_file,
        write_text,
    )
    from convir.evaluation.metrics import recall_at_k_per_round
    from convir.evaluation.plots import plot_hits
    from convir.evaluation.run_config import drift, run_record, write_config
    from convir.evaluation.stats import intervals

    spec = RunSpec(
        chatir,
        tuple(labels),
        tuple(modes),
        policy,
        o.seed,
        gallery_size,
        dialogues,
        error_rate,
        index,
        dialogues_file,
        search_space,
        progress,
        (out / "galleries").resolve() if via_index else None,
        captioner,
        tuple(knobs.items()),
        o.engine,
        annotations,
        text_model,
        (out / "index").resolve() if captions_run else None,
        o.user,
    )
    setup, systems = build_systems(spec)
    if knobs.get("caption_weight", 0) > 0 and not setup.resources.has_caption_channel:
        raise InputError(
            f"--agent-config caption_weight={knobs['caption_weight']} has no effect: this "
            "gallery has no caption vectors (a captions-only gallery is searched by its texts "
            "already; an image index needs `convir index FOLDER --captions F --text-model NAME`)"
        )
    record = run_record(options, spec, setup, systems)
    if recorded is not None:
        for line in drift(recorded, record):
            typer.echo(f"warning: {line}; the rerun may differ", err=True)
    write_config(out, record)
    mode_of = {spec.system_label(s, m): m for s in agents for m in modes}
    size = setup.resources.index.count
    if use_ray:
        runs = ray_runs(
            spec, list(systems), setup.dialogue_ids, rounds, workers, o.ray_address, o.ray_actors
        )
    else:
        runs = local_runs(setup, systems, rounds, workers, progress)
    summary: dict[str, Any] = {}
    dialogue_log: list[str] = []
    run_files: list[str] = []
    for label, records, seconds in runs:
        run_files.append(f"{label.replace('/', '-')}.run.jsonl")
        write_run_file(records, out / run_files[-1])
        scores = summarize(records, HITS_K, search_space_size=size)
        ranks = as_run(records).ranks()
        recall_at_1 = recall_at_k_per_round(ranks, 1).tolist()
        ci = None
        if o.resamples:
            ci = intervals(ranks, HITS_K, scores.missing_rank, o.resamples, o.bootstrap_seed)
            ci |= {"resamples": o.resamples, "seed": o.bootstrap_seed}
        summary[label] = summary_entry(scores, seconds, rounds, recall_at_1, ci)
        if captions_run:
            strategy, _, mode = label.partition("/")
            if strategy != "concat":
                summary[label]["policy"] = policy
            summary[label]["questions"] = mode_of.get(label, mode)
        elif label != "concat":
            mode = mode_of[label]
            summary[label] |= {"policy": policy, "questions": setup.agent_questions or mode}
        dialogue_log += [json.dumps(line) + "\n" for line in dialogue_lines(label, records)]
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    write_text(out / "dialogues.jsonl", "".join(dialogue_log))
    plot_hits(
        {label: s["hits_at_10"] for label, s in summary.items()},
        out / "hits_at_10.png",
        k=HITS_K,
        title=setup.title,
    )
    if recorded_at is not None:
        _report_rerun(recorded_at.parent, out, [*run_files, "dialogues.jsonl"])
    if as_json:
        typer.echo(json.dumps(summary))
        return
    _print_tables(summary, len(setup.dialogue_ids), size, rounds, o.resamples, o.bootstrap_seed)
    typer.echo(
        f"wrote {out}/<strategy>.run.jsonl, summary.json, config.json, dialogues.jsonl, "
        "hits_at_10.png"
    )


def _report_rerun(before: Path, after: Path, names: list[str]) -> None:
    """One stderr line: which of the rerun's files are byte for byte the recorded run's."""
    if before.resolve() == after.resolve():
        return
    verdicts = []
    for name in names:
        old = before / name
        same = old.is_file() and old.read_bytes() == (after / name).read_bytes()
        verdicts.append(f"{name} {'identical' if same else 'DIFFERS'}")
    typer.echo(f"rerun of {before}: " + ", ".join(verdicts), err=True)


def _cell(value: float, ci: list[float] | None) -> str:
    return f"{value:.3f}" if ci is None else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _print_tables(
    summary: dict[str, Any], n: int, size: int, rounds: int, resamples: int, seed: int
) -> None:
    """Hits@10 and Recall@1 per round, one column per system, then BRI; with intervals."""
    if resamples:
        typer.echo(
            f"[lo, hi]: 95% bootstrap interval over the {n} dialogues ({resamples} resamples, "
            f"seed {seed})"
        )
    tables = [("hits_at_10", f"Hits@{HITS_K}"), ("recall_at_1", "Recall@1")]
    width = {label: max(22 if resamples else 8, len(label)) for label in summary}
    for key, name in tables:
        typer.echo(f"{name} per round ({n} dialogues, gallery {size}):")
        typer.echo(f"{'round':>5}  " + "  ".join(f"{k:>{width[k]}}" for k in summary))
        for r in range(rounds + 1):
            cells = [
                f"{_cell(s[key][r], s[key + '_ci'][r] if resamples else None):>{width[k]}}"
                for k, s in summary.items()
            ]
            typer.echo(f"{r:>5}  " + "  ".join(cells))
    typer.echo(
        "BRI (lower is better): "
        + ", ".join(
            f"{k} {_cell(s['bri'], s['bri_ci'] if resamples else None)}" for k, s in summary.items()
        )
    )


from convir.evaluation import composed_cli, score_cli  # noqa: E402, F401  (register commands)
