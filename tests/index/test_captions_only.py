"""Captions-only galleries: the file format, the index, opening it, searching and chatting."""

import io
import json
import sys

import numpy as np
import pytest
from captions_items import ITEMS, write_items
from convir_cli import run_convir

from convir.errors import IndexFileError, InputError
from convir.gallery.resources import Resources
from convir.index.archive import IndexMeta
from convir.index.captions_only import (
    CAPTIONS_ONLY_SOURCE,
    CaptionItem,
    build_captions_index,
    caption_text,
    read_caption_file,
)
from convir.index.faiss_index import GalleryIndex
from convir.models.text_model import MINILM, TextEmbedder, load_text_model


@pytest.fixture(scope="module")
def minilm():
    return load_text_model(MINILM)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, minilm):
    folder = tmp_path_factory.mktemp("captions-only")
    items = read_caption_file(write_items(folder / "items.jsonl"))
    return build_captions_index(items, minilm, folder / "gallery.index")


@pytest.fixture(scope="module")
def resources(gallery):
    return Resources.open(gallery)


def write_lines(path, *lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the file ----------------------------------------------------------------------------


def test_read_caption_file_keeps_order_ids_and_paths(tmp_path):
    path = write_lines(
        tmp_path / "a.jsonl",
        json.dumps({"id": "x", "captions": ["a dog", "a puppy"]}),
        "",
        json.dumps({"id": 7, "captions": ["a bus"], "path": "imgs/7.jpg"}),
    )
    assert read_caption_file(path) == [
        CaptionItem("x", ["a dog", "a puppy"], None),
        CaptionItem("7", ["a bus"], "imgs/7.jpg"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "b", "captions": ["a cat"', "not valid JSON"),
        ('["b", "a cat"]', "expected an object"),
        ('{"captions": ["a cat"]}', '"id" is missing'),
        ('{"id": "", "captions": ["a cat"]}', '"id" is missing'),
        ('{"id": "b"}', '"captions" must be a non-empty list'),
        ('{"id": "b", "captions": []}', '"captions" must be a non-empty list'),
        ('{"id": "b", "captions": "a cat"}', '"captions" must be a non-empty list'),
        ('{"id": "b", "captions": ["a cat", "  "]}', "every caption"),
        ('{"id": "b", "captions": ["a cat", 3]}', "every caption"),
        ('{"id": "b", "captions": ["a cat"], "path": 5}', '"path" must be'),
        ('{"id": "a", "captions": ["a cat"]}', "id 'a' repeats line 1"),
    ],
)
def test_bad_lines_are_named_by_file_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "bad.jsonl", '{"id": "a", "captions": ["a dog"]}', line)
    with pytest.raises(InputError, match="bad.jsonl:2: ") as err:
        read_caption_file(path)
    assert message in str(err.value)


def test_missing_and_empty_files_are_clear(tmp_path):
    with pytest.raises(InputError, match="no file at"):
        read_caption_file(tmp_path / "none.jsonl")
    with pytest.raises(InputError, match="holds no items"):
        read_caption_file(write_lines(tmp_path / "empty.jsonl", "", "  "))


def test_caption_text_ends_every_caption_with_one_period():
    assert caption_text(["a dog runs", "a puppy.  ", " two  cats\non a mat..."]) == (
        "a dog runs. a puppy. two cats on a mat."
    )


# -- the index ---------------------------------------------------------------------------


def test_the_index_records_its_text_model_and_joined_captions(gallery):
    index = GalleryIndex.load(gallery)
    assert index.model is None and index.pretrained is None and index.image_root is None
    assert index.text_model == MINILM and index.dim == 384 and index.count == len(ITEMS)
    assert index.captions_source == CAPTIONS_ONLY_SOURCE
    assert index.ids == [key for key, _ in ITEMS]
    assert index.path_of(0) == "img/dog-beach.jpg" and index.path_of(1) == ""
    assert index.caption_of(0) == (
        "a dog runs along the beach. a brown dog playing in the sea waves."
    )


def test_an_item_vector_is_the_unit_mean_of_its_captions(gallery, minilm):
    index = GalleryIndex.load(gallery)
    captions = ITEMS[3][1]
    mean = minilm.encode(captions).mean(axis=0)
    assert np.allclose(index.vectors()[3], mean / np.linalg.norm(mean), atol=1e-5)


def test_old_index_metadata_without_a_text_model_still_loads():
    meta = IndexMeta.from_json('{"dim": 4, "factory": "Flat", "count": 1, "model": "m"}')
    assert meta.text_model is None and meta.model == "m"


def test_a_paraphrase_finds_its_item_in_the_top_3(resources):
    queries = {
        "a puppy playing on the sand by the sea": "dog-beach",
        "a kitten napping on the couch": "cat-sofa",
        "someone on horseback in a meadow": "horse",
        "an aeroplane leaving the airport": "airplane",
        "a double-decker in town": "red-bus",
    }
    vectors = resources.embedder.encode_text(list(queries)).pooled.numpy()
    _, positions = resources.index.search(vectors, 3)
    for (query, item), row in zip(queries.items(), positions, strict=True):
        assert item in resources.index.ids_of(row), query


def test_resources_open_a_captions_only_gallery_without_images(resources, gallery):
    assert isinstance(resources.embedder, TextEmbedder) and not resources.has_images
    assert resources.captions[0].startswith("a dog runs along the beach.")
    with pytest.raises(InputError, match="no images: captions-only gallery"):
        resources.load_image(0)
    with pytest.raises(InputError, match="no images: captions-only gallery"):
        resources.patches([0, 1])
    with pytest.raises(InputError, match="no image model"):
        Resources.open(gallery, model="ViT-B-32")
    assert resources.text("a dog").tokens is None  # the turn's cache holds pooled features only


def test_open_checks_the_text_models_dim(tmp_path):
    rng = np.random.default_rng(0)
    index = GalleryIndex.build(rng.normal(size=(5, 16)), list("abcde"), [""] * 5, text_model=MINILM)
    index.save(tmp_path / "small.index")
    with pytest.raises(IndexFileError, match="holds 16-d vectors but all-MiniLM-L6-v2 embeds"):
        Resources.open(tmp_path / "small.index")
    with pytest.raises(IndexFileError, match="holds 16-d vectors"):
        Resources.open(tmp_path / "small.index", text_model=MINILM)  # an override, same check
    image_index = GalleryIndex.build(rng.normal(size=(5, 16)), list("abcde"), [""] * 5)
    image_index.save(tmp_path / "nomodel.index")
    with pytest.raises(InputError, match="records no model"):
        Resources.open(tmp_path / "nomodel.index")
    with pytest.raises(InputError, match="--text-model applies to captions-only"):
        Resources.open(tmp_path / "nomodel.index", text_model=MINILM)


def test_a_text_turn_runs_end_to_end_and_stitch_parts_fail_clearly(resources):
    from convir.agent import build_agent
    from convir.state import AgentConfig
    from convir.tools.ot_rerank import make_ot_rerank_node

    for strategy in ("text", "auto"):
        agent = build_agent(resources, strategy, read_captions=True)
        first = agent.start("t", "a puppy playing on the sand")
        assert first.ranking[0] == "dog-beach" and first.question
        second = agent.reply("t", first.options[0] if first.options else "yes")
        assert "dog-beach" in second.ranking[:3]
    node = make_ot_rerank_node(resources, AgentConfig())
    state = {"candidates": ["dog-beach", "frisbee"], "scores": [0.5, 0.4], "query": "a dog"}
    with pytest.raises(InputError, match="captions-only"):
        node(state)


# -- the command line --------------------------------------------------------------------


def test_convir_index_captions_only_then_search(tmp_path):
    items = write_items(tmp_path / "items.jsonl")
    out = tmp_path / "g.index"
    built = run_convir(
        "index", "--captions-only", items, "--text-model", MINILM, "--out", out, "--no-progress"
    )
    assert built.returncode == 0, built.stderr
    assert built.stdout.strip() == (
        f"indexed 30 items (60 captions, no images), wrote {out} (text model {MINILM})"
    )
    assert built.stderr == ""
    assert GalleryIndex.load(out).text_model == MINILM


def test_index_captions_only_flag_errors(convir, tmp_path):
    items = write_items(tmp_path / "items.jsonl")
    out = tmp_path / "g.index"
    code, _, err = convir("index", "--captions-only", items, "--out", out)
    assert code == 2 and "--captions-only needs --text-model" in err
    code, _, err = convir(
        "index", tmp_path, "--captions-only", items, "--text-model", MINILM, "--out", out
    )
    assert code == 2 and "drop the FOLDER argument" in err
    code, _, err = convir("index", "--text-model", MINILM, "--out", out)
    assert code == 2 and "needs --captions-only" in err
    code, _, err = convir("index", "--out", out)
    assert code == 2 and "give a FOLDER" in err
    code, _, err = convir(
        "index", "--captions-only", items, "--text-model", MINILM, "--views", 3, "--out", out
    )
    assert code == 2 and "--views: for image folders" in err
    bad = write_lines(tmp_path / "bad.jsonl", '{"id": 1}')
    code, _, err = convir("index", "--captions-only", bad, "--text-model", MINILM, "--out", out)
    assert code == 2 and "bad.jsonl:1" in err
    assert not out.exists()


def test_search_and_chat_on_a_captions_only_index(convir, gallery, monkeypatch):
    code, out, _ = convir("search", gallery, "a kitten napping on the couch", "-k", 2)
    assert code == 0 and out.split()[2] == "cat-sofa"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a kitten napping on the couch\n/quit\n"))
    code, out, err = convir("chat", "--index", gallery, "--top", 2)
    assert code in (0, None), err
    assert "gallery of 30 texts (captions only)" in err
    first = next(line for line in out.splitlines() if line.strip().startswith("1 "))
    assert "cat-sofa" in first and "a cat sleeping on a sofa. a grey kitten" in first
    assert "convir> " in out
    code, _, err = convir("chat", "--index", gallery, "--show", "x.png")
    assert code == 2 and "--show writes a contact sheet of images" in err
    code, _, err = convir("chat", "--index", gallery, "--reference", "cat-sofa")
    assert code == 2 and "STiTch edits a reference image" in err
