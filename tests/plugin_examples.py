"""Classes the plug-in tests load by import path (``plugin_examples:NeverAsk`` ...)."""

from convir.agents.policy import Decision
from convir.evaluation.users import TestbedUser
from convir.gallery.questions import Askable

ASKED = "is there a red circle?"


class NeverAsk:
    """Refine and retrieve every turn, never ask (docs/agent.md's example policy)."""

    def decide(self, state, options):
        done = state.get("steps", [])
        strategy = state.get("strategy", "dar")
        for action in ("refine_query", "retrieve"):
            if action not in done:
                return Decision(action=action, strategy=strategy, reason="fixed pipeline")
        return Decision(action="finish", strategy=strategy, reason="done")


class OneQuestion:
    """Always offers the same question (the agent asks it once)."""

    def menu(self, dialogue, candidates):
        return [Askable(ASKED, ("yes", "no"), ("a red circle", None))]


class BuiltFromGallery:
    """A bank built with the gallery (``from_resources``): remembers its size."""

    built_with: list[int] = []

    def __init__(self, size):
        self.size = size

    @classmethod
    def from_resources(cls, resources):
        cls.built_with.append(resources.index.count)
        return cls(resources.index.count)

    def menu(self, dialogue, candidates):
        return OneQuestion().menu(dialogue, candidates)


class ShyUser(TestbedUser):
    """The testbed user who never knows the answer."""

    def answer(self, dialogue_id, question, options=()):
        return "i don't know"


class NoMenu:
    def ask(self, dialogue):
        return []


class NeedsArguments:
    def __init__(self, vocabulary):
        self.vocabulary = vocabulary

    def menu(self, dialogue, candidates):
        return []


not_a_class = 3
