"""``convir eval composed``: composed retrieval measured stage by stage on the testbed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from convir.errors import InputError
from convir.evaluation.apps import eval_app


def _stage_names(text: str) -> list[str]:
    from convir.evaluation.composed import STAGES

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise InputError(
            f"--stages: unknown {', '.join(unknown) or '(none given)'}; choose from "
            + ", ".join(STAGES)
        )
    return names


@eval_app.command("composed")
def composed_command(
    gallery_size: int = typer.Option(1000, "--gallery-size", help="Testbed images to search."),
    seed: int = typer.Option(0, "--seed", help="Testbed world seed."),
    stages: str = typer.Option(
        "caption,+edit-transition,+image-transition,descriptions,descriptions+edit,stitch,"
        "stitch-sinkhorn,stitch-gentle-views,stitch-token-ot",
        "--stages",
        help="Comma-separated stages (docs/stitch.md): caption, +edit-transition, "
        "+image-transition, descriptions, descriptions+edit, stitch (published), "
        "stitch-sinkhorn, stitch-gentle-views, stitch-token-ot (ours).",
    ),
    ideal: bool = typer.Option(
        True, "--ideal/--no-ideal", help="Also run every stage with ideal target descriptions."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use the first N queries."),
    ct_temperature: float = typer.Option(0.001, "--ct-temperature", help="ct softmax temperature."),
    edit_weight: float = typer.Option(0.5, "--edit-weight", help="Edit-text share (transition)."),
    transition_scale: float = typer.Option(
        1.0, "--transition-scale", help="lambda of the image transition."
    ),
    ot_weight: float = typer.Option(0.2, "--ot-weight", help="token-ot share of the score."),
    views: int = typer.Option(10, "--views", help="Augmented views per image."),
    view_augment: str = typer.Option(
        "published", "--view-augment", help="Views: published or gentle (docs/stitch.md)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    benchmark: str | None = typer.Option(
        None, "--benchmark", help="cirr, circo or fashioniq: run on a real benchmark's queries."
    ),
    index: Path | None = typer.Option(None, "--index", help="--benchmark: the indexed images."),
    annotations: Path | None = typer.Option(
        None, "--annotations", help="--benchmark: the captions / queries file of the split."
    ),
    split: str = typer.Option("val", "--split", help="--benchmark: val (scored) or test."),
    out: Path = typer.Option(
        Path("composed-run"), "--out", help="--benchmark: folder for run, scores, submission."
    ),
    stitch: str = typer.Option(
        "published", "--stitch", help="--benchmark: STiTch form, published or token-ot."
    ),
    use_llm: bool = typer.Option(
        False, "--llm", help="--benchmark: target descriptions by the LLM at CONVIR_LLM_URL."
    ),
    vlm: bool = typer.Option(
        False, "--vlm", help="--benchmark: send the reference image to that LLM (a VLM)."
    ),
) -> None:
    """Recall@1/10/50 of STiTch's stages on the testbed's composed queries, through the
    agent ('stages': rule-written descriptions, 'ideal': the oracle's); with --benchmark, a
    real benchmark's queries over an indexed folder (run file, scores, submission files)."""
    if benchmark is not None:
        _benchmark(benchmark, index, annotations, split, out, stitch, use_llm, vlm, as_json)
        return
    from convir.evaluation.composed import composed_stages
    from convir.state import AgentConfig
    from convir.testbed.edits import triplets
    from convir.testbed.ideal_describer import IdealDescriber
    from convir.testbed.resources import testbed_resources
    from convir.testbed.world import World

    if not 100 <= gallery_size <= 100_000:
        raise InputError(f"--gallery-size must be between 100 and 100,000, got {gallery_size}")
    names = _stage_names(stages)
    knobs = {
        "stitch_ct_temperature": ct_temperature,
        "stitch_edit_weight": edit_weight,
        "stitch_transition_scale": transition_scale,
        "ot_weight": ot_weight,
        "stitch_views": views,
        "stitch_view_augment": view_augment,
    }
    try:
        AgentConfig(**knobs)
    except ValueError as exc:
        raise InputError(f"a knob is out of range: {exc}") from exc
    resources = testbed_resources(gallery_size, seed, generator=False, progress=not as_json)
    world = World(seed=seed, size=gallery_size)
    queries = triplets(world, seed, limit)

    def say(line: str) -> None:
        if not as_json:
            typer.echo(line, err=True)

    out: dict = {"queries": len(queries), "gallery": gallery_size, "seed": seed, "knobs": knobs}
    out["stages"] = composed_stages(resources, queries, names, knobs, say)
    if ideal:
        refs = [resources.caption_for(t.reference) or "" for t in queries]
        resources.llm = IdealDescriber(world, queries, refs, k=5, seed=seed)
        out["ideal"] = composed_stages(resources, queries, names, knobs, say)
    if as_json:
        typer.echo(json.dumps(out))
        return
    typer.echo(f"{len(queries)} composed queries, gallery {gallery_size}, seed {seed}")
    typer.echo(f"{'descriptions':>12} {'stage':>20} {'R@1':>6} {'R@10':>6} {'R@50':>6}")
    for writer, key in (("rules", "stages"), ("ideal", "ideal")):
        for stage, r in out.get(key, {}).items():
            typer.echo(f"{writer:>12} {stage:>20} {r['r1']:6.3f} {r['r10']:6.3f} {r['r50']:6.3f}")
    sys.stdout.flush()


def _benchmark(
    benchmark: str,
    index: Path | None,
    annotations: Path | None,
    split: str,
    out: Path,
    stitch: str,
    use_llm: bool,
    vlm: bool,
    as_json: bool,
) -> None:
    from convir.agents.conversation import ConvirAgent
    from convir.agents.policy import RulePolicy
    from convir.evaluation.composed_benchmark import (
        BENCHMARKS,
        gallery_ids,
        load_queries,
        run_benchmark,
        write_outputs,
    )
    from convir.gallery.resources import Resources
    from convir.state import AgentConfig, stitch_form

    if benchmark not in BENCHMARKS:
        raise InputError(f"--benchmark must be one of {', '.join(BENCHMARKS)}; got {benchmark!r}")
    if index is None or annotations is None:
        raise InputError("--benchmark needs --index (the indexed images) and --annotations")
    if split not in ("val", "test"):
        raise InputError(f"--split must be val or test; got {split!r}")
    form = stitch_form(stitch)
    if vlm and not use_llm:
        raise InputError("--vlm sends the reference image to the LLM: add --llm")
    queries, records = load_queries(benchmark, annotations)
    llm = None
    if use_llm:
        from convir.models.llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM()
    resources = Resources.open(index, llm=llm)
    config = AgentConfig(strategy="stitch", top_k=100, stitch_llm_sees_reference=vlm, **form)
    gallery_ids(resources, benchmark, queries)  # a wrong folder fails before any work
    agent = ConvirAgent(resources, RulePolicy(ask=False), config)
    from tqdm import tqdm

    bar = tqdm(total=len(queries), desc=benchmark, unit="query", disable=as_json, file=sys.stderr)
    rankings = run_benchmark(agent, benchmark, queries, lambda n: bar.update(1))
    bar.close()
    written = write_outputs(out, benchmark, split, rankings, records)
    if as_json:
        typer.echo(json.dumps({"benchmark": benchmark, "split": split, **written}))
        return
    typer.echo(f"{len(queries)} {benchmark} {split} queries; wrote {written['run']}")
    if "scores" in written:
        typer.echo(json.dumps(written["scores"]))
    for path in written.get("submission", []):
        typer.echo(f"submission: {path}")
