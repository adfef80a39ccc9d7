"""ChatIR's dialogue files (ChatIR dialogues, DAR/PlugIR refined queries: one shape) and
how their rounds become query texts; search spaces are plain lists (``benchmark_formats``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from convir.errors import InputError
from convir.evaluation.benchmark_files import Record, Spec


class ChatIRDialogue(Record):
    """One ChatIR dialogue: the target image and the caption followed by the Q&A rounds."""

    img: str = Field(min_length=1)
    dialog: list[str] = Field(min_length=1)


CHATIR = Spec(
    ChatIRDialogue,
    frozenset({"img", "dialog"}),
    'ChatIR dialogues: a list of {"img": path, "dialog": [caption, "question? answer", ...]}',
    "img",
)
CHATIR_SEARCH_SPACE = "a ChatIR search space: a JSON list of image paths"


@dataclass(frozen=True)
class ChatIRDialogues:
    """A ChatIR-shaped dialogue file and how its rounds become query texts."""

    dialogues: list[ChatIRDialogue]
    variant: Literal["dialog", "refined"]

    @property
    def targets(self) -> list[str]:
        return [d.img for d in self.dialogues]

    @property
    def rounds(self) -> int:
        """Number of rounds of the longest dialogue (``len(dialog)``; 11 in ChatIR)."""
        return max(len(d.dialog) for d in self.dialogues)

    def queries(self, round: int, sep: str = ", ") -> list[str]:
        """The query text of every dialogue at ``round`` (0 = caption only).

        ``dialog`` variant: ChatIR's ``sep.join(dialog[: round + 1])``; ``refined`` variant
        (DAR/PlugIR): ``dialog[round]``, already one self-contained description.
        """
        out = []
        for i, d in enumerate(self.dialogues):
            if not 0 <= round < len(d.dialog):
                raise InputError(
                    f"dialogue {i} ({d.img}) has {len(d.dialog)} rounds; round {round} does "
                    "not exist (rounds are 0-based)"
                )
            out.append(
                d.dialog[round] if self.variant == "refined" else sep.join(d.dialog[: round + 1])
            )
        return out


def chatir_variant(dialogues: list[ChatIRDialogue]) -> Literal["dialog", "refined"]:
    """``"dialog"`` when most entries after the caption are ``question? answer`` turns."""
    turns = [t for d in dialogues for t in d.dialog[1:]]
    if not turns:
        return "dialog"
    return "dialog" if sum("?" in t for t in turns) >= len(turns) / 2 else "refined"
