"""Small fixtures in the benchmark and run-file formats, written per test into tmp_path."""

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks"

CIRR_MEMBERS = [f"dev-{i}-0-img0" for i in range(1, 7)]


@pytest.fixture
def benchmarks():
    """The shared folder of real benchmark files; the test is skipped when it is absent."""
    if not BENCHMARKS.is_dir():
        pytest.skip("shared/benchmarks is not beside the checkout")
    return BENCHMARKS.resolve()


@pytest.fixture
def write_json(tmp_path):
    def write(name, obj):
        path = tmp_path / name
        path.write_text(json.dumps(obj))
        return path

    return write


@pytest.fixture
def write_jsonl(tmp_path):
    def write(name, rows, tail=""):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
        return path

    return write


def ranking_with(target, rank, length=25, prefix="img"):
    """``length`` filler ids with ``target`` at 0-based ``rank`` (None: target left out)."""
    fill = [f"{prefix}{i}" for i in range(length)]
    if rank is not None:
        fill[rank] = target
    return fill


@pytest.fixture
def chatir_run(write_jsonl):
    """Two dialogues x three rounds. Target ranks: a = [12, 3, 20]; b = [miss, miss, 9]."""
    rows = []
    for did, target, ranks in (("a", "t1", [12, 3, 20]), ("b", "t2", [None, None, 9])):
        for rnd, rank in enumerate(ranks):
            rows.append(
                {
                    "dialogue_id": did,
                    "round": rnd,
                    "target": target,
                    "ranking": ranking_with(target, rank),
                }
            )
    return write_jsonl("chatir.jsonl", rows)


@pytest.fixture
def cirr_files(write_json, write_jsonl):
    """Two CIRR val-style queries in one img_set, and a run scoring
    Recall@1/5/10/50 = .5/1/1/1 and Recall_subset@1/2/3 = .5/1/1 (reference removed)."""
    ref1, tgt1, other, tgt2 = CIRR_MEMBERS[0], CIRR_MEMBERS[1], CIRR_MEMBERS[2], CIRR_MEMBERS[3]
    img_set = {"id": 7, "members": CIRR_MEMBERS, "reference_rank": 0, "target_rank": 1}

    def triplet(pairid, ref, tgt):
        return {
            "pairid": pairid,
            "reference": ref,
            "target_hard": tgt,
            "target_soft": {tgt: 1.0},
            "caption": "make it red",
            "img_set": img_set,
        }

    captions = write_json("cap.rc2.val.json", [triplet(1, ref1, tgt1), triplet(2, other, tgt2)])
    run = write_jsonl(
        "cirr.jsonl",
        [
            # reference first (removed) -> target at rank 1; in the subset: [other, tgt1] -> 1
            {"query_id": 1, "ranking": [ref1, other, tgt1, "dev-9-0-img0"]},
            {"query_id": "2", "ranking": [tgt2, *CIRR_MEMBERS[4:], ref1]},
        ],
    )
    return captions, run


@pytest.fixture
def circo_files(write_json, write_jsonl):
    """Two CIRCO queries: AP@5 = (1 + 2/3 + 3/5) / 4 and 0; AP@10 adds 1/7 for query 1."""

    def query(qid, gt):
        return {
            "reference_img_id": 500 + qid,
            "target_img_id": gt[0],
            "relative_caption": "is red",
            "shared_concept": "a car",
            "gt_img_ids": gt,
            "id": qid,
            "semantic_aspects": ["cardinality"],
        }

    ann = write_json("val.json", [query(0, [10, 20, 30, 40]), query(1, [7])])
    run = write_jsonl(
        "circo.jsonl",
        [
            {"query_id": 0, "ranking": [10, 99, 20, 98, 30]},
            {"query_id": 1, "ranking": ["1", "2", "3", "4", "5", "6", "000007"]},
        ],
    )
    return ann, run


@pytest.fixture
def fashioniq_files(write_json, write_jsonl):
    """Three dress triplets: target at rank 9, at rank 10, and an empty ranking."""
    triplets = [
        {"target": f"B{i}", "candidate": f"C{i}", "captions": ["is red", "longer"]}
        for i in range(3)
    ]
    ann = write_json("cap.dress.val.json", triplets)
    run = write_jsonl(
        "fiq.jsonl",
        [
            {"query_id": 0, "ranking": ranking_with("B0", 9, 60, "A")},
            {"query_id": 1, "ranking": ranking_with("B1", 10, 60, "A")},
            {"query_id": 2, "ranking": []},
        ],
    )
    return ann, run
