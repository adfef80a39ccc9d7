"""`convir eval run --benchmark chatir`: ChatIR-format dialogues replayed on a folder of image
files indexed with `convir index`. The fixture is real-format but tiny: 30 rendered testbed
scenes saved as PNG, dialogues of testbed captions and oracle "question? answer" turns
naming their targets the ChatIR way (``unlabeled2017/<id>.jpg``, matched by file stem)."""

import json

import numpy as np
import pytest
from convir_cli import run_convir
from typer.testing import CliRunner

from convir.cli import app
from convir.errors import InputError
from convir.evaluation.chatir import match_images
from convir.evaluation.runfile import read_chatir_run
from convir.testbed.captions import partial_caption
from convir.testbed.oracle import Oracle, candidate_questions
from convir.testbed.render import render
from convir.testbed.world import World

N_IMAGES = 30
SPACE = 26  # the search space is the first 26 images; the index holds 4 more
DIALOGUES = 6
ROUNDS = 3


def _name(scene_id: str) -> str:
    return f"unlabeled2017/{scene_id}.jpg"


@pytest.fixture(scope="module")
def chatir(tmp_path_factory):
    """(folder, index, dialogues file, search-space file, dialogues as written)."""
    root = tmp_path_factory.mktemp("chatir")
    world = World(seed=1, size=N_IMAGES)
    images = root / "images"
    images.mkdir()
    for scene in world.scenes():
        render(scene).save(images / f"{scene.id}.png")
    index = root / "gallery.index"
    result = CliRunner().invoke(app, ["index", str(images), "--out", str(index), "--no-progress"])
    assert result.exit_code == 0, result.output
    menu = candidate_questions()
    dialogues = []
    for i in range(DIALOGUES):
        scene = world.scene(4 * i)
        rng = np.random.default_rng(i)
        oracle = Oracle()
        turns = [f"{menu[j].text} {oracle.answer(scene, menu[j])}" for j in rng.permutation(97)]
        dialogues.append(
            {"img": _name(scene.id), "dialog": [partial_caption(scene, rng)] + turns[:10]}
        )
    dialogues_file = root / "dialogues.json"
    dialogues_file.write_text(json.dumps(dialogues))
    space = root / "space.json"
    space.write_text(json.dumps([_name(s.id) for s in world.scenes()[:SPACE]]))
    return images, index, dialogues_file, space, dialogues


def _run(index, dialogues_file, out, *extra):
    args = ["eval", "run", "--benchmark", "chatir", "--index", str(index)]
    args += ["--dialogues-file", str(dialogues_file), "--rounds", str(ROUNDS), "--workers", "2"]
    return CliRunner().invoke(app, [*args, *extra, "--no-progress", "--out", str(out), "--json"])


def test_concat_and_text_replay_the_recorded_dialogues_and_score(chatir, tmp_path):
    _, index, dialogues_file, space, dialogues = chatir
    extra = ["--search-space", str(space), "--strategy", "concat", "--strategy", "text"]
    result = _run(index, dialogues_file, tmp_path, *extra)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == ["concat", "text"]
    assert summary["text"]["questions"] == "recorded"
    names = set(json.loads(space.read_text()))
    for label, entry in summary.items():
        assert entry["dialogues"] == DIALOGUES and len(entry["hits_at_10"]) == ROUNDS + 1
        assert entry["hits_at_10"] == sorted(entry["hits_at_10"])  # cumulative
        run_file = tmp_path / f"{label}.run.jsonl"
        lines = [json.loads(line) for line in run_file.read_text().splitlines()]
        for line in lines:  # the recorded turn, whole, every round; nothing asked back
            d = dialogues[int(line["dialogue_id"])]
            assert line["message"] == d["dialog"][line["round"]] and line["question"] is None
            assert line["target"] == d["img"] and set(line["ranking"]) <= names
        scored = CliRunner().invoke(
            app,
            ["eval", "score", "--protocol", "chatir", "--run", str(run_file)]
            + ["--search-space", str(space), "--json"],
        )
        assert scored.exit_code == 0, scored.output
        scores = json.loads(scored.stdout)
        assert [round(h, 4) for h in scores["hits_at_k"]] == entry["hits_at_10"]
    concat = read_chatir_run(tmp_path / "concat.run.jsonl", names)
    assert all(len(r) == SPACE for rounds in concat.rankings for r in rounds)  # ranks it all


def test_without_a_search_space_the_whole_index_is_ranked_by_index_ids(chatir, tmp_path):
    _, index, dialogues_file, _, dialogues = chatir
    result = _run(index, dialogues_file, tmp_path, "--dialogues", "2")
    assert result.exit_code == 0, result.output
    run = read_chatir_run(tmp_path / "concat.run.jsonl")
    assert run.targets == [
        dialogues[i]["img"].split("/")[1].replace(".jpg", ".png") for i in (0, 1)
    ]
    assert all(len(r) == N_IMAGES for rounds in run.rankings for r in rounds)


def _error_line(proc, start):
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {start}") and proc.stderr.count("\n") == 1


def test_a_missing_target_is_one_error_line(chatir, tmp_path):
    _, index, dialogues_file, space, dialogues = chatir
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([*dialogues, {"img": "unlabeled2017/999.jpg", "dialog": ["x"]}]))
    proc = run_convir(
        "eval", "run", "--benchmark", "chatir", "--index", index, "--dialogues-file", bad,
        "--search-space", space, "--out", tmp_path / "o",
    )  # fmt: skip
    _error_line(proc, "1 of 7 dialogue targets are not in the index")
    assert "'unlabeled2017/999.jpg'" in proc.stderr and "convir index" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_the_real_chatir_file_against_an_index_without_its_images(chatir, benchmarks, tmp_path):
    _, index, _, _, _ = chatir
    real = benchmarks / "chatir" / "VisDial_v1.0_queries_val.json"
    if not real.is_file():
        pytest.skip(f"{real} is absent")
    proc = run_convir(
        "eval", "run", "--benchmark", "chatir", "--index", index, "--dialogues-file", real,
        "--search-space", real.with_name("Search_Space_val_50k.json"), "--out", tmp_path / "o",
    )  # fmt: skip
    _error_line(proc, "2064 of 2064 dialogue targets are not in the index")
    assert "unlabeled2017/" in proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--benchmark chatir needs --index"),
        (["--index", "i", "--dialogues-file", "d", "--gallery-size", "100"], "--gallery-size"),
        (
            ["--index", "i", "--dialogues-file", "d", "--strategy", "text", "--policy", "llm"],
            "--benchmark chatir replays the recorded questions",
        ),
    ],
)
def test_chatir_options_are_checked_first(extra, message, tmp_path):
    args = ["eval", "run", "--benchmark", "chatir", *extra, "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(message)
    assert not (tmp_path / "o").exists()


def test_testbed_refuses_chatir_files(tmp_path):
    result = CliRunner().invoke(app, ["eval", "run", "--index", "i", "--out", str(tmp_path)])
    assert str(result.exception).startswith("--index, --dialogues-file and --search-space")


def test_search_space_images_must_all_be_indexed(chatir, tmp_path):
    _, index, dialogues_file, space, _ = chatir
    bigger = tmp_path / "space.json"
    bigger.write_text(json.dumps([*json.loads(space.read_text()), "unlabeled2017/42.jpg"]))
    result = _run(index, dialogues_file, tmp_path / "o", "--search-space", str(bigger))
    assert str(result.exception).startswith("1 of 27 search-space images are not in the index")


def test_refined_query_files_are_not_replayed(chatir, tmp_path):
    _, index, _, _, dialogues = chatir
    refined = tmp_path / "refined.json"
    rows = [{"img": d["img"], "dialog": [d["dialog"][0]] * 3} for d in dialogues]
    refined.write_text(json.dumps(rows))
    result = _run(index, refined, tmp_path / "o")
    assert "one refined query per round" in str(result.exception)


def test_images_match_by_path_then_by_unique_stem():
    ids = ["unlabeled2017/1.jpg", "a/2.png", "b/2.png", "3.png"]
    found, missing = match_images(["unlabeled2017/1.jpg", "x/3.jpg", "b/2.png", "9.jpg"], ids)
    assert found == {"unlabeled2017/1.jpg": 0, "x/3.jpg": 3, "b/2.png": 2}
    assert missing == ["9.jpg"]
    assert match_images(["z/a/2.png"], ids)[0] == {"z/a/2.png": 1}  # path suffix breaks the tie
    with pytest.raises(InputError, match="matches several index images"):
        match_images(["c/2.jpg"], ids)
