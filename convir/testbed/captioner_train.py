"""Train the testbed captioner: a transformers ViT encoder + GPT-2 decoder, from scratch.

A real generative image-to-text model at toy scale (no attribute lookup behind it): a
``VisionEncoderDecoderModel`` (ViT 64 px, patch 8, 4 layers, width 128; GPT-2 decoder with
cross-attention, 3 layers, width 128; ~1.4 M parameters) trained with teacher forcing on
fresh rendered scenes, each paired with its canonical full caption (every object in reading
order with size, colour and position, then the background). It is saved with
``save_pretrained`` together with a word-level ``PreTrainedTokenizerFast`` and a
``ViTImageProcessor``, so it loads like any captioner on a model hub
(``AutoModelForImageTextToText.from_pretrained(folder)``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from convir.testbed.captions import POSITION_PHRASES, SIZE_WORDS, full_caption
from convir.testbed.clip_train import TRAIN_SEED
from convir.testbed.render import render
from convir.testbed.training import adamw, warmup_cosine
from convir.testbed.world import BACKGROUNDS, COLOURS, SHAPES, Scene, World

HELD_OUT_SEED = 78  # evaluation world for the captioner (never a training seed)
MAX_LENGTH = 64
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"


@dataclass
class CaptionerConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 150
    seed: int = 0
    image_size: int = 64


def caption_text(scene: Scene) -> str:
    """The training target: the canonical full caption (objects in reading order)."""
    return full_caption(scene)


def build_tokenizer():  # noqa: ANN201 (transformers type)
    """A word-level fast tokenizer over every word the captions use, plus ',' and ':'."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    world = World(seed=0, size=2000)
    words = sorted({w for s in world.scenes() for w in re.findall(r"[a-z]+", caption_text(s))})
    vocab = {t: i for i, t in enumerate([PAD, UNK, BOS, EOS, ",", ":", ".", *words])}
    core = Tokenizer(WordLevel(vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # "left , a" -> "left, a"
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=MAX_LENGTH,
    )


def build_model(vocab_size: int, pad_id: int, bos_id: int, eos_id: int, image_size: int = 64):  # noqa: ANN201
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
    )

    encoder = ViTConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
    )
    decoder = GPT2Config(
        vocab_size=vocab_size,
        n_positions=MAX_LENGTH,
        n_embd=128,
        n_layer=3,
        n_head=4,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = bos_id
    config.pad_token_id = pad_id
    config.eos_token_id = eos_id
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = bos_id
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    model.generation_config.max_length = MAX_LENGTH
    return model


def build_image_processor(image_size: int = 64):  # noqa: ANN201
    from transformers import ViTImageProcessor

    return ViTImageProcessor(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def _batches(cfg: CaptionerConfig) -> Iterator[tuple[list, list[str]]]:
    world = World(seed=TRAIN_SEED + 1, size=10_000_000)
    rng = np.random.default_rng(cfg.seed)
    while True:
        scenes = [world.scene(int(i)) for i in rng.integers(world.size, size=cfg.batch_size)]
        yield [render(s, cfg.image_size) for s in scenes], [caption_text(s) for s in scenes]


def caption_labels(tokenizer, texts: list[str]):  # noqa: ANN001, ANN201
    """Token ids of each text followed by end-of-text, padded with -100 (ignored by the loss).

    No start token: the model prepends ``decoder_start_token_id`` when it shifts the labels.
    """
    import torch

    rows = [ids + [tokenizer.eos_token_id] for ids in tokenizer(texts).input_ids]
    labels = torch.full((len(rows), max(map(len, rows))), -100, dtype=torch.long)
    for k, row in enumerate(rows):
        labels[k, : len(row)] = torch.tensor(row)
    return labels


_SIZE_OF = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_POSITION_OF = {p: pos for pos, ps in POSITION_PHRASES.items() for p in ps}
_OBJECT = re.compile(
    r"(?:\b(?P<size>" + "|".join(_SIZE_OF) + r") )?\b(?P<colour>" + "|".join(COLOURS) + r") "
    r"(?P<shape>"
    + "|".join(SHAPES)
    + r")\b(?P<where> (?:"
    + "|".join(sorted(_POSITION_OF, key=len, reverse=True))
    + r"))?"
)
_BACKGROUND = re.compile(r"\b(" + "|".join(BACKGROUNDS) + r"|grey) background\b")


def parse_caption(text: str) -> tuple[list[dict[str, str | None]], str | None]:
    """Objects (size, colour, shape, position; None where not said) and the background."""
    objects = [
        {
            "size": _SIZE_OF.get(m.group("size") or ""),
            "colour": m.group("colour"),
            "shape": m.group("shape"),
            "position": _POSITION_OF.get((m.group("where") or "").strip()),
        }
        for m in _OBJECT.finditer(text.lower())
    ]
    bg = _BACKGROUND.search(text.lower())
    background = None if bg is None else ("gray" if bg.group(1) == "grey" else bg.group(1))
    return objects, background


def caption_accuracy(captions: list[str], scenes: list[Scene]) -> dict[str, float]:
    """(colour, shape) precision and recall against the records; background, size, position."""
    said = true = both = 0
    bg_ok = size_ok = pos_ok = matched = 0
    for text, scene in zip(captions, scenes, strict=True):
        objects, background = parse_caption(text)
        named = {(o["colour"], o["shape"]) for o in objects}
        real = {(o.colour, o.shape) for o in scene.objects}
        said, true, both = said + len(named), true + len(real), both + len(named & real)
        bg_ok += background == scene.background
        for o in scene.objects:
            hit = [p for p in objects if (p["colour"], p["shape"]) == (o.colour, o.shape)]
            if hit:
                matched += 1
                size_ok += hit[0]["size"] == o.size
                pos_ok += hit[0]["position"] == o.position
    return {
        "pair_precision": both / max(1, said),
        "pair_recall": both / max(1, true),
        "background": bg_ok / max(1, len(scenes)),
        "size": size_ok / max(1, matched),
        "position": pos_ok / max(1, matched),
        "exact": float(
            np.mean([c == caption_text(s) for c, s in zip(captions, scenes, strict=True)])
        ),
    }


def evaluate_captioner(captioner: object, size: int = 200, seed: int = HELD_OUT_SEED) -> dict:
    """Caption ``size`` held-out scenes and score them against their attribute records."""
    scenes = World(seed=seed, size=size).scenes()
    return caption_accuracy(captioner.caption([render(s) for s in scenes]), scenes)


def train_captioner(
    out_dir: Path, cfg: CaptionerConfig, log: callable = print, evaluate: bool = True
) -> dict:
    """Train, ``save_pretrained`` model + tokenizer + image processor into ``out_dir``; eval
    on held-out scenes unless ``evaluate=False``."""
    import torch
    from tqdm import tqdm

    from convir.models.captioner import TransformersCaptioner

    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer()
    processor = build_image_processor(cfg.image_size)
    model = build_model(
        len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id
    )
    model.train()
    opt = adamw(model, cfg.lr, cfg.weight_decay, no_decay="wte")

    start = time.time()
    batches = _batches(cfg)
    bar = tqdm(range(cfg.steps), desc="train-captioner", unit="step")
    for step in bar:
        images, texts = next(batches)
        pixels = processor(images=images, return_tensors="pt").pixel_values
        labels = caption_labels(tokenizer, texts)
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, cfg.lr, cfg.warmup, cfg.steps)
        loss = model(pixel_values=pixels, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    minutes = (time.time() - start) / 60
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    metrics = evaluate_captioner(TransformersCaptioner(out_dir)) if evaluate else {}
    (out_dir / "train.json").write_text(
        json.dumps({**asdict(cfg), "minutes": round(minutes, 1), "eval": metrics}, indent=2) + "\n"
    )
    log(f"trained {cfg.steps} steps in {minutes:.1f} min; held-out 200: {metrics}")
    return metrics
