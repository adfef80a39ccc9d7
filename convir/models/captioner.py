"""Captioners: one text per gallery image, from a model, for galleries without their own text.

Three backends behind one protocol:
- :class:`TransformersCaptioner`: any transformers image-to-text model saved with
  ``save_pretrained`` (BLIP, GIT, a ``VisionEncoderDecoderModel``), loaded from a local
  folder with ``AutoModelForImageTextToText``; the shipped testbed captioner is one
  (``"testbed"``: a ViT encoder + GPT-2 decoder trained on the synthetic world).
- :class:`VLMCaptioner`: an OpenAI-compatible vision-language model (e.g. vLLM serving
  Qwen2-VL), images sent as ``image_url`` data URIs in chat messages.
- anything with a ``caption(images) -> list[str]`` method.

Heavy imports stay inside the backends, as in the other model files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from convir.errors import InputError, LLMError, ModelError

if TYPE_CHECKING:
    from PIL import Image

    from convir.models.llm import OpenAICompatibleLLM

log = logging.getLogger(__name__)

TESTBED_CAPTIONER = Path(__file__).resolve().parent.parent / "testbed" / "assets" / "captioner"
VLM_PREFIX = "vlm:"
CAPTION_PROMPT = (
    "Describe this image in one sentence for an image search index: name every object "
    "with its colour, size and position, and the background. Reply with the sentence only."
)


@runtime_checkable
class Captioner(Protocol):
    """What ``convir index --captioner`` and ``convir caption`` need from a captioning model."""

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image, in order."""
        ...


class TransformersCaptioner:
    """A transformers image-to-text model from a local folder (greedy decoding, no grad).

    Encoder-decoder models saved without a processor (``VisionEncoderDecoderModel``) use the
    folder's image processor and tokenizer; others (BLIP, GIT) their ``AutoProcessor``.
    """

    def __init__(
        self,
        path: str | Path = TESTBED_CAPTIONER,
        device: str = "cpu",
        batch_size: int = 64,
        max_new_tokens: int = 60,
    ) -> None:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ModelError(
                f"--captioner: no transformers model at {folder} (expected config.json from "
                "save_pretrained); pass a local folder, 'testbed', or vlm:MODEL"
            )
        import torch
        from transformers import (
            AutoImageProcessor,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # no third-party notices on the user's terminal
        hf_logging.disable_progress_bar()
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(folder).to(device).eval()
            if self.model.config.model_type == "vision-encoder-decoder":
                self.image_processor = AutoImageProcessor.from_pretrained(folder)
                self.tokenizer = AutoTokenizer.from_pretrained(folder)
                self.processor = None
            else:
                self.processor = AutoProcessor.from_pretrained(folder)
                self.image_processor = None
                self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"--captioner: could not load {folder}: {exc}") from exc
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.name = str(folder)

    def _inputs(self, images: list[Image.Image]) -> dict:
        if self.processor is None:
            pixels = self.image_processor(images=images, return_tensors="pt").pixel_values
            return {"pixel_values": pixels.to(self.device)}
        batch = self.processor(images=images, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        import torch

        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [
                im if im.mode == "RGB" else im.convert("RGB")
                for im in images[start:][: self.batch_size]
            ]
            with torch.inference_mode():
                ids = self.model.generate(
                    **self._inputs(chunk), max_new_tokens=self.max_new_tokens, do_sample=False
                )
            texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
            out += [" ".join(t.split()) for t in texts]
        return out


class VLMCaptioner:
    """Captions from an OpenAI-compatible vision-language model, one request per image."""

    def __init__(self, llm: OpenAICompatibleLLM, prompt: str = CAPTION_PROMPT) -> None:
        self.llm = llm
        self.prompt = prompt
        self.name = f"{VLM_PREFIX}{llm.model or '?'} at {llm.root}"

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        from convir.models.llm import image_part

        out = []
        for image in images:
            reply = self.llm.complete(
                [
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": self.prompt}, image_part(image)],
                    }
                ]
            )
            out.append(" ".join(str(reply).split()))
        return out


def load_captioner(name_or_path: str, device: str = "cpu") -> Captioner:
    """``testbed``, a local transformers folder, or ``vlm:MODEL`` (server from CONVIR_LLM_URL).

    A VLM server that cannot be reached fails here, once, with the URL and the flag to fix.
    """
    name = name_or_path.strip()
    if not name:
        raise InputError("--captioner needs a value: testbed, a model folder, or vlm:MODEL")
    if name == "testbed":
        return TransformersCaptioner(TESTBED_CAPTIONER, device=device)
    if name.startswith(VLM_PREFIX):
        from convir.models.llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM(model=name[len(VLM_PREFIX) :] or None, max_tokens=120)
        try:
            listed = llm.listed_models()
            llm.model = llm.model or (listed[0] if listed else None)
        except LLMError as exc:
            raise ModelError(
                f"--captioner {name}: the vision-language server at {llm.root} is not usable "
                f"({exc}). Start it or set CONVIR_LLM_URL to where it runs."
            ) from exc
        return VLMCaptioner(llm)
    if Path(name).exists():
        return TransformersCaptioner(name, device=device)
    raise InputError(
        f"--captioner {name!r}: not 'testbed', not vlm:MODEL, and no folder by that name "
        "(models are loaded from local folders; nothing is downloaded)"
    )


def caption_safely(
    captioner: Captioner, images: Sequence[Image.Image], names: Sequence[str]
) -> tuple[list[str | None], list[str]]:
    """Captions for a batch; when the batch fails, one image at a time, failures as None.

    Returns the captions and one warning line per image that could not be captioned.
    """
    try:
        texts = captioner.caption(images)
        if len(texts) != len(images):
            raise ModelError(f"captioner returned {len(texts)} captions for {len(images)} images")
        return list(texts), []
    except Exception as batch_error:  # noqa: BLE001 (any backend failure: retry per image)
        if len(images) == 1:
            return [None], [f"skipped caption of {names[0]}: {batch_error}"]
        log.debug("caption batch failed (%s); retrying one by one", batch_error)
    out: list[str | None] = []
    warnings: list[str] = []
    for image, name in zip(images, names, strict=True):
        got, warn = caption_safely(captioner, [image], [name])
        out += got
        warnings += warn
    return out, warnings
