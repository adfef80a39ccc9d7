"""Captioner backends: transformers image-to-text from a folder, an OpenAI-compatible VLM."""

import base64
import io

import pytest
from llm_server import Reply, ScriptedServer
from PIL import Image

from convir.errors import InputError, ModelError
from convir.models.captioner import (
    Captioner,
    TransformersCaptioner,
    VLMCaptioner,
    caption_safely,
    load_captioner,
)
from convir.testbed.render import render
from convir.testbed.world import World


@pytest.fixture(scope="module")
def random_captioner_folder(tmp_path_factory):
    """A tiny random ViT + GPT-2 encoder-decoder saved as a model hub folder would hold it."""
    import torch

    from convir.testbed.captioner_train import build_image_processor, build_model, build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    model = build_model(len(tok), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
    folder = tmp_path_factory.mktemp("random-captioner")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    build_image_processor().save_pretrained(folder)
    return folder


def test_transformers_captioner_loads_a_saved_folder(random_captioner_folder):
    captioner = load_captioner(str(random_captioner_folder))
    assert isinstance(captioner, TransformersCaptioner) and isinstance(captioner, Captioner)
    images = [render(s) for s in World(seed=3, size=3).scenes()]
    images[1] = images[1].convert("L")  # any mode is captioned as RGB
    captions = captioner.caption(images)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    assert captions == captioner.caption(images)  # greedy decoding: deterministic


def test_missing_or_unknown_captioner_names_the_flag(tmp_path):
    with pytest.raises(ModelError, match="--captioner: no transformers model"):
        TransformersCaptioner(tmp_path)
    with pytest.raises(InputError, match="--captioner 'no-such-model'"):
        load_captioner("no-such-model")
    with pytest.raises(InputError, match="needs a value"):
        load_captioner("  ")


def test_vlm_captioner_sends_the_image_as_a_data_uri():
    image = Image.new("RGB", (40, 30), (200, 10, 10))
    with ScriptedServer([Reply.text("a red   rectangle\n")]) as server:
        from convir.models.llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM(server.url, "qwen2-vl", timeout=5, max_retries=0)
        assert VLMCaptioner(llm).caption([image]) == ["a red rectangle"]
        (request,) = server.chat_requests
    parts = request.body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (40, 30) and sent.getpixel((0, 0)) == (200, 10, 10)


def test_vlm_server_down_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("CONVIR_LLM_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(ModelError) as exc:
        load_captioner("vlm:qwen2-vl")
    assert "http://127.0.0.1:9" in str(exc.value) and "CONVIR_LLM_URL" in str(exc.value)


def test_caption_safely_isolates_the_failing_image():
    class Picky:
        def caption(self, images):
            if any(im.size == (1, 1) for im in images):
                raise RuntimeError("too small")
            return [f"{im.size[0]} wide" for im in images]

    images = [Image.new("RGB", (5, 5)), Image.new("RGB", (1, 1)), Image.new("RGB", (7, 7))]
    texts, warnings = caption_safely(Picky(), images, ["a", "b", "c"])
    assert texts == ["5 wide", None, "7 wide"]
    assert warnings == ["skipped caption of b: too small"]
