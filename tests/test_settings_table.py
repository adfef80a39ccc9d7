"""AgentConfig: every setting in one group and in docs/agent.md's table as the code
describes it, contradicting settings refused, old names still loaded."""

import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError

from convir.state import GROUPS, AgentConfig, settings_table

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("config_table", ROOT / "scripts/config_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_is_in_exactly_one_group():
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(AgentConfig.model_fields)
    assert all(AgentConfig.model_fields[n].description for n in grouped)


def test_the_docs_table_is_the_generated_one():
    script = _script()
    text = (ROOT / "docs/agent.md").read_text()
    assert script.with_table(text, settings_table()) == text, (
        "docs/agent.md's settings table is stale: run python scripts/config_table.py"
    )
    assert "| STiTch | `stitch_set_score` | `'ct'` |" in settings_table()


def test_more_results_than_candidates_is_an_error():
    with pytest.raises(ValidationError, match="top_k \\(300\\) is more than pool \\(200\\)"):
        AgentConfig(top_k=300)
    assert AgentConfig(pool=50).top_k == 50  # a pool alone takes the default top_k down
    assert AgentConfig(top_k=20, pool=50).top_k == 20


def test_a_config_round_trips_and_old_names_still_load():
    config = AgentConfig(pool=50, score_temperature=0.2, stitch_set_score="token-ot")
    assert AgentConfig(**config.model_dump(mode="json")) == config
    with pytest.warns(DeprecationWarning, match="'temperature' is now 'score_temperature'"):
        old = AgentConfig(temperature=0.05)
    assert (old.score_temperature, old.answer_temperature) == (0.05, 0.05)


STITCH_OLD_NAMES = {
    "transition_scale": 2.0,
    "ct_temperature": 0.01,
    "views": 4,
    "view_augment": "gentle",
    "llm_sees_reference": True,
}


def test_stitch_settings_share_a_prefix_and_old_names_still_load():
    assert all(name.startswith("stitch_") for name in GROUPS["STiTch"])
    for old, value in STITCH_OLD_NAMES.items():
        with pytest.warns(DeprecationWarning, match=f"'{old}' is now 'stitch_{old}'"):
            config = AgentConfig(**{old: value})
        assert getattr(config, f"stitch_{old}") == value
        assert old not in config.model_dump()
