"""``generate_images`` (DAR): images of the refined query, kept as their CLIP embeddings.

A generated image is a visual query: it puts the description where the gallery's images
live in embedding space, which a text embedding alone does not (the modality gap). Only the
embeddings and the seed enter the conversation state; the images are not kept (the server
redraws them from the query and the seed when a client asks to see them). Generation is seeded from
the agent's seed and the turn number, so re-running the node (LangGraph re-runs a node on
resume) yields the same embeddings, and an unchanged query is not generated twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convir.errors import GenerationError
from convir.state import AgentConfig, ConvState

if TYPE_CHECKING:
    from convir.gallery.resources import Resources
    from convir.models.embedder import Embedder
    from convir.models.generator import Generator


class GenerateImagesArgs(BaseModel):
    """Arguments of ``generate_images`` as a standalone tool."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=2000, description="what to imagine")
    n_per_prompt: int = Field(1, ge=1, le=8)
    seed: int = Field(0, ge=0, le=2**31 - 1)


def generated_embeddings(
    generator: Generator,
    embedder: Embedder,
    prompts: Sequence[str],
    n_per_prompt: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Generate ``n_per_prompt`` images per prompt and embed them: [P, n, D], unit rows."""
    images = generator.generate(list(prompts), n_per_prompt=n_per_prompt, seed=seed)
    flat = [im for group in images for im in group]
    pooled = embedder.encode_images(flat).pooled.numpy().astype(np.float32)
    return pooled.reshape(len(prompts), n_per_prompt, -1)


def make_generate_images_node(
    resources: Resources, config: AgentConfig
) -> Callable[[ConvState], dict]:
    """Graph node: embeddings of images generated for the state's query (cached per query)."""

    def generate_images_node(state: ConvState) -> dict:
        query = state.get("query", "")
        if not query:
            return {"transcript": ["generate_images: no query yet, skipped"]}
        if state.get("generated_for") == query and state.get("generated"):
            return {"transcript": ["generate_images: query unchanged, reused"]}
        generator = resources.generator
        if generator is None:
            return {"transcript": ["generate_images: no generator configured"]}
        seed = config.seed * 1_000_003 + state.get("turn", 0) * 101
        try:
            emb = generated_embeddings(
                generator, resources.embedder, [query], config.n_generated, seed
            )
        except GenerationError as exc:
            return {"transcript": [f"generate_images failed: {exc}"]}
        return {
            "generated": emb[0].tolist(),
            "generated_for": query,
            "generated_seed": seed,
            "transcript": [f"generate_images: {config.n_generated} image(s) of {query!r}"],
        }

    return generate_images_node
