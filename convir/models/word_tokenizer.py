"""A word-level tokenizer for the testbed CLIP.

open_clip's BPE vocabulary (49k tokens) would make the token embedding alone ~25 MB, so
the testbed model uses the few hundred words its world is described with. It keeps
open_clip's conventions: start-of-text first, end-of-text last *and with the largest id*
(open_clip pools the text at the arg-max token id), padding with 0, fixed context length.
Unknown words map to ``<unk>``.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

PAD, UNK, SOT, EOT = "<pad>", "<unk>", "<sot>", "<eot>"
_WORD = re.compile(r"[a-z]+|[0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Callable like an open_clip tokenizer: ``tok(texts) -> LongTensor[B, context_length]``."""

    def __init__(self, vocab: Sequence[str], context_length: int = 64) -> None:
        vocab = list(vocab)
        if vocab[:3] != [PAD, UNK, SOT] or vocab[-1] != EOT:
            raise ValueError("vocab must start with <pad>, <unk>, <sot> and end with <eot>")
        if context_length < 3:
            raise ValueError("context_length must be at least 3")
        self.vocab = vocab
        self.context_length = context_length
        self._ids = {w: i for i, w in enumerate(vocab)}
        self.pad_id, self.unk_id, self.sot_id, self.eot_id = 0, 1, 2, len(vocab) - 1
        self.truncated = 0  # how many texts were cut to fit, since creation

    @classmethod
    def build(cls, texts: Iterable[str], context_length: int = 64) -> WordTokenizer:
        """A vocabulary of every word in ``texts``, sorted, between the special tokens."""
        seen = sorted({w for t in texts for w in words(t)})
        return cls([PAD, UNK, SOT, *seen, EOT], context_length)

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        data = json.loads(Path(path).read_text())
        return cls(data["vocab"], data["context_length"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"context_length": self.context_length, "vocab": self.vocab})
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, cut (silently) to fit; :meth:`encode_batch` warns."""
        ids = [self._ids.get(w, self.unk_id) for w in words(text)]
        return [self.sot_id, *ids[: self.context_length - 2], self.eot_id]

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Padded ids; the first batch with texts over the limit warns (once per tokenizer),
        every cut is counted in :attr:`truncated`."""
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        cut = 0
        for row, text in enumerate(texts):
            ids = self.encode(text)
            cut += len(words(text)) > self.context_length - 2
            out[row, : len(ids)] = ids
        if cut:
            first = self.truncated == 0
            self.truncated += cut
            if first:  # once per tokenizer: later cuts are counted in ``truncated``
                warnings.warn(
                    f"{cut} of {len(texts)} texts cut to the tokenizer's limit of "
                    f"{self.context_length - 2} words (the end of each was dropped; later "
                    "cuts are not reported again)",
                    stacklevel=3,
                )
        return out

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None):  # noqa: ANN204
        import torch

        if isinstance(texts, str):
            texts = [texts]
        if context_length not in (None, self.context_length):
            raise ValueError(f"this tokenizer's context length is fixed at {self.context_length}")
        return torch.from_numpy(self.encode_batch(texts))
