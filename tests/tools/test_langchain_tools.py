"""The five tools as LangChain tools, invoked the way an agent framework calls them."""

import json

import pytest
from pydantic import ValidationError

from convir.errors import InputError
from convir.testbed.world import World

DIALOGUE = ["a red circle", "what colour is the background? gray"]


@pytest.fixture(scope="module")
def resources():
    from convir.testbed.resources import testbed_resources

    return testbed_resources(200, 0, generator=False, progress=False)


@pytest.fixture(scope="module")
def tools(resources):
    from convir.tools.langchain_tools import make_tools

    return {tool.name: tool for tool in make_tools(resources)}


@pytest.fixture(scope="module")
def top20(tools):
    return tools["retrieve"].invoke({"query": "a gray background", "k": 20})


def test_five_named_tools_with_one_sentence_descriptions(tools):
    from langchain_core.tools import BaseTool

    assert list(tools) == [
        "refine_query",
        "generate_images",
        "retrieve",
        "ask_clarification",
        "ot_rerank",
    ]
    for tool in tools.values():
        assert isinstance(tool, BaseTool)
        assert tool.description.endswith(".") and tool.description.count(". ") == 0
        assert tool.tool_call_schema.model_json_schema()["properties"]  # what an LLM sees


def test_refine_query_returns_the_query(tools, resources):
    out = tools["refine_query"].invoke({"dialogue": DIALOGUE})
    assert out["query"] == "a red circle, on a gray background"
    # STiTch: the graph's k target descriptions of the edited reference, not one caption
    reference = resources.index.id_of(3)
    stitch = tools["refine_query"].invoke(
        {"dialogue": ["make it blue"], "strategy": "stitch", "reference_id": reference}
    )
    assert len(stitch["descriptions"]) == 5 and stitch["query"] == stitch["descriptions"][0]
    assert all(d.startswith("make it blue") for d in stitch["descriptions"])
    assert resources.caption_for(reference) in stitch["query"]
    with pytest.raises(InputError, match="needs reference_id"):
        tools["refine_query"].invoke({"dialogue": ["make it blue"], "strategy": "stitch"})


def test_retrieve_returns_top_k_ids_and_scores(tools, resources, top20):
    results = top20["results"]
    assert [r["rank"] for r in results] == list(range(1, 21))
    assert len({r["id"] for r in results}) == 20
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    # the testbed knows the truth: a fifth of the gallery is gray, the top 20 all are
    scenes = [World(seed=0, size=200).scene(resources.index.position_of(r["id"])) for r in results]
    assert all(s.background == "gray" for s in scenes)
    json.dumps(top20)  # JSON-serialisable as it is
    assert len(tools["retrieve"].invoke({"query": "a red circle"})["results"]) == 10


def test_ask_clarification_picks_an_unasked_question(tools, top20):
    ids = [r["id"] for r in top20["results"]]
    scores = [r["score"] for r in top20["results"]]
    out = tools["ask_clarification"].invoke(
        {"dialogue": DIALOGUE, "candidate_ids": ids, "candidate_scores": scores}
    )
    assert (
        out["question"].endswith("?") and out["question"] != "what colour is the background?"
    )  # answered
    assert out["information_gain"] > 0 and out["options"]
    json.dumps(out)


def test_ot_rerank_reorders_the_given_candidates(tools, top20):
    ids = [r["id"] for r in top20["results"]][:8]
    out = tools["ot_rerank"].invoke(
        {"query": "a red circle, on a gray background", "candidate_ids": ids, "top_n": 5}
    )
    got = [r["id"] for r in out["results"]]
    assert sorted(got[:5]) == sorted(ids[:5]) and got[5:] == ids[5:]  # only the top 5 move
    assert out["reranked"] == 5
    head = [r["score"] for r in out["results"][:5]]
    assert head == sorted(head, reverse=True)
    json.dumps(out)


def test_generate_images_without_a_generator_says_so(tools):
    from convir.errors import GenerationError

    with pytest.raises(GenerationError, match="no image generator"):
        tools["generate_images"].invoke({"prompt": "a red circle"})


@pytest.mark.slow
def test_generate_images_returns_counts_not_images(resources):
    from dataclasses import replace

    from convir.models.generator import TestbedGenerator
    from convir.tools.langchain_tools import make_tools

    with_gen = replace(
        resources, generator_factory=lambda: TestbedGenerator(embedder=resources.embedder)
    )
    tool = {t.name: t for t in make_tools(with_gen)}["generate_images"]
    out = tool.invoke({"prompt": "a red circle", "n_per_prompt": 2, "seed": 3})
    assert out["images"] == 2 and out["dim"] == resources.index.dim
    assert out["prompt"] == "a red circle" and out["seed"] == 3 * 1_000_003


@pytest.mark.parametrize(
    ("name", "args", "complaint"),
    [
        ("retrieve", {"query": "a red circle", "k": 1_000_000}, "less than or equal to 1000"),
        ("retrieve", {"query": ""}, "at least 1 character"),
        ("retrieve", {"query": "x", "top_k": 5}, "Extra inputs are not permitted"),
        ("generate_images", {"prompt": "x", "n_per_prompt": 100}, "less than or equal to 8"),
        ("refine_query", {"dialogue": []}, "at least 1 item"),
        ("ot_rerank", {"query": "x", "candidate_ids": ["0000001"], "weight": 2}, "less than or"),
        (
            "ask_clarification",
            {"dialogue": ["x"], "candidate_ids": ["0000001"], "candidate_scores": [1.0, 2.0]},
            "1 candidate_ids but 2 candidate_scores",
        ),
    ],
)
def test_schema_rejects_out_of_bounds_arguments(tools, name, args, complaint):
    with pytest.raises(ValidationError, match=complaint):
        tools[name].invoke(args)


def test_unknown_ids_are_an_input_error(tools):
    with pytest.raises(InputError, match="'nope'.*ids that retrieve returned"):
        tools["ot_rerank"].invoke({"query": "x", "candidate_ids": ["0000001", "nope"]})
