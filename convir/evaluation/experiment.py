"""What an evaluation run is: the systems, the gallery and users they share, and how their
dialogues run (in this process, or on Ray actors). The ``convir eval run`` command parses
options into a :class:`RunSpec` and prints what :func:`local_runs` / :func:`ray_runs` give;
Ray pickles :func:`worker_setup` from here, not from the CLI module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convir.errors import InputError
from convir.evaluation.setup import Setup
from convir.plugins import is_plugin_path, load_class, short_name

if TYPE_CHECKING:
    from convir.evaluation.loop import RunRecord
    from convir.evaluation.ray_eval import WorkerSetup
    from convir.evaluation.scoring import ChatIRScores
    from convir.gallery.resources import Resources

HITS_K = 10


def agent_knobs(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> validated AgentConfig fields (an InputError names a bad one)."""
    from pydantic import ValidationError

    from convir.state import RENAMED, AgentConfig

    knobs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep and key in RENAMED:  # an old name: the settings it now is
            knobs.update(dict.fromkeys(RENAMED[key], value))
            continue
        if not sep or key not in AgentConfig.model_fields or key in ("strategy", "questions"):
            raise InputError(
                f"--agent-config {pair!r}: give KEY=VALUE with KEY an AgentConfig field "
                "(docs/agent.md), not strategy or questions (they have their own options)"
            )
        knobs[key] = value
    try:
        checked = AgentConfig(**knobs)
    except ValidationError as exc:
        raise InputError(f"--agent-config: {exc.errors()[0]['msg']} ({pairs})") from None
    return {key: getattr(checked, key) for key in knobs}


def agent_strategy(label: str) -> tuple[str, dict[str, Any]]:
    """(the agent's strategy, config overrides) of a --strategy label: ``dar-published`` and
    ``dar-ours`` are DAR with ``convir.state.DAR_VARIANTS``; others are the agent defaults."""
    from convir.state import DAR_VARIANTS

    if label.startswith("dar-"):
        return "dar", dict(DAR_VARIANTS[label.removeprefix("dar-")])
    return label, {}


def agent_factory(engine: str) -> Any:
    """The agent builder of an ``--engine``: batched (the evaluation engine: the agent's
    nodes without the graph runtime, a round of all dialogues per call) or graph (the
    LangGraph agent that chat and the server run, one dialogue per thread)."""
    from convir.agents.build import build_agent, build_batched_agent

    return build_batched_agent if engine == "batched" else build_agent


def summary_entry(
    scores: ChatIRScores,
    seconds: float,
    rounds: int,
    recall_at_1: list[float] | None = None,
    ci: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A system's summary.json entry; ``recall_at_1`` (per round) is added when given, and
    with ``ci`` (``stats.intervals`` plus its resamples and seed) the 95% intervals:
    ``hits_at_10_ci``, ``recall_at_1_ci`` (``[lo, hi]`` per round), ``bri_ci``, ``bootstrap``."""
    entry: dict[str, Any] = {
        "hits_at_10": [round(h, 4) for h in scores.hits_at_k],
        "recall_at_10": [round(r, 4) for r in scores.recall_at_k],
        "bri": round(scores.bri, 4),
        "dialogues": scores.dialogues,
        "rounds": rounds,
        "seconds": round(seconds, 1),
    }
    if recall_at_1 is not None:
        entry["recall_at_1"] = [round(r, 4) for r in recall_at_1]
    if ci is not None:

        def pair(lo_hi: list[float]) -> list[float]:
            return [round(lo_hi[0], 4), round(lo_hi[1], 4)]

        entry["hits_at_10_ci"] = [pair(c) for c in ci["hits_at_k"]]
        entry["recall_at_1_ci"] = [pair(c) for c in ci["recall_at_1"]]
        entry["bri_ci"] = pair(ci["bri"])
        entry["bootstrap"] = {"resamples": ci["resamples"], "seed": ci["seed"]}
    return entry


def testbed_setup(
    gallery_size: int,
    dialogues: int,
    seed: int,
    error_rate: float,
    agents: bool,
    policy: str,
    progress: bool,
    via_index: Path | None = None,
    captions: str = "testbed",
    text_model: str | None = None,
    user: str | None = None,
) -> Setup:
    """The testbed gallery, targets and users (``user``: a plug-in class path built with
    TestbedUser's arguments)."""
    import numpy as np

    from convir.evaluation.testbed_users import TestbedUser
    from convir.testbed.resources import testbed_resources
    from convir.testbed.world import World

    llm = None
    if agents and policy == "llm":
        from convir.models.llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM()
    world = World(seed=seed, size=gallery_size)
    gallery_ids = None
    if via_index is not None:
        from convir.evaluation.via_index import public_resources

        resources, gallery_ids = public_resources(
            world,
            via_index,
            captions,
            generator=agents,
            progress=progress,
            text_model=text_model,
            llm=llm,
        )
        how = f"via index, texts: {captions}"
        if text_model is not None:
            how += f", caption vectors: {text_model}"
    else:
        resources = testbed_resources(
            gallery_size, seed, llm=llm, generator=agents, progress=progress
        )
        how = "in memory"
    picks = np.random.default_rng(seed).choice(gallery_size, size=dialogues, replace=False)
    targets = {str(d): int(t) for d, t in enumerate(picks)}
    user_class = TestbedUser if user is None else load_class(user, "user")
    return Setup(
        resources,
        list(targets),
        lambda: user_class(
            world, targets, error_rate=error_rate, seed=seed, gallery_ids=gallery_ids
        ),
        "random",
        None,
        f"Testbed ({how}), gallery {gallery_size}, {dialogues} dialogues, error {error_rate}",
    )


def chatir_setup(
    index: Path,
    dialogues_file: Path,
    search_space: Path | None,
    dialogues: int | None,
    agents: bool,
) -> Setup:
    from convir.evaluation.chatir import load_task

    task = load_task(index, dialogues_file, search_space, dialogues, generator=agents)
    from convir.gallery.questions import NoQuestions

    task.resources.question_bank = NoQuestions()  # recorded answers fit recorded questions only
    return Setup(
        task.resources,
        list(task.dialogues),
        task.user,
        "none",
        "recorded",
        f"ChatIR replay of {dialogues_file.name}, gallery {task.gallery_size}, "
        f"{len(task.dialogues)} dialogues",
    )


@dataclass(frozen=True)
class RunSpec:
    """The options a run's gallery, users and systems are built from: plain values, so a
    Ray actor can be sent them and build its own copy (paths absolute for that reason)."""

    chatir: bool
    labels: tuple[str, ...]
    modes: tuple[str, ...]
    policy: str  # rules | llm
    seed: int
    gallery_size: int | None = None
    dialogues: int | None = None
    error_rate: float | None = None
    index: Path | None = None
    dialogues_file: Path | None = None
    search_space: Path | None = None
    progress: bool = True
    via_index: Path | None = None
    captions: str = "testbed"
    knobs: tuple[tuple[str, Any], ...] = ()  # --agent-config overrides, validated
    engine: str = "batched"  # batched | graph
    annotations: Path | None = None  # captions: the caption file (its own benchmark)
    text_model: str | None = None  # captions, or via_index: the sentence model's name or folder
    index_folder: Path | None = None  # captions: where the gallery's index is kept
    user: str | None = None  # a plug-in simulated user's class path (testbed, captions)

    @property
    def captions_benchmark(self) -> bool:
        return self.annotations is not None

    def system_label(self, strategy: str, mode: str) -> str:
        """A system's label: ``{strategy}/{questions}`` on captions (``concat/bank``,
        ``text/info_gain``); elsewhere the strategy, ``-{mode}`` when modes are compared. A
        plug-in bank's mode is its class name (``text-MyBank``)."""
        mode = short_name(mode) if is_plugin_path(mode) else mode
        if self.captions_benchmark:
            return f"{strategy}/{mode}"
        if strategy == "concat" or len(self.modes) == 1:
            return strategy
        return f"{strategy}-{mode}"


def build_systems(spec: RunSpec) -> tuple[Setup, dict[str, Any]]:
    """The benchmark setup and every system to run, by label (built up front, so a bad
    configuration fails before any run)."""
    from convir.evaluation.text_baseline import TextBaseline

    agents = [s for s in spec.labels if s != "concat"]
    factory = agent_factory(spec.engine) if agents else None
    if agents and is_plugin_path(spec.policy):
        from functools import partial

        from convir.plugins import agent_with

        factory = partial(agent_with, engine=spec.engine)
    if spec.captions_benchmark:
        from convir.evaluation.captions_benchmark import captions_setup

        assert spec.annotations is not None and spec.text_model is not None
        assert spec.index_folder is not None
        setup = captions_setup(
            spec.annotations,
            spec.text_model,
            spec.gallery_size,
            spec.dialogues,
            spec.seed,
            spec.error_rate or 0.0,
            spec.index_folder,
            spec.policy,
            spec.progress,
            spec.user,
        )
    elif spec.chatir:
        assert spec.index is not None and spec.dialogues_file is not None
        setup = chatir_setup(
            spec.index, spec.dialogues_file, spec.search_space, spec.dialogues, bool(agents)
        )
    else:
        assert spec.gallery_size is not None and spec.dialogues is not None
        assert spec.error_rate is not None
        setup = testbed_setup(
            spec.gallery_size,
            spec.dialogues,
            spec.seed,
            spec.error_rate,
            bool(agents),
            spec.policy,
            spec.progress,
            spec.via_index,
            spec.captions,
            spec.text_model,
            spec.user,
        )
    systems: dict[str, Any] = {}
    for label in spec.labels:
        if label == "concat":
            name = spec.system_label(label, setup.concat_questions)
            systems[name] = TextBaseline(
                setup.resources, seed=spec.seed, questions=setup.concat_questions
            )
            continue
        for mode in spec.modes:
            name = spec.system_label(label, mode)
            resources, how = with_bank(setup.resources, mode)
            strategy, overrides = agent_strategy(label)
            # in memory, the testbed's texts are its ground truth: answers are not read off them
            systems[name] = factory(
                resources,
                strategy,
                spec.policy,
                how,
                seed=spec.seed,
                read_captions=(
                    spec.chatir or spec.via_index is not None or spec.captions_benchmark
                ),
                **{**dict(spec.knobs), **overrides},
            )
    return setup, systems


def with_bank(resources: Resources, mode: str) -> tuple[Resources, str]:
    """The gallery with the question bank a --questions mode names (a built-in, or a
    plug-in class path), and how to choose."""
    if mode in ("info_gain", "random"):
        return resources, mode
    if is_plugin_path(mode):
        from convir.plugins import load_question_bank

        return replace(resources, question_bank=load_question_bank(mode, resources)), "info_gain"
    if mode == "testbed":
        from convir.testbed.questions import TemplateBank

        return replace(resources, question_bank=TemplateBank()), "info_gain"
    from convir.gallery.questions import LLMBank
    from convir.models.llm import OpenAICompatibleLLM

    llm = resources.llm or OpenAICompatibleLLM()
    return replace(resources, question_bank=LLMBank(llm)), "info_gain"


def worker_setup(spec: RunSpec) -> WorkerSetup:
    """What a Ray actor builds for itself: the same systems and users, quietly."""
    setup, systems = build_systems(replace(spec, progress=False))
    return systems, setup.new_user


def local_runs(
    setup: Setup, systems: dict[str, Any], rounds: int, workers: int, progress: bool
) -> Iterator[tuple[str, list[RunRecord], float]]:
    """Each system's records in this process: (label, records, seconds)."""
    import time

    from convir.evaluation.loop import run_dialogues

    for label, system in systems.items():
        start = time.perf_counter()
        records = run_dialogues(
            system, setup.new_user(), setup.dialogue_ids, rounds, workers, progress, label
        )
        yield label, records, time.perf_counter() - start


def ray_runs(
    spec: RunSpec,
    labels: list[str],
    dialogue_ids: list[str],
    rounds: int,
    workers: int,
    address: str | None,
    actors: int | None,
) -> Iterator[tuple[str, list[RunRecord], float]]:
    """Each system's records from Ray actors (see ``ray_eval``), in dialogue order."""
    from functools import partial

    from convir.evaluation.ray_eval import run_systems_ray
    from convir.ray_cluster import cluster_count, ray_cluster

    with ray_cluster(address) as ray:
        cpus = cluster_count(ray, "CPU")
        count = actors or max(1, cpus)
        if count > cpus:  # an actor takes one CPU; the extra ones would wait forever
            raise InputError(
                f"--ray-actors {count}: the Ray cluster has {cpus} CPUs and each actor takes "
                f"one; pass --ray-actors {max(1, cpus)} or fewer, or add nodes"
            )
        build = partial(worker_setup, spec)
        yield from run_systems_ray(
            build, labels, dialogue_ids, rounds, actors=count, workers=workers
        )
