"""`convir eval compare`: finds a planted difference, not a planted null; its JSON shape and
its errors; `convir eval score` intervals."""

import json

import numpy as np
import pytest
from conftest import ranking_with
from typer.testing import CliRunner

from convir.cli import app
from convir.evaluation.compare import compare_runs, excludes_zero
from convir.evaluation.runfile import ChatIRRun

DIALOGUES = 200
ROUNDS = 3
LENGTH = 30


def run_from_ranks(ranks):
    """A ChatIRRun whose dialogue d has the given target ranks (None: not in the ranking)."""
    ids = [str(d) for d in range(len(ranks))]
    targets = [f"t{d}" for d in ids]
    rankings = [
        [ranking_with(t, r, LENGTH, prefix="g") for r in row]
        for t, row in zip(targets, ranks, strict=True)
    ]
    return ChatIRRun(ids, targets, rankings)


def planted_pair(rng, p_a, p_b):
    """Paired runs: one shared difficulty per dialogue, then each system's own luck. At
    round t a dialogue is found (rank 0-9) with probability p_a or p_b, else ranked 10-29."""
    easy = rng.random(DIALOGUES)
    runs = []
    for p in (p_a, p_b):
        own = rng.random((DIALOGUES, ROUNDS))
        shared = 0.5 * easy[:, None] + 0.5 * own  # uniform-ish, correlated across systems
        found = shared < p
        ranks = np.where(found, rng.integers(0, 10, found.shape), rng.integers(10, 30, found.shape))
        runs.append(run_from_ranks(ranks.tolist()))
    return runs


def significant(result):
    first = result["rounds"][0]["hits_at_10"]
    return excludes_zero(first["ci"]) and first["p"] < 0.05


def test_a_planted_difference_is_found_and_a_planted_null_is_not():
    rng = np.random.default_rng(0)
    found = [
        significant(compare_runs(*planted_pair(rng, 0.30, 0.45), resamples=500, seed=s))
        for s in range(40)
    ]
    null = [
        significant(compare_runs(*planted_pair(rng, 0.35, 0.35), resamples=500, seed=s))
        for s in range(40)
    ]
    assert np.mean(found) >= 0.9
    assert np.mean(null) <= 0.1


def test_planted_difference_signs_and_values():
    a, b = planted_pair(np.random.default_rng(1), 0.2, 0.6)
    result = compare_runs(a, b, resamples=500)
    for row in result["rounds"]:
        h = row["hits_at_10"]
        assert h["diff"] == pytest.approx(h["b"] - h["a"]) and h["diff"] > 0
        assert h["ci"][0] > 0 and h["p"] < 1e-3
    assert result["bri"]["diff"] < 0 and result["bri"]["ci"][1] < 0  # B finds sooner
    again = compare_runs(b, a, resamples=500)
    assert again["bri"]["diff"] == pytest.approx(-result["bri"]["diff"])


def test_the_same_run_against_itself_differs_by_nothing():
    a, _ = planted_pair(np.random.default_rng(2), 0.3, 0.3)
    result = compare_runs(a, a, resamples=200)
    for row in result["rounds"]:
        assert row["hits_at_10"]["diff"] == 0 and row["hits_at_10"]["ci"] == [0, 0]
        assert row["hits_at_10"]["p"] == 1.0
    assert result["bri"]["p"] == 1.0


def test_dialogue_order_does_not_matter():
    a, b = planted_pair(np.random.default_rng(3), 0.3, 0.4)
    flipped = ChatIRRun(b.dialogue_ids[::-1], b.targets[::-1], b.rankings[::-1])
    assert compare_runs(a, flipped, resamples=200) == compare_runs(a, b, resamples=200)


def write_run(path, run):
    rows = [
        {"dialogue_id": d, "round": t, "target": target, "ranking": ranking}
        for d, target, rounds in zip(run.dialogue_ids, run.targets, run.rankings, strict=True)
        for t, ranking in enumerate(rounds)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_json_shape(tmp_path):
    a, b = planted_pair(np.random.default_rng(4), 0.3, 0.5)
    pa, pb = write_run(tmp_path / "a.jsonl", a), write_run(tmp_path / "b.jsonl", b)
    result = CliRunner().invoke(app, ["eval", "compare", str(pa), str(pb), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["a"] == str(pa) and out["b"] == str(pb) and out["dialogues"] == DIALOGUES
    assert [r["round"] for r in out["rounds"]] == list(range(ROUNDS))
    for row in out["rounds"]:
        for key in ("hits_at_10", "recall_at_1"):
            assert set(row[key]) == {"a", "b", "diff", "ci", "p"}
            assert len(row[key]["ci"]) == 2 and 0 <= row[key]["p"] <= 1
    assert set(out["bri"]) == {"a", "b", "diff", "ci", "p"}
    assert out == compare_runs(a, b, name_a=str(pa), name_b=str(pb))
    text = CliRunner().invoke(app, ["eval", "compare", str(pa), str(pb)])
    assert text.exit_code == 0 and "B-A" in text.stdout
    assert text.stdout.count("*") >= 1 and "BRI" in text.stdout


def test_mismatched_dialogues_name_the_first_missing_id(tmp_path):
    a, b = planted_pair(np.random.default_rng(5), 0.3, 0.3)
    fewer = ChatIRRun(
        b.dialogue_ids[:7] + b.dialogue_ids[8:],
        b.targets[:7] + b.targets[8:],
        [
            *b.rankings[:7],
            *b.rankings[8:],
        ],
    )
    with pytest.raises(Exception, match="dialogue '7' of A is not in B"):
        compare_runs(a, fewer)
    with pytest.raises(Exception, match="dialogue '7' of B is not in A"):
        compare_runs(fewer, a)
    pa, pb = write_run(tmp_path / "a.jsonl", a), write_run(tmp_path / "b.jsonl", fewer)
    from convir_cli import run_convir

    proc = run_convir("eval", "compare", pa, pb)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: dialogue '7' of {pa} is not in {pb}; a paired comparison needs the same "
        "dialogues in both runs"
    ]


def test_other_targets_or_rounds_are_errors():
    a, b = planted_pair(np.random.default_rng(6), 0.3, 0.3)
    other = ChatIRRun(b.dialogue_ids, ["x", *b.targets[1:]], b.rankings)
    with pytest.raises(Exception, match="dialogue '0' looks for 't0' in A but 'x' in B"):
        compare_runs(a, other)
    shorter = ChatIRRun(b.dialogue_ids, b.targets, [r[:2] for r in b.rankings])
    with pytest.raises(Exception, match="A has 3 rounds per dialogue and B has 2"):
        compare_runs(a, shorter)


def test_score_prints_intervals(chatir_run):
    args = ["eval", "score", "--protocol", "chatir", "--run", str(chatir_run)]
    result = CliRunner().invoke(app, [*args, "--json", "--resamples", "200"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # dialogue a ranks [12, 3, 20], b [miss, miss, 9]: Recall@1 0 everywhere
    assert out["hits_at_k"] == [0.0, 0.5, 1.0] and out["recall_at_1"] == [0.0, 0.0, 0.0]
    ci = out["ci"]
    assert ci["hits_at_k"] == [[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]]  # two dialogues only
    assert ci["recall_at_1"] == [[0.0, 0.0]] * 3 and ci["resamples"] == 200
    assert ci["bri"][0] <= out["bri"] <= ci["bri"][1]
    none = CliRunner().invoke(app, [*args, "--json", "--resamples", "0"])
    assert "ci" not in json.loads(none.stdout)
    text = CliRunner().invoke(app, args)
    assert "95% bootstrap interval over dialogues (2000 resamples, seed 0)" in text.stdout


def test_missing_rank_moves_bri_only():
    a, b = planted_pair(np.random.default_rng(7), 0.3, 0.3)
    dropped = ChatIRRun(b.dialogue_ids, b.targets, [[r[1:] for r in rs] for rs in b.rankings])
    near = compare_runs(a, dropped, resamples=200)
    far = compare_runs(a, dropped, resamples=200, missing_rank=1000.0)
    assert near["method"]["missing_rank"] == LENGTH and far["method"]["missing_rank"] == 1000
    assert near["not_found"]["b"] > 0 and near["not_found"]["a"] == 0
    assert far["bri"]["b"] > near["bri"]["b"] and far["bri"]["a"] == near["bri"]["a"]
    assert far["rounds"] == near["rounds"]
