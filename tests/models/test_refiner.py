from convir.errors import LLMUnavailableError
from convir.models.refiner import LLMRefiner, TemplateRefiner, split_turn, turn_to_fact
from convir.models.scripted_llm import ScriptedLLM
from convir.testbed.oracle import Oracle, candidate_questions
from convir.testbed.world import World


def test_testbed_turns_become_positive_facts():
    cases = {
        ("is there a red circle", "yes"): "a red circle",
        ("is there a red circle", "no"): None,
        ("what colour is the background", "beige"): "on a beige background",
        ("how many objects are there", "three"): "three objects",
        ("what shape is at the top left", "a star"): "a star at the top left",
        ("what colour is the object at the bottom", "blue square"): "a blue square at the bottom",
        ("what colour is the circle", "red"): "red circle",
        ("where is the red circle", "at the top"): "a red circle at the top",
        ("is the red circle large or small", "large"): "a large red circle",
        ("what shape is at the center", "nothing is there"): None,
        ("what colour is the star", "there is no star"): None,
        ("is the man wearing a hat", "yes"): "a man wearing a hat",
        ("what color is the bus", "it is red"): "red bus",
    }
    for (q, a), want in cases.items():
        assert turn_to_fact(q, a) == want, (q, a)
    assert split_turn("is it big? yes, very") == ("is it big", "yes, very")
    assert split_turn("a red circle") == ("", "a red circle")


def test_template_refiner_keeps_every_true_fact_of_an_oracle_dialogue():
    world = World(seed=3, size=50)
    oracle = Oracle()
    for scene in world.scenes(0, 20):
        dialogue = ["a picture"]
        for q in candidate_questions()[:40]:
            dialogue.append(f"{q.text} {oracle.answer(scene, q)}")
        refined = TemplateRefiner().refine(dialogue)
        assert refined.startswith("a picture, ")
        assert f"on a {scene.background} background" in refined
        for o in scene.objects:
            assert f"at the {o.position}" in refined
        assert " no" not in refined.split(",")  # negative answers are dropped
        assert len(refined.split(", ")) == len(set(refined.split(", ")))


def test_llm_refiner_uses_the_llm_and_falls_back_on_failure():
    llm = ScriptedLLM(["a large red circle at the top", LLMUnavailableError("down")])
    refiner = LLMRefiner(llm)
    assert refiner.refine(["a red circle", "is it large or small? large"]) == (
        "a large red circle at the top"
    )
    assert "dialogue" not in llm.calls[0].messages[0]["content"][-40:]
    assert refiner.refine(["a red circle", "is there a star? yes"]) == "a red circle, a star"
