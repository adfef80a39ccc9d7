"""The caption readers give exactly what ``states`` says, through the gallery index or a
pool's own, and the gallery's memo starts over within its byte budget."""

import numpy as np

from convir.gallery import text_reader
from convir.gallery.clauses import states
from convir.gallery.text_reader import GalleryTexts, PoolTexts
from convir.testbed.captions import full_caption
from convir.testbed.world import World

FACTS = [
    "red circle",
    "red circle at the top left",
    "circle at the top",
    "blue square",
    "white background",
    "green star on the right",
    "the",  # no content word: stated by nothing
    "purple hexagon",
]


def gallery_texts(n=120):
    world = World(seed=3, size=n)
    texts = [full_caption(world.scene(i)) for i in range(n)]
    texts[5] = None  # an image without a text
    texts[9] = ""
    return texts


def test_gallery_and_pool_readers_agree_with_states():
    texts = gallery_texts()
    gallery = GalleryTexts(texts)
    rng = np.random.default_rng(0)
    for _ in range(20):
        positions = rng.choice(len(texts), 40, replace=False)
        through_gallery = gallery.pool(positions)
        alone = PoolTexts.of([texts[p] for p in positions])
        assert (through_gallery.captioned == [bool(texts[p]) for p in positions]).all()
        assert (alone.captioned == through_gallery.captioned).all()
        want = [[bool(texts[p]) and states(texts[p], f) for f in FACTS] for p in positions]
        assert through_gallery.said(FACTS).tolist() == want
        assert alone.said(FACTS).tolist() == want
        assert through_gallery.said(FACTS[::-1]).tolist() == [row[::-1] for row in want]
    assert any(gallery.mask(f).any() for f in FACTS[:3])  # the check above was not vacuous


def test_the_fact_memo_starts_over_within_its_budget(monkeypatch):
    texts = gallery_texts(50)
    monkeypatch.setattr(text_reader, "MASK_BUDGET_BYTES", 3 * len(texts))
    gallery = GalleryTexts(texts)
    for fact in FACTS:
        gallery.mask(fact)
        assert len(gallery._rows) <= 3 and len(gallery._store) <= 3
    assert gallery.mask("red circle").tolist() == [
        bool(t) and states(t, "red circle") for t in texts
    ]
