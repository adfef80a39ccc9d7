"""Users backed by a language model: answers from the target's caption (:class:`LLMUser`) or
its image (:class:`VLMUser`), for real-image benchmarks where no attributes exist."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from convir.errors import LLMError
from convir.evaluation.user_protocol import UNKNOWN, lookup

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL import Image

    from convir.models.llm import LLM

log = logging.getLogger("convir.evaluation.users")  # the name users' warnings always had


class LLMUser:
    """Answers from the target's caption with a language model (prompt ``user_answer``).

    The opening is ``openings[id]`` when given (e.g. a partial caption), else the caption
    itself (ChatIR's round 0). An :class:`~convir.errors.LLMError` becomes ``"i don't
    know"`` with a warning, so one failed call costs one answer, not the whole run.
    """

    __module__ = "convir.evaluation.users"  # the public home config.json records

    def __init__(
        self,
        llm: LLM,
        captions: Mapping[str, str],
        targets: Mapping[str, str] | None = None,
        openings: Mapping[str, str] | None = None,
    ) -> None:
        self.llm = llm
        self.captions = dict(captions)
        self.targets = dict(targets or {})
        self.openings = dict(openings or {})

    def opening(self, dialogue_id: str) -> tuple[str, str | None]:
        if dialogue_id in self.openings:
            return self.openings[dialogue_id], None
        return str(lookup(self.captions, dialogue_id, "target caption")), None

    def answer(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        from convir.prompts import load_prompt

        caption = str(lookup(self.captions, dialogue_id, "target caption"))
        text = load_prompt("user_answer").render(caption=caption, question=question)
        return self._reply(dialogue_id, text)

    def _reply(self, dialogue_id: str, content: str | list[dict]) -> str:
        """The first line of the model's reply to one user message; "i don't know" when the
        model fails or says nothing."""
        try:
            reply = self.llm.complete([{"role": "user", "content": content}])
        except LLMError as exc:
            log.warning(
                "simulated user (dialogue %s): LLM failed, answering %r: %s",
                dialogue_id,
                UNKNOWN,
                exc,
            )
            return UNKNOWN
        lines = str(reply).strip().splitlines()
        return lines[0].strip().strip('"') if lines else UNKNOWN

    def target(self, dialogue_id: str) -> str:
        return str(lookup(self.targets, dialogue_id, "target image"))


class VLMUser(LLMUser):
    """Answers from the target *image* with a vision-language model (ChatIR's BLIP-2
    answerer role), through the same OpenAI-compatible client: the image goes as an
    ``image_url`` part, with the question and its options (prompt ``user_answer_image``).

    ``images[id]`` loads the target image; the opening is ``openings[id]`` (e.g. a recorded
    caption). An :class:`~convir.errors.LLMError` becomes ``"i don't know"``.
    """

    __module__ = "convir.evaluation.users"  # the public home config.json records

    def __init__(
        self,
        llm: LLM,
        images: Mapping[str, Callable[[], Image.Image]],
        openings: Mapping[str, str],
        targets: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(llm, dict(openings), targets, openings)
        self.images = dict(images)

    def answer(self, dialogue_id: str, question: str, options: Sequence[str] = ()) -> str:
        from convir.models.llm import image_part
        from convir.prompts import load_prompt

        image = lookup(self.images, dialogue_id, "target image")()  # type: ignore[operator]
        hint = f"Suggested answers: {', '.join(options)}." if options else ""
        text = load_prompt("user_answer_image").render(question=question, options=hint)
        content = [{"type": "text", "text": text}, image_part(image)]
        return self._reply(dialogue_id, content).lower()


# --- CaptionUser: answers read off the target's captions -----------------------------------
