"""Caption vectors beside an image gallery's (``convir index FOLDER --captions F --text-model``)
and their fusion into retrieval (``AgentConfig.caption_weight``)."""

import json

import numpy as np
import pytest

from convir.errors import InputError
from convir.gallery.resources import Resources
from convir.index.cli import build_index
from convir.index.faiss_index import GalleryIndex
from convir.models.embedder import TESTBED_MODEL
from convir.models.text_model import MINILM, load_text_model

CAPTIONS = {
    "a.png": "a dog runs along the beach",
    "b.png": "a red double decker bus in a city street",
    "c.jpg": "a cat sleeping on a sofa",
    "d.png": "a pizza with cheese on a plate",
    # sub/e.png has no caption: a zero row
    "sub/f.png": "a skier going down a snowy slope",
}


@pytest.fixture
def captioned_index(good_images, clip_checkpoint, tmp_path):
    root, _ = good_images
    file = tmp_path / "captions.jsonl"
    file.write_text(
        "".join(json.dumps({"path": p, "caption": c}) + "\n" for p, c in CAPTIONS.items())
    )
    out = tmp_path / "g.index"
    build_index(
        root,
        out,
        model=TESTBED_MODEL,
        pretrained=str(clip_checkpoint),
        captions=file,
        text_model=MINILM,
        progress=False,
        workers=1,
    )
    return out


def test_caption_vectors_are_stored_and_reloaded(captioned_index):
    index = GalleryIndex.load(captioned_index)
    assert index.model == TESTBED_MODEL and index.text_model == MINILM
    vectors = index.caption_vectors()
    assert vectors.shape == (6, 384) and index.meta.caption_vectors_dim == 384
    e = index.position_of("sub/e.png")
    assert not vectors[e].any()  # no caption: a zero row
    a = index.position_of("a.png")
    expected = load_text_model(MINILM).encode([index.caption_of(a)])[0]
    assert np.allclose(vectors[a].astype(np.float32), expected, atol=2e-3)


def test_caption_weight_fuses_the_caption_channel(captioned_index):
    from convir.agent import build_agent

    resources = Resources.open(captioned_index)
    assert resources.has_images and resources.has_caption_channel
    cos = resources.caption_cosines("a kitten napping on the couch", range(6))
    assert int(np.argmax(cos)) == resources.index.position_of("c.jpg")
    agent = build_agent(resources, "text", caption_weight=1.0, read_captions=False)
    turn = agent.start("t", "a kitten napping on the couch")
    assert turn.ranking[0] == "c.jpg"
    assert any("+ captions w=1.0" in line for line in turn.transcript)
    off = build_agent(resources, "text", caption_weight=0.0, read_captions=False)
    assert not any("captions w=" in line for line in off.start("u", "a kitten").transcript)
    default = build_agent(resources, "text", read_captions=False).start("v", "a kitten")
    assert any("+ captions w=0.5" in line for line in default.transcript)  # measured default


def test_caption_weight_changes_nothing_without_caption_vectors(
    good_images, clip_checkpoint, tmp_path
):
    """The default caption_weight (0.5) is a no-op on an index without caption vectors:
    fuse_captions returns the pool's cosines untouched, so rankings and scores are those of
    caption_weight=0."""
    from convir.agent import build_agent
    from convir.state import AgentConfig
    from convir.tools.retrieve import fuse_captions

    root, _ = good_images
    file = tmp_path / "captions.jsonl"
    file.write_text(
        "".join(json.dumps({"path": p, "caption": c}) + "\n" for p, c in CAPTIONS.items())
    )
    out = build_index(
        root, tmp_path / "texts.index", model=TESTBED_MODEL, pretrained=str(clip_checkpoint),
        captions=file, progress=False, workers=1,
    )  # fmt: skip
    resources = Resources.open(out)
    assert resources.captions is not None and not resources.has_caption_channel
    assert AgentConfig().caption_weight == 0.5
    cos = np.array([0.3, 0.2, 0.1], np.float32)
    state = {"strategy": "text", "query": "a kitten", "dialogue": ["a kitten"]}
    fused, used = fuse_captions(resources, AgentConfig(), state, cos, np.arange(3))
    assert fused is cos and not used
    for message in ("a kitten napping on the couch", "a red bus"):
        turns = [
            build_agent(resources, "text", caption_weight=w).start(f"{w}", message)
            for w in (0.0, 0.5)
        ]
        assert turns[0].ranking == turns[1].ranking and turns[0].scores == turns[1].scores
        assert turns[0].question == turns[1].question
        assert not any("captions w=" in line for line in turns[1].transcript)


def test_text_model_needs_captions_and_an_index_with_caption_vectors(
    good_images, clip_checkpoint, tmp_path
):
    root, _ = good_images
    with pytest.raises(InputError, match="--text-model embeds the images' captions"):
        build_index(root, tmp_path / "x.index", text_model=MINILM, progress=False)
    out = build_index(
        root, tmp_path / "plain.index", model=TESTBED_MODEL, pretrained=str(clip_checkpoint),
        progress=False, workers=1,
    )  # fmt: skip
    plain = Resources.open(out)
    assert not plain.has_caption_channel
    with pytest.raises(InputError, match="no caption vectors"):
        plain.caption_cosines("a dog", [0])
    with pytest.raises(InputError, match="has neither"):
        Resources.open(out, text_model=MINILM)
