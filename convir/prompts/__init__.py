"""Prompt templates: plain-text files in this folder, versioned, rendered with ``$name`` slots.

Each ``<name>.txt`` opens with ``# key: value`` header lines (``version``, ``description``,
``variables``), then the template body; see ``README.md`` here. Rendering is strict: a missing
or unexpected variable is an error, never a silent blank, so a prompt cannot quietly lose the
dialogue it was meant to carry. ``Prompt.id`` (``name@vN``) is what run records should store.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from importlib import resources

from convir.errors import InputError

SUFFIX = ".txt"


@dataclass(frozen=True)
class Prompt:
    """One template: its name, version, declared variables and body."""

    name: str
    version: int
    description: str
    variables: tuple[str, ...]
    template: str

    @property
    def id(self) -> str:
        """``name@vN``: enough to tell which wording produced a result."""
        return f"{self.name}@v{self.version}"

    def render(self, **values: object) -> str:
        """The body with every ``$name`` filled; missing, extra or None values are errors."""
        missing = [v for v in self.variables if v not in values]
        extra = sorted(set(values) - set(self.variables))
        nones = [k for k, v in values.items() if v is None]
        if missing or extra or nones:
            problems = [
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "",
                f"None for {', '.join(nones)}" if nones else "",
            ]
            raise InputError(
                f"prompt {self.id!r} takes exactly ({', '.join(self.variables)}); got "
                f"{'; '.join(p for p in problems if p)}."
            )
        return string.Template(self.template).substitute({k: str(v) for k, v in values.items()})


def _parse(name: str, text: str) -> Prompt:
    header: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        key, sep, value = lines[i].lstrip("#").partition(":")
        if not sep:
            raise InputError(f"prompt {name!r}: header line {i + 1} is not '# key: value'.")
        header[key.strip().lower()] = value.strip()
        i += 1
    body = "\n".join(lines[i:]).strip("\n") + "\n"
    try:
        version = int(header["version"])
    except (KeyError, ValueError):
        raise InputError(f"prompt {name!r} needs a '# version: N' header line.") from None
    declared = tuple(v.strip() for v in header.get("variables", "").split(",") if v.strip())
    template = string.Template(body)
    if not template.is_valid():
        raise InputError(f"prompt {name!r} has a stray '$'; write '$$' for a literal dollar.")
    used = set(template.get_identifiers())
    if used != set(declared):
        raise InputError(
            f"prompt {name!r}: '# variables:' declares {sorted(declared)} but the body "
            f"uses {sorted(used)}."
        )
    return Prompt(name, version, header.get("description", ""), declared, body)


def list_prompts() -> list[str]:
    """Names of the shipped prompts."""
    folder = resources.files(__package__)
    return sorted(p.name.removesuffix(SUFFIX) for p in folder.iterdir() if p.name.endswith(SUFFIX))


@cache
def load_prompt(name: str) -> Prompt:
    """The prompt ``name`` (file ``<name>.txt`` in this package), parsed and checked."""
    path = resources.files(__package__) / f"{name}{SUFFIX}"
    if not name.isidentifier() or not path.is_file():
        raise InputError(f"no prompt named {name!r}; available: {', '.join(list_prompts())}.")
    return _parse(name, path.read_text(encoding="utf-8"))


__all__ = ["Prompt", "list_prompts", "load_prompt"]
