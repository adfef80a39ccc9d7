"""``convir index`` / ``convir search`` through ``convir.cli.main`` (the real entry point, so
ConvirError -> exit code 2 is what is tested), in-process to reuse the loaded model; the two
cheap failure paths also run as real subprocesses."""

import json
import re

import numpy as np
import pytest
from convir_cli import run_convir
from PIL import Image

from convir.index.faiss_index import GalleryIndex


def error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_index_skips_bad_files_then_search_ranks_the_good_ones(
    convir, messy_folder, clip_checkpoint, embedder, tmp_path
):
    root, ids, bad = messy_folder
    out = tmp_path / "out" / "gallery.index"
    code, stdout, stderr = convir(
        "index", root, "--out", out, "--pretrained", clip_checkpoint, "--batch-size", 4,
        "--no-progress",
    )  # fmt: skip
    assert code == 0, stderr
    folder = root.resolve()
    warned = dict(
        re.fullmatch(r"warning: skipped (.+?): (.+)", line).groups()
        for line in stderr.strip().splitlines()
    )
    assert len(stderr.strip().splitlines()) == len(warned) == 4  # one line per bad file
    expected = {
        "empty.png": "empty file (0 bytes)",
        "huge.png": "image too large, not decoded (Image size (400000000 pixels) exceeds",
        "notes.jpg": "not an image (unknown format or damaged header)",
        "sub/corrupt.png": "corrupt image data (image file is truncated",
    }
    assert sorted(warned) == [str(folder / b) for b in bad]
    for name, start in expected.items():
        assert warned[str(folder / name)].startswith(start)
    assert stdout.startswith(f"indexed 6 images, skipped 4, wrote {out}")

    index = GalleryIndex.load(out)
    assert index.ids == ids and index.paths == [str(folder / i) for i in ids]
    assert (index.model, index.pretrained) == ("convir-testbed-clip", str(clip_checkpoint))
    assert index.image_root == str(folder) and index.factory == "Flat"

    query = "a small red circle at the top left"
    code, stdout, stderr = convir("search", out, query, "-k", 10, "--json")
    assert code == 0, stderr
    results = json.loads(stdout)["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5, 6]  # k > count: all of them
    text = embedder.encode_text([query]).pooled.numpy()[0]
    images = embedder.encode_images([Image.open(folder / i) for i in ids]).pooled.numpy()
    cosine = images @ text
    order = np.argsort(-cosine)
    assert [r["id"] for r in results] == [ids[i] for i in order]
    np.testing.assert_allclose([r["score"] for r in results], cosine[order], atol=1e-4)

    code, stdout, _ = convir("search", out, query, "-k", 3)
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 3
    for rank, (line, r) in enumerate(zip(lines, results, strict=False), start=1):
        assert re.fullmatch(rf"\s*{rank}  -?\d\.\d{{4}}  {re.escape(r['path'])}", line), line


def test_index_with_an_ivf_factory_and_search_knobs(convir, good_images, clip_checkpoint, tmp_path):
    root, ids = good_images
    out = tmp_path / "ivf.index"
    args = ("--pretrained", clip_checkpoint, "--no-progress")
    code, stdout, stderr = convir("index", root, "-o", out, "--factory", "IVF2,Flat", *args)
    assert code == 0, stderr
    assert "indexed 6 images, skipped 0" in stdout and "IVF2,Flat" in stdout
    code, stdout, stderr = convir("search", out, "a blue square", "--nprobe", 2, "--json")
    assert code == 0, stderr
    assert sorted(r["id"] for r in json.loads(stdout)["results"]) == sorted(ids)
    code, _, stderr = convir("search", out, "a blue square", "--ef-search", 8)
    assert code == 2 and "--ef-search applies to HNSW" in error_line(stderr)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "no-such-model"], "--model: open_clip does not know a model called"),
        (["--model", "nope", "--pretrained", "w.pt"], "--model: open_clip does not know a model"),
        (["--pretrained", "missing/weights.pt"], "--pretrained: no checkpoint file at"),
        (["--model", "ViT-B-32"], "--pretrained: give a checkpoint file or an open_clip"),
        (["--factory", "IVF4,Bogus"], "--factory: faiss cannot build 'IVF4,Bogus'"),
        (["--factory", "IVF64,Flat"], "--factory 'IVF64,Flat' needs at least 64 images"),
    ],
)
def test_index_bad_flags_fail_with_one_line_naming_the_flag(
    convir, good_images, clip_checkpoint, tmp_path, extra, message
):
    root, _ = good_images
    if "--pretrained" not in extra and "--model" not in extra:
        extra = [*extra, "--pretrained", clip_checkpoint]
    out = tmp_path / "x.index"
    code, stdout, stderr = convir("index", root, "--out", out, "--no-progress", *extra)
    assert code == 2 and message in error_line(stderr)
    assert not out.exists()


def test_index_refuses_empty_and_unreadable_folders(convir, tmp_path, clip_checkpoint):
    (tmp_path / "empty").mkdir()
    code, _, stderr = convir("index", tmp_path / "empty", "--out", tmp_path / "a.index")
    assert code == 2 and "no image files" in error_line(stderr)

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"")
    (tmp_path / "bad" / "y.jpg").write_text("text")
    code, _, stderr = convir(
        "index", tmp_path / "bad", "--out", tmp_path / "b.index", "--pretrained", clip_checkpoint,
        "--no-progress",
    )  # fmt: skip
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 3 and lines[-1].startswith("error: none of the 2 image")
    assert not (tmp_path / "b.index").exists()

    code, _, stderr = convir("index", tmp_path / "bad", "--out", tmp_path)
    assert code == 2 and "is a folder" in error_line(stderr)


def test_failed_rebuild_leaves_the_old_index(convir, good_images, clip_checkpoint, tmp_path):
    root, ids = good_images
    out = tmp_path / "g.index"
    assert (
        convir("index", root, "-o", out, "--pretrained", clip_checkpoint, "--no-progress")[0] == 0
    )
    for image in root.rglob("*.*"):
        image.write_bytes(b"")  # every image now unreadable
    assert (
        convir("index", root, "-o", out, "--pretrained", clip_checkpoint, "--no-progress")[0] == 2
    )
    assert GalleryIndex.load(out).ids == ids


def test_missing_shipped_checkpoint_says_how_to_get_one(convir, good_images, monkeypatch, tmp_path):
    import convir.models.embedder as embedder_module

    monkeypatch.setattr(embedder_module, "TESTBED_CHECKPOINT", tmp_path / "absent.pt")
    code, _, stderr = convir("index", good_images[0], "--out", tmp_path / "g.index")
    assert code == 2 and "convir testbed train-clip" in error_line(stderr)


def test_search_refuses_an_empty_query(convir, tmp_path):
    code, _, stderr = convir("search", tmp_path / "x.index", "  ")
    assert code == 2 and "QUERY is empty" in error_line(stderr)


def test_real_process_exit_codes_for_missing_folder_and_index(tmp_path):
    proc = run_convir("index", tmp_path / "nope", "--out", tmp_path / "g.index")
    assert proc.returncode == 2 and proc.stdout == ""
    assert error_line(proc.stderr).startswith(f"error: no folder at {tmp_path / 'nope'}")
    proc = run_convir("search", tmp_path / "g.index", "a red circle")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no index file at" in error_line(proc.stderr)
