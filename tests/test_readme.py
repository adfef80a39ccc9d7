"""The README's two commands are the contract with newcomers; CI must run the second verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_opens_with_demo_then_tests():
    demo, tests = _readme_commands()[:2]
    assert demo.endswith("convir demo")
    assert "pip install -e" in demo and "pip install -e" in tests
    assert tests.endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim():
    tests = _readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines
