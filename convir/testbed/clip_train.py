"""Train the testbed CLIP: a tiny open_clip dual encoder, contrastive, on generated pairs.

Every step draws fresh scenes from a training world (seed distinct from any evaluation
world), renders them, and pairs each with one text: half the time a full caption
paraphrase, half the time a partial description (a random subset of objects and of their
attributes, sometimes the background or the object count), so the model can score the
vague, incomplete queries a dialogue produces and not only complete captions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from convir.testbed.captions import (
    BACKGROUND_WORDS,
    NUMBER_WORDS,
    article,
    full_caption,
    join_list,
    noun_phrase,
    paraphrases,
    partial_caption,
)
from convir.testbed.edits import triplets
from convir.testbed.oracle import answer, candidate_questions
from convir.testbed.render import render
from convir.testbed.tokenizer import WordTokenizer
from convir.testbed.world import Scene, World

TRAIN_SEED = 1_000_003  # training scenes; evaluation worlds use small seeds (0, 1, ...)
CONTEXT_LENGTH = 64


def describe(scene: Scene, rng: np.random.Generator) -> str:
    """A partial but true description: some objects, some of their attributes."""
    n = len(scene.objects)
    k = int(rng.integers(1, n + 1))
    chosen = [scene.objects[i] for i in sorted(rng.choice(n, size=k, replace=False))]
    phrases = []
    for o in chosen:
        keep = rng.random(3) < 0.5  # size, colour, position
        if not keep[1] and rng.random() < 0.5:
            keep[1] = True  # colour is the attribute people mention most
        phrases.append(
            noun_phrase(
                o, size=bool(keep[0]), colour=bool(keep[1]), position=bool(keep[2]), rng=rng
            )
        )
    text = join_list(phrases)
    if rng.random() < 0.3:
        bg = BACKGROUND_WORDS[scene.background][0]
        text += f" on a {bg} background"
    if rng.random() < 0.2:
        text = f"{NUMBER_WORDS[n]} {'object' if n == 1 else 'objects'}, " + text
    return text


def training_text(scene: Scene, rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        return full_caption(scene, rng)
    return describe(scene, rng)


def build_tokenizer(context_length: int = CONTEXT_LENGTH) -> WordTokenizer:
    """The testbed vocabulary: every word its captions, questions, answers and edits use."""
    world = World(seed=0, size=3000)
    rng = np.random.default_rng(0)
    texts: list[str] = ["yes no i don't know nothing is there there is no object objects"]
    texts += [q.text for q in candidate_questions()]
    for scene in world.scenes():
        texts += paraphrases(scene, 6)
        texts.append(partial_caption(scene, rng))
        texts.append(describe(scene, rng))
        texts += [answer(scene, q) for q in candidate_questions()[:40]]
    texts += [t.text for t in triplets(world)]
    texts += [article(w) for w in ("object", "image", "picture")]
    return WordTokenizer.build(texts, context_length)


def model_config(vocab_size: int, context_length: int = CONTEXT_LENGTH) -> dict:
    """The open_clip architecture of the testbed CLIP (~1.7 M parameters)."""
    return {
        "embed_dim": 128,
        "vision_cfg": {
            "image_size": 64,
            "layers": 4,
            "width": 128,
            "patch_size": 8,
            "head_width": 32,
        },
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": vocab_size,
            "width": 128,
            "heads": 4,
            "layers": 4,
        },
    }


@dataclass
class TrainConfig:
    steps: int = 1500
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup: int = 100
    seed: int = 0
    image_size: int = 64


def _batches(cfg: TrainConfig) -> Iterator[tuple[list, list[str]]]:
    world = World(seed=TRAIN_SEED, size=10_000_000)
    rng = np.random.default_rng(cfg.seed)
    while True:
        idx = rng.integers(world.size, size=cfg.batch_size)
        scenes = [world.scene(int(i)) for i in idx]
        yield [render(s, cfg.image_size) for s in scenes], [training_text(s, rng) for s in scenes]


def evaluate(embedder: object, size: int = 1000, seed: int = 0) -> dict[str, float]:
    """Text-to-image R@1/R@10 on a held-out world, with full and with partial captions."""
    world = World(seed=seed, size=size)
    scenes = world.scenes()
    images = embedder.encode_images([render(s) for s in scenes]).pooled
    rng = np.random.default_rng(seed + 99)
    out: dict[str, float] = {}
    for kind, texts in (
        ("full", [full_caption(s) for s in scenes]),
        ("partial", [partial_caption(s, rng) for s in scenes]),
    ):
        sims = embedder.encode_text(texts).pooled @ images.T
        target = sims.diagonal().unsqueeze(1)
        rank = (sims > target).sum(dim=1)  # ties count in the target's favour
        out[f"{kind}_r1"] = float((rank < 1).float().mean())
        out[f"{kind}_r10"] = float((rank < 10).float().mean())
    return out


def train_clip(out_dir: Path, cfg: TrainConfig, log: callable = print) -> dict[str, float]:
    """Train, save ``<name>.json/.pt/.vocab.json`` into ``out_dir``, and return eval numbers."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from convir.models.embedder import TESTBED_MODEL, OpenClipEmbedder

    torch.manual_seed(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config_path = out_dir / f"{TESTBED_MODEL}.json"
    config_path.write_text(json.dumps(model_config(len(tokenizer.vocab)), indent=2) + "\n")
    tokenizer.save(out_dir / f"{TESTBED_MODEL}.vocab.json")
    open_clip.add_model_config(config_path)
    model, _, preprocess = open_clip.create_model_and_transforms(TESTBED_MODEL)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": other, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))

    start = time.time()
    batches = _batches(cfg)
    bar = tqdm(range(cfg.steps), desc="train-clip", unit="step")
    for step in bar:
        images, texts = next(batches)
        pixels = torch.stack([preprocess(im) for im in images])
        ids = tokenizer(texts)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        img = F.normalize(model.encode_image(pixels), dim=-1)
        txt = F.normalize(model.encode_text(ids), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        labels = torch.arange(len(texts))
        loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    minutes = (time.time() - start) / 60
    checkpoint = out_dir / f"{TESTBED_MODEL}.pt"
    tmp = checkpoint.with_suffix(".pt.tmp")
    torch.save({"state_dict": model.state_dict()}, tmp)
    tmp.replace(checkpoint)
    (out_dir / f"{TESTBED_MODEL}.train.json").write_text(
        json.dumps({**asdict(cfg), "minutes": round(minutes, 1)}, indent=2) + "\n"
    )
    embedder = OpenClipEmbedder(TESTBED_MODEL, str(checkpoint))
    metrics = evaluate(embedder)
    log(f"trained {cfg.steps} steps in {minutes:.1f} min; held-out 1000: {metrics}")
    return metrics
