"""One exception hierarchy for the whole package.

Every message says what went wrong *and* what to do next, so the CLI can print
it as a single line instead of a traceback.
"""

SHOWN_CHARS = 80  # how much of a caller's id an error message echoes


def shown(text: str) -> str:
    """A caller's id as an error message repeats it: quoted, and cut to a short prefix (a
    60 kB id must not come back as a 60 kB reply)."""
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}... ({len(text):,} characters)"


class ConvirError(Exception):
    """Base class of every error convir raises on purpose."""


class InputError(ConvirError):
    """The caller passed something unusable (missing folder, bad flag value...)."""


class ModelError(ConvirError):
    """A model could not be built or loaded (unknown name, missing weights...)."""


class HubUnavailableError(ModelError):
    """The weights would have to come from a model hub, which is not reachable."""


class IndexFileError(ConvirError):
    """An index file is missing, corrupt, or does not fit the query."""


class LLMError(ConvirError):
    """The language model failed: unreachable, timed out, or replied off-schema."""


class LLMUnavailableError(LLMError):
    """The LLM server could not be reached or kept failing after the retries."""


class LLMOutputError(LLMError):
    """The LLM replied, but not with valid JSON for the requested schema."""


class GenerationError(ConvirError):
    """The image generator failed or was given unusable prompts."""


__all__ = [
    "ConvirError",
    "InputError",
    "ModelError",
    "HubUnavailableError",
    "IndexFileError",
    "LLMError",
    "LLMUnavailableError",
    "LLMOutputError",
    "GenerationError",
]
