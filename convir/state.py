"""The conversation state the graph checkpoints, and the agent's configuration.

State holds only plain data (strings, numbers, lists), so any LangGraph checkpointer can
store it and a resumed conversation needs nothing that lived in the old process. Nodes
return partial updates; ``transcript`` is the one field that accumulates (a reducer), every
other field is replaced by the node that owns it.
"""

from __future__ import annotations

import operator
import warnings
from typing import Annotated, Any, Literal, TypedDict, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["dar", "stitch", "text"]  # what one turn runs
ConfigStrategy = Literal["auto", "dar", "stitch", "text"]  # what an agent is set to run
STRATEGIES: tuple[str, ...] = get_args(ConfigStrategy)  # the names, for options and errors
# the tools' names, for typed state; convir.tools.specs.TOOL_SPECS is the list of tools (a
# test keeps the two equal)
ToolName = Literal["refine_query", "generate_images", "retrieve", "ask_clarification", "ot_rerank"]
Action = Literal[
    "refine_query", "generate_images", "retrieve", "ask_clarification", "ot_rerank", "finish"
]
MAX_MESSAGE_CHARS = 2000  # longer user messages are cut (and the transcript says so)


class ConvState(TypedDict, total=False):
    """One conversation. ``dialogue`` is ChatIR's shape: [opening, "question? answer", ...]."""

    message: str  # the newest user message, not yet folded into the dialogue
    message_key: str | None  # the client's idempotency key of the turn's message, if any
    dialogue: list[str]
    reference_id: str | None  # gallery id of a reference image (composed query), if any
    reference_vector: list[float] | None  # embedding of an uploaded reference image, if any
    edit: str  # the edit text of a composed query (the opening message)
    strategy: Strategy
    turn: int  # 0 for the opening message, +1 per user reply
    steps: list[str]  # tools run in the current turn, in order
    query: str  # the refined text query of this turn
    refined: list[str]  # DAR: the refined query of every turn so far (published DAR joins them)
    descriptions: list[str]  # STiTch: this turn's target descriptions (answers' facts included)
    descriptions_base: list[str]  # STiTch: the descriptions written from reference + edit
    generated: list[list[float]]  # embeddings of images generated for ``generated_for``
    generated_for: str
    generated_seed: int  # the seed they were generated with (the images can be redrawn)
    candidates: list[str]  # gallery ids, best first
    scores: list[float]
    asked: list[str]  # every question asked so far
    asked_options: dict[str, dict]  # question -> {"options": [...], "facts": [...]} (any bank)
    question: str | None  # the question waiting for an answer
    question_options: list[str]  # its answer options (shown to the user; may be empty)
    question_gain: float  # its information gain (nats) when it was chosen
    next_action: Action
    transcript: Annotated[list[str], operator.add]
    turn_from: int  # where the current turn's lines start in ``transcript`` (a replay shows them)


def turn_strategy(
    configured: str, has_reference: bool, proposed: str | None = None, current: str | None = None
) -> Strategy:
    """The one rule for which strategy a turn runs. A strategy fixed by configuration stays
    fixed (``current``: what the turn started with); under ``auto`` the policy's proposal
    counts, else the turn's start picks STiTch for a composed query and DAR otherwise; and
    STiTch needs a reference image (DAR without one)."""
    if configured != "auto":
        chosen = current or configured
    else:
        chosen = proposed or current or ("stitch" if has_reference else "dar")
    return "dar" if chosen == "stitch" and not has_reference else chosen  # type: ignore[return-value]


def has_reference(state: ConvState) -> bool:
    """A composed query: a gallery reference image or an uploaded one's embedding."""
    return bool(state.get("reference_id") or state.get("reference_vector"))


class AgentConfig(BaseModel):
    """Settings of one agent, by concern (:data:`GROUPS`: retrieval, DAR, STiTch, OT,
    questions and answers); every one is described in its Field and listed in
    docs/agent.md's table (:func:`settings_table`). Contradicting settings are an error."""

    model_config = ConfigDict(extra="forbid")

    strategy: ConfigStrategy = Field(
        "auto", description="auto: stitch when a reference image is given, else dar"
    )
    top_k: int = Field(100, ge=1, le=1000, description="ranked results kept per turn")
    pool: int = Field(200, ge=1, le=5000, description="first-stage candidates rescored")
    n_generated: int = Field(1, ge=1, le=8, description="DAR: images generated per turn")
    dar_query: Literal["latest", "joined"] = Field(
        "latest",
        description="DAR text query: the latest refined description (ours), or every turn's "
        "refined description joined (DAR's code)",
    )
    dar_image_weight_early: float = Field(0.2, ge=0.0, le=1.0, description="DAR w_v, turns 0-1")
    dar_image_weight_late: float = Field(0.5, ge=0.0, le=1.0, description="DAR w_v, turn 2 on")
    stitch_descriptions: int = Field(
        5, ge=1, le=16, description="STiTch: target descriptions written per query (published 5)"
    )
    stitch_transition: Literal["edit", "image", "none"] = Field(
        "edit",
        description="STiTch transition: edit (each description mixed with the edit text's "
        "embedding, published), image (+ lambda (reference image - its caption), ours), none",
    )
    stitch_edit_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="STiTch: weight of the edit text in each description"
    )
    stitch_transition_scale: float = Field(
        1.0, ge=0.0, le=5.0, description="STiTch: lambda of the image transition vector"
    )
    stitch_set_score: Literal["ct", "sinkhorn", "token-ot", "none"] = Field(
        "ct",
        description="STiTch rerank: ct (descriptions x views, bidirectional conditional "
        "transport, published), sinkhorn (descriptions x views), token-ot (caption tokens x "
        "patches, ours), none",
    )
    stitch_ct_temperature: float = Field(
        0.001,
        gt=0.0,
        le=1.0,
        description="STiTch: softmax temperature of ct on cosines (published)",
    )
    stitch_views: int = Field(
        10, ge=1, le=32, description="STiTch: augmented views per image when the index stores none"
    )
    stitch_view_augment: Literal["published", "gentle"] = Field(
        "published", description="STiTch: augmentation of views computed at query time"
    )
    stitch_llm_sees_reference: bool = Field(
        False,
        description="STiTch: send the reference image to the LLM (a vision-language model)",
    )
    ot_weight: float = Field(0.2, ge=0.0, le=1.0, description="OT share of the reranked score")
    ot_top_n: int = Field(50, ge=1, le=1000, description="candidates reranked by OT")
    ot_reg: float = Field(0.05, gt=0.0, le=10.0, description="OT entropic regularisation")
    ot_reg_m: float = Field(0.1, gt=0.0, description="OT marginal relaxation (KL weight)")
    ot_iterations: int = Field(1000, ge=1, le=100_000, description="OT Sinkhorn iterations")
    answer_weight: float = Field(
        1.0, ge=0.0, le=10.0, description="weight of the answers' log-likelihood in rescoring"
    )
    score_temperature: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="scores are cosine / this (the candidate posterior's logits, in which "
        "the answers' log-likelihood is added and results are shown)",
    )
    answer_temperature: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="the answer model's softmax temperature over an option's cosines "
        "(p(answer | image) from the embedder)",
    )
    caption_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of the caption channel in a text/DAR turn's first-stage cosine: "
        "(1 - w) cos(image) + w cos(caption) over the pool, on an index with caption vectors "
        "(`convir index --text-model`); no effect on a gallery without them. 0.5: best of "
        "0/0.25/0.5 on testbed seed 1 via the index, held on seed 0 (docs/agent.md)",
    )
    questions: Literal["info_gain", "random"] = Field(
        "info_gain", description="how ask_clarification picks: best split, or a random menu item"
    )
    question_pool: int = Field(50, ge=2, le=1000, description="top candidates a question splits")
    read_captions: bool = Field(
        True,
        description="the answer model reads a candidate's answer off its text (captions file "
        "or captioner) where the gallery has one; False: the embedder alone",
    )
    max_steps: int = Field(8, ge=1, le=32, description="tool calls per turn before it must end")
    seed: int = Field(
        0,
        description="seed of what a turn draws: generated images, sampled STiTch descriptions, random question picks",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Settings saved under an old name (a config.json of an earlier run) still load,
        with a warning naming the new ones."""
        if isinstance(data, dict) and any(k in RENAMED for k in data):
            data = dict(data)
            for old, new in RENAMED.items():
                if old in data:
                    value = data.pop(old)
                    warnings.warn(
                        f"AgentConfig: {old!r} is now {' and '.join(map(repr, new))}",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    for name in new:
                        data.setdefault(name, value)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        """Settings that contradict each other: more results kept than candidates scored.
        A pool set below the default top_k alone takes top_k down with it (its results
        are the pool, as they always were)."""
        if self.top_k > self.pool:
            if "top_k" in self.model_fields_set:
                raise ValueError(
                    f"top_k ({self.top_k}) is more than pool ({self.pool}): a turn ranks only "
                    "the pool; raise pool or lower top_k"
                )
            self.top_k = self.pool
        return self


# old name -> the settings it now is (one meaning per knob)
RENAMED: dict[str, tuple[str, ...]] = {
    "temperature": ("score_temperature", "answer_temperature"),
    # STiTch's knobs share its prefix
    "transition_scale": ("stitch_transition_scale",),
    "ct_temperature": ("stitch_ct_temperature",),
    "views": ("stitch_views",),
    "view_augment": ("stitch_view_augment",),
    "llm_sees_reference": ("stitch_llm_sees_reference",),
}
# every setting by concern (docs/agent.md's table; a test keeps it complete)
GROUPS: dict[str, tuple[str, ...]] = {
    "retrieval": (
        "strategy",
        "top_k",
        "pool",
        "caption_weight",
        "score_temperature",
        "max_steps",
        "seed",
    ),
    "DAR": ("n_generated", "dar_query", "dar_image_weight_early", "dar_image_weight_late"),
    "STiTch": (
        "stitch_descriptions",
        "stitch_transition",
        "stitch_edit_weight",
        "stitch_transition_scale",
        "stitch_set_score",
        "stitch_ct_temperature",
        "stitch_views",
        "stitch_view_augment",
        "stitch_llm_sees_reference",
    ),
    "OT": ("ot_weight", "ot_top_n", "ot_reg", "ot_reg_m", "ot_iterations"),
    "questions and answers": (
        "questions",
        "question_pool",
        "answer_weight",
        "answer_temperature",
        "read_captions",
    ),
}


def settings_table() -> str:
    """The Markdown table of every AgentConfig setting by group: name, default, bounds, what
    it does (from its Field description). docs/agent.md holds it (scripts/config_table.py)."""
    rows = ["| group | setting | default | what it is |", "| --- | --- | --- | --- |"]
    for group, names in GROUPS.items():
        for name in names:
            field = AgentConfig.model_fields[name]
            bounds = [
                f"{op} {getattr(m, attr)}"
                for m in field.metadata
                for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                if getattr(m, attr, None) is not None
            ]
            choices = get_args(field.annotation)
            what = (field.description or "").replace("|", "/")
            if choices and all(isinstance(c, str) for c in choices):
                what += f" ({', '.join(choices)})"
            elif bounds:
                what += f" ({', '.join(bounds)})"
            rows.append(f"| {group} | `{name}` | `{field.default!r}` | {what} |")
    return "\n".join(rows) + "\n"


# Named STiTch forms (``--stitch``): the published pipeline and our earlier variant.
STITCH_VARIANTS: dict[str, dict[str, object]] = {
    "published": {
        "stitch_descriptions": 5,
        "stitch_transition": "edit",
        "stitch_set_score": "ct",
    },
    "token-ot": {
        "stitch_descriptions": 1,
        "stitch_transition": "image",
        "stitch_set_score": "token-ot",
    },
}
# Named DAR forms (``--dar``): DAR's code, and ours.
DAR_VARIANTS: dict[str, dict[str, object]] = {
    "published": {"dar_query": "joined", "n_generated": 1},
    "ours": {"dar_query": "latest", "n_generated": 4},
}


def check_strategy(strategy: str) -> None:
    """A ``--strategy`` option: one of :data:`STRATEGIES`, checked before any model loads."""
    from convir.errors import InputError

    if strategy not in STRATEGIES:
        names = f"{', '.join(STRATEGIES[:-1])} or {STRATEGIES[-1]}"
        raise InputError(f"--strategy must be {names}, got {strategy!r}")


def stitch_form(name: str) -> dict[str, object]:
    """The AgentConfig settings of a named STiTch form (``--stitch``); an error names the forms."""
    from convir.errors import InputError

    if name not in STITCH_VARIANTS:
        raise InputError(f"--stitch must be one of {', '.join(STITCH_VARIANTS)}; got {name!r}")
    return dict(STITCH_VARIANTS[name])
