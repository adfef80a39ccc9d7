"""The graph's logic on a fake embedder (bag-of-words vectors, no trained model): the order
of the steps, pausing on a question, answers moving the ranking, composed queries never
returning their reference, and the step limit. A failure here is the graph's, not a model's."""

from fake_embedder import fake_gallery

from convir.agent import build_agent

CAPTIONS = [
    f"a {size} {colour} {shape} on a {bg} background"
    for size in ("small", "large")
    for colour in ("red", "blue", "green")
    for shape in ("circle", "square", "star")
    for bg in ("white", "gray")
]


def test_a_turn_runs_refine_retrieve_ask_and_pauses_on_the_question():
    resources = fake_gallery(CAPTIONS)
    agent = build_agent(resources, "text", read_captions=True)
    first = agent.start("t", "a red circle")
    state = agent.state("t")
    assert state["steps"] == ["refine_query", "retrieve", "ask_clarification"]
    assert first.question and first.options and agent.pending_question("t") == first.question
    top = [CAPTIONS[resources.index.position_of(i)] for i in first.ranking[:4]]
    assert all("red circle" in c for c in top)  # bag of words: the four red circles first

    # answering with an option folds it into the dialogue and the answer filters the pool
    answer = first.options[0]
    second = agent.reply("t", answer)
    state = agent.state("t")
    assert state["dialogue"][1] == f"{first.question} {answer}" and state["turn"] == 1
    assert second.transcript[0] == f"user answered {first.question!r} -> {answer!r}"
    assert state["steps"][-1] == "ask_clarification" and second.question != first.question


def test_a_composed_query_never_returns_its_reference_and_reranks():
    resources = fake_gallery(CAPTIONS)
    agent = build_agent(resources, "auto")
    reference = resources.index.id_of(0)
    turn = agent.start("s", "make the circle blue", reference)
    assert turn.strategy == "stitch" and reference not in turn.ranking
    assert agent.state("s")["steps"] == [
        "refine_query",
        "retrieve",
        "ot_rerank",
        "ask_clarification",
    ]


def test_the_step_limit_ends_a_turn():
    resources = fake_gallery(CAPTIONS)
    agent = build_agent(resources, "text", max_steps=2)
    turn = agent.start("m", "a red circle")
    assert agent.state("m")["steps"] == ["refine_query", "retrieve"]
    assert turn.question is None and "policy: step limit, finish" in turn.transcript


def test_one_rule_decides_the_turns_strategy():
    from convir.state import turn_strategy

    assert turn_strategy("auto", has_reference=True) == "stitch"
    assert turn_strategy("auto", has_reference=False) == "dar"
    assert turn_strategy("auto", True, proposed="text") == "text"  # the policy's choice counts
    assert turn_strategy("auto", False, proposed="stitch") == "dar"  # nothing to edit
    assert turn_strategy("text", True, proposed="dar", current="text") == "text"  # fixed stays
    assert turn_strategy("stitch", has_reference=False) == "dar"
