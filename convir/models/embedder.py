"""Image/text embedders: the ``Embedder`` protocol and its open_clip backend.

The backend returns pooled features *and* token/patch features projected into the joint
space (open_clip projects only the pooled token, so the projection is applied to every
token here), all L2-normalised. Real checkpoints and the shipped testbed model load
through the same call: ``open_clip.create_model_and_transforms(name, pretrained=PATH)``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from convir.errors import HubUnavailableError, ModelError

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    import torch
    from PIL import Image

    PreparedImage: TypeAlias = np.ndarray | torch.Tensor  # uint8 [H, W, 3] or float [3, H, W]

TESTBED_MODEL = "convir-testbed-clip"
ASSETS = Path(__file__).resolve().parent.parent / "testbed" / "assets"
TESTBED_CONFIG = ASSETS / f"{TESTBED_MODEL}.json"
TESTBED_CHECKPOINT = ASSETS / f"{TESTBED_MODEL}.pt"


class TextFeatures(NamedTuple):
    pooled: torch.Tensor  # [B, D], unit norm
    tokens: torch.Tensor | None = None  # [B, T, D], unit norm per token
    mask: torch.Tensor | None = None  # [B, T], True where a real token (words and end-of-text)


class ImageFeatures(NamedTuple):
    pooled: torch.Tensor  # [B, D], unit norm
    patches: torch.Tensor | None = None  # [B, P, D], unit norm per patch


def _keeps_size(step: Callable, size: tuple[int, int]) -> bool:
    """Whether a torchvision Resize or CenterCrop returns a (w, h) = ``size`` image unchanged."""
    target = step.size
    if isinstance(target, int) or len(target) == 1:  # Resize(int): sets the shorter side
        short = target if isinstance(target, int) else target[0]
        max_size = getattr(step, "max_size", None)
        return min(size) == short and (max_size is None or max(size) <= max_size)
    return (size[1], size[0]) == tuple(target)


@dataclass(frozen=True)
class PixelRecipe:
    """open_clip's image transform split in two halves that give the same tensors.

    Per image: the Resize/CenterCrop steps on the PIL image, each skipped when it would
    return the image unchanged (as for an image already at the model's input size), then
    the uint8 pixels. Per batch: one float conversion and ``(x / 255 - mean) / std`` over
    [B, 3, H, W], instead of a ToTensor and a Normalize per image (~5x the CPU time).
    """

    geometry: tuple[Callable, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def pixels(self, rgb: Image.Image) -> np.ndarray:
        import numpy as np

        for step in self.geometry:
            if not _keeps_size(step, rgb.size):
                rgb = step(rgb)
        return np.asarray(rgb)

    def normalise(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        import numpy as np
        import torch

        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        out = torch.empty(pixels.shape, dtype=torch.get_default_dtype())
        out.copy_(pixels)  # contiguous float first: the arithmetic then runs ~2.5x faster
        mean = torch.tensor(self.mean, dtype=out.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=out.dtype).view(1, -1, 1, 1)
        return out.div_(255).sub_(mean).div_(std)  # ToTensor's then Normalize's float ops


def pixel_recipe(preprocess: Callable) -> PixelRecipe | None:
    """The split form of an open_clip eval transform, or ``None`` to run it per image.

    Recognised: torchvision Resize/CenterCrop steps ending in a fixed size, converts to
    RGB, then ToTensor and a 3-channel Normalize. Anything else (other steps, or an output
    size that depends on the input's aspect ratio) keeps the per-image transform.
    """
    import open_clip.transform as oct
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", None) or [])
    if len(steps) < 3 or type(steps[-1]) is not T.Normalize:
        return None
    if type(steps[-2]) not in (T.ToTensor, oct.MaybeToTensor):
        return None
    geometry = []
    for step in steps[:-2]:
        if step is oct._convert_to_rgb or (
            type(step) is oct.MaybeConvertMode and step.mode == "RGB"
        ):
            continue  # a no-op: images arrive here as RGB
        if type(step) not in (T.Resize, T.CenterCrop):
            return None
        geometry.append(step)
    last = geometry[-1] if geometry else None
    fixed = type(last) is T.CenterCrop or (
        type(last) is T.Resize and not isinstance(last.size, int) and len(last.size) == 2
    )
    mean, std = tuple(map(float, steps[-1].mean)), tuple(map(float, steps[-1].std))
    if not fixed or len(mean) != 3 or len(std) != 3:
        return None
    return PixelRecipe(tuple(geometry), mean, std)


@runtime_checkable
class Embedder(Protocol):
    """What retrieval needs from a dual encoder."""

    dim: int
    name: str

    def encode_text(self, texts: Sequence[str], *, tokens: bool = False) -> TextFeatures: ...

    def encode_images(
        self, images: Sequence[Image.Image], *, patches: bool = False
    ) -> ImageFeatures: ...


def register_testbed_config() -> None:
    """Make the shipped testbed architecture known to open_clip by name."""
    import open_clip

    if TESTBED_MODEL not in open_clip.list_models():
        open_clip.add_model_config(TESTBED_CONFIG)


def _looks_like_path(value: str) -> bool:
    return (
        os.sep in value
        or value.startswith(".")
        or Path(value).suffix
        in {
            ".pt",
            ".pth",
            ".bin",
            ".safetensors",
            ".ckpt",
        }
    )


def _tokenizer_for(model_name: str, checkpoint: Path | None) -> Callable:
    """A ``*.vocab.json`` beside the checkpoint means a word-level testbed tokenizer.

    The testbed architecture always uses the shipped vocabulary, also with random weights.
    """
    import open_clip

    from convir.models.word_tokenizer import WordTokenizer

    if checkpoint is not None and checkpoint.with_suffix(".vocab.json").exists():
        return WordTokenizer.load(checkpoint.with_suffix(".vocab.json"))
    if model_name == TESTBED_MODEL:
        return WordTokenizer.load(TESTBED_CHECKPOINT.with_suffix(".vocab.json"))
    return open_clip.get_tokenizer(model_name)


def read_concepts(checkpoint: Path | None) -> tuple[str, ...]:
    """The concept list a checkpoint ships beside it (``<name>.concepts.txt``, one per line),
    as CLIP releases ship their zero-shot class names; () when there is none."""
    if checkpoint is None:
        return ()
    path = checkpoint.with_suffix(".concepts.txt")
    if not path.is_file():
        return ()
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


class OpenClipEmbedder:
    """An open_clip model wrapped as an :class:`Embedder` (eval mode, no grad)."""

    def __init__(
        self,
        model_name: str = TESTBED_MODEL,
        pretrained: str | None = str(TESTBED_CHECKPOINT),
        device: str = "cpu",
        batch_size: int = 256,
    ) -> None:
        import open_clip
        import torch

        register_testbed_config()
        if model_name not in open_clip.list_models():
            raise ModelError(
                f"--model: open_clip does not know a model called {model_name!r}; "
                f"see open_clip.list_models() (e.g. ViT-B-32) or use {TESTBED_MODEL!r}"
            )
        checkpoint: Path | None = None
        if pretrained:
            if Path(pretrained).exists():
                checkpoint = Path(pretrained)
            elif _looks_like_path(pretrained):
                raise ModelError(f"--pretrained: no checkpoint file at {pretrained!r}")
            elif pretrained not in open_clip.list_pretrained_tags_by_model(model_name):
                raise ModelError(
                    f"--pretrained: {pretrained!r} is neither a file nor a pretrained tag of "
                    f"{model_name} (tags: {open_clip.list_pretrained_tags_by_model(model_name)})"
                )
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained or None, device=device
            )
        except Exception as exc:  # open_clip raises bare RuntimeError/OSError on hub failures
            if pretrained and checkpoint is None:
                raise HubUnavailableError(
                    f"--pretrained: the tag {pretrained!r} needs a download from the model hub, "
                    f"which failed ({type(exc).__name__}: {str(exc)[:120]}). Download the "
                    "checkpoint on a machine with access and pass --pretrained /path/to/file"
                ) from exc
            raise ModelError(f"could not build {model_name!r}: {exc}") from exc
        model.eval()
        self.model = model
        self.preprocess = preprocess
        self._recipe = pixel_recipe(preprocess)  # None: an unknown pipeline, run per image
        self.tokenizer = _tokenizer_for(model_name, checkpoint)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.name = model_name
        self.pretrained = pretrained
        self._tokens_lock = threading.Lock()  # patch features flip a flag on the shared model
        proj = getattr(model, "text_projection", None)
        self.dim = int(proj.shape[1]) if proj is not None else int(model.visual.output_dim)
        self.concepts = read_concepts(checkpoint)

    # -- text ---------------------------------------------------------------------------
    def _pool_positions(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Where each row's pooled token sits, or None when pooling does not point at one.

        Only then can the padding after it be cut (see :meth:`_text_forward`).
        """
        m = self.model
        pool = getattr(m, "text_pool_type", None)
        if pool == "argmax":
            return ids.argmax(dim=-1)
        eos = getattr(m, "text_eos_id", None)
        if pool == "eos" and eos is not None:
            return (ids == eos).int().argmax(dim=-1)
        return None

    def _text_forward(
        self, ids: torch.Tensor, tokens: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projected pooled features (and per-token features) of a CLIP text tower.

        The padding after the longest row's pooled token is cut before the transformer: with
        a causal mask no position attends to a later one, so the cut changes no feature (up
        to float rounding, ~1e-7), and a 12-word query costs a fifth of the 64- or 77-token
        context. Towers without a causal mask or a pooled position run on the full context.
        """
        import open_clip.transformer as oct

        m = self.model
        if not hasattr(m, "token_embedding"):
            if tokens:
                raise ModelError(f"{self.name}: token features need an open_clip CLIP text tower")
            return m.encode_text(ids), None
        where = self._pool_positions(ids)
        mask = m.attn_mask
        if where is not None and mask is not None and getattr(m, "cls_emb", None) is None:
            length = int(where.max()) + 1
            ids, mask = ids[:, :length], mask[:length, :length]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(ids).to(cast) + m.positional_embedding[: ids.shape[1]].to(cast)
        x = m.ln_final(m.transformer(x, attn_mask=mask))
        pooled = oct.text_global_pool(
            x, ids, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None)
        )
        proj = m.text_projection
        if proj is not None:
            project = (
                proj if callable(proj) and not hasattr(proj, "shape") else (lambda t: t @ proj)
            )
            pooled, x = project(pooled), project(x) if tokens else x
        return pooled, x if tokens else None

    def encode_text(self, texts: Sequence[str], *, tokens: bool = False) -> TextFeatures:
        import torch
        import torch.nn.functional as F

        if len(texts) == 0:
            raise ValueError("encode_text needs at least one text")
        pooled_parts, token_parts, mask_parts = [], [], []
        width = 0
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                ids = self.tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
                pooled, toks = self._text_forward(ids, tokens)
                pooled_parts.append(F.normalize(pooled.float(), dim=-1))
                if toks is not None:
                    mask = ids[:, : toks.shape[1]] != 0
                    mask[:, 0] = False  # start-of-text carries no content
                    token_parts.append(F.normalize(toks.float(), dim=-1))
                    mask_parts.append(mask)
                    width = max(width, toks.shape[1])
        pooled = torch.cat(pooled_parts)
        if not tokens:
            return TextFeatures(pooled)
        # chunks may be cut to different lengths: pad back to the longest (masked out)
        token_parts = [F.pad(t, (0, 0, 0, width - t.shape[1])) for t in token_parts]
        mask_parts = [F.pad(k, (0, width - k.shape[1])) for k in mask_parts]
        return TextFeatures(pooled, torch.cat(token_parts), torch.cat(mask_parts))

    # -- images -------------------------------------------------------------------------
    def prepare_image(self, image: Image.Image) -> PreparedImage:
        """The per-image half of preprocessing (cheap to run in a decode thread).

        On the fast path, resize/crop only (skipped where they would not change the image)
        and the uint8 pixels; otherwise the whole per-image transform.
        """
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if self._recipe is None:
            return self.preprocess(rgb)
        return self._recipe.pixels(rgb)

    def collate_images(self, prepared: Sequence[PreparedImage]) -> torch.Tensor:
        """The per-batch half: stack, then one fused ToTensor + Normalize over the batch."""
        import torch

        if self._recipe is None:
            return torch.stack(list(prepared))
        return self._recipe.normalise(prepared)

    def image_tensor(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The same tensors as open_clip's per-image ``preprocess`` on each image, stacked."""
        return self.collate_images([self.prepare_image(im) for im in images])

    def encode_image_tensor(self, pixels: torch.Tensor, *, patches: bool = False) -> ImageFeatures:
        """Features of an already preprocessed batch (lets loaders overlap with compute)."""
        import torch
        import torch.nn.functional as F

        visual = self.model.visual
        with torch.inference_mode():
            pixels = pixels.to(self.device)
            if not patches:
                return ImageFeatures(F.normalize(self.model.encode_image(pixels).float(), dim=-1))
            if not hasattr(visual, "output_tokens"):
                raise ModelError(f"{self.name}: patch features need an open_clip ViT image tower")
            with self._tokens_lock:
                visual.output_tokens = True
                try:
                    pooled, toks = visual(pixels)
                finally:
                    visual.output_tokens = False
            if getattr(visual, "proj", None) is not None:
                toks = toks @ visual.proj
            return ImageFeatures(
                F.normalize(pooled.float(), dim=-1), F.normalize(toks.float(), dim=-1)
            )

    def encode_images(
        self, images: Sequence[Image.Image], *, patches: bool = False
    ) -> ImageFeatures:
        import torch

        if len(images) == 0:
            raise ValueError("encode_images needs at least one image")
        parts = [
            self.encode_image_tensor(
                self.image_tensor(images[s : s + self.batch_size]), patches=patches
            )
            for s in range(0, len(images), self.batch_size)
        ]
        pooled = torch.cat([p.pooled for p in parts])
        if not patches:
            return ImageFeatures(pooled)
        return ImageFeatures(pooled, torch.cat([p.patches for p in parts]))


_CACHE: dict[tuple[str, str | None, str], OpenClipEmbedder] = {}


def load_embedder(
    model_name: str | None = None, pretrained: str | None = None, device: str = "cpu"
) -> OpenClipEmbedder:
    """The embedder for (model, weights, device), built once per process.

    With neither argument, the shipped testbed CLIP.
    """
    if model_name is None:
        model_name = TESTBED_MODEL
        pretrained = pretrained or str(TESTBED_CHECKPOINT)
    key = (model_name, pretrained, device)
    if key not in _CACHE:
        _CACHE[key] = OpenClipEmbedder(model_name, pretrained, device)
    return _CACHE[key]
