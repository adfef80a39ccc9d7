"""Train the testbed CLIP: a tiny open_clip dual encoder, contrastive, on generated pairs.

Every step draws fresh scenes from a training world (seed distinct from any evaluation
world), renders them, and pairs each with one text from the alt-text-like mix of
:mod:`convir.testbed.caption_mix` (full captions, one object, a few objects, the setting,
counts, bare shapes). Three choices matter, each measured (docs/testbed.md):
- multi-positive targets: a short text is a positive for every image in the batch it is
  true of, so "a red circle" is not pushed away from the other red circles;
- hard negatives: half of each batch is scenes paired with a one-attribute edit of
  themselves (recolour, reshape, move, ...), so binding colour to shape pays off;
- a fine-grained term (SPARC-style, Bica et al. 2024): each word token is contrasted with
  a patch summary weighted by that token's own patch similarities, within its pair, so token
  and patch features stay aligned part to part (the OT reranker reads them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from convir.models.word_tokenizer import WordTokenizer
from convir.testbed.caption_mix import positives
from convir.testbed.caption_mix import training_text as mix_text
from convir.testbed.captions import (
    BACKGROUND_WORDS,
    NUMBER_WORDS,
    article,
    join_list,
    noun_phrase,
    paraphrases,
    partial_caption,
)
from convir.testbed.edits import triplets
from convir.testbed.oracle import answer, candidate_questions
from convir.testbed.render import render
from convir.testbed.training import adamw, warmup_cosine
from convir.testbed.world import BACKGROUNDS, COLOURS, SHAPES, Edit, Scene, World, apply_edit

FUNCTION_WORDS = frozenset(
    "a an the and at in on of to with is are there one them image picture shapes".split()
)
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
    texts += [mix_text(scene, rng)[0] for scene in world.scenes() for _ in range(3)]
    return WordTokenizer.build(texts, context_length)


def write_concepts(path: Path) -> None:
    """The model's concept list: what its world has names for (as a CLIP ships class names)."""
    pairs = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    concepts = [*SHAPES, *pairs, *(f"{b} background" for b in BACKGROUNDS)]
    path.write_text(
        "# concepts of the testbed CLIP (for question banks)\n" + "\n".join(concepts) + "\n"
    )


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
    hard_negative_share: float = 0.5  # of each batch: scenes paired with an edit of themselves
    fine_grained_weight: float = 0.5  # the SPARC-style token-patch term; 0 turns it off


# One-attribute edits for hard negatives: mostly what binds a colour to a shape.
HARD_EDITS: dict[str, float] = {"reshape": 0.4, "recolour": 0.4, "resize": 0.1, "move": 0.1}


def hard_negative(scene: Scene, rng: np.random.Generator) -> Scene:
    """``scene`` with one object's shape, colour, size or cell changed (see HARD_EDITS)."""
    op = list(HARD_EDITS)[rng.choice(len(HARD_EDITS), p=list(HARD_EDITS.values()))]
    k = int(rng.integers(len(scene.objects)))
    o = scene.objects[k]
    free = scene.free_cells()
    if op == "move" and not free:
        op = "recolour"
    if op == "reshape":
        value = [s for s in SHAPES if s != o.shape][rng.integers(len(SHAPES) - 1)]
    elif op == "recolour":
        value = [c for c in COLOURS if c != o.colour][rng.integers(len(COLOURS) - 1)]
    elif op == "resize":
        value = "small" if o.size == "large" else "large"
    else:
        value = int(free[rng.integers(len(free))])
    return apply_edit(scene, Edit(op, k, value), scene.index)


def _batch_scenes(world: World, rng: np.random.Generator, cfg: TrainConfig) -> list[Scene]:
    """Random training scenes; a share of them come as (scene, one-attribute edit) pairs."""
    pairs = int(cfg.batch_size * cfg.hard_negative_share) // 2
    idx = rng.integers(world.size, size=cfg.batch_size - pairs)
    scenes = [world.scene(int(i)) for i in idx]
    scenes += [hard_negative(scenes[k], rng) for k in range(pairs)]
    return scenes


def _batches(cfg: TrainConfig) -> Iterator[tuple[list, list[str], np.ndarray]]:
    world = World(seed=TRAIN_SEED, size=10_000_000)
    rng = np.random.default_rng(cfg.seed)
    while True:
        scenes = _batch_scenes(world, rng, cfg)
        drawn = [mix_text(s, rng) for s in scenes]
        images = [render(s, cfg.image_size) for s in scenes]
        yield images, [t for t, _ in drawn], positives([sp for _, sp in drawn], scenes)


def _text_tokens(model, ids):  # noqa: ANN001, ANN202 (torch types, training only)
    """Pooled and per-token projected text features, the padding after the last EOT cut.

    The causal mask and arg-max pooling make the cut exact (as in the embedder).
    """
    import torch

    length = int(ids.argmax(dim=-1).max()) + 1
    ids = ids[:, :length]
    x = model.token_embedding(ids) + model.positional_embedding[:length]
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    x = x @ model.text_projection
    pooled = x[torch.arange(len(ids)), ids.argmax(dim=-1)]
    return pooled, x, ids


def _image_tokens(model, pixels):  # noqa: ANN001, ANN202
    """Pooled and per-patch projected image features of an open_clip ViT."""
    visual = model.visual
    visual.output_tokens = True
    try:
        pooled, patches = visual(pixels)
    finally:
        visual.output_tokens = False
    return pooled, patches @ visual.proj


def multi_positive_loss(logits, pos):  # noqa: ANN001, ANN201
    """InfoNCE with every true pair as a target: -mean log of the softmax mass on positives.

    ``logits`` [texts, images]; ``pos`` bool of the same shape. Both directions, averaged.
    """
    import torch

    def one_way(lg, mask):  # noqa: ANN001, ANN202
        logp = lg.log_softmax(dim=1)
        return -(torch.logsumexp(logp.masked_fill(~mask, -1e9), dim=1)).mean()

    return 0.5 * (one_way(logits, pos) + one_way(logits.T, pos.T))


def fine_grained_loss(tokens, token_mask, patches, temperature: float = 0.07):  # noqa: ANN001, ANN201
    """SPARC-style: each word token against the patch summary its similarities select.

    Per pair, similarities of each token to its own image's patches are min-max scaled,
    sparsified at 1/P and renormalised into weights; the weighted patch sum is that token's
    "grouped" image feature. Tokens and grouped features are then contrasted among the
    tokens of the same text (both directions), so each word must point at its own part.
    """
    import torch
    import torch.nn.functional as F

    t = F.normalize(tokens, dim=-1)
    p = F.normalize(patches, dim=-1)
    sim = torch.einsum("btd,bpd->btp", t, p)
    lo = sim.min(dim=-1, keepdim=True).values
    hi = sim.max(dim=-1, keepdim=True).values
    w = (sim - lo) / (hi - lo + 1e-6)
    w = torch.where(w < 1.0 / p.shape[1], torch.zeros_like(w), w)
    w = w / (w.sum(dim=-1, keepdim=True) + 1e-6)
    grouped = F.normalize(torch.einsum("btp,bpd->btd", w, p), dim=-1)
    logits = torch.einsum("btd,bsd->bts", t, grouped) / temperature  # [B, T, T]
    pair = token_mask[:, :, None] & token_mask[:, None, :]
    logits = logits.masked_fill(~pair, -1e9)
    labels = torch.arange(t.shape[1]).expand(t.shape[0], -1)
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    ce_t = F.cross_entropy(logits.transpose(1, 2).flatten(0, 1), labels.flatten(), reduction="none")
    keep = token_mask.flatten().float()
    return 0.5 * ((ce + ce_t) * keep).sum() / keep.sum()


def train_clip(
    out_dir: Path, cfg: TrainConfig, log: callable = print, evaluate: bool = True
) -> dict[str, float]:
    """Train, save ``<name>.json/.pt/.vocab.json`` into ``out_dir``, and return eval numbers
    (held-out, :mod:`convir.testbed.clip_eval`; none with ``evaluate=False``)."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from convir.models.embedder import TESTBED_MODEL, OpenClipEmbedder
    from convir.testbed.clip_eval import evaluate_clip

    torch.manual_seed(cfg.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config_path = out_dir / f"{TESTBED_MODEL}.json"
    config_path.write_text(json.dumps(model_config(len(tokenizer.vocab)), indent=2) + "\n")
    tokenizer.save(out_dir / f"{TESTBED_MODEL}.vocab.json")
    write_concepts(out_dir / f"{TESTBED_MODEL}.concepts.txt")
    open_clip.add_model_config(config_path)
    model, _, preprocess = open_clip.create_model_and_transforms(TESTBED_MODEL)
    model.train()
    opt = adamw(model, cfg.lr, cfg.weight_decay, no_decay="embedding")

    # the fine-grained term looks at words that name something visible, not "a", "at the"
    content = torch.tensor(
        [w not in FUNCTION_WORDS and not w.startswith("<") for w in tokenizer.vocab]
    )
    start = time.time()
    batches = _batches(cfg)
    bar = tqdm(range(cfg.steps), desc="train-clip", unit="step")
    for step in bar:
        images, texts, pos = next(batches)
        pixels = torch.stack([preprocess(im) for im in images])
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, cfg.lr, cfg.warmup, cfg.steps)
        img_pooled, patches = _image_tokens(model, pixels)
        txt_pooled, tokens, ids = _text_tokens(model, tokenizer(texts))
        img = F.normalize(img_pooled, dim=-1)
        txt = F.normalize(txt_pooled, dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * txt @ img.T
        loss = multi_positive_loss(logits, torch.from_numpy(pos))
        if cfg.fine_grained_weight > 0:
            loss = loss + cfg.fine_grained_weight * fine_grained_loss(tokens, content[ids], patches)
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
    metrics = evaluate_clip(OpenClipEmbedder(TESTBED_MODEL, str(checkpoint))) if evaluate else {}
    (out_dir / f"{TESTBED_MODEL}.train.json").write_text(
        json.dumps({**asdict(cfg), "minutes": round(minutes, 1), "eval": metrics}, indent=2) + "\n"
    )
    log(f"trained {cfg.steps} steps in {minutes:.1f} min; held-out 1000: {metrics}")
    return metrics
