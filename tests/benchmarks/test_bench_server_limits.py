"""The server-limits benchmark runs at a small size and reports what it promises."""

import pytest
from bench_script import load_benchmark

pytest.importorskip("fastapi")


def test_bench_server_limits_keeps_received_bytes_and_refuses_big_bodies():
    report = load_benchmark("bench_server_limits").main(
        ["--uploads", "2", "--side", "600", "--body-mb", "0.2", "--json"]
    )
    u, b = report["uploads"], report["json_body"]
    assert u["statuses"] == [201] and u["kept_mb_per_upload"] < u["peer_kept_mb_per_upload"]
    assert b["status"] == 413 and b["reply_bytes"] < 300
    assert b["peer_normal_message"]["status"] == 201
