import json

from convir_cli import run_convir
from PIL import Image

from convir.testbed.world import World


def test_testbed_make_writes_a_consistent_gallery(tmp_path):
    out = tmp_path / "g"
    proc = run_convir("testbed", "make", "--size", "120", "--seed", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    attrs = [json.loads(line) for line in (out / "attributes.jsonl").read_text().splitlines()]
    caps = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    trips = [json.loads(line) for line in (out / "triplets.jsonl").read_text().splitlines()]
    assert len(attrs) == len(caps) == 120
    world = World(seed=5, size=120)
    for rec in attrs[:20]:
        expected = world.scene(int(rec["id"])).to_record()
        assert {k: v for k, v in rec.items() if k != "path"} == expected
        assert Image.open(out / rec["path"]).size == (64, 64)
    ids = {r["id"] for r in attrs}
    assert trips and all(t["reference"] in ids and t["target"] in ids for t in trips)
    assert json.loads((out / "world.json").read_text())["seed"] == 5


def test_testbed_make_rejects_bad_sizes(tmp_path):
    proc = run_convir("testbed", "make", "--size", "5", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert "--size" in proc.stderr and "Traceback" not in proc.stderr
