"""``convir demo``: the agent in simulated dialogues on the testbed, with the shipped models.

Each simulated user looks for one testbed image. With ``dar``/``text``/``auto`` it opens
with a partial caption; with ``stitch`` it opens with a reference image and an edit (a
testbed triplet). Every turn the agent refines, (generates,) retrieves, (reranks,) and asks
the question that best splits its candidates; the user answers from the target's
attributes (the testbed oracle). Prints one dialogue's full transcript and the cumulative
Hits@10 per round over all dialogues (ChatIR protocol).
"""

from __future__ import annotations

import json

import numpy as np
import typer

from convir.agents.policy import POLICIES
from convir.errors import InputError
from convir.state import STRATEGIES, check_strategy


def demo_command(
    strategy: str = typer.Option("auto", "--strategy", help=", ".join(STRATEGIES) + "."),
    policy: str = typer.Option("rules", "--policy", help="rules, or llm (needs CONVIR_LLM_URL)."),
    dialogues: int = typer.Option(40, "--dialogues", help="Simulated dialogues."),
    rounds: int = typer.Option(10, "--rounds", help="Question rounds after the opening."),
    seed: int = typer.Option(0, "--seed", help="Gallery, target and agent seed."),
    gallery_size: int = typer.Option(1000, "--gallery-size", help="Testbed images to search."),
    workers: int = typer.Option(4, "--workers", help="Dialogues run at once (threads)."),
    as_json: bool = typer.Option(False, "--json", help="Print only a JSON summary."),
) -> None:
    """Simulated dialogues on the testbed: one transcript and Hits@10 per round."""
    check_strategy(strategy)
    if policy not in POLICIES:
        raise InputError(f"--policy must be {' or '.join(POLICIES)}, got {policy!r}")
    if not 100 <= gallery_size <= 100_000:
        raise InputError(f"--gallery-size must be between 100 and 100,000, got {gallery_size}")
    if not 1 <= dialogues <= gallery_size // 4:
        raise InputError(f"--dialogues must be between 1 and {gallery_size // 4} (gallery / 4)")
    if not 0 <= rounds <= 50:
        raise InputError(f"--rounds must be between 0 and 50, got {rounds}")
    if not 1 <= workers <= 64:
        raise InputError(f"--workers must be between 1 and 64, got {workers}")

    from convir.agents.build import build_agent
    from convir.evaluation.loop import run_dialogues, summarize
    from convir.evaluation.testbed_users import ComposedUser, TestbedUser
    from convir.testbed.resources import testbed_resources
    from convir.testbed.world import World

    llm = None
    if policy == "llm":
        from convir.models.llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM()
    resources = testbed_resources(
        gallery_size, seed, llm=llm, generator=strategy in ("auto", "dar"), progress=not as_json
    )
    world = World(seed=seed, size=gallery_size)
    rng = np.random.default_rng(seed)
    pool = world.edited_indices() if strategy == "stitch" else range(gallery_size)
    picks = rng.choice(np.asarray(pool), size=min(dialogues, len(pool)), replace=False)
    targets = {f"demo-{n}": int(t) for n, t in enumerate(picks)}
    user_type = ComposedUser if strategy == "stitch" else TestbedUser
    user = user_type(world, targets, seed=seed)
    agent = build_agent(resources, strategy, policy, seed=seed, read_captions=False)
    records = run_dialogues(agent, user, list(targets), rounds, workers, progress=not as_json)
    hits = summarize(records, 10, search_space_size=gallery_size).hits_at_k
    used = records[-1].strategy if records else strategy
    if as_json:
        out = {
            "hits_at_10": [round(h, 4) for h in hits],
            "strategy": used,
            "dialogues": len(targets),
        }
        typer.echo(json.dumps(out))
        return
    first = next(iter(targets))
    target = user.target(first)
    typer.echo(f"Transcript of {first} (target {target}, strategy {strategy}, policy {policy}):")
    for line in agent.state(first).get("transcript", []):
        typer.echo(f"  {line}")
    rank = [r for r in records if r.dialogue_id == first]
    found = [r.ranking.index(target) + 1 if target in r.ranking else None for r in rank]
    typer.echo("  target rank per round: " + ", ".join(str(f or ">100") for f in found))
    typer.echo(f"\nHits@10 per round over {len(targets)} dialogues, gallery of {gallery_size}:")
    typer.echo("  " + "  ".join(f"r{r}={h:.3f}" for r, h in enumerate(hits)))
