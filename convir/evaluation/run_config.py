"""``config.json``: what a ``convir eval run`` was, written into its ``--out`` folder so the
run can be read, checked and rerun from that folder alone.

It holds the options as given (``options``: what ``--config`` reruns), and what they
resolved to: each system's full ``AgentConfig``, the simulated user and its noise, the
seeds, every data file with its sha256, the models with their files' sha256, and the
versions of convir (its git commit when run from a checkout) and of the libraries that
decide the numbers. No time stamps and no output paths: the same run gives the same file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.evaluation.experiment import RunSpec
    from convir.evaluation.setup import Setup

FORMAT = 1
CONFIG_NAME = "config.json"
LIBRARIES = {  # distribution names, as pip knows them
    "torch": "torch",
    "open_clip": "open_clip_torch",
    "faiss": "faiss-cpu",
    "langgraph": "langgraph",
    "transformers": "transformers",
    "sentence_transformers": "sentence-transformers",
    "numpy": "numpy",
}
DATA_FILES = ("annotations", "index", "dialogues_file", "search_space")


@dataclass(frozen=True)
class RunOptions:
    """Every ``convir eval run`` option that decides its results, as plain JSON values
    (output and display options, ``--out``, ``--json``, ``--progress``, are not here)."""

    benchmark: str = "testbed"
    strategies: tuple[str, ...] = ("concat",)
    policy: str = "rules"
    questions: tuple[str, ...] = ("info_gain",)
    user: str | None = None
    rounds: int = 10
    annotations: str | None = None
    text_model: str | None = None
    dialogues: int | None = None
    gallery_size: int | None = None
    seed: int = 0
    error_rate: float | None = None
    index: str | None = None
    dialogues_file: str | None = None
    search_space: str | None = None
    workers: int = 8
    use_ray: bool = False
    ray_address: str | None = None
    ray_actors: int | None = None
    via_index: bool = False
    captioner: str = "testbed"
    engine: str = "batched"
    agent_config: tuple[str, ...] = ()
    resamples: int = 2000
    bootstrap_seed: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> RunOptions:
        """Options back from ``config.json``; unknown keys are an error naming the file."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f'{where}: unknown option {unknown[0]!r} in "options"; this config.json is '
                "not from this convir version (or was edited): fix or drop that key"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def command(self) -> str:
        """The ``convir eval run`` command line these options are (without ``--out``)."""
        default = RunOptions()
        words = ["convir", "eval", "run"]
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name) and f.name not in ("strategies", "questions"):
                continue
            flag = {
                "strategies": "--strategy",
                "questions": "--questions",
                "agent_config": "--agent-config",
                "use_ray": "--ray",
            }.get(f.name, "--" + f.name.replace("_", "-"))
            if isinstance(value, bool):
                words += [flag] if value else []
            elif isinstance(value, tuple):
                for item in value:
                    words += [flag, str(item)]
            elif value is not None:
                words += [flag, str(value)]
        return " ".join(words)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | Path) -> dict[str, Any]:
    """``{"path", "sha256"}`` of a file, or of every file under a folder (``"files"``)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return {"path": str(p), "files": {str(f.relative_to(p)): sha256(f) for f in files}}
    if p.is_file():
        return {"path": str(p), "sha256": sha256(p)}
    return {"path": str(p), "sha256": None}


def versions() -> dict[str, Any]:
    """convir's version (and git commit in a checkout), Python's, and the libraries'."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, Any] = {"python": sys.version.split()[0]}
    for name, dist in {"convir": "convir", **LIBRARIES}.items():
        try:
            found[name] = version(dist)
        except PackageNotFoundError:
            found[name] = None
    found |= git_commit(Path(__file__).resolve().parents[2])
    return found


def git_commit(root: Path) -> dict[str, Any]:
    """``{"git_commit", "git_dirty"}`` when ``root`` is a git checkout, else ``{}``."""
    if not (root / ".git").exists():
        return {}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "convir"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit or None, "git_dirty": dirty} if commit else {}


def _models(spec: RunSpec, setup: Setup, systems: dict[str, Any]) -> dict[str, Any]:
    """The models a run used, each with its name and the sha256 of its files."""
    from convir.models.captioner import TESTBED_CAPTIONER
    from convir.models.generator import TESTBED_GENERATOR

    resources = setup.resources
    embedder = resources.embedder
    pretrained = getattr(embedder, "pretrained", None)
    models: dict[str, Any] = {
        "embedder": {
            "name": getattr(embedder, "name", type(embedder).__name__),
            "pretrained": pretrained,
            **({"files": file_record(pretrained)} if pretrained else {}),
        }
    }
    dar = any(getattr(s, "config", None) and s.config.strategy == "dar" for s in systems.values())
    if dar and resources.generator_factory is not None:
        models["generator"] = {"name": "testbed generator", "files": file_record(TESTBED_GENERATOR)}
    if spec.via_index is not None and spec.captions == "testbed":
        models["captioner"] = {"name": "testbed captioner", "files": file_record(TESTBED_CAPTIONER)}
    if spec.text_model:
        models["text_model"] = _text_model_record(spec.text_model)
    if resources.llm is not None:
        models["llm"] = {"name": getattr(resources.llm, "model", type(resources.llm).__name__)}
    return models


def _text_model_record(name: str) -> dict[str, Any]:
    from convir.models.text_model import _resolve

    folder, recorded, local = _resolve(name)
    return {"name": recorded, **({"files": file_record(folder)} if local else {})}


def _systems(spec: RunSpec, systems: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, system in systems.items():
        config = getattr(system, "config", None)
        if config is None:  # the ChatIR text baseline
            out[label] = {"system": "concat", "questions": getattr(system, "questions", None)}
        else:
            out[label] = {"system": "agent", "policy": spec.policy}
            out[label]["agent_config"] = config.model_dump(mode="json")
    return out


def run_record(
    options: RunOptions, spec: RunSpec, setup: Setup, systems: dict[str, Any]
) -> dict[str, Any]:
    """The whole ``config.json`` of a run (module docstring)."""
    user = setup.new_user()
    data = {
        name: file_record(getattr(options, name))
        for name in DATA_FILES
        if getattr(options, name) is not None
    }
    return {
        "format": FORMAT,
        "command": options.command(),
        "options": options.as_json(),
        "benchmark": setup.title,
        "seeds": {"run": options.seed, "bootstrap": options.bootstrap_seed},
        "user": {
            "class": f"{type(user).__module__}.{type(user).__qualname__}",
            "error_rate": getattr(user, "error_rate", None),
            "seed": getattr(user, "seed", None),
        },
        "systems": _systems(spec, systems),
        "files": data,
        "models": _models(spec, setup, systems),
        "versions": versions(),
    }


def write_config(out: Path, record: dict[str, Any]) -> Path:
    from convir.atomic_file import write_text

    return write_text(out / CONFIG_NAME, json.dumps(record, indent=1) + "\n")


def read_config(path: Path) -> tuple[RunOptions, dict[str, Any]]:
    """The options of a recorded run and the record itself; data files that changed since
    are an error (the rerun could not be the same run)."""
    if path.is_dir():
        path = path / CONFIG_NAME
    if not path.is_file():
        raise InputError(f"--config {path}: no such file; pass DIR/config.json of a run")
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"--config {path}: not JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(
            f"--config {path}: not a config.json of `convir eval run` (format {FORMAT})"
        )
    options = RunOptions.from_json(record.get("options", {}), str(path))
    for name, recorded in record.get("files", {}).items():
        now = file_record(recorded["path"])
        if now != recorded:
            raise InputError(
                f"--config {path}: {name} {recorded['path']} is missing or changed since the "
                "run (sha256 differs); restore it, or start a new run with its options"
            )
    return options, record


def drift(record: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a recorded run's versions and models and this one's: a line
    each (a rerun may then differ in its last digits)."""
    lines = []
    for name, was in record.get("versions", {}).items():
        if name in ("git_dirty",):
            continue
        if now.get("versions", {}).get(name) != was:
            lines.append(f"{name} {was} in the run, {now.get('versions', {}).get(name)} now")
    for name, was in record.get("models", {}).items():
        if now.get("models", {}).get(name) != was:
            lines.append(f"model {name} differs from the run's ({was.get('name')})")
    return lines


__all__ = [
    "CONFIG_NAME",
    "RunOptions",
    "file_record",
    "versions",
    "git_commit",
    "run_record",
    "write_config",
    "read_config",
    "drift",
]
