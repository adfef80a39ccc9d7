"""The text model for captions: the real all-MiniLM-L6-v2 that the registry package ships."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from convir.errors import InputError
from convir.models.embedder import Embedder
from convir.models.text_model import (
    MINILM,
    TextEmbedder,
    load_text_model,
    minilm_folder,
)


@pytest.fixture(scope="module")
def minilm():
    return load_text_model("all-MiniLM-L6-v2")  # cached per process: one load per session


def test_the_three_names_load_the_same_real_model(minilm):
    for name in ("all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        other = load_text_model(name)
        assert other.name == MINILM and other.dim == 384
        assert np.allclose(other.encode(["a cat"]), minilm.encode(["a cat"]), atol=1e-6)
    assert minilm.name == MINILM and minilm.dim == 384


def test_encode_gives_unit_float32_rows_and_meaning(minilm):
    vectors = minilm.encode(["a dog on a beach", "a puppy on the sand", "a red bus in the city"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    dog, puppy, bus = vectors
    assert dog @ puppy > dog @ bus + 0.3  # a paraphrase is much closer than another scene
    assert minilm.encode([]).shape == (0, 384)
    many = minilm.encode([f"caption {i}" for i in range(70)], batch_size=16)
    assert many.shape == (70, 384)


def test_a_folder_loads_by_path_and_records_its_absolute_path(minilm):
    folder = minilm_folder()
    assert (folder / "modules.json").is_file()
    by_path = load_text_model(str(folder))
    assert by_path.name == str(folder.resolve())
    assert np.allclose(by_path.encode(["a red bus"]), minilm.encode(["a red bus"]), atol=1e-6)


def test_unknown_names_and_paths_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="not installed locally.*path of a sentence-transformers"):
        load_text_model("someone/not-a-cached-model")
    with pytest.raises(InputError, match="no folder at"):
        load_text_model(str(tmp_path / "missing"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="not a file"):
        load_text_model(str(tmp_path / "weights.bin"))
    with pytest.raises(InputError, match="give a model name"):
        load_text_model("  ")


def test_extraction_is_atomic_into_convir_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVIR_CACHE", str(tmp_path))
    folder = minilm_folder()
    assert folder == tmp_path / "text-models" / MINILM
    assert (folder / "model.safetensors").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [MINILM]  # no staging folder left
    assert minilm_folder() == folder  # the second call finds it


def test_text_embedder_is_an_embedder_without_images(minilm):
    embedder = TextEmbedder(minilm)
    assert isinstance(embedder, Embedder)
    assert embedder.name == MINILM and embedder.dim == 384
    feats = embedder.encode_text(["a dog", "a bus"], tokens=True)
    assert isinstance(feats.pooled, torch.Tensor) and feats.pooled.shape == (2, 384)
    assert feats.tokens is None and feats.mask is None
    assert torch.allclose(feats.pooled.norm(dim=1), torch.ones(2), atol=1e-5)
    with pytest.raises(InputError, match="no image model \\(captions only"):
        embedder.encode_images([])


def test_loading_and_encoding_print_nothing():
    code = (
        "from convir.models.text_model import load_text_model\n"
        "load_text_model('all-MiniLM-L6-v2').encode(['a quiet load'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
