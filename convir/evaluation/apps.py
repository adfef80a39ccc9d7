"""The ``convir eval`` and ``convir data`` command groups, on their own so that each command
module (``cli``: run; ``score_cli``: score, submission, compare, inspect; ``composed_cli``:
composed) registers on them without importing another command module."""

from __future__ import annotations

import typer

eval_app = typer.Typer(help="Score run files and run evaluations.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect benchmark files.", no_args_is_help=True)


@data_app.callback()
def _data() -> None:
    """Inspect benchmark files."""  # keeps `data` a command group even with one command
