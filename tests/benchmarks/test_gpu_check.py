"""The GPU check runs end to end with the CPU standing in for the device (tiny sizes), so a
lent GPU session only has to run it; the CUDA numbers come from there."""

import json

from bench_script import load_benchmark


def test_gpu_check_times_every_row_on_the_device_and_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    report = load_benchmark("gpu_check").main(
        ["--device", "cpu", "--quick", "--json", "--json-out", str(out)]
    )
    names = [r["operation"] for r in report["rows"]]
    assert (
        len(names) == 6 and any("OT" in n for n in names) and any("generator" in n for n in names)
    )
    for row in report["rows"]:
        assert "skipped" not in row, row
        assert row["device_ms"] > 0 and row["cpu_ms"] > 0 and row["speedup"] > 0
    assert json.loads(out.read_text())["rows"] == report["rows"]


def test_gpu_check_refuses_cuda_without_a_device():
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be shown")
    with pytest.raises(SystemExit, match="no CUDA device"):
        load_benchmark("gpu_check").main(["--device", "cuda", "--quick"])
