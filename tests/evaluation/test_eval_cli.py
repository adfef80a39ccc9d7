"""`convir eval score|submission` and `convir data inspect` through the real entry point:
exit codes, exact JSON keys and values, one-line errors."""

import json
import math

import pytest
from convir_cli import run_convir
from typer.testing import CliRunner

from convir.cli import app


def _score(protocol, run, *args):
    return run_convir("eval", "score", "--protocol", protocol, "--run", run, *args)


def _ok_json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_score_chatir_json(chatir_run):
    proc = _score("chatir", chatir_run, "--json")
    out = _ok_json(proc)
    assert list(out) == ["hits_at_k", "recall_at_k", "bri", "k", "dialogues", "recall_at_1", "ci"]
    assert list(out["ci"]) == ["hits_at_k", "recall_at_1", "bri", "resamples", "seed"]
    a = ((math.log(13) + math.log(4)) / 2 + math.log(4)) / 2  # best ranks 12, 3, 3
    b = (math.log(26) + (math.log(26) + math.log(10)) / 2) / 2  # not found -> 25, 25, then 9
    assert out["hits_at_k"] == [0.0, 0.5, 1.0]
    assert out["recall_at_k"] == [0.0, 0.5, 0.5]
    assert out["bri"] == pytest.approx((a + b) / 2)
    assert out["k"] == 10 and out["dialogues"] == 2
    assert "warning: 2 (dialogue, round) targets" in proc.stderr  # BRI cap without a space


def test_score_chatir_with_k_and_search_space(chatir_run, write_json):
    space = write_json("space.json", [f"img{i}" for i in range(25)] + ["t1", "t2"])
    proc = _score("chatir", chatir_run, "--search-space", space, "--k", "4", "--json")
    out = _ok_json(proc)
    assert out["k"] == 4 and out["hits_at_k"] == [0.0, 0.5, 0.5]
    assert out["recall_at_k"] == [0.0, 0.5, 0.0]
    assert proc.stderr == ""


def test_score_circo_json(circo_files):
    ann, run = circo_files
    out = _ok_json(_score("circo", run, "--annotations", ann, "--json"))
    assert list(out) == ["map_at", "recall_at"]
    ap0 = (1 + 2 / 3 + 3 / 5) / 4
    assert out["map_at"] == pytest.approx(
        {"5": ap0 / 2, "10": (ap0 + 1 / 7) / 2, "25": (ap0 + 1 / 7) / 2, "50": (ap0 + 1 / 7) / 2}
    )
    assert out["recall_at"] == {"5": 0.5, "10": 1.0, "25": 1.0, "50": 1.0}


def test_score_cirr_json(cirr_files):
    captions, run = cirr_files
    out = _ok_json(_score("cirr", run, "--annotations", captions, "--json"))
    assert out == {
        "recall_at": {"1": 0.5, "5": 1.0, "10": 1.0, "50": 1.0},
        "recall_subset_at": {"1": 0.5, "2": 1.0, "3": 1.0},
    }


def test_score_fashioniq_json_warns_about_short_rankings(fashioniq_files):
    ann, run = fashioniq_files
    proc = _score("fashioniq", run, "--annotations", ann, "--json")
    assert _ok_json(proc) == {"recall_at": {"10": pytest.approx(1 / 3), "50": pytest.approx(2 / 3)}}
    assert "warning: 1 queries missed with rankings shorter" in proc.stderr


def test_bad_run_is_one_error_line_with_exit_code_2(tmp_path):
    run = tmp_path / "r.jsonl"
    row = {"dialogue_id": "a", "round": 0, "target": "t", "ranking": ["t", "x", "t"]}
    run.write_text(json.dumps(row) + "\n")
    proc = _score("chatir", run, "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "line 1: id 't' appears twice" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_annotations_and_stray_k_are_errors(circo_files):
    _, run = circo_files
    proc = _score("circo", run, "--k", "5")
    assert proc.returncode == 2 and "--k applies to --protocol chatir only" in proc.stderr


def test_submission_cirr_writes_both_files(cirr_files, write_jsonl, tmp_path):
    captions, _ = cirr_files
    members = [f"dev-{i}-0-img0" for i in range(1, 7)]
    run = write_jsonl("t.jsonl", [{"query_id": q, "ranking": members} for q in (1, 2)])
    out = tmp_path / "sub" / "pred.json"
    args = ["--protocol", "cirr", "--run", run, "--annotations", captions, "--out", out]
    proc = run_convir("eval", "submission", *args)
    assert proc.returncode == 0, proc.stderr
    recall = json.loads(out.read_text())
    subset = json.loads((tmp_path / "sub" / "pred_subset.json").read_text())
    assert recall["version"] == subset["version"] == "rc2"
    assert (recall["metric"], subset["metric"]) == ("recall", "recall_subset")
    assert recall["1"] == members[1:] and subset["2"] == [members[0], members[1], members[3]]


def test_submission_circo_in_process(write_jsonl, tmp_path):
    run = write_jsonl("c.jsonl", [{"query_id": q, "ranking": list(range(70))} for q in (0, 1)])
    out = tmp_path / "circo.json"
    result = CliRunner().invoke(
        app, ["eval", "submission", "--protocol", "circo", "--run", str(run), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == {"0": list(range(50)), "1": list(range(50))}


def test_data_inspect_json(benchmarks):
    proc = run_convir(
        "data", "inspect", benchmarks / "chatir/VisDial_v1.0_queries_val.json", "--json"
    )
    out = _ok_json(proc)
    assert out["format"] == "chatir" and out["queries"] == 2064 and out["rounds"] == 11


def test_data_inspect_every_shared_file_in_process(benchmarks):
    runner = CliRunner()
    for path in sorted(benchmarks.rglob("*.json")):
        result = runner.invoke(app, ["data", "inspect", str(path), "--json"])
        assert result.exit_code == 0, (path, result.output)
        assert "format" in json.loads(result.stdout)


def test_data_inspect_test_split_and_malformed(write_json):
    test = write_json(
        "cap.rc2.test1.json",
        [
            {
                "pairid": 1,
                "reference": "test1-1-0-img0",
                "caption": "c",
                "img_set": {"id": 1, "members": ["test1-1-0-img0"], "reference_rank": 0},
            }
        ],
    )
    out = _ok_json(run_convir("data", "inspect", test, "--json"))
    assert out["format"] == "cirr" and out["has_targets"] is False
    bad = write_json("bad.json", [{"img": "a.jpg", "dialog": ["x"]}, {"img": 3, "dialog": ["y"]}])
    proc = run_convir("data", "inspect", bad, "--json")
    assert proc.returncode == 2
    assert "ChatIR dialogues" in proc.stderr and "record 1, field img" in proc.stderr
