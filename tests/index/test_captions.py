"""Captions as part of a gallery: a captions file or a captioning model, stored in the index."""

import json

import numpy as np
import pytest

from convir.errors import IndexFileError
from convir.index.captions import caption_images, read_captions_file
from convir.index.faiss_index import GalleryIndex


class EchoCaptioner:
    """Names each image by its top-left pixel; fails on pure black images."""

    def __init__(self):
        self.calls = 0

    def caption(self, images):
        self.calls += 1
        out = []
        for im in images:
            pixel = im.getpixel((0, 0))
            if pixel == (0, 0, 0):
                raise RuntimeError("cannot caption a black image")
            out.append(f"an image starting with {pixel}")
        return out


def test_captions_file_reports_every_bad_line(tmp_path):
    ids = ["a.png", "sub/b.png", "c.png"]
    paths = [str(tmp_path / i) for i in ids]
    lines = [
        json.dumps({"path": "a.png", "caption": "a red circle"}),
        "{not json",
        json.dumps({"path": "missing.png", "caption": "nothing"}),
        json.dumps({"path": "sub/b.png", "caption": "   "}),
        json.dumps({"path": "a.png", "caption": "again"}),
        json.dumps({"caption": "no path"}),
        "",
        json.dumps({"path": paths[2], "caption": "  a  blue\nsquare "}),
    ]
    file = tmp_path / "captions.jsonl"
    file.write_text("\n".join(lines) + "\n")
    seen = []
    captions, report = read_captions_file(file, ids, paths, on_warning=seen.append)
    assert captions == ["a red circle", None, "a blue square"]
    assert (report.captioned, report.invalid, report.empty, report.unknown, report.duplicate) == (
        2,
        2,
        1,
        1,
        1,
    )
    assert len(seen) == 5 and "line 2" in seen[0] and "line 5" in seen[3]
    assert report.summary() == "2 captioned, 2 invalid, 1 empty, 1 unknown, 1 duplicate"


def test_captioner_failures_are_skipped_per_image(good_images, tmp_path, blank_png):
    root, ids = good_images
    black = blank_png(root / "black.png", 8, 8)
    (root / "broken.png").write_bytes(b"not a png")
    paths = [str(root / ids[0]), str(black), str(root / "broken.png"), str(root / ids[1])]
    seen = []
    captions, report = caption_images(
        EchoCaptioner(), paths, batch_size=4, progress=False, on_warning=seen.append
    )
    assert captions[0].startswith("an image starting with") and captions[3] is not None
    assert captions[1] is None and captions[2] is None
    assert report.captioned == 2 and report.invalid == 2 and len(seen) == 2
    assert any("black.png" in w and "cannot caption" in w for w in seen)


def test_index_keeps_captions_through_save_and_load(tmp_path):
    vectors = np.eye(3, 4, dtype=np.float32)
    index = GalleryIndex.build(vectors, ["a", "b", "c"], ["/a", "/b", "/c"], factory="Flat")
    assert index.captions is None
    index.save(tmp_path / "plain.index")
    assert GalleryIndex.load(tmp_path / "plain.index").captions is None
    index.set_captions(["red", None, "blue"], "file:caps.jsonl")
    index.save(tmp_path / "g.index")
    back = GalleryIndex.load(tmp_path / "g.index")
    assert back.captions == ["red", None, "blue"]
    assert back.caption_of(2) == "blue" and back.captions_source == "file:caps.jsonl"
    with pytest.raises(Exception, match="2 captions for an index of 3"):
        index.set_captions(["x", "y"], "file:x")


def test_index_with_damaged_captions_member_fails_to_load(tmp_path):
    import zipfile

    index = GalleryIndex.build(np.eye(2, 4, dtype=np.float32), ["a", "b"], ["/a", "/b"])
    index.set_captions(["red", "blue"], "file:x")
    path = index.save(tmp_path / "g.index")
    bad = tmp_path / "bad.index"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, b'["only one"]' if name == "captions.json" else data)
    with pytest.raises(IndexFileError, match="one caption per item"):
        GalleryIndex.load(bad)


def test_convir_index_with_a_captions_file(convir, good_images, clip_checkpoint, tmp_path):
    root, ids = good_images
    file = tmp_path / "caps.jsonl"
    rows = [{"path": i, "caption": f"caption of {i}"} for i in ids[:4]]
    rows.append({"path": "nope.png", "caption": "x"})
    file.write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad\n")
    out = tmp_path / "g.index"
    code, stdout, stderr = convir(
        "index", root, "--out", out, "--pretrained", clip_checkpoint, "--captions", file,
        "--no-progress",
    )  # fmt: skip
    assert code == 0, stderr
    assert "captions: 4 captioned, 1 invalid, 1 unknown" in stdout
    assert "nope.png is not an image of this gallery" in stderr
    index = GalleryIndex.load(out)
    assert index.captions_source == "file:caps.jsonl"
    by_id = dict(zip(index.ids, index.captions, strict=True))
    assert by_id["a.png"] == "caption of a.png" and by_id["sub/f.png"] is None


def test_convir_index_refuses_both_caption_sources(convir, good_images, tmp_path):
    root, _ = good_images
    file = tmp_path / "c.jsonl"
    file.write_text("")
    code, _, stderr = convir(
        "index", root, "--out", tmp_path / "g.index", "--captions", file, "--captioner", "testbed"
    )
    assert code == 2 and "not both" in stderr
    code, _, stderr = convir("index", root, "--out", tmp_path / "g.index", "--captioner", "nope")
    assert code == 2 and "--captioner 'nope'" in stderr
