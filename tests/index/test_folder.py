import threading
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

import convir.index.folder as folder_module
from convir.errors import InputError
from convir.index.folder import (
    UnreadableImageError,
    decode_threads,
    embed_folder,
    embed_images,
    list_images,
    load_image,
)


@pytest.fixture
def decoded_sizes(monkeypatch):
    """Sizes of every image Pillow actually decodes (to prove big ones never are)."""
    sizes = []
    original = ImageFile.ImageFile.load

    def recording_load(self):
        sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    return sizes


def reason(path, **kw):
    with pytest.raises(UnreadableImageError) as exc:
        load_image(path, **kw)
    return exc.value.reason


def test_load_image_names_what_is_wrong_before_decoding(messy_folder, decoded_sizes):
    root, _, _ = messy_folder
    assert reason(root / "empty.png") == "empty file (0 bytes)"
    assert reason(root / "notes.jpg") == "not an image (unknown format or damaged header)"
    assert reason(root / "sub" / "corrupt.png").startswith("corrupt image data (image file is")
    assert "400000000 pixels" in reason(root / "huge.png")
    assert reason(root / "a.png", max_pixels=4095) == (
        "image too large, not decoded (64x64 = 4,096 pixels, limit 4,095; see --max-pixels)"
    )
    assert reason(root / "gone.png").startswith("cannot read file")
    assert (20000, 20000) not in decoded_sizes
    decoded_sizes.clear()
    image = load_image(root / "a.png", max_pixels=4096)
    assert image.mode == "RGB" and image.size == (64, 64) and set(decoded_sizes) == {(64, 64)}


def test_our_pixel_limit_applies_below_pillows_and_silences_its_warning(
    tmp_path, embedder, decoded_sizes, blank_png
):
    blank_png(tmp_path / "big.png", 10000, 10000)  # over Pillow's warning threshold
    Image.new("RGB", (64, 64), "red").save(tmp_path / "ok.png")
    skipped = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning leaking out fails the test
        result = embed_folder(tmp_path, embedder, progress=False, on_skip=skipped.append)
    assert result.ids == ["ok.png"]
    assert [(s.path.endswith("big.png"), s.reason) for s in skipped] == [
        (
            True,
            "image too large, not decoded (10000x10000 = 100,000,000 pixels, "
            "limit 50,000,000; see --max-pixels)",
        )
    ]
    assert set(decoded_sizes) == {(64, 64)}


def test_transparent_pixels_are_shown_on_white(tmp_path):
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").getpixel((3, 3)) == (255, 255, 255)


def test_loaded_images_are_upright_rgb_and_outlive_their_file(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    Image.fromarray(pixels).convert("L").save(tmp_path / "grey.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # the file is closed, not leaked
        rgb = load_image(tmp_path / "rgb.png")
        grey = load_image(tmp_path / "grey.png")
        turned = load_image(tmp_path / "turned.png")
    np.testing.assert_array_equal(np.asarray(rgb), pixels)
    assert grey.mode == "RGB" and grey.size == (10, 6)
    np.testing.assert_array_equal(np.asarray(turned), np.rot90(pixels, k=-1))


def test_list_images_is_recursive_sorted_and_by_extension(tmp_path):
    for rel in ["b/z.PNG", "a.jpeg", "b/a.webp", "c.txt", "b.gif", "a/x/y.bmp"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = list_images(tmp_path)
    assert [p.relative_to(tmp_path.resolve()).as_posix() for p in found] == [
        "a.jpeg",
        "a/x/y.bmp",
        "b.gif",
        "b/a.webp",
        "b/z.PNG",
    ]
    assert all(p.is_absolute() for p in found)


def test_list_images_refuses_missing_or_imageless_folders(tmp_path):
    with pytest.raises(InputError, match="no folder at"):
        list_images(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        list_images(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match=r"no image files \(.*\.png.*\) under"):
        list_images(tmp_path / "empty")


@pytest.mark.parametrize("decode_threads", [2, 0])  # a pool, or inline on this thread
def test_embed_skips_bad_files_and_matches_embedding_the_good_ones(
    messy_folder, embedder, decode_threads, monkeypatch
):
    root, ids, bad = messy_folder
    skipped, threads = [], set()
    monkeypatch.setattr(folder_module, "decode_threads", lambda workers, device: decode_threads)
    original = embedder.prepare_image

    def spy(image):
        threads.add(threading.current_thread().name)
        return original(image)

    embedder.prepare_image = spy  # instance attribute, removed below
    try:
        result = embed_folder(
            root, embedder, batch_size=3, workers=2, progress=False, on_skip=skipped.append
        )
    finally:
        del embedder.prepare_image
    assert result.ids == ids  # listing order, across batch boundaries
    assert result.paths == [str(root.resolve() / i) for i in ids]
    assert sorted(s.path for s in result.skipped) == sorted(str(root.resolve() / b) for b in bad)
    assert skipped == result.skipped
    if decode_threads:
        assert threads and all(t.startswith("convir-decode") for t in threads)
    else:
        assert threads == {threading.current_thread().name}
    images = [Image.open(root / i).convert("RGB") for i in ids]
    expected = embedder.encode_images(images).pooled.numpy()
    assert result.vectors.shape == (6, embedder.dim) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(result.vectors, expected, atol=1e-5)


def test_embed_images_with_nothing_readable_returns_an_empty_result(tmp_path, embedder):
    (tmp_path / "x.png").write_bytes(b"")
    result = embed_images([tmp_path / "x.png"], tmp_path, embedder, progress=False, on_skip=None)
    assert result.vectors.shape == (0, embedder.dim) and result.ids == []
    assert [s.reason for s in result.skipped] == ["empty file (0 bytes)"]
    with pytest.raises(InputError, match="not under the image folder"):
        embed_images([tmp_path / "x.png"], tmp_path / "other", embedder, progress=False)


def test_decode_threads_only_use_cores_the_model_leaves_free(monkeypatch):
    import torch

    monkeypatch.setattr(folder_module.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert decode_threads(4, "cpu") == 0  # torch takes every core: decode between batches
    assert decode_threads(4, torch.device("cuda:1")) == 4  # the GPU leaves the CPU free
    assert decode_threads(0, "cuda") == 0
    monkeypatch.setattr(torch, "get_num_threads", lambda: 6)
    assert decode_threads(4, "cpu") == 2
    assert decode_threads(1, "cpu") == 1
