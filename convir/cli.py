"""The ``convir`` command line. Each area registers its commands from its own module;
this file only assembles them and turns :class:`~convir.errors.ConvirError` into one line
on stderr with exit code 2 (no traceback for mistakes a user can fix)."""

from __future__ import annotations

import sys

import typer

from convir.chat import chat_command
from convir.demo import demo_command
from convir.errors import ConvirError
from convir.evaluation.cli import data_app, eval_app
from convir.index.caption_cli import caption_command
from convir.index.cli import index_command, search_command
from convir.mcp.cli import mcp_command
from convir.server.cli import serve_command
from convir.testbed.cli import testbed_app

app = typer.Typer(
    name="convir",
    help="Conversational image retrieval: testbed, index, search, agent, evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(testbed_app, name="testbed")
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")
app.command("index")(index_command)
app.command("search")(search_command)
app.command("caption")(caption_command)
app.command("demo")(demo_command)
app.command("chat")(chat_command)
app.command("serve")(serve_command)
app.command("mcp")(mcp_command)


def _one_line_warnings() -> None:
    """convir's own warnings (a text cut to the tokenizer's limit, a skipped image) print as
    one ``warning: ...`` line, not Python's file:line header plus a source line."""
    import warnings

    plain = warnings.formatwarning

    def short(message, category, filename, lineno, line=None):  # noqa: ANN001, ANN202
        if "/convir/" in str(filename).replace("\\", "/"):
            return f"warning: {message}\n"
        return plain(message, category, filename, lineno, line)

    warnings.formatwarning = short  # type: ignore[assignment]


def main() -> None:
    _one_line_warnings()
    try:
        app()
    except ConvirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
