"""Screenshots of the web page for docs/server.md: a DAR turn and a STiTch turn.

Starts ``convir serve`` on the testbed gallery (60 images, generation on, strategy auto) on
a free loopback port and drives the system's Chromium with Playwright (both as the browser
test uses them). Writes ``docs/img/web_dar_turn.png`` and ``docs/img/web_stitch_turn.png``.

    python docs/take_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"convir serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"convir serve did not answer within {timeout:.0f} s")


def shoot(url: str, out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(url)
        page.fill("#message", "a red circle on a white background")
        page.click("#send")
        page.wait_for_selector(".turn .question", timeout=120_000)
        page.wait_for_function(
            "[...document.querySelectorAll('.turn .imagined img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        dar = page.locator(".turn").last
        dar.locator(".why-button").first.click()
        page.wait_for_selector(".turn .why .why-term")
        page.mouse.move(0, 0)
        dar.screenshot(path=str(out / "web_dar_turn.png"))

        dar.locator(".results figure").nth(1).click()
        page.fill("#message", "make the circle blue")
        page.click("#send")
        page.wait_for_function(
            "document.querySelectorAll('.turn .question').length == 2", timeout=120_000
        )
        stitch = page.locator(".turn").last
        stitch.locator(".descriptions summary").click()
        stitch.locator(".why-button").first.click()
        page.wait_for_function("document.querySelectorAll('.turn .why .why-term').length > 1")
        page.mouse.move(0, 0)
        stitch.screenshot(path=str(out / "web_stitch_turn.png"))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH (Debian: apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "convir.cli", "serve", "--gallery-size", "60"]
    command += ["--strategy", "auto", "--checkpoint", "memory", "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url, proc)
        shoot(url, args.out, chromium)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"wrote {args.out / 'web_dar_turn.png'} and {args.out / 'web_stitch_turn.png'}")


if __name__ == "__main__":
    main()
