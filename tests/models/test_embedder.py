"""The shipped testbed CLIP, loaded through open_clip's own code path, and its features."""

import numpy as np
import pytest
import torch

from convir.errors import ModelError
from convir.models.embedder import (
    TESTBED_CHECKPOINT,
    TESTBED_MODEL,
    Embedder,
    OpenClipEmbedder,
    load_embedder,
)
from convir.models.word_tokenizer import words
from convir.testbed.captions import full_caption, partial_caption
from convir.testbed.render import render
from convir.testbed.world import World


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


def test_checkpoint_loads_through_open_clip_with_identical_weights(embedder):
    import open_clip

    model, _, _ = open_clip.create_model_and_transforms(
        TESTBED_MODEL, pretrained=str(TESTBED_CHECKPOINT)
    )
    saved = torch.load(TESTBED_CHECKPOINT, map_location="cpu")["state_dict"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert isinstance(embedder, Embedder)
    assert TESTBED_CHECKPOINT.stat().st_size < 20 * 2**20


def test_token_and_patch_features_agree_with_pooled(embedder):
    texts = ["a red circle", "a large blue star at the top left on a white background"]
    plain = embedder.encode_text(texts)
    full = embedder.encode_text(texts, tokens=True)
    assert torch.allclose(plain.pooled, full.pooled, atol=1e-5)
    longest = max(len(words(t)) for t in texts) + 2  # start- and end-of-text
    assert full.tokens.shape == (2, longest, embedder.dim)  # the padding after it is cut
    assert full.mask.sum(dim=1).tolist() == [len(words(t)) + 1 for t in texts]
    assert torch.allclose(full.tokens.norm(dim=-1), torch.ones(2, longest), atol=1e-4)
    images = [render(World(0, 10).scene(i)) for i in range(3)]
    a = embedder.encode_images(images)
    b = embedder.encode_images(images, patches=True)
    assert torch.allclose(a.pooled, b.pooled, atol=1e-5)
    assert b.patches.shape == (3, 64, embedder.dim)


def test_cutting_the_padding_changes_no_feature(embedder):
    """The truncated forward matches open_clip's own full-context encode_text and a
    full-context token forward, for a batch whose rows have very different lengths."""
    texts = ["a red circle", "a large blue star at the top left on a white background", "x"]
    ids = embedder.tokenizer(texts)
    assert ids.shape[1] == 64
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(embedder.model.encode_text(ids), dim=-1)
        m = embedder.model
        x = m.token_embedding(ids) + m.positional_embedding
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask)) @ m.text_projection
    ours = embedder.encode_text(texts, tokens=True)
    assert torch.allclose(ours.pooled, reference, atol=1e-5)
    n = ours.tokens.shape[1]
    assert n == 14
    full_tokens = torch.nn.functional.normalize(x[:, :n], dim=-1)
    assert torch.allclose(ours.tokens[ours.mask], full_tokens[ours.mask], atol=1e-5)


def test_text_chunks_cut_to_different_lengths_are_padded_back(embedder):
    texts = ["a large blue star at the top left on a white background", "a red circle"]
    whole = embedder.encode_text(texts, tokens=True)
    embedder.batch_size, saved = 1, embedder.batch_size
    try:
        chunked = embedder.encode_text(texts, tokens=True)
    finally:
        embedder.batch_size = saved
    assert chunked.tokens.shape == whole.tokens.shape
    assert torch.equal(chunked.mask, whole.mask)
    assert torch.allclose(chunked.pooled, whole.pooled, atol=1e-5)


def test_trained_clip_beats_chance_by_a_wide_margin(embedder):
    world = World(seed=0, size=300)
    scenes = world.scenes()
    gallery = embedder.encode_images([render(s) for s in scenes]).pooled
    rng = np.random.default_rng(0)
    for texts, floor in (
        ([full_caption(s) for s in scenes], 0.8),
        ([partial_caption(s, rng) for s in scenes], 0.25),
    ):
        sims = embedder.encode_text(texts).pooled @ gallery.T
        ranks = (sims > sims.diagonal()[:, None]).sum(dim=1)
        r10 = float((ranks < 10).float().mean())
        assert r10 >= floor, (texts[0], r10)  # chance is 10/300 = 0.033


def test_testbed_text_uses_only_known_words():
    from convir.models.word_tokenizer import WordTokenizer
    from convir.testbed.clip_train import build_tokenizer, describe
    from convir.testbed.edits import triplets
    from convir.testbed.oracle import answer, candidate_questions

    shipped = WordTokenizer.load(TESTBED_CHECKPOINT.with_suffix(".vocab.json"))
    assert shipped.vocab == build_tokenizer().vocab, "vocab drifted from the text generators"
    world = World(seed=9, size=300)
    rng = np.random.default_rng(1)
    texts = [full_caption(s, rng) for s in world.scenes()] + [
        describe(s, rng) for s in world.scenes()
    ]
    texts += [t.text for t in triplets(world)]
    texts += [
        q.text + " " + answer(s, q) for s in world.scenes()[:30] for q in candidate_questions()
    ]
    known = set(shipped.vocab)
    unknown = {w for t in texts for w in words(t)} - known
    assert not unknown


def test_bad_model_names_and_paths_name_the_flag(tmp_path):
    with pytest.raises(ModelError, match="--model"):
        OpenClipEmbedder("no-such-model", None)
    with pytest.raises(ModelError, match="--pretrained"):
        OpenClipEmbedder(TESTBED_MODEL, str(tmp_path / "missing.pt"))
    with pytest.raises(ModelError, match="--pretrained"):
        OpenClipEmbedder(TESTBED_MODEL, "laion2b_s34b_b79k")


def test_random_testbed_architecture_runs_without_weights():
    emb = OpenClipEmbedder(TESTBED_MODEL, None)
    out = emb.encode_text(["a red circle"], tokens=True)
    assert out.pooled.shape == (1, 128) and out.tokens.shape == (1, 5, 128)  # sot, 3 words, eot
    with pytest.raises(ValueError):
        emb.encode_text([])


def test_cut_padding_matches_full_context_on_a_real_clip_architecture():
    """ViT-B-32 (random weights, open_clip's own 77-token BPE tokenizer, argmax pooling)."""
    emb = OpenClipEmbedder("ViT-B-32", None)
    texts = ["a photo of a dog on a red sofa", "two cats"]
    ids = emb.tokenizer(texts)
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(emb.model.encode_text(ids), dim=-1)
    ours = emb.encode_text(texts, tokens=True)
    assert ids.shape[1] == 77 and ours.tokens.shape[1] == int((ids != 0).sum(dim=1).max())
    assert torch.allclose(ours.pooled, reference, atol=1e-5)


def test_towers_whose_pooling_reads_the_last_position_keep_the_full_context(monkeypatch):
    emb = OpenClipEmbedder(TESTBED_MODEL, None)
    monkeypatch.setattr(emb.model, "text_pool_type", "last")
    assert emb.encode_text(["a red circle"], tokens=True).tokens.shape == (1, 64, 128)
