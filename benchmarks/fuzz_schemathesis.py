"""Fuzz ``convir serve`` with schemathesis (a third-party OpenAPI fuzzer), on loopback.

Starts its own server (testbed gallery, SQLite sessions; ``load_server.own_server``), runs
``schemathesis run URL/openapi.json --checks all`` and prints schemathesis's summary plus
one line: how many of schemathesis's failures are server errors (5xx), which must be 0. Its
other findings on this API are 4xx answers to schema-valid but unknown data (a reference id
not in the gallery, an empty upload file), which the OpenAPI schema cannot rule out.
schemathesis is not a dependency of convir: ``pip install schemathesis`` first.

    python benchmarks/fuzz_schemathesis.py                 # 100 examples per operation
    python benchmarks/fuzz_schemathesis.py --max-examples 20
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_server import own_server  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-examples", type=int, default=100)
    p.add_argument("--gallery-size", type=int, default=60)
    args = p.parse_args()
    cli = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(cli).exists():
        raise SystemExit("schemathesis is not installed: pip install schemathesis")
    with own_server(args.gallery_size, False, "text") as url:
        proc = subprocess.run(
            [cli, "run", f"{url}/openapi.json", "--checks", "all", "-n", str(args.max_examples)],
            capture_output=True, text=True,
        )  # fmt: skip
    print(proc.stdout[-4000:])
    # schemathesis's not_a_server_error check lists any 5xx as a "Server error" failure
    server_errors = proc.stdout.count("Server error")
    generated = re.search(r"(\d+) generated", proc.stdout)
    print(
        json.dumps(
            {
                "schemathesis_exit": proc.returncode,
                "cases": int(generated.group(1)) if generated else None,
                "server_error_failures": server_errors,
            }
        )
    )
    return 0 if server_errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
