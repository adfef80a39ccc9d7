"""The dialogue loop with the ChatIR text baseline on a 100-image testbed gallery:
determinism across worker counts, the round structure, early stops, run files, plots."""

import json
import threading

import numpy as np
import pytest
from PIL import Image

from convir.errors import InputError
from convir.evaluation.loop import (
    RunRecord,
    as_run,
    run_dialogues,
    summarize,
    write_run_file,
)
from convir.evaluation.plots import plot_hits
from convir.evaluation.runfile import read_chatir_run
from convir.evaluation.scoring import score_chatir
from convir.evaluation.text_baseline import TextBaseline
from convir.evaluation.users import TestbedUser
from convir.testbed.oracle import candidate_questions
from convir.testbed.world import World
from convir.turn import BatchedSystem, ConversationalSystem, TurnResult

GALLERY = 100


@pytest.fixture(scope="module")
def resources():
    from convir.testbed.resources import testbed_resources

    return testbed_resources(GALLERY, seed=0, generator=False, progress=False)


@pytest.fixture(scope="module")
def targets():
    picks = np.random.default_rng(0).choice(GALLERY, size=12, replace=False)
    return {f"d{i}": int(t) for i, t in enumerate(picks)}


def _run(resources, targets, workers, rounds=3, error_rate=0.2, **kw):
    system = TextBaseline(resources, seed=0)
    user = TestbedUser(World(seed=0, size=GALLERY), targets, error_rate=error_rate, seed=0)
    return run_dialogues(system, user, list(targets), rounds, workers=workers, progress=False, **kw)


def test_text_baseline_is_a_conversational_system(resources):
    """What the loop relies on, by behaviour (a runtime protocol only checks names)."""
    system: ConversationalSystem = TextBaseline(resources, seed=0)
    first = system.start("t", "a red circle")
    assert len(first.ranking) == len(first.scores) > 0 and first.question
    second = system.reply("t", f"{first.question} yes")
    assert second.ranking != first.ranking and second.strategy == "text"


def test_records_are_identical_for_one_and_eight_workers(resources, targets):
    one = _run(resources, targets, workers=1, batched=False)
    eight = _run(resources, targets, workers=8, batched=False)
    assert one == eight
    assert [(r.dialogue_id, r.round) for r in one] == [(d, t) for d in targets for t in range(4)]


def test_batched_rounds_give_the_records_of_one_dialogue_at_a_time(resources, targets):
    """The text baseline runs round by round by default, 5 dialogues per call here (so the
    batches do not line up with anything); only float rounding of a batched forward pass may
    differ, which on this gallery changes no ranking."""
    assert isinstance(TextBaseline(resources), BatchedSystem)
    alone = _run(resources, targets, workers=1, batched=False)
    batched = _run(resources, targets, workers=1, batch_size=5)
    assert [(r.dialogue_id, r.round, r.message, r.question) for r in batched] == [
        (r.dialogue_id, r.round, r.message, r.question) for r in alone
    ]
    same = sum(a.ranking == b.ranking for a, b in zip(alone, batched, strict=True))
    assert same >= 0.95 * len(alone)
    assert summarize(batched, 10, GALLERY) == summarize(alone, 10, GALLERY)


def test_each_round_answers_the_question_asked_the_round_before(resources, targets):
    records = _run(resources, targets, workers=4, error_rate=0.0)
    menu = {q.text for q in candidate_questions()}
    user = TestbedUser(World(seed=0, size=GALLERY), targets)
    for d, t in targets.items():
        rounds = [r for r in records if r.dialogue_id == d]
        assert rounds[0].message == user.opening(d)[0]
        asked = [r.question for r in rounds]
        assert len(set(asked)) == 4 and set(asked) <= menu  # never repeats a question
        for prev, rec in zip(rounds, rounds[1:], strict=False):
            assert rec.message == user.answer(d, prev.question)  # exact oracle: same answer
        assert all(r.target == World(seed=0, size=GALLERY).scene(t).id for r in rounds)
        assert all(len(r.ranking) == GALLERY == len(set(r.ranking)) for r in rounds)


def test_the_query_is_the_dialogue_joined_chatir_style(resources):
    system = TextBaseline(resources, seed=3)
    first = system.start("t", "a red circle", reference_id="0000001")
    second = system.reply("t", "yes")
    assert first.query == "a red circle"
    assert second.query == f"a red circle, {first.question} yes"
    assert "ignored reference image 0000001" in first.transcript[0]
    assert second.scores == sorted(second.scores, reverse=True)
    again = TextBaseline(resources, seed=3).start("t", "a red circle")
    assert again.question == first.question  # seeded per thread id
    others = {TextBaseline(resources, seed=3).start(f"u{i}", "x").question for i in range(8)}
    assert len(others) > 1
    with pytest.raises(InputError, match="never started"):
        system.reply("nope", "yes")
    with pytest.raises(InputError, match="random or menu"):
        TextBaseline(resources, questions="info_gain")


def test_depth_caps_the_ranking(resources):
    assert len(TextBaseline(resources, depth=7).start("t", "a blue star").ranking) == 7


class _Quitter:
    """Asks one question, then stops asking; records what it was told."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    def _turn(self, n, question):
        return TurnResult(ranking=[f"img{n}", "t"], scores=[1.0, 0.5], question=question)

    def start(self, thread_id, message, reference_id=None):
        with self.lock:
            self.messages.append(message)
        return self._turn(0, "is it red?")

    def reply(self, thread_id, message):
        with self.lock:
            self.messages.append(message)
        return self._turn(1, None)


class _BatchedQuitter(_Quitter):
    def __init__(self):
        super().__init__()
        self.calls = []

    def start_batch(self, openings):
        self.calls.append(("start", [o[0] for o in openings]))
        return [self.start(*o) for o in openings]

    def reply_batch(self, replies):
        self.calls.append(("reply", [r[0] for r in replies]))
        return [self.reply(*r) for r in replies]


class _User:
    def opening(self, d):
        return f"open {d}", None

    def answer(self, d, q, options=()):
        return f"answer to {q}"

    def target(self, d):
        return "t"


def test_a_dialogue_without_a_question_ends_and_repeats_its_last_ranking():
    system = _Quitter()
    records = run_dialogues(system, _User(), ["a"], rounds=4, workers=1, progress=False)
    assert system.messages == ["open a", "answer to is it red?"]
    assert [r.round for r in records] == [0, 1, 2, 3, 4]
    assert [r.message for r in records] == ["open a", "answer to is it red?", None, None, None]
    assert all(r.ranking == ["img1", "t"] for r in records[1:])
    scores = summarize(records, k=1)
    assert scores.hits_at_k == [0.0] * 5 and scores.recall_at_k == [0.0] * 5


def test_batched_runs_end_dialogues_like_the_unbatched_loop():
    batched_system = _BatchedQuitter()
    ids = list("abcde")
    batched = run_dialogues(batched_system, _User(), ids, rounds=3, batch_size=2, progress=False)
    unbatched = run_dialogues(_Quitter(), _User(), ids, rounds=3, workers=1, progress=False)
    assert batched == unbatched
    # one call per round per 2 dialogues; nobody is sent anything after their last question
    assert batched_system.calls == [
        ("start", ["a", "b"]),
        ("start", ["c", "d"]),
        ("start", ["e"]),
        ("reply", ["a", "b"]),
        ("reply", ["c", "d"]),
        ("reply", ["e"]),
    ]


def test_batching_a_one_turn_at_a_time_system_is_an_input_error():
    with pytest.raises(InputError, match="one turn at a time"):
        run_dialogues(_Quitter(), _User(), ["a"], rounds=1, batched=True, progress=False)
    with pytest.raises(InputError, match="batch_size must be >= 1"):
        run_dialogues(_BatchedQuitter(), _User(), ["a"], rounds=1, batch_size=0, progress=False)


def test_a_failing_dialogue_fails_the_run():
    class Broken(_Quitter):
        def reply(self, thread_id, message):
            if thread_id == "c":
                raise RuntimeError("boom in c")
            return super().reply(thread_id, message)

    with pytest.raises(RuntimeError, match="boom in c"):
        run_dialogues(Broken(), _User(), list("abcdef"), rounds=2, workers=3, progress=False)


def test_bad_loop_arguments_are_input_errors():
    for ids, rounds, workers, match in (
        (["a"], -1, 1, "rounds must be >= 0"),
        (["a"], 1, 0, "workers must be >= 1"),
        ([], 1, 1, "no dialogues"),
        (["a", "a"], 1, 1, "appears twice"),
    ):
        with pytest.raises(InputError, match=match):
            run_dialogues(_Quitter(), _User(), ids, rounds, workers, progress=False)


def test_run_file_round_trips_through_the_scorer(resources, targets, tmp_path):
    records = _run(resources, targets, workers=8)
    path = write_run_file(records, tmp_path / "sub" / "text.run.jsonl")
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    assert len(lines) == len(records) and lines[0]["ranking"] == records[0].ranking
    run = read_chatir_run(path)
    assert run == as_run(records)
    from_file = score_chatir(run, 10, GALLERY)
    direct = summarize(records, 10, GALLERY)
    assert from_file == direct
    ranks = np.array([[r.ranking.index(r.target) for r in records if r.round == t] for t in (0, 1)])
    assert direct.hits_at_k[0] == pytest.approx(np.mean(ranks[0] < 10))
    assert direct.hits_at_k[1] == pytest.approx(np.mean((ranks < 10).any(axis=0)))
    assert direct.recall_at_k[1] == pytest.approx(np.mean(ranks[1] < 10))
    assert direct.not_found == 0 and direct.dialogues == len(targets)


def test_as_run_rejects_ragged_records():
    rec = RunRecord("a", 0, "t", ["t"], "m", None)
    with pytest.raises(InputError, match="different numbers of rounds"):
        as_run([rec, RunRecord("b", 0, "t", [], "m", None), RunRecord("b", 1, "t", [], "m", None)])
    with pytest.raises(InputError, match="rounds 0..1"):
        as_run([rec, RunRecord("a", 2, "t", [], "m", None)])


def test_plot_hits_writes_a_png(tmp_path):
    path = plot_hits({"text": [0.1, 0.2, 0.4], "dar": [0.2, 0.5, 0.7]}, tmp_path / "p" / "h.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (600, 400)
    with pytest.raises(InputError, match="outside"):
        plot_hits({"text": [12.0]}, tmp_path / "bad.png")
    with pytest.raises(InputError, match="nothing to plot"):
        plot_hits({}, tmp_path / "bad.png")
