"""benchmarks/captions_dev.py: the command it runs and the table it prints (no run here)."""

import argparse
import json

from bench_script import load_benchmark

dev = load_benchmark("captions_dev")


def test_command_is_the_dev_set_run():
    args = argparse.Namespace(
        annotations=dev.DEV_SET,
        text_model="all-MiniLM-L6-v2",
        gallery_size=None,
        dialogues=200,
        rounds=5,
        seed=0,
        out="runs/x",
    )
    cmd = dev.command(args)
    line = " ".join(cmd)
    assert "eval run --benchmark captions --annotations" in line
    assert "--gallery-size" not in cmd  # all items
    assert "--dialogues 200 --rounds 5 --seed 0" in line
    assert "--strategy concat --strategy text --questions info_gain --questions random" in line
    assert cmd[-2:] == ["--json", "--no-progress"]


def test_table_and_question_sample(tmp_path):
    entry = {"hits_at_10": [0.9, 0.95], "recall_at_1": [0.5, 0.625], "bri": 0.25}
    text = dev.table({"concat/bank": entry, "text/info_gain": entry})
    lines = text.splitlines()
    assert lines[0] == "Hits@10 per round" and "text/info_gain" in lines[1]
    assert lines[3].split() == ["1", "0.950", "0.950"]
    assert lines[7].split() == ["1", "0.625", "0.625"]
    assert lines[-1] == "BRI (lower is better): concat/bank 0.250, text/info_gain 0.250"
    rows = [
        {"system": "text/random", "target": "t", "turns": [
            {"question": "is there a dog?", "options": ["yes", "no"], "answer": "yes"}]},
        {"system": "concat/bank", "target": "u", "turns": [
            {"question": "is there a cat?", "options": ["yes", "no"], "answer": "no"}]},
    ]  # fmt: skip
    path = tmp_path / "dialogues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert dev.sample_turns(path, "text/random", 5, 0) == ["t: is there a dog? [yes / no] -> yes"]
