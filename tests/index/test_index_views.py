"""``convir index --views N``: views stored in the index file and used by the agent."""

import numpy as np
import pytest
from PIL import Image

from convir.errors import IndexFileError, InputError
from convir.gallery.resources import Resources
from convir.index.faiss_index import VIEWS_MEMBER, GalleryIndex
from convir.models.views import embed_views


def test_index_stores_the_views_the_agent_would_compute(
    convir, good_images, clip_checkpoint, embedder, tmp_path
):
    root, ids = good_images
    out = tmp_path / "g.index"
    code, stdout, stderr = convir(
        "index", root, "--out", out, "--pretrained", clip_checkpoint, "--views", 3,
        "--view-augment", "gentle", "--no-progress",
    )  # fmt: skip
    assert code == 0, stderr
    assert "3 gentle views per image" in stdout
    index = GalleryIndex.load(out)
    assert index.view_count == 3 and index.meta.views_augment == "gentle"
    images = [Image.open(root / i).convert("RGB") for i in ids]
    want = embed_views(embedder, images, ids, 3, "gentle")
    np.testing.assert_allclose(index.views_of(range(len(ids))), want, atol=2e-3)  # float16

    resources = Resources.from_index(index, embedder)
    sets = resources.views([1, 0], n=7, preset="published")  # stored views win
    assert sets.shape == (2, 4, embedder.dim)
    np.testing.assert_allclose(sets[:, 0], index.vectors()[[1, 0]], atol=1e-6)


def test_an_index_without_views_computes_them_once_per_image(good_images, embedder):
    root, ids = good_images
    images = [Image.open(root / i).convert("RGB") for i in ids]
    vectors = embedder.encode_images(images).pooled.numpy()
    index = GalleryIndex.build(vectors, ids, [str(root / i) for i in ids])
    loads = []
    resources = Resources(embedder, index, index.vectors(), lambda p: loads.append(p) or images[p])
    first = resources.views([0, 2], n=4, preset="published")
    again = resources.views([2, 0], n=4, preset="published")
    assert first.shape == (2, 5, embedder.dim) and loads == [0, 2]
    np.testing.assert_allclose(first[::-1], again)


def test_bad_view_requests_fail_before_embedding(convir, good_images, clip_checkpoint, tmp_path):
    root, _ = good_images
    code, _, stderr = convir(
        "index", root, "--out", tmp_path / "g.index", "--pretrained", clip_checkpoint,
        "--views", 2, "--view-augment", "sideways",
    )  # fmt: skip
    assert code != 0 and "unknown view augmentation 'sideways'" in stderr
    assert not (tmp_path / "g.index").exists()


def test_views_of_the_wrong_shape_are_refused_in_memory_and_on_load(tmp_path):
    import zipfile

    rng = np.random.default_rng(0)
    index = GalleryIndex.build(rng.normal(size=(5, 8)), list("abcde"), list("abcde"))
    with pytest.raises(InputError, match=r"\[5, n >= 1, 8\]"):
        index.set_views(np.zeros((4, 2, 8)), "gentle")
    index.set_views(rng.normal(size=(5, 2, 8)), "gentle")
    path = index.save(tmp_path / "v.index")
    assert GalleryIndex.load(path).view_count == 2
    broken = tmp_path / "broken.index"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == VIEWS_MEMBER:
                import io

                buf = io.BytesIO()
                np.save(buf, np.zeros((3, 2, 8), dtype=np.float16))
                data = buf.getvalue()
            dst.writestr(item, data)
    with pytest.raises(IndexFileError, match="views.npy"):
        GalleryIndex.load(broken)
