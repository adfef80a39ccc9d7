"""The tools' logic without the protocol: what a caller's mistakes come back as."""

import pytest

from convir.errors import InputError


def test_mistakes_name_the_fix_and_never_echo_a_huge_id(loaded_agent):
    from convir.mcp.conversations import Conversations

    talks = Conversations(loaded_agent)
    huge = "x" * 60_000
    with pytest.raises(InputError, match="is not a session id") as bad:
        talks.answer(huge, "blue")
    assert len(str(bad.value)) < 300 and "(60,000 characters)" in str(bad.value)
    with pytest.raises(InputError, match="no gallery image") as bad:
        talks.edit(huge, "make it blue")
    assert len(str(bad.value)) < 300
    with pytest.raises(InputError, match="message holds control characters"):
        talks.search("a red\x00 circle")
    with pytest.raises(InputError, match="k must be between 1 and 20"):
        talks.search("a red circle", k=0)
    with pytest.raises(InputError, match="no session 0123abcd; start one with search_images"):
        talks.why("0123abcd", loaded_agent.resources.index.id_of(0))


def test_a_turn_running_in_another_process_over_the_store_is_busy_here(loaded_agent, tmp_path):
    """Two faces over one SQLite file (say `convir serve` and `convir mcp`): a session whose
    turn holds the store's lease is refused by the other, and free again after release."""
    from convir.agent import ConvirAgent, checkpointer
    from convir.mcp.conversations import Conversations
    from convir.server.busy import SessionBusyError

    spec = f"sqlite:{tmp_path / 'sessions.db'}"
    resources = loaded_agent.resources
    here = Conversations(
        ConvirAgent(resources, config=loaded_agent.config, checkpoint=checkpointer(spec))
    )
    there = Conversations(
        ConvirAgent(resources, config=loaded_agent.config, checkpoint=checkpointer(spec))
    )
    sid = here.search("a red circle")["session_id"]
    there.busy.claim(sid)  # the other face's turn is running
    with pytest.raises(SessionBusyError, match="still answering"):
        here.answer(sid, "yes")
    there.busy.release(sid)
    assert here.answer(sid, "yes")["turn"] == 1
