"""Shared fixtures: a random-weights testbed CLIP saved as a checkpoint file (so the CLI can
load it by path in index *and* search), and small galleries with good and bad files."""

import struct
import sys
import zlib

import pytest

from convir.testbed.render import render
from convir.testbed.world import World


@pytest.fixture
def convir(capsys, monkeypatch):
    """``convir ARGS`` through the real entry point, in-process: (exit code, stdout, stderr)."""
    from convir.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["convir", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            main()
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run


@pytest.fixture(scope="session")
def clip_checkpoint(tmp_path_factory):
    """Testbed-architecture CLIP with seeded random weights: quality does not matter here,
    and the shipped checkpoint may not exist yet."""
    import open_clip
    import torch

    from convir.models.embedder import TESTBED_MODEL, register_testbed_config

    register_testbed_config()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.create_model(TESTBED_MODEL, pretrained=None)
    path = tmp_path_factory.mktemp("clip") / "random-clip.pt"
    torch.save(model.state_dict(), path)
    return path.resolve()


@pytest.fixture(scope="session")
def embedder(clip_checkpoint):
    """The same cached embedder the CLI gets for ``--pretrained <clip_checkpoint>``."""
    from convir.models.embedder import TESTBED_MODEL, load_embedder

    return load_embedder(TESTBED_MODEL, str(clip_checkpoint), "cpu")


def write_blank_png(path, width, height):
    """A valid, all-black 1-bit PNG of any size, streamed row by row so a 20000 x 20000
    image costs ~50 KB on disk and no big buffer here."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 500) for _ in range(height // 500))
    idat += packer.compress(row * (height % 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def blank_png():
    return write_blank_png


@pytest.fixture
def good_images(tmp_path):
    """Six testbed images, two of them in a sub-folder; returns the folder and their ids."""
    root = tmp_path / "gallery"
    (root / "sub").mkdir(parents=True)
    world = World(seed=1, size=6)
    ids = ["a.png", "b.png", "c.jpg", "d.png", "sub/e.png", "sub/f.png"]
    for i, rel in enumerate(ids):
        render(world.scene(i), 64).save(root / rel)
    return root, ids


@pytest.fixture
def messy_folder(good_images):
    """The good images plus one file of each bad kind; returns folder, good ids, bad names."""
    root, ids = good_images
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    png = (root / "a.png").read_bytes()
    (root / "sub" / "corrupt.png").write_bytes(png[: len(png) // 2])
    write_blank_png(root / "huge.png", 20000, 20000)
    (root / "readme.txt").write_text("not an image extension: never listed\n")
    bad = ["empty.png", "huge.png", "notes.jpg", "sub/corrupt.png"]
    return root, ids, bad
