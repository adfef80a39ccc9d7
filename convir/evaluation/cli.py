"""The ``convir eval`` and ``convir data`` command groups, every command registered: ``run``
(``run_cli``: options; ``run_evaluation``: the run; ``run_checks``: what it accepts),
``composed`` (``composed_cli``), ``score``, ``submission``, ``compare`` and ``inspect``
(``score_cli``). The groups themselves live in ``apps``; ``convir.cli`` adds both."""

from __future__ import annotations

from convir.evaluation.apps import data_app, eval_app
from convir.evaluation.run_cli import run_command

# isort: split
# after run: `convir eval --help` lists the commands in the order they register
from convir.evaluation import composed_cli, score_cli  # noqa: F401  (register commands)

__all__ = ["data_app", "eval_app", "run_command"]
