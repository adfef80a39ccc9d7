"""Train the testbed diffusion generator: a small diffusers UNet conditioned on testbed CLIP text.

Choices for a model that must learn in well under an hour of CPU:
- 32x32 pixels (upsampled to the gallery's 64 for embedding); 3 resolution levels
  (32/16/8), self- and cross-attention to the CLIP text tokens at 8x8 only (the 3x3 grid
  fits; attention at 16x16 doubled the step time on CPU for no visible gain), plus the
  pooled text embedding added to the time embedding (``class_embed_type="projection"``),
  which carries most of the global content early in training; ~1.5 M parameters;
- v-prediction on a cosine schedule with min-SNR-5 loss weighting (Hang et al. 2023), which
  converges markedly faster than plain epsilon-MSE;
- 10% condition dropout for classifier-free guidance; an EMA of the weights is what ships.
Texts are full captions half of the time and otherwise drawn from the alt-text-like mix the
CLIP is trained on (:mod:`convir.testbed.caption_mix`: one object, a few objects, the
setting, counts), so a partial query yields a plausible whole scene, with the unnamed
objects invented differently from sample to sample (what DAR asks of it).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convir.models.generator import denoise, null_condition
from convir.testbed.caption_mix import training_text
from convir.testbed.captions import full_caption
from convir.testbed.clip_train import TRAIN_SEED
from convir.testbed.render import render
from convir.testbed.world import World

if TYPE_CHECKING:
    import torch


@dataclass
class GeneratorConfig:
    steps: int = 2800
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.998
    cond_dropout: float = 0.1
    min_snr_gamma: float = 5.0
    sample_size: int = 32
    channels: tuple[int, ...] = (32, 64, 64)
    seed: int = 0


def build_unet(cfg: GeneratorConfig, text_dim: int = 128):  # noqa: ANN201 (diffusers type)
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=cfg.sample_size,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=cfg.channels,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=text_dim,
        attention_head_dim=4,
        norm_num_groups=16,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=text_dim,
    )


def build_scheduler():  # noqa: ANN201 (diffusers type)
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=False,
    )


def _pixels(images: list) -> torch.Tensor:
    import torch

    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def train_generator(out_dir: Path, cfg: GeneratorConfig, log: callable = print) -> dict[str, float]:
    """Train, save ``unet/`` and ``scheduler/`` (diffusers format) into ``out_dir``, evaluate."""
    import torch
    from diffusers import DDIMScheduler
    from tqdm import tqdm

    from convir.models.embedder import load_embedder
    from convir.models.generator import TestbedGenerator

    torch.manual_seed(cfg.seed)
    embedder = load_embedder()
    unet = build_unet(cfg, embedder.dim)
    ema = copy.deepcopy(unet).requires_grad_(False)
    sched = build_scheduler()
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.01)
    alphas = sched.alphas_cumprod
    world = World(seed=TRAIN_SEED + 1, size=10_000_000)
    rng = np.random.default_rng(cfg.seed)
    start = time.time()
    bar = tqdm(range(cfg.steps), desc="train-generator", unit="step")
    for step in bar:
        scenes = [world.scene(int(i)) for i in rng.integers(world.size, size=cfg.batch_size)]
        texts = [
            full_caption(s, rng) if rng.random() < 0.5 else training_text(s, rng)[0] for s in scenes
        ]
        x0 = _pixels([render(s, cfg.sample_size) for s in scenes])
        feats = embedder.encode_text(texts, tokens=True)
        length = int(feats.mask.sum(dim=1).max()) + 1
        # clone: features made under inference_mode cannot be saved for backward
        tokens = feats.tokens[:, :length].clone()
        mask, pooled = feats.mask[:, :length].clone(), feats.pooled.clone()
        drop = torch.from_numpy(rng.random(cfg.batch_size) < cfg.cond_dropout)
        nt, nm, npool = null_condition(tokens, mask, pooled)
        tokens = torch.where(drop[:, None, None], nt, tokens)
        mask = torch.where(drop[:, None], nm, mask)
        pooled = torch.where(drop[:, None], npool, pooled)
        t = torch.from_numpy(rng.integers(0, sched.config.num_train_timesteps, cfg.batch_size))
        noise = torch.randn_like(x0)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * x0  # v
        snr = alphas[t] / (1 - alphas[t])
        weight = torch.clamp(snr, max=cfg.min_snr_gamma) / (snr + 1)
        pred = denoise(unet, xt, t, tokens, mask, pooled)
        loss = (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        lr *= 0.5 * (
            1 + math.cos(math.pi * max(0, step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
        )
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        if step % 25 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    minutes = (time.time() - start) / 60
    out_dir.mkdir(parents=True, exist_ok=True)
    ema.save_pretrained(out_dir / "unet")
    save_text_encoder(out_dir)
    DDIMScheduler.from_config(sched.config).save_pretrained(out_dir / "scheduler")
    info = {**asdict(cfg), "minutes": round(minutes, 1)}
    (out_dir / "train.json").write_text(json.dumps(info, indent=2) + "\n")
    metrics = evaluate_generator(TestbedGenerator(out_dir, embedder))
    info["eval"] = metrics
    (out_dir / "train.json").write_text(json.dumps(info, indent=2) + "\n")
    log(f"trained {cfg.steps} steps in {minutes:.1f} min; {metrics}")
    return metrics


def save_text_encoder(out_dir: Path) -> None:
    """Copy the CLIP the generator was conditioned on into ``out_dir/text_encoder``."""
    import shutil

    from convir.models.embedder import TESTBED_CHECKPOINT, TESTBED_CONFIG
    from convir.models.generator import TEXT_ENCODER

    folder = out_dir / TEXT_ENCODER
    folder.mkdir(parents=True, exist_ok=True)
    name = "convir-testbed-generator-text"
    shutil.copyfile(TESTBED_CONFIG, folder / f"{name}.json")
    shutil.copyfile(TESTBED_CHECKPOINT, folder / f"{name}.pt")
    shutil.copyfile(TESTBED_CHECKPOINT.with_suffix(".vocab.json"), folder / f"{name}.vocab.json")


def evaluate_generator(
    generator: object, n: int = 200, gallery_size: int = 1000, seed: int = 0, k: int = 4
) -> dict[str, float]:
    """Generate images of held-out captions; read what they show through the gallery.

    What a generated image "shows" is read off its nearest gallery image (by the CLIP).
    - ``object_agreement``: share of a full caption's objects (colour, shape, cell) present
      in that nearest image; ``colour_shape_agreement``: the same ignoring position;
      ``background_agreement``;
    - ``r10_generated``: how often the caption's own image is in the top 10 when searching
      with one generated image alone (chance: 10 / gallery_size);
    - partial captions (the simulated user's openings), ``k`` samples each:
      ``partial_named_agreement``: share of samples whose nearest image holds the named
      colour + shape; ``partial_r10_generated``: the target in the top 10 by the mean of the
      k samples; ``partial_invention_diversity``: mean pairwise Jaccard distance between the
      (colour, shape) sets of the k samples' nearest images, other than the named pair
      (0: every sample invents the same scene);
    - ``seconds_per_image`` for a batch of k samples of one prompt.
    """

    world = World(seed=seed, size=gallery_size)
    scenes = world.scenes()
    embedder = generator.embedder
    gallery = embedder.encode_images([render(s) for s in scenes]).pooled
    rng = np.random.default_rng(seed + 7)
    picks = rng.choice(gallery_size, size=n, replace=False)
    prompts = [full_caption(scenes[i]) for i in picks]
    images = [imgs[0] for imgs in generator.generate(prompts, 1, seed=seed)]
    sims = embedder.encode_images(images).pooled @ gallery.T
    nearest = sims.argmax(dim=1).tolist()
    target_scores = sims[range(n), picks].unsqueeze(1)
    r10 = float(((sims > target_scores).sum(dim=1) < 10).float().mean())
    obj = cs = bg = 0.0
    for i, j in zip(picks, nearest, strict=True):
        want, got = scenes[i], scenes[j]
        got_keys = {o.key()[:2] + (o.cell,) for o in got.objects}
        got_cs = {o.key()[:2] for o in got.objects}
        obj += np.mean([(o.shape, o.colour, o.cell) in got_keys for o in want.objects])
        cs += np.mean([o.key()[:2] in got_cs for o in want.objects])
        bg += want.background == got.background
    out = {
        "object_agreement": round(float(obj) / n, 4),
        "colour_shape_agreement": round(float(cs) / n, 4),
        "background_agreement": round(bg / n, 4),
        "r10_generated": round(r10, 4),
        "chance_r10": round(10 / gallery_size, 4),
    }
    out.update(_partial_samples(generator, scenes, gallery, picks[: n // 2], seed, k))
    return out


def _partial_samples(generator, scenes, gallery, picks, seed: int, k: int) -> dict[str, float]:  # noqa: ANN001
    """The partial-caption half of :func:`evaluate_generator` (k samples per prompt)."""
    from convir.testbed.captions import partial_caption
    from convir.testbed.world import COLOURS, SHAPES

    rng = np.random.default_rng(seed + 11)
    prompts = [partial_caption(scenes[i], rng) for i in picks]
    start = time.time()
    samples = generator.generate(prompts, k, seed=seed)
    seconds = (time.time() - start) / (len(prompts) * k)
    embedder = generator.embedder
    named = hits = 0.0
    diversity: list[float] = []
    for i, prompt, imgs in zip(picks, prompts, samples, strict=True):
        feats = embedder.encode_images(imgs).pooled
        sims = feats @ gallery.T
        mean_sims = feats.mean(dim=0) @ gallery.T
        hits += float((mean_sims > mean_sims[i]).sum()) < 10
        words = prompt.split()
        pair = next(
            (c, s) for c, s in zip(words, words[1:], strict=False) if c in COLOURS and s in SHAPES
        )
        sets = []
        for j in sims.argmax(dim=1).tolist():
            got = {(o.colour, o.shape) for o in scenes[j].objects}
            named += pair in got
            sets.append(got - {pair})
        pairs = [(a, b) for x, a in enumerate(sets) for b in sets[x + 1 :]]
        diversity += [1 - len(a & b) / max(1, len(a | b)) for a, b in pairs]
    count = len(prompts)
    return {
        "partial_named_agreement": round(named / (count * k), 4),
        "partial_r10_generated": round(hits / count, 4),
        "partial_invention_diversity": round(float(np.mean(diversity)), 4),
        "seconds_per_image": round(seconds, 4),
    }
