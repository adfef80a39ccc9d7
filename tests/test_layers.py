"""The package's layers, read from its imports (those inside functions counted too).

Bottom to top: base (errors, state, files), models, index, gallery (one gallery: index +
texts + models, the answer model, question banks, the text reader), tools, engine (nodes,
graph, batched engine, policies, explanations, checkpointers, ConvirAgent), faces (CLI,
server, MCP, evaluation). A layer imports only itself and the layers below it; the testbed
is a plug-in beside the agent (it may read the gallery layer and below, and only faces read
it). No module imports itself back through others: no circles. docs/architecture.md draws
the same picture.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import convir

ROOT = Path(convir.__file__).parent
AGENT_LAYERS = ("agents", "gallery", "tools", "models", "index")

ORDER = ("base", "models", "index", "gallery", "tools", "engine", "faces")
# the most specific prefix wins: ``convir.index.cli`` is a face, ``convir.index.folder`` is not
LAYER_OF = {
    "convir": "faces",  # the package: load_agent
    "convir.errors": "base",
    "convir.state": "base",
    "convir.atomic_file": "base",
    "convir.turn": "base",
    "convir.wait_budget": "base",
    "convir.prompts": "base",
    "convir.contact_sheet": "base",
    "convir.ray_cluster": "base",
    "convir.models": "models",
    "convir.index": "index",
    "convir.index.cli": "faces",
    "convir.index.caption_cli": "faces",
    "convir.gallery": "gallery",
    "convir.tools": "tools",
    "convir.agents": "engine",
    "convir.agent": "engine",
    "convir.plugins": "engine",
    "convir.testbed": "testbed",
    "convir.testbed.cli": "faces",
    "convir.cli": "faces",
    "convir.chat": "faces",
    "convir.demo": "faces",
    "convir.cli_options": "faces",
    "convir.server": "faces",
    "convir.mcp": "faces",
    "convir.evaluation": "faces",
}
MAY_IMPORT = {layer: set(ORDER[: i + 1]) for i, layer in enumerate(ORDER)}
MAY_IMPORT["testbed"] = {"base", "models", "index", "gallery", "testbed"}
MAY_IMPORT["faces"] |= {"testbed"}
# faces that must not lean on each other: evaluations open galleries through the library
FORBIDDEN = {"convir.evaluation": ("convir.chat", "convir.server", "convir.cli_options")}


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (whose folder is ``root``) by dotted name."""
    out = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(
    name: str, path: Path, modules: dict[str, Path], package: str
) -> set[tuple[str, int]]:
    """The package's modules that ``name`` imports anywhere in its file (functions and
    ``TYPE_CHECKING`` blocks included), with the line of each import."""
    is_package = path.name == "__init__.py"

    def resolve(dotted: str) -> str | None:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in modules:
                return ".".join(parts[:i])
        return None

    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join([*here, base] if base else here)
            # ``from convir.x import y``: y may be a module of its own
            targets = [
                f"{base}.{a.name}" if resolve(f"{base}.{a.name}") == f"{base}.{a.name}" else base
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            if target == package or target.startswith(package + "."):
                module = resolve(target)
                if module is not None and module != name:
                    found.add((module, node.lineno))
    return found


@functools.cache
def import_graph(root: Path, package: str) -> dict[str, dict[str, int]]:
    """module -> {imported module: first line importing it} (read once per run)."""
    modules = module_files(root, package)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for module, line in sorted(imports_of(name, path, modules, package)):
            edges.setdefault(module, line)
        graph[name] = edges
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, {}))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def layer_of(module: str, table: dict[str, str]) -> str:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in table:
            return table[".".join(parts[:i])]
    raise AssertionError(f"{module} is in no layer: add it to LAYER_OF (and docs/architecture.md)")


def upward_imports(
    graph: dict[str, dict[str, int]],
    table: dict[str, str],
    may_import: dict[str, set[str]],
    forbidden: dict[str, tuple[str, ...]],
) -> list[str]:
    """Every import of a layer its importer may not use, as ``module:line -> module``."""
    out = []
    for module, edges in sorted(graph.items()):
        mine = layer_of(module, table)
        for target, line in edges.items():
            theirs = layer_of(target, table)
            banned = any(
                (module == f or module.startswith(f + "."))
                and any(target == b or target.startswith(b + ".") for b in bs)
                for f, bs in forbidden.items()
            )
            if theirs not in may_import[mine] or banned:
                out.append(f"{module}:{line} ({mine}) -> {target} ({theirs})")
    return out


def test_no_import_circles():
    graph = import_graph(ROOT, "convir")
    assert len(graph) > 100  # the graph is read from where the package is
    assert circles(graph) == []


def test_each_layer_imports_only_itself_and_the_layers_below():
    graph = import_graph(ROOT, "convir")
    assert upward_imports(graph, LAYER_OF, MAY_IMPORT, FORBIDDEN) == []


def test_the_layers_are_where_the_test_looks():
    graph = import_graph(ROOT, "convir")
    sizes = {layer: 0 for layer in (*ORDER, "testbed")}
    for module in graph:
        sizes[layer_of(module, LAYER_OF)] += 1
    assert all(n >= 3 for n in sizes.values()), sizes
    # the tools see the gallery, never the engine
    assert "convir.gallery.resources" in graph["convir.tools.retrieve"]
    assert not [m for m in graph["convir.tools.specs"] if layer_of(m, LAYER_OF) == "engine"]


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path):
    """A toy package under tmp_path: a circle through an import inside a function, and a
    lower layer importing a higher one."""
    pkg = tmp_path / "toy"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("from toy.low import b\n")
    (pkg / "low" / "b.py").write_text("def f():\n    from toy.low.a import x\n    return x\n")
    (pkg / "high.py").write_text("from . import low\n")
    (pkg / "low" / "c.py").write_text("import os\n\n\ndef g():\n    import toy.high\n")
    graph = import_graph(pkg, "toy")
    assert circles(graph) == [["toy.low.a", "toy.low.b"]]
    table = {"toy": "high", "toy.low": "low", "toy.high": "high"}
    may = {"low": {"low"}, "high": {"low", "high"}}
    assert upward_imports(graph, table, may, {}) == ["toy.low.c:5 (low) -> toy.high (high)"]
    assert upward_imports(graph, table, may, {"toy.high": ("toy.low",)}) == [
        "toy.high:1 (high) -> toy.low (low)",
        "toy.low.c:5 (low) -> toy.high (high)",
    ]


MAX_LINES = 500  # a module read in one sitting (docs/architecture.md)


def oversized(root: Path, limit: int = MAX_LINES) -> list[str]:
    """Every module under ``root`` longer than ``limit`` lines, as ``path: lines``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > limit:
            out.append(f"{path.relative_to(root)}: {lines}")
    return out


def test_no_module_over_the_line_limit():
    assert len(list(ROOT.rglob("*.py"))) > 100  # the package is where the test looks
    assert oversized(ROOT) == [], f"split these by job (at most {MAX_LINES} lines each)"


def test_the_size_check_sees_a_long_module(tmp_path):
    (tmp_path / "short.py").write_text("x = 1\n" * 3)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "long.py").write_text("x = 1\n" * 4)
    assert oversized(tmp_path, limit=3) == ["sub/long.py: 4"]


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
            f"{path.name}:{node.lineno} {n}"
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
    bad = tmp_path / "probe.py"
    bad.write_text("def f():\n    from convir.testbed.world import World\n    return World\n")
    assert testbed_imports(bad) == [
        "probe.py:2 convir.testbed.world",
        "probe.py:2 convir.testbed.world.World",
    ]
