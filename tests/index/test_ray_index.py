"""``convir index --ray`` on a local Ray cluster gives the index the single-process path
gives: same ids, paths and skip warnings, vectors equal within float tolerance."""

import re
import sys

import numpy as np
import pytest

from convir.errors import InputError
from convir.index.faiss_index import GalleryIndex
from convir.testbed.render import render
from convir.testbed.world import World


@pytest.fixture
def gallery(tmp_path):
    """40 testbed images (every third in a sub-folder) and two files that must be skipped."""
    root = tmp_path / "gallery"
    (root / "sub").mkdir(parents=True)
    world = World(seed=2, size=40)
    for i in range(40):
        name = f"sub/{i:02d}.png" if i % 3 == 0 else f"{i:02d}.png"
        render(world.scene(i), 64).save(root / name)
    (root / "07-empty.png").write_bytes(b"")
    (root / "sub" / "notes.jpg").write_text("not a JPEG\n")
    return root


def skip_lines(err):
    return [line for line in err.splitlines() if re.match(r"warning: skipped ", line)]


@pytest.mark.slow
def test_ray_index_matches_single_process(convir, gallery, clip_checkpoint, ray_local, tmp_path):
    common = ("--pretrained", clip_checkpoint, "--factory", "IVF4,Flat", "--batch-size", 8)
    code, out1, err1 = convir("index", gallery, "--out", tmp_path / "one.index", *common,
                              "--no-progress")  # fmt: skip
    assert code == 0, err1
    code, out2, err2 = convir("index", gallery, "--out", tmp_path / "ray.index", *common,
                              "--ray", "--concurrency", 2, "--no-progress")  # fmt: skip
    assert code == 0, err2
    assert "indexed 40 images, skipped 2" in out1 and "indexed 40 images, skipped 2" in out2
    assert skip_lines(err2) == skip_lines(err1) and len(skip_lines(err1)) == 2

    one, ray = GalleryIndex.load(tmp_path / "one.index"), GalleryIndex.load(tmp_path / "ray.index")
    assert ray.factory == one.factory == "IVF4,Flat"
    assert ray.ids == one.ids and ray.paths == one.paths and len(ray.ids) == 40
    np.testing.assert_allclose(ray.vectors(), one.vectors(), atol=1e-5)
    query = one.vectors()[:5]
    assert (ray.search(query, 10)[1] == one.search(query, 10)[1]).all()


def test_more_actors_than_cpus_is_refused(convir, gallery, clip_checkpoint, ray_local, tmp_path):
    out = tmp_path / "x.index"
    code, _, err = convir("index", gallery, "--out", out, "--pretrained", clip_checkpoint,
                          "--ray", "--concurrency", 3)  # fmt: skip
    assert code == 2 and "--concurrency 3: the Ray cluster has 2 CPUs" in err
    assert not out.exists()


def test_ray_flags_need_ray(convir, gallery, tmp_path):
    code, _, err = convir("index", gallery, "--out", tmp_path / "x.index", "--concurrency", 2)
    assert code == 2 and "apply with --ray only" in err


def test_missing_ray_says_how_to_install(monkeypatch):
    from convir.ray_cluster import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(InputError, match=r"pip install 'convir\[ray\]'"):
        require_ray()
