"""``import convir`` gives the names a user needs, and stays cheap: nothing heavy loads
until one of them is used."""

import subprocess
import sys


def test_the_public_names_are_the_library_s_own():
    import convir
    from convir.agents.conversation import ConvirAgent
    from convir.gallery.resources import Resources
    from convir.state import AgentConfig
    from convir.turn import TurnResult

    assert (convir.ConvirAgent, convir.Resources) == (ConvirAgent, Resources)
    assert (convir.AgentConfig, convir.TurnResult) == (AgentConfig, TurnResult)
    assert callable(convir.load_agent) and set(convir.__all__) >= {"load_agent", "ConvirAgent"}


def test_importing_convir_loads_nothing_heavy():
    code = (
        "import sys, convir; convir.AgentConfig; convir.ConvirAgent; "
        "print(sorted(m for m in ('torch', 'faiss', 'open_clip', 'langgraph') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
