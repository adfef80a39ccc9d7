"""The evaluation engine runs the agent's very nodes: same rankings and questions as the
LangGraph agent (up to batched float rounding), many conversations per call."""

import numpy as np
import pytest

from convir.agent import build_agent
from convir.agents.batched import BatchedAgent
from convir.errors import InputError
from convir.evaluation.loop import run_dialogues, summarize
from convir.evaluation.users import TestbedUser
from convir.state import AgentConfig
from convir.turn import BatchedSystem


def test_batched_agent_gives_the_graph_agents_dialogues(testbed, world):
    picks = np.random.default_rng(1).choice(300, 24, replace=False)
    targets = {f"d{n}": int(t) for n, t in enumerate(picks)}
    ids = list(targets)

    def user():
        return TestbedUser(world, targets, seed=0)

    graph = run_dialogues(build_agent(testbed, "text", seed=0), user(), ids, 4, 1, False)
    agent = BatchedAgent(testbed, None, AgentConfig(strategy="text", seed=0))
    assert isinstance(agent, BatchedSystem)
    batched = run_dialogues(agent, user(), ids, 4, progress=False, batch_size=10)
    assert [(r.dialogue_id, r.round) for r in batched] == [(r.dialogue_id, r.round) for r in graph]
    same = sum(
        a.ranking == b.ranking and a.question == b.question
        for a, b in zip(graph, batched, strict=True)
    )
    assert same >= len(graph) - 2  # a batched text forward pass rounds differently, rarely
    assert summarize(batched).hits_at_k == summarize(graph).hits_at_k
    assert all(r.question for r in batched if r.round < 4)  # it kept asking


def test_batched_agent_turns_and_transcripts_match_the_graph_agent(testbed):
    graph = build_agent(testbed, "text", seed=0)
    agent = BatchedAgent(testbed, None, AgentConfig(strategy="text", seed=0))
    a0, b0 = graph.start("t", "a red circle"), agent.start("t", "a red circle")
    assert a0 == b0
    a1, b1 = graph.reply("t", a0.options[0]), agent.reply("t", b0.options[0])
    assert a1 == b1 and b1.transcript[0].startswith("user answered")
    assert agent.state("t")["dialogue"] == graph.state("t")["dialogue"]

    # a composed query (STiTch's descriptions, set-score rerank) takes the same steps
    ref = testbed.index.id_of(7)
    graph = build_agent(testbed, "auto", seed=0)
    agent = BatchedAgent(testbed, None, AgentConfig(strategy="auto", seed=0))
    a, b = (
        graph.start("s", "make the circle blue", ref),
        agent.start("s", "make the circle blue", ref),
    )
    assert b.strategy == "stitch" and a == b and ref not in b.ranking


def test_batched_agent_refuses_what_the_agent_refuses(testbed):
    agent = BatchedAgent(testbed, None, AgentConfig(strategy="text"))
    agent.start("t", "a red circle")
    with pytest.raises(InputError, match="already exists"):
        agent.start_batch([("t", "again", None)])
    with pytest.raises(InputError, match="start\\(\\) it first"):
        agent.reply("nobody", "blue")
    with pytest.raises(InputError, match="twice"):
        agent.reply_batch([("t", "blue"), ("t", "red")])
    with pytest.raises(InputError, match="not in the gallery"):
        agent.start("u", "make it blue", "no-such-image")
    stitch = BatchedAgent(testbed, None, AgentConfig(strategy="stitch"))
    with pytest.raises(InputError, match="needs a reference"):
        stitch.start("v", "make it blue")
