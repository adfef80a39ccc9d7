"""convir: conversational image retrieval.

Importing the package is cheap: torch, open_clip, FAISS and friends are imported
only inside the backends that need them.
"""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convir.agents.conversation import ConvirAgent

__version__ = "0.1.0"
__all__ = ["AgentConfig", "ConvirAgent", "Resources", "TurnResult", "__version__", "load_agent"]

# the few names a user needs, imported on first use so that ``import convir`` stays cheap
_LAZY = {
    "AgentConfig": "convir.state",
    "ConvirAgent": "convir.agents.conversation",
    "Resources": "convir.gallery.resources",
    "TurnResult": "convir.turn",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'convir' has no attribute {name!r}")


def load_agent(
    index_path: str | PathLike[str],
    *,
    strategy: str = "auto",
    policy: str = "rules",
    checkpoint: str | Any = None,
    generate: bool = False,
    model: str | None = None,
    pretrained: str | None = None,
    text_model: str | None = None,
    **config: Any,
) -> ConvirAgent:
    """The agent over a gallery saved by ``convir index``, in one call: the few lines a
    Python user needs before ``agent.start(thread, "a red circle")``, ``agent.reply(...)``
    and ``agent.explain(thread, image_id)``.

    ``checkpoint``: where conversations live: ``None``/``"memory"``, ``"sqlite:PATH"``,
    ``"postgresql://..."`` (the same spec ``convir serve`` takes, so both see the same
    conversations) or a LangGraph checkpointer. ``generate``: let DAR draw images (the
    testbed model only). ``policy="llm"`` reads its server from ``CONVIR_LLM_URL``. Any
    other keyword is an :class:`~convir.state.AgentConfig` field (``top_k``, ``pool``...)."""
    from pydantic import ValidationError

    from convir.agents.build import build_agent
    from convir.agents.checkpointers import checkpointer
    from convir.errors import InputError
    from convir.gallery.resources import Resources
    from convir.state import AgentConfig

    try:  # a wrong setting fails before any model loads
        AgentConfig(strategy=strategy, **config)
    except ValidationError as exc:
        wrong = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"load_agent: {wrong} (the settings: convir.state.AgentConfig)") from None
    llm = None
    if policy == "llm":
        from convir.models.llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM()
    saver = (
        checkpointer(checkpoint)
        if checkpoint is None or isinstance(checkpoint, str)
        else checkpoint
    )
    resources = Resources.open(
        index_path,
        model=model,
        pretrained=pretrained,
        text_model=text_model,
        generator=generate,
        llm=llm,
    )
    return build_agent(resources, strategy, policy, checkpoint=saver, **config)
