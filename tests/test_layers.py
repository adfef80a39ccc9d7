"""The agent's layers know no world: nothing under them imports ``convir.testbed``."""

import ast
from pathlib import Path

import convir

AGENT_LAYERS = ("agents", "tools", "models", "index")
ROOT = Path(convir.__file__).parent


def testbed_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            if node.module == "convir":  # from convir import testbed
                names += [f"convir.{a.name}" for a in node.names]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno} {n}"
            for n in names
            if n == "convir.testbed" or n.startswith("convir.testbed.")
        ]
    return found


def test_agent_layers_never_import_the_testbed():
    files = [f for layer in AGENT_LAYERS for f in (ROOT / layer).rglob("*.py")]
    assert len(files) > 20  # the layers are where this test looks for them
    offenders = [hit for f in files for hit in testbed_imports(f)]
    assert offenders == []


def test_the_check_sees_an_import_when_there_is_one(tmp_path):
    bad = ROOT / "agents" / "_probe_for_layer_test.py"
    bad.write_text("def f():\n    from convir.testbed.world import World\n    return World\n")
    try:
        assert testbed_imports(bad) == [
            "agents/_probe_for_layer_test.py:2 convir.testbed.world",
            "agents/_probe_for_layer_test.py:2 convir.testbed.world.World",
        ]
    finally:
        bad.unlink()
