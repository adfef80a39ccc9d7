"""`convir eval composed --benchmark`: CIRR, CIRCO and FashionIQ files end to end.

The real images are not reachable here, so each test renders a testbed gallery under the
benchmark's image names, writes the annotation file in the benchmark's format from the
testbed's composed triplets, indexes the folder with `convir index` (captions attached, as
a user with a captioner would) and runs the agent's published STiTch on it.
"""

import json

import pytest
from typer.testing import CliRunner

from convir.cli import app
from convir.testbed.captions import full_caption
from convir.testbed.edits import triplets
from convir.testbed.render import render
from convir.testbed.world import World

SIZE = 120


def _name(benchmark, i):
    return {"cirr": f"dev-{i}-0-img0", "circo": f"{i + 1:012d}", "fashioniq": f"B00X{i:04d}"}[
        benchmark
    ]


def _invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """world, triplets, {benchmark: index path} over SIZE rendered images per naming."""
    world = World(seed=0, size=SIZE)
    scenes = world.scenes()
    made = {}
    for benchmark in ("cirr", "circo", "fashioniq"):
        folder = tmp_path_factory.mktemp(benchmark)
        images = folder / "images"
        images.mkdir()
        rows = []
        for i, scene in enumerate(scenes):
            path = images / f"{_name(benchmark, i)}.png"
            render(scene).save(path)
            rows.append(json.dumps({"path": str(path), "caption": full_caption(scene)}))
        (folder / "captions.jsonl").write_text("\n".join(rows) + "\n")
        index = folder / "gallery.index"
        _invoke("index", images, "--out", index, "--captions", folder / "captions.jsonl",
                "--views", 10, "--no-progress")  # fmt: skip
        made[benchmark] = index
    return world, triplets(world), made


def _cirr(world, found, split):
    out = []
    for n, t in enumerate(found):
        ref, tgt = int(t.reference), int(t.target)
        others = [j for j in range(SIZE) if j not in (ref, tgt)][n % 50 : n % 50 + 4]
        row = {
            "pairid": n,
            "reference": _name("cirr", ref),
            "caption": t.text,
            "img_set": {"id": n, "members": [_name("cirr", j) for j in (ref, tgt, *others)]},
        }
        if split == "val":
            row |= {"target_hard": _name("cirr", tgt), "target_soft": {_name("cirr", tgt): 1.0}}
        out.append(row)
    return out


def test_cirr_val_scores_and_test_submission_files(gallery, tmp_path):
    world, found, indexes = gallery
    val = tmp_path / "cap.rc2.val.json"
    val.write_text(json.dumps(_cirr(world, found, "val")))
    out = tmp_path / "val"
    result = _invoke("eval", "composed", "--benchmark", "cirr", "--index", indexes["cirr"],
                     "--annotations", val, "--split", "val", "--out", out, "--json")  # fmt: skip
    report = json.loads(result.stdout.strip().splitlines()[-1])
    scores = json.loads((out / "scores.json").read_text())
    assert report["scores"] == scores
    assert scores["recall_at"]["10"] > 0.6  # chance: 10 / 119
    assert scores["recall_subset_at"]["1"] > 0.5  # chance: 1 / 5
    lines = [json.loads(x) for x in (out / "run.jsonl").read_text().splitlines()]
    assert [x["query_id"] for x in lines] == list(range(len(found)))
    assert all(
        _name("cirr", int(t.reference)) not in x["ranking"]
        for x, t in zip(lines, found, strict=True)
    )

    test = tmp_path / "cap.rc2.test1.json"
    test.write_text(json.dumps(_cirr(world, found, "test")))
    _invoke("eval", "composed", "--benchmark", "cirr", "--index", indexes["cirr"],
            "--annotations", test, "--split", "test", "--out", tmp_path / "test")  # fmt: skip
    recall = json.loads((tmp_path / "test" / "recall.json").read_text())
    subset = json.loads((tmp_path / "test" / "recall_subset.json").read_text())
    assert recall["version"] == subset["version"] == "rc2"
    assert subset["metric"] == "recall_subset" and recall["metric"] == "recall"
    assert all(len(recall[str(n)]) == 50 and len(subset[str(n)]) == 3 for n in range(len(found)))


def test_circo_val_map_and_test_submission(gallery, tmp_path):
    world, found, indexes = gallery
    rows = [
        {"id": n, "reference_img_id": int(t.reference) + 1, "relative_caption": t.text,
         "shared_concept": "shapes", "target_img_id": int(t.target) + 1,
         "gt_img_ids": [int(t.target) + 1]}
        for n, t in enumerate(found)
    ]  # fmt: skip
    val = tmp_path / "val.json"
    val.write_text(json.dumps(rows))
    _invoke("eval", "composed", "--benchmark", "circo", "--index", indexes["circo"],
            "--annotations", val, "--out", tmp_path / "val")  # fmt: skip
    scores = json.loads((tmp_path / "val" / "scores.json").read_text())
    assert scores["map_at"]["5"] > 0.4
    test = tmp_path / "test.json"
    test.write_text(json.dumps([{k: r[k] for k in list(r)[:4]} for r in rows]))
    _invoke("eval", "composed", "--benchmark", "circo", "--index", indexes["circo"],
            "--annotations", test, "--split", "test", "--out", tmp_path / "test")  # fmt: skip
    submission = json.loads((tmp_path / "test" / "submission.json").read_text())
    assert sorted(map(int, submission)) == list(range(len(found)))
    assert all(len(v) == 50 and all(isinstance(x, int) for x in v) for v in submission.values())


def test_fashioniq_val_recall_and_a_missing_reference_is_an_error(gallery, tmp_path):
    world, found, indexes = gallery
    rows = [
        {"candidate": _name("fashioniq", int(t.reference)), "captions": [t.text, "same style"],
         "target": _name("fashioniq", int(t.target))}
        for t in found
    ]  # fmt: skip
    val = tmp_path / "cap.dress.val.json"
    val.write_text(json.dumps(rows))
    _invoke("eval", "composed", "--benchmark", "fashioniq", "--index", indexes["fashioniq"],
            "--annotations", val, "--out", tmp_path / "val")  # fmt: skip
    scores = json.loads((tmp_path / "val" / "scores.json").read_text())
    assert scores["recall_at"]["50"] > 0.8 and scores["recall_at"]["10"] > 0.4
    rows[3]["candidate"] = "B00NOPE"
    val.write_text(json.dumps(rows))
    result = CliRunner().invoke(app, ["eval", "composed", "--benchmark", "fashioniq", "--index",
                                      str(indexes["fashioniq"]), "--annotations", str(val)])  # fmt: skip
    assert result.exit_code != 0 and "'B00NOPE' of query 3" in str(result.exception)
    assert "fashioniq:" not in result.output  # refused before the first query ran
