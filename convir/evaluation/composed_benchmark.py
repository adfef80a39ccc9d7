"""Composed-retrieval benchmarks end to end: CIRR, CIRCO, FashionIQ over an indexed folder.

``convir eval composed --benchmark NAME --index INDEX --annotations FILE --split val|test``
runs the agent's STiTch turn (the configured form) on every query of the annotation file
over the gallery of ``INDEX`` (built with ``convir index`` from the benchmark's images), and
writes into ``--out``:

- ``run.jsonl``: one ``{"query_id", "ranking"}`` line per query, ids as the benchmark names
  images (the run-file format ``convir eval score`` reads);
- ``scores.json`` (val: the targets are known): the benchmark's own metrics, computed by the
  same scorers as ``convir eval score``;
- test split: CIRR's two server files ``recall.json`` and ``recall_subset.json``, CIRCO's
  ``submission.json``. FashionIQ has no test server (its test targets were never released);
  a test run writes the run file only.

Image names: a gallery id (the path under the indexed folder) names an image by its file
stem (``dev/dev-1028-1-img1.png`` -> ``dev-1028-1-img1``); CIRCO names COCO images by
integer id (``000000355099.jpg`` -> ``355099``). A query whose reference image is not in
the index is an error naming it (a wrong folder or split), never a silent skip.

CIRR's subset metric ranks the query's six-image group: members the agent's top list does
not hold are appended in the order of their cosine to the descriptions' mean query, so
every member gets a rank (the server needs three).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.agents.conversation import ConvirAgent
    from convir.gallery.resources import Resources

Benchmark = Literal["cirr", "circo", "fashioniq"]
BENCHMARKS: tuple[str, ...] = ("cirr", "circo", "fashioniq")


@dataclass(frozen=True)
class ComposedQuery:
    query_id: str
    reference: str  # the benchmark's name of the reference image
    edit: str
    group: tuple[str, ...] = ()  # CIRR: the img_set members


def load_queries(benchmark: str, annotations: Path) -> tuple[list[ComposedQuery], list]:
    """(queries, the annotation records) of a benchmark file."""
    from convir.evaluation import loaders

    if benchmark == "cirr":
        records: list = loaders.load_cirr_captions(annotations)
        queries = [
            ComposedQuery(str(t.pairid), t.reference, t.caption, tuple(t.img_set.members))
            for t in records
        ]
    elif benchmark == "circo":
        records = loaders.load_circo(annotations)
        queries = [
            ComposedQuery(str(q.id), str(q.reference_img_id), q.relative_caption) for q in records
        ]
    elif benchmark == "fashioniq":
        records = loaders.load_fashioniq_captions(annotations)
        # the two relative captions joined, as CIReVL and LDRE do
        queries = [
            ComposedQuery(str(i), t.candidate, " and ".join(c.strip(" .") for c in t.captions))
            for i, t in enumerate(records)
        ]
    else:
        raise InputError(f"--benchmark must be one of {', '.join(BENCHMARKS)}; got {benchmark!r}")
    return queries, records


def image_names(ids: Sequence[str], benchmark: str) -> list[str]:
    """The benchmark's name of each gallery id (module docstring)."""
    names = []
    for item in ids:
        stem = Path(item).stem
        names.append(str(int(stem)) if benchmark == "circo" and stem.isdigit() else stem)
    return names


def _gallery_ids(resources: Resources, benchmark: str) -> dict[str, str]:
    ids = resources.index.ids
    mapping: dict[str, str] = {}
    for name, item in zip(image_names(ids, benchmark), ids, strict=True):
        if name in mapping:
            raise InputError(
                f"two indexed images are both named {name!r} for {benchmark} ({mapping[name]} "
                f"and {item}); index one split's images per index"
            )
        mapping[name] = item
    return mapping


def _complete_group(
    resources: Resources, agent: ConvirAgent, thread: str, ranking: list[str], group: list[str]
) -> list[str]:
    """The ranking with the group members it lacks appended by cosine to the query."""
    from convir.tools.stitch_query import description_vectors

    missing = [g for g in group if g not in ranking]
    if not missing:
        return ranking
    q = description_vectors(resources, agent.state(thread), agent.config).mean(axis=0)
    vectors = resources.vectors[resources.positions(missing)]
    order = np.argsort(-(vectors @ q), kind="stable")
    return ranking + [missing[i] for i in order]


def gallery_ids(
    resources: Resources, benchmark: str, queries: Sequence[ComposedQuery]
) -> dict[str, str]:
    """{image name: gallery id}; an error naming the first reference the index lacks."""
    by_name = _gallery_ids(resources, benchmark)
    absent = [q for q in queries if q.reference not in by_name]
    if absent:
        raise InputError(
            f"{len(absent)} of {len(queries)} reference images are not in the index (first: "
            f"{absent[0].reference!r} of query {absent[0].query_id}); index the split's images"
        )
    return by_name


def run_benchmark(
    agent: ConvirAgent,
    benchmark: str,
    queries: Sequence[ComposedQuery],
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[str]]:
    """{query_id: ranking by image name} for every query, one STiTch turn each."""
    resources = agent.resources
    by_name = gallery_ids(resources, benchmark, queries)
    names = dict(zip(resources.index.ids, image_names(resources.index.ids, benchmark), strict=True))
    out: dict[str, list[str]] = {}
    for n, q in enumerate(queries):
        thread = f"{benchmark}-{q.query_id}"
        ranking = agent.start(thread, q.edit, reference_id=by_name[q.reference]).ranking
        group = [by_name[m] for m in q.group if m in by_name and m != q.reference]
        if group:
            ranking = _complete_group(resources, agent, thread, ranking, group)
        out[q.query_id] = [names[i] for i in ranking]
        if progress is not None:
            progress(n + 1)
    return out


def write_outputs(
    out: Path,
    benchmark: str,
    split: str,
    rankings: dict[str, list[str]],
    records: list,
) -> dict[str, Any]:
    """Run file, scores (val) or server files (test); returns what was written."""
    from convir import atomic_file
    from convir.evaluation import runfile, scoring, submission

    lines = "".join(
        json.dumps({"query_id": int(q) if q.isdigit() else q, "ranking": r}) + "\n"
        for q, r in rankings.items()
    )
    run_path = atomic_file.write_text(out / "run.jsonl", lines)
    written: dict[str, Any] = {"run": str(run_path)}
    run = runfile.read_query_run(run_path)
    if split == "val":
        score = {
            "cirr": scoring.score_cirr,
            "circo": scoring.score_circo,
            "fashioniq": scoring.score_fashioniq,
        }[benchmark](run, records)
        written["scores"] = score.as_json()
        submission.write_json(out / "scores.json", written["scores"])
    elif benchmark == "cirr":
        recall, subset = submission.cirr_submission(run, records)
        written["submission"] = [
            str(submission.write_json(out / "recall.json", recall)),
            str(submission.write_json(out / "recall_subset.json", subset)),
        ]
    elif benchmark == "circo":
        written["submission"] = [
            str(
                submission.write_json(
                    out / "submission.json", submission.circo_submission(run, records)
                )
            )
        ]
    return written
