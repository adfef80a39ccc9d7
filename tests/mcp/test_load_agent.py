"""``convir.load_agent``: the one call a Python user makes, as docs/agent.md shows it."""

import subprocess
import sys

import pytest


def test_import_convir_stays_cheap():
    code = "import sys, convir; print(callable(convir.load_agent), 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["True", "False"], proc.stderr


def test_load_agent_starts_replies_and_explains(gallery_index, tmp_path):
    import convir

    agent = convir.load_agent(gallery_index, checkpoint=f"sqlite:{tmp_path / 'c.db'}", top_k=20)
    first = agent.start("t1", "a red circle")
    assert len(first.ranking) == 20 and first.question
    second = agent.reply("t1", first.options[0] if first.options else "yes")
    assert second.turn == 1
    why = agent.explain("t1", second.ranking[0])
    assert why.rank == 1 and why.score == pytest.approx(sum(t.value for t in why.terms))
    # the file holds the conversation for another agent (as convir serve and mcp share it)
    from convir.agent import ConvirAgent, checkpointer

    again = ConvirAgent(agent.resources, checkpoint=checkpointer(f"sqlite:{tmp_path / 'c.db'}"))
    assert again.state("t1")["turn"] == 1


def test_load_agent_refuses_an_unknown_setting(gallery_index):
    import convir
    from convir.errors import InputError

    with pytest.raises(InputError, match="not_a_knob: Extra inputs are not permitted"):
        convir.load_agent(gallery_index, not_a_knob=1)
    with pytest.raises(InputError, match="top_k: Input should be greater than or equal to 1"):
        convir.load_agent(gallery_index, top_k=0)
