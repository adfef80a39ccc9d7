"""Write a testbed gallery to disk: images, attribute records, captions, edit triplets.

Layout of ``OUT``::

    images/0000/0000000.png ...   # 1,000 images per sub-folder, so 1M images stay listable
    attributes.jsonl              # one attribute record per image (world.Scene.to_record)
    captions.jsonl                # {"id", "path", "caption", "paraphrases", "partial"}: a
                                  # valid `convir index OUT --captions` file (paths under OUT)
    triplets.jsonl                # {"reference", "text", "target"} composed-retrieval queries
    world.json                    # seed, size, image size: enough to regenerate everything

Scenes are generated and written in chunks with a progress bar; memory stays flat at any size.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from convir.testbed.captions import paraphrases, partial_caption
from convir.testbed.edits import triplet_for
from convir.testbed.render import render
from convir.testbed.world import World, scene_id

CHUNK = 1000


def image_relpath(index: int) -> str:
    return f"images/{index // CHUNK:04d}/{scene_id(index)}.png"


def write_gallery(
    world: World, out: Path, image_size: int = 64, progress: bool = True, text_seed: int = 0
) -> Path:
    """Render and write ``world`` into ``out``; returns ``out``."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    (out / "world.json").write_text(
        json.dumps(
            {
                "seed": world.seed,
                "size": world.size,
                "edit_rate": world.edit_rate,
                "image_size": image_size,
            }
        )
        + "\n"
    )
    with (
        open(out / "attributes.jsonl", "w") as attrs,
        open(out / "captions.jsonl", "w") as caps,
        open(out / "triplets.jsonl", "w") as trips,
        tqdm(total=world.size, desc="testbed", unit="img", disable=not progress) as bar,
    ):
        for start in range(0, world.size, CHUNK):
            folder = out / "images" / f"{start // CHUNK:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for scene in world.scenes(start, start + CHUNK):
                render(scene, image_size).save(out / image_relpath(scene.index), compress_level=1)
                rec = scene.to_record()
                rec["path"] = image_relpath(scene.index)
                attrs.write(json.dumps(rec) + "\n")
                rng = np.random.default_rng([text_seed, scene.index, 5])
                paras = paraphrases(scene, 4, seed=text_seed)
                caps.write(
                    json.dumps(
                        {
                            "id": scene.id,
                            "path": rec["path"],
                            "caption": paras[0],
                            "paraphrases": paras[1:],
                            "partial": partial_caption(scene, rng),
                        }
                    )
                    + "\n"
                )
                triplet = triplet_for(world, scene.index, text_seed)
                if triplet is not None:
                    trips.write(json.dumps(asdict(triplet)) + "\n")
            bar.update(min(CHUNK, world.size - start))
    return out
