"""Run the real ``convir`` entry point in a subprocess, so tests see its true exit code."""

import subprocess
import sys


def run_convir(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convir.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
