"""The three shipped testbed models: present in the package, loadable through their
libraries' own loaders, far better than chance on held-out scenes, and retrainable
deterministically. A missing asset fails here; it never skips."""

import numpy as np
import pytest
import torch

from convir.models.captioner import TESTBED_CAPTIONER, TransformersCaptioner
from convir.models.embedder import TESTBED_CHECKPOINT, TESTBED_CONFIG, load_embedder
from convir.models.generator import TESTBED_GENERATOR
from convir.testbed.clip_eval import pair_precision_at_10
from convir.testbed.render import render
from convir.testbed.world import World

SHIPPED = [
    TESTBED_CONFIG,
    TESTBED_CHECKPOINT,
    TESTBED_CHECKPOINT.with_suffix(".vocab.json"),
    TESTBED_CAPTIONER / "config.json",
    TESTBED_CAPTIONER / "model.safetensors",
    TESTBED_CAPTIONER / "tokenizer.json",
    TESTBED_CAPTIONER / "preprocessor_config.json",
    TESTBED_GENERATOR / "unet" / "config.json",
    TESTBED_GENERATOR / "unet" / "diffusion_pytorch_model.safetensors",
    TESTBED_GENERATOR / "scheduler" / "scheduler_config.json",
    TESTBED_GENERATOR / "text_encoder" / "convir-testbed-generator-text.pt",
]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_asset_is_in_the_package(path):
    assert path.is_file() and path.stat().st_size > 0, f"shipped asset missing: {path}"
    assert path.stat().st_size < 20 * 2**20  # each model ships under 20 MB


def test_the_clip_finds_short_descriptions():
    """ "a {colour} {shape}" on a held-out world: chance is the share of images holding it."""
    world = World(seed=77, size=300)
    embedder = load_embedder()
    images = embedder.encode_images([render(s) for s in world.scenes()]).pooled.numpy()
    precision, pairs = pair_precision_at_10(embedder, world, images, min_count=5)
    assert pairs >= 20
    assert precision >= 0.35  # chance ~0.04 (a pair is in ~12 of 300 images)


def test_the_captioner_names_the_objects_it_sees():
    from convir.testbed.captioner_train import caption_accuracy

    scenes = World(seed=78, size=40).scenes()
    captioner = TransformersCaptioner()
    scores = caption_accuracy(captioner.caption([render(s) for s in scenes]), scenes)
    assert scores["pair_recall"] >= 0.9 and scores["pair_precision"] >= 0.9, scores
    assert scores["background"] >= 0.8, scores  # chance: 1/3


def test_clip_training_is_deterministic_given_the_seed(tmp_path):
    from convir.models.embedder import TESTBED_MODEL
    from convir.testbed.clip_train import TrainConfig, train_clip

    cfg = TrainConfig(steps=2, batch_size=8, warmup=1)
    for run in ("a", "b"):
        train_clip(tmp_path / run, cfg, log=lambda _: None, evaluate=False)
    a = torch.load(tmp_path / "a" / f"{TESTBED_MODEL}.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / f"{TESTBED_MODEL}.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = TrainConfig(steps=2, batch_size=8, warmup=1, seed=1)
    train_clip(tmp_path / "c", other, log=lambda _: None, evaluate=False)
    c = torch.load(tmp_path / "c" / f"{TESTBED_MODEL}.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_captioner_training_is_deterministic_given_the_seed(tmp_path):
    from safetensors.torch import load_file

    from convir.testbed.captioner_train import CaptionerConfig, train_captioner

    cfg = CaptionerConfig(steps=2, batch_size=4, warmup=1)
    for run in ("a", "b"):
        train_captioner(tmp_path / run, cfg, log=lambda _: None, evaluate=False)
    a = load_file(tmp_path / "a" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # what it saved loads through transformers' own loaders
    assert (
        len(TransformersCaptioner(tmp_path / "a").caption([render(World(seed=5, size=1).scene(0))]))
        == 1
    )
    assert np.isfinite(sum(float(v.float().sum()) for v in a.values()))
