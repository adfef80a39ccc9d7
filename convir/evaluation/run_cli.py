"""``convir eval run``'s options: parsed into a :class:`~convir.evaluation.run_config.RunOptions`
(or read back from a recorded ``config.json``) and handed to :func:`run_evaluation`."""

from __future__ import annotations

from pathlib import Path

import typer

from convir.errors import InputError
from convir.evaluation.apps import eval_app
from convir.evaluation.run_checks import Benchmark, CaptionSource, Engine, SystemName
from convir.evaluation.run_evaluation import run_evaluation
from convir.evaluation.stats import DEFAULT_RESAMPLES, DEFAULT_SEED
from convir.ray_cluster import ADDRESS_HELP

DISPLAY_OPTIONS = ("config", "out", "as_json", "progress")


def _path_text(path: Path | None) -> str | None:
    """Absolute, so a recorded config.json reruns from any working folder."""
    return None if path is None else str(path.resolve())


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
