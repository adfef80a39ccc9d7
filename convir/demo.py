"""``convir demo``: simulated dialogues on the testbed with the shipped models.

Until the agent lands this runs the ChatIR text-only baseline: the user opens with a
partial caption, each round the system asks a question from the testbed's template menu
(a fixed, non-adaptive questioner), the oracle user answers from the target's attributes,
and the dialogue so far, joined with ", ", is the query (ChatIR protocol). Retrieval is
real: the testbed CLIP embeds the whole gallery and every query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import typer

from convir.errors import InputError


@dataclass
class DemoResult:
    hits_at_10: list[float]
    transcript: list[str]
    dialogues: int
    strategy: str = "text"


def run_text_baseline(
    gallery_size: int, dialogues: int, rounds: int, seed: int, progress: bool = True
) -> DemoResult:
    """Run ``dialogues`` simulated dialogues of ``rounds`` rounds; cumulative Hits@10."""
    from tqdm import tqdm

    from convir.index.faiss_index import GalleryIndex
    from convir.models.embedder import load_embedder
    from convir.testbed.captions import partial_caption
    from convir.testbed.oracle import Oracle, candidate_questions
    from convir.testbed.render import render
    from convir.testbed.world import World

    world = World(seed=seed, size=gallery_size)
    embedder = load_embedder()
    scenes = world.scenes()
    gallery = np.concatenate(
        [
            embedder.encode_images([render(s) for s in scenes[i : i + 512]]).pooled.numpy()
            for i in tqdm(range(0, len(scenes), 512), desc="embed gallery", disable=not progress)
        ]
    )
    index = GalleryIndex.build(
        gallery, [s.id for s in scenes], [s.id for s in scenes], factory="Flat"
    )
    rng = np.random.default_rng(seed)
    targets = rng.choice(gallery_size, size=dialogues, replace=False)
    oracle = Oracle()
    menu = candidate_questions()
    dialogs = [[partial_caption(scenes[t], rng)] for t in targets]
    asked: list[set[int]] = [set() for _ in targets]
    hit = np.zeros(dialogues, dtype=bool)
    hits_per_round: list[float] = []
    transcript: list[str] = []
    for r in range(rounds + 1):
        if r > 0:
            for d, t in enumerate(targets):
                q = int(rng.choice([i for i in range(len(menu)) if i not in asked[d]]))
                asked[d].add(q)
                dialogs[d].append(f"{menu[q].text} {oracle.answer(scenes[t], menu[q])}")
        queries = [", ".join(dlg) for dlg in dialogs]
        scores, positions = index.search(embedder.encode_text(queries).pooled.numpy(), gallery_size)
        ranks = np.argmax(positions == targets[:, None], axis=1)  # Flat: every image is ranked
        hit |= ranks < 10
        hits_per_round.append(float(hit.mean()))
        transcript.append(
            f"round {r}: {'user' if r == 0 else 'Q/A'}: {dialogs[0][-1]}\n"
            f"  target rank {int(ranks[0]) + 1}; top 3: "
            + ", ".join(
                f"{index.id_of(int(p))} ({s:.3f})"
                for s, p in zip(scores[0, :3], positions[0, :3], strict=True)
            )
        )
    return DemoResult(hits_per_round, transcript, dialogues)


def demo_command(
    dialogues: int = typer.Option(50, "--dialogues", help="Simulated dialogues."),
    rounds: int = typer.Option(10, "--rounds", help="Question rounds after the opening caption."),
    seed: int = typer.Option(0, "--seed", help="Gallery and dialogue seed."),
    gallery_size: int = typer.Option(1000, "--gallery-size", help="Testbed images to search."),
    as_json: bool = typer.Option(False, "--json", help="Print only a JSON summary."),
) -> None:
    """Simulated dialogues on the testbed: one transcript and Hits@10 per round."""
    if not 1 <= dialogues <= gallery_size:
        raise InputError(f"--dialogues must be between 1 and --gallery-size ({gallery_size})")
    if not 0 <= rounds <= 50:
        raise InputError(f"--rounds must be between 0 and 50, got {rounds}")
    if not 100 <= gallery_size <= 100_000:
        raise InputError(f"--gallery-size must be between 100 and 100,000, got {gallery_size}")
    result = run_text_baseline(gallery_size, dialogues, rounds, seed, progress=not as_json)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "hits_at_10": [round(h, 4) for h in result.hits_at_10],
                    "strategy": result.strategy,
                    "dialogues": result.dialogues,
                }
            )
        )
        return
    typer.echo("Transcript of dialogue 0 (text-only retrieval, ChatIR protocol):")
    for line in result.transcript:
        typer.echo(line)
    typer.echo(f"\nHits@10 per round over {dialogues} dialogues, gallery of {gallery_size}:")
    typer.echo("  " + "  ".join(f"r{r}={h:.3f}" for r, h in enumerate(result.hits_at_10)))
