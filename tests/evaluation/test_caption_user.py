"""CaptionUser: openings, yes/no and choice answers read off the target's captions, noise."""

import pytest

from convir.errors import InputError
from convir.evaluation.users import UNKNOWN, CaptionUser, SimulatedUser, caption_word

CAPTIONS = {
    "beach": [
        "A brown dog runs on a sandy beach.",
        "A dog is running along the shore near the waves.",
        "The dog wears a red collar.",
        "A dog lies on a green towel.",  # a fourth caption: not read
    ],
    "street": [
        "A red car is parked next to a blue bus.",
        "Two men are sitting on a wooden bench.",
        "There are no people crossing the street.",
    ],
}
TARGETS = {"d1": "beach", "d2": "street"}
YES_NO = ("yes", "no")


@pytest.fixture
def user():
    return CaptionUser(TARGETS, CAPTIONS)


def test_is_a_simulated_user_that_opens_with_the_first_caption(user):
    assert isinstance(user, SimulatedUser)
    assert user.opening("d1") == ("A brown dog runs on a sandy beach.", None)
    assert user.target("d2") == "street"


@pytest.mark.parametrize(
    ("dialogue", "question", "said"),
    [
        ("d1", "is there a dog?", "yes"),
        ("d1", "is there a cat?", "no"),
        ("d1", "are there dogs running?", "yes"),  # plural and -ing meet "runs"
        ("d1", "is the dog brown?", "yes"),
        ("d1", "is the dog lying down?", "no"),  # only the fourth caption says so
        ("d2", "is anyone sitting on a bench?", "yes"),  # "sitting" meets "sitting"
        ("d2", "is a man sitting?", "yes"),  # men -> man
        ("d2", "are there people crossing the street?", "no"),  # "no people" is negated
        ("d2", "is the bus red?", "yes"),  # red and bus are in one caption: literal rule
    ],
)
def test_yes_no_questions(user, dialogue, question, said):
    assert user.answer(dialogue, question, YES_NO) == said


def test_yes_no_without_options_and_unanswerable_questions(user):
    assert user.answer("d1", "does the dog wear a collar?") == "yes"
    assert user.answer("d1", "what is happening?") == UNKNOWN
    assert user.answer("d1", "is there something?", YES_NO) == UNKNOWN  # no content words
    assert user.unknown == 2 and user.answered == 3


def test_choice_with_whole_fact_options(user):
    options = ("black dog", "brown dog", "white dog", "none of these")
    assert user.answer("d1", "which dog: black, brown or white?", options) == "brown dog"
    benches = ("metal bench", "plastic bench", "none of these")
    assert user.answer("d2", "which bench: metal or plastic?", benches) == "none of these"
    assert user.answer("d2", "which bench?", ("metal bench", "plastic bench")) == UNKNOWN


def test_choice_with_single_word_options_takes_the_rest_from_the_question(user):
    colours = ("red", "blue", "white")
    assert user.answer("d1", "what colour is the collar: red, blue or white?", colours) == "red"
    # the car is red and the bus is blue, in one caption: the question's noun decides
    assert user.answer("d2", "what colour is the bus?", colours) == "blue"
    assert user.answer("d2", "what colour is the car?", colours) == "red"
    # the question's words are not in any caption: the options alone
    assert (
        user.answer("d1", "which animal is it: cat, dog or horse?", ("cat", "dog", "horse"))
        == "dog"
    )


def test_more_specific_true_option_wins(user):
    options = ("dog", "brown dog", "cat")
    assert user.answer("d1", "which one?", options) == "brown dog"


def test_normaliser_merges_word_forms():
    for a, b in [
        ("lying", "laying"),
        ("sits", "sitting"),
        ("dogs", "dog"),
        ("puppies", "puppy"),
        ("benches", "bench"),
        ("riding", "rides"),
        ("horses", "horse"),
        ("parked", "park"),
        ("running", "runs"),
        ("men", "man"),
        ("geese", "goose"),
        ("knives", "knife"),
        ("rode", "riding"),
        ("people", "person"),
    ]:
        assert caption_word(a) == caption_word(b), (a, b)
    assert caption_word("bus") != caption_word("bu")


def test_log_keeps_every_turn_and_a_new_opening_restarts_it(user):
    user.opening("d1")
    user.answer("d1", "is there a dog?", YES_NO)
    user.answer("d1", "which colour?", ("red", "blue"))
    assert user.log("d1") == [
        ("is there a dog?", YES_NO, "yes"),
        ("which colour?", ("red", "blue"), "red"),
    ]
    user.opening("d1")
    assert user.log("d1") == []


def _answers(user, ids):
    questions = [
        ("is there a dog?", YES_NO),
        ("is there a cat?", YES_NO),
        ("what colour is the collar?", ("red", "blue", "green")),
    ]
    out = []
    for d in ids:
        user.opening(d)
        out += [user.answer(d, q, o) for q, o in questions]
    return out


def test_error_rate_changes_some_answers_reproducibly():
    ids = [f"n{i}" for i in range(60)]
    targets = dict.fromkeys(ids, "beach")
    exact = _answers(CaptionUser(targets, CAPTIONS), ids)
    noisy_user = CaptionUser(targets, CAPTIONS, error_rate=0.3, seed=5)
    noisy = _answers(noisy_user, ids)
    wrong = sum(a != b for a, b in zip(exact, noisy, strict=True))
    assert 0.15 * len(exact) < wrong < 0.45 * len(exact)
    assert noisy_user.flipped == wrong
    assert all(a in ("yes", "no", "red", "blue", "green") for a in noisy)
    assert _answers(CaptionUser(targets, CAPTIONS, error_rate=0.3, seed=5), ids) == noisy
    # order independent: dialogues run backwards give each dialogue the same answers
    backwards = _answers(CaptionUser(targets, CAPTIONS, error_rate=0.3, seed=5), ids[::-1])
    assert [backwards[3 * (59 - i) : 3 * (60 - i)] for i in range(60)] == [
        noisy[3 * i : 3 * i + 3] for i in range(60)
    ]
    assert _answers(CaptionUser(targets, CAPTIONS, error_rate=1.0), ids) != exact


def test_bad_inputs():
    with pytest.raises(InputError, match="error rate"):
        CaptionUser(TARGETS, CAPTIONS, error_rate=1.5)
    with pytest.raises(InputError, match="no captions"):
        CaptionUser({"d": "gone"}, CAPTIONS)
    with pytest.raises(InputError, match="dialogue"):
        CaptionUser(TARGETS, CAPTIONS).opening("zzz")
