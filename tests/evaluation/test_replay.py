"""Replayed dialogues in the loop: a system that asks nothing still gets every recorded turn
(ChatIR's fixed-dialogue protocol), and the dialogue ends when the record does."""

from convir.evaluation.loop import run_dialogues
from convir.evaluation.users import (
    UNKNOWN,
    ReplayUser,
    SimulatedUser,
    TestbedUser,
    VolunteeringUser,
)
from convir.testbed.world import World
from convir.turn import TurnResult

DIALOGUES = {
    "a": ["a dog on a couch", "is it indoors? yes", "what colour is the dog? brown"],
    "b": ["a red bus", "is it moving? no"],
}
TARGETS = {"a": "dog.jpg", "b": "bus.jpg"}


class Silent:
    """Asks nothing; ranks by how many messages it got, so rounds are told apart."""

    def __init__(self, question=None):
        self.received: dict[str, list[str]] = {}
        self.question = question

    def _turn(self, thread_id):
        n = len(self.received[thread_id])
        return TurnResult(ranking=[f"r{n}"], scores=[1.0], question=self.question)

    def start(self, thread_id, message, reference_id=None):
        self.received[thread_id] = [message]
        return self._turn(thread_id)

    def reply(self, thread_id, message):
        self.received[thread_id].append(message)
        return self._turn(thread_id)


def test_a_replay_user_volunteers_and_a_testbed_user_does_not():
    assert isinstance(ReplayUser(DIALOGUES, TARGETS), VolunteeringUser)
    testbed = TestbedUser(World(seed=0, size=3), {"a": 0})
    assert isinstance(testbed, SimulatedUser) and not isinstance(testbed, VolunteeringUser)


def test_volunteered_turns_are_whole_and_share_the_answer_counter():
    user = ReplayUser(DIALOGUES, TARGETS)
    user.opening("a")
    assert user.volunteer("a") == "is it indoors? yes"
    assert user.answer("a", "anything?") == "brown"  # turn 2, answer part
    assert user.volunteer("a") is None
    user.opening("a")
    assert user.volunteer("a") == "is it indoors? yes"


def test_a_silent_system_gets_every_recorded_turn_then_the_dialogue_ends():
    system = Silent()
    records = run_dialogues(system, ReplayUser(DIALOGUES, TARGETS), ["a", "b"], 3, 2, False)
    assert system.received == DIALOGUES
    a = [r for r in records if r.dialogue_id == "a"]
    assert [r.message for r in a] == [*DIALOGUES["a"], None]
    assert [r.ranking for r in a] == [["r1"], ["r2"], ["r3"], ["r3"]]
    b = [r for r in records if r.dialogue_id == "b"]
    assert [r.message for r in b] == [*DIALOGUES["b"], None, None]
    assert [r.ranking for r in b] == [["r1"], ["r2"], ["r2"], ["r2"]]
    assert {r.target for r in b} == {"bus.jpg"} and all(r.question is None for r in records)


def test_a_system_that_asks_gets_the_recorded_answers():
    system = Silent(question="is it big?")
    run_dialogues(system, ReplayUser(DIALOGUES, TARGETS), ["b"], 2, 1, False)
    assert system.received["b"] == ["a red bus", "no", UNKNOWN]
