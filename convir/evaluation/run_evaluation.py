"""One ``convir eval run`` from its options: the checks, the systems built once, every run
file, ``summary.json``, ``config.json``, ``dialogues.jsonl`` and the plot written, the tables
printed; a ``--config`` rerun is compared file by file with the recorded run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from convir.errors import InputError
from convir.evaluation.experiment import (
    HITS_K,
    RunSpec,
    agent_knobs,
    build_systems,
    local_runs,
    ray_runs,
    summary_entry,
)
from convir.evaluation.run_checks import (
    Benchmark,
    check_captions_options,
    check_chatir_options,
    check_plugins,
    check_run_options,
    check_testbed_options,
)
from convir.evaluation.stats import check_resamples

if TYPE_CHECKING:
    from convir.evaluation.run_config import RunOptions


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
    check_run_options(rounds, workers)
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
    check_plugins(policy, modes if agents else [], o.user, chatir)
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
        check_captions_options(
            annotations, text_model, others, labels, modes, gallery_size, dialogues, error_rate
        )
        error_rate = 0.0 if error_rate is None else error_rate
    elif chatir:
        testbed_only = [
            name
            for name, value in (("--gallery-size", gallery_size), ("--error-rate", error_rate))
            if value is not None
        ]
        check_chatir_options(index, dialogues_file, testbed_only, policy, modes, bool(agents))
    else:
        if index is not None or dialogues_file is not None or search_space is not None:
            raise InputError(
                "--index, --dialogues-file and --search-space are for --benchmark chatir; "
                "the testbed builds its own gallery (--gallery-size)"
            )
        gallery_size = 1000 if gallery_size is None else gallery_size
        dialogues = 200 if dialogues is None else dialogues
        error_rate = 0.0 if error_rate is None else error_rate
        check_testbed_options(dialogues, gallery_size, error_rate)
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
