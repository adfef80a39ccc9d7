"""Text-to-image generators: the ``Generator`` protocol and two diffusers backends.

- :class:`DiffusersGenerator` loads any text-to-image pipeline by hub name or local folder
  through ``AutoPipelineForText2Image.from_pretrained`` (e.g. ``stabilityai/sd-turbo`` with
  ``steps=1, guidance=0.0`` on a GPU).
- :class:`TestbedGenerator` is the small text-conditioned diffusion model trained on the
  testbed (a diffusers ``UNet2DConditionModel`` + DDIM), conditioned on the testbed CLIP's
  text features. It is a real generative model: noise in, denoised pixels out.

Every prompt's image ``j`` is seeded with ``seed + 1000 * i + j`` on its own generator, so
the output for a prompt does not depend on which other prompts share its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from convir.errors import GenerationError, HubUnavailableError, ModelError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from convir.models.embedder import OpenClipEmbedder

TESTBED_GENERATOR = Path(__file__).resolve().parent.parent / "testbed" / "assets" / "generator"


@runtime_checkable
class Generator(Protocol):
    def generate(
        self, prompts: Sequence[str], n_per_prompt: int = 1, seed: int = 0
    ) -> list[list[Image.Image]]: ...


def _check_prompts(prompts: Sequence[str], n_per_prompt: int) -> list[str]:
    if isinstance(prompts, str):
        raise GenerationError("prompts must be a list of strings, not one string")
    if len(prompts) == 0:
        raise GenerationError("the prompt list is empty: nothing to generate")
    if n_per_prompt < 1:
        raise GenerationError(f"n_per_prompt must be at least 1, got {n_per_prompt}")
    return [str(p) for p in prompts]


def _seeds(n_prompts: int, n_per_prompt: int, seed: int) -> list[int]:
    return [seed + 1000 * i + j for i in range(n_prompts) for j in range(n_per_prompt)]


def generate_in_batches(
    prompts: Sequence[str],
    n_per_prompt: int,
    seed: int,
    batch_size: int,
    run_batch: Callable[[list[str], list[int]], list[Image.Image]],
) -> list[list[Image.Image]]:
    """Check the prompts, repeat each ``n_per_prompt`` times with its own seed, run
    ``run_batch(prompts, seeds)`` over chunks of ``batch_size``, and regroup per prompt."""
    prompts = _check_prompts(prompts, n_per_prompt)
    flat = [p for p in prompts for _ in range(n_per_prompt)]
    seeds = _seeds(len(prompts), n_per_prompt, seed)
    images: list[Image.Image] = []
    for s in range(0, len(flat), batch_size):
        images.extend(run_batch(flat[s : s + batch_size], seeds[s : s + batch_size]))
    return [images[i * n_per_prompt : (i + 1) * n_per_prompt] for i in range(len(prompts))]


def _dtype(name: str) -> torch.dtype:
    import torch

    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name not in table:
        raise ModelError(f"--dtype must be one of {sorted(table)}, got {name!r}")
    return table[name]


class DiffusersGenerator:
    """Any diffusers text-to-image pipeline, by hub name or local folder."""

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        dtype: str = "float32",
        steps: int = 25,
        guidance: float = 7.5,
        batch_size: int = 8,
    ) -> None:
        from diffusers import AutoPipelineForText2Image

        local = Path(model)
        if not local.exists() and (model.startswith((".", "/")) or model.count("/") > 1):
            raise ModelError(f"--generator: no pipeline folder at {model!r}")
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(model, dtype=_dtype(dtype))
        except ModelError:
            raise
        except Exception as exc:
            if not local.exists():
                raise HubUnavailableError(
                    f"--generator: {model!r} is not a local folder and could not be fetched from "
                    f"the model hub ({type(exc).__name__}). Save the pipeline on a machine with "
                    "access (pipe.save_pretrained(DIR)) and pass that folder"
                ) from exc
            raise ModelError(
                f"--generator: could not load the pipeline at {model!r}: {exc}"
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(device)
        self.device = device
        self.steps = steps
        self.guidance = guidance
        self.batch_size = batch_size

    def generate(
        self, prompts: Sequence[str], n_per_prompt: int = 1, seed: int = 0
    ) -> list[list[Image.Image]]:
        return generate_in_batches(prompts, n_per_prompt, seed, self.batch_size, self._run_batch)

    def _run_batch(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        import torch

        out = self.pipe(
            prompt=prompts,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=[torch.Generator(self.device).manual_seed(x) for x in seeds],
            output_type="pil",
        )
        return list(out.images)


def null_condition(
    tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 'no text' condition: zero features, one visible (zero) token so attention is defined."""
    import torch

    null_mask = torch.zeros_like(mask)
    null_mask[:, 0] = True
    return torch.zeros_like(tokens), null_mask, torch.zeros_like(pooled)


def denoise(
    unet: object,
    x: torch.Tensor,
    t: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    pooled: torch.Tensor,
    guidance: float = 1.0,
) -> torch.Tensor:
    """The UNet's prediction, with classifier-free guidance when ``guidance != 1``."""
    import torch

    if guidance == 1.0:
        return unet(
            x, t, encoder_hidden_states=tokens, class_labels=pooled, encoder_attention_mask=mask
        ).sample
    nt, nm, npool = null_condition(tokens, mask, pooled)
    out = unet(
        torch.cat([x, x]),
        t,
        encoder_hidden_states=torch.cat([tokens, nt]),
        class_labels=torch.cat([pooled, npool]),
        encoder_attention_mask=torch.cat([mask, nm]),
    ).sample
    cond, uncond = out.chunk(2)
    return uncond + guidance * (cond - uncond)


TEXT_ENCODER = "text_encoder"  # a generator folder's own CLIP text encoder (open_clip files)


def load_text_encoder(folder: Path, device: str = "cpu") -> OpenClipEmbedder | None:
    """The open_clip model a generator was trained with, saved in its ``text_encoder/``.

    Like a Stable Diffusion pipeline, the generator keeps the text encoder it was trained
    on, so the retrieval CLIP can be retrained without breaking it. None: no such folder.
    """
    import open_clip

    from convir.models.embedder import OpenClipEmbedder

    configs = sorted((folder / TEXT_ENCODER).glob("*.json"))
    configs = [c for c in configs if not c.name.endswith((".vocab.json", ".train.json"))]
    if not configs:
        return None
    name = configs[0].stem
    if name not in open_clip.list_models():
        open_clip.add_model_config(configs[0])
    return OpenClipEmbedder(name, str(configs[0].with_suffix(".pt")), device=device)


class TestbedGenerator:
    """The shipped testbed diffusion model: UNet + DDIM, conditioned on CLIP text tokens.

    The conditioning comes from the generator's own ``text_encoder/`` when it has one (else
    from ``embedder``); ``embedder`` is the retrieval model the caller embeds images with.
    """

    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self,
        path: str | Path = TESTBED_GENERATOR,
        embedder: OpenClipEmbedder | None = None,
        device: str = "cpu",
        steps: int = 25,
        guidance: float = 3.0,
        batch_size: int = 64,
        out_size: int = 64,
    ) -> None:
        from diffusers import DDIMScheduler, UNet2DConditionModel
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()  # no "pip install accelerate" notice for users

        from convir.models.embedder import load_embedder

        path = Path(path)
        if not (path / "unet" / "config.json").exists():
            raise ModelError(
                f"--generator: no testbed generator at {path} (expected unet/ and scheduler/)"
            )
        self.unet = UNet2DConditionModel.from_pretrained(path / "unet").to(device).float().eval()
        self.scheduler = DDIMScheduler.from_pretrained(path / "scheduler")
        self.embedder = embedder or load_embedder(device=device)
        self.text_encoder = load_text_encoder(path, device) or self.embedder
        self.device = device
        self.steps = steps
        self.guidance = guidance
        self.batch_size = batch_size
        self.out_size = out_size

    def condition(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text tokens [B,T,D], their mask [B,T] and pooled text [B,D] from the testbed CLIP."""
        feats = self.text_encoder.encode_text(list(prompts), tokens=True)
        length = int(feats.mask.sum(dim=1).max()) + 1
        return feats.tokens[:, :length], feats.mask[:, :length], feats.pooled

    def sample(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        pooled: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """DDIM sampling with classifier-free guidance; returns pixels in [0, 1]."""
        import torch

        self.scheduler.set_timesteps(self.steps)
        x = noise * self.scheduler.init_noise_sigma
        with torch.inference_mode():
            for t in self.scheduler.timesteps:
                pred = denoise(self.unet, x, t, tokens, mask, pooled, self.guidance)
                x = self.scheduler.step(pred, t, x).prev_sample
        return (x.clamp(-1, 1) + 1) / 2

    def generate(
        self, prompts: Sequence[str], n_per_prompt: int = 1, seed: int = 0
    ) -> list[list[Image.Image]]:
        return generate_in_batches(prompts, n_per_prompt, seed, self.batch_size, self._run_batch)

    def _run_batch(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        import torch
        from PIL import Image

        size = self.unet.config.sample_size
        noise = torch.stack(
            [torch.randn(3, size, size, generator=torch.Generator().manual_seed(x)) for x in seeds]
        ).to(self.device)
        tokens, mask, pooled = self.condition(prompts)
        pixels = self.sample(
            tokens.to(self.device), mask.to(self.device), pooled.to(self.device), noise
        )
        arr = (pixels.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
        images = [Image.fromarray(a) for a in arr]
        if self.out_size != size:
            images = [
                im.resize((self.out_size, self.out_size), Image.Resampling.BICUBIC) for im in images
            ]
        return images
