"""A researcher's own classes by import path: ``--policy package.module:Class``,
``--questions package.module:Class`` (a question bank), ``--user package.module:Class`` (a
simulated user), so a dialogue policy can be tested without editing convir.

A path names a class; the module must be importable (installed, or on ``PYTHONPATH``; the
current directory counts, as for ``python -m``). The class is checked for the protocol's
methods before anything runs, then built:

* a policy or a question bank: ``Class.from_resources(resources)`` when the class defines
  that classmethod (to read the gallery: its texts, its LLM), else ``Class()``;
* a simulated user: with the arguments of the benchmark's own user, which it may subclass
  (``TestbedUser(world, targets, error_rate=, seed=, gallery_ids=)``, ``CaptionUser(targets,
  captions, error_rate=, seed=)``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convir.agents.policy import POLICIES
from convir.errors import InputError

if TYPE_CHECKING:
    from convir.agents.policy import Policy
    from convir.gallery.questions import QuestionBank
    from convir.gallery.resources import Resources

# what each kind of plug-in must define, as the error message shows it
PROTOCOLS: dict[str, tuple[str, dict[str, str]]] = {
    "policy": ("a Policy", {"decide": "decide(state, options) -> Decision"}),
    "questions": (
        "a QuestionBank",
        {"menu": "menu(dialogue, candidates) -> list[Askable]"},
    ),
    "user": (
        "a SimulatedUser",
        {
            "opening": "opening(dialogue_id) -> (message, reference_id | None)",
            "answer": "answer(dialogue_id, question, options) -> str",
            "target": "target(dialogue_id) -> gallery id",
        },
    ),
}


def is_plugin_path(value: str | None) -> bool:
    """Whether an option's value names a class (``package.module:Class``), not a built-in."""
    return value is not None and ":" in value


def short_name(path: str) -> str:
    """The class name of a path (labels and file names: ``pkg.mod:MyBank`` -> ``MyBank``)."""
    return path.rpartition(":")[2].rpartition(".")[2]


def load_class(path: str, kind: str) -> type:
    """The class ``path`` names, checked for the methods of ``kind`` (policy, questions,
    user); an InputError says what is wrong and what to do."""
    option = f"--{kind} {path}"
    module_name, _, attr = path.partition(":")
    if not module_name or not attr or ":" in attr:
        raise InputError(f"{option}: give package.module:Class (one colon before the class)")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, "")  # the current directory, as `python -m` has it
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(
            f"{option}: no module {exc.name!r} to import; put {module_name.split('.')[0]} in "
            "the current directory or on PYTHONPATH, or pip install it"
        ) from None
    except Exception as exc:  # the researcher's module failed while importing
        raise InputError(
            f"{option}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from None
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise InputError(f"{option}: module {module_name} has no {attr!r}")
    if not isinstance(found, type):
        raise InputError(f"{option}: {attr} is not a class (type {type(found).__name__})")
    what, methods = PROTOCOLS[kind]
    missing = [sig for name, sig in methods.items() if not callable(getattr(found, name, None))]
    if missing:
        raise InputError(f"{option}: {found.__name__} is not {what}: it lacks {'; '.join(missing)}")
    return found


def build(cls: type, path: str, kind: str, resources: Resources) -> Any:
    """An instance of a policy or bank class: ``from_resources(resources)`` or ``Class()``."""
    maker = getattr(cls, "from_resources", None)
    try:
        return maker(resources) if callable(maker) else cls()
    except TypeError as exc:
        raise InputError(
            f"--{kind} {path}: could not build {cls.__name__} ({exc}); give its arguments "
            "defaults, or define a classmethod from_resources(resources)"
        ) from None


def load_policy(path: str, resources: Resources) -> Policy:
    """A policy class by import path, built for this gallery."""
    return build(load_class(path, "policy"), path, "policy", resources)


def load_question_bank(path: str, resources: Resources) -> QuestionBank:
    """A question bank class by import path, built for this gallery."""
    return build(load_class(path, "questions"), path, "questions", resources)


def policy_for(resources: Resources, policy: str) -> Policy:
    """``rules``, ``llm`` or a plug-in path, as a policy object."""
    if is_plugin_path(policy):
        return load_policy(policy, resources)
    from convir.agents.policy import policy_named

    return policy_named(resources, policy)


def check_policy_name(policy: str) -> None:
    """A policy option: rules, llm, or an importable policy class (checked now, before any
    model loads)."""
    if is_plugin_path(policy):
        load_class(policy, "policy")
    elif policy not in POLICIES:
        raise InputError(
            f"--policy must be {', '.join(POLICIES)} or package.module:Class (your own), "
            f"got {policy!r}"
        )


def check_bank_path(path: str | None) -> None:
    """``--questions`` of chat and serve: none, or an importable bank class (checked now,
    before any model loads)."""
    if path is None:
        return
    if not is_plugin_path(path):
        raise InputError(f"--questions takes package.module:Class (your own bank), got {path!r}")
    load_class(path, "questions")


def use_question_bank(resources: Resources, path: str | None) -> None:
    """``--questions package.module:Class`` of chat and serve: the gallery asks from it."""
    if path is not None:
        check_bank_path(path)
        resources.question_bank = load_question_bank(path, resources)


def agent_with(
    resources: Resources,
    strategy: str,
    policy: str,
    questions: str = "info_gain",
    *,
    engine: str = "graph",
    checkpoint: Any = None,
    **config: Any,
) -> Any:
    """``convir.agents.build.build_agent`` (engine graph) or ``build_batched_agent``
    (batched) with the policy given by name or import path."""
    from convir.agents.build import build_agent, build_batched_agent
    from convir.state import AgentConfig

    AgentConfig(strategy=strategy, questions=questions, **config)  # settings before plug-ins
    chosen = policy_for(resources, policy)
    if engine == "batched":
        return build_batched_agent(resources, strategy, chosen, questions, **config)
    return build_agent(resources, strategy, chosen, questions, checkpoint, **config)


__all__ = [
    "PROTOCOLS",
    "is_plugin_path",
    "short_name",
    "load_class",
    "build",
    "load_policy",
    "load_question_bank",
    "policy_for",
    "check_policy_name",
    "check_bank_path",
    "use_question_bank",
    "agent_with",
]
