"""Whether a text states a fact, read by lemma within one clause: the primitives that
question banks (which phrases split the candidates) and the text reader (which candidates
state an option's fact) share, so neither imports the other."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from convir.gallery.language import META_NOUNS, PLACE_WORDS, content_lemmas
from convir.gallery.language import clauses as lemma_clauses

# Words that never start or end a mined phrase, and never make one on their own.
STOPWORDS = frozenset(
    "a an the and or of on in at to with is are there this that it its for by from as "
    "some one image picture photo showing shows".split()
)
_NOT_CONTENT = STOPWORDS | META_NOUNS | {"show", "be", "have", "someone", "something"}


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("grey", "gray")))


def clauses(caption: str) -> list[list[str]]:
    """A caption split where one thing ends and the next begins, as plain words (the word-run
    fallback miner's view; the reader uses :func:`convir.gallery.language.clauses`)."""
    parts = re.split(r"[,.;:!?]| and | with ", caption.lower().replace("grey", "gray"))
    return [normalise(p).split() for p in parts if normalise(p)]


@functools.lru_cache(maxsize=65536)
def _content(fact_text: str) -> frozenset[str]:
    """A fact's content lemmas ("sitting dogs" -> {sit, dog})."""
    return frozenset(w for w in content_lemmas(fact_text) if w not in _NOT_CONTENT)


@functools.lru_cache(maxsize=65536)
def _clause_sets(caption: str) -> tuple[tuple[frozenset[str], tuple[str, ...]], ...]:
    return tuple(
        (frozenset(c), tuple(w for w in c if w in PLACE_WORDS)) for c in lemma_clauses(caption)
    )


def states(caption: str, fact_text: str) -> bool:
    """Whether a text states a fact: every content word of it, by lemma ("dogs sitting" is
    "a dog sits"), inside one clause, and the same place words in the same order ("at the
    top" is not "at the top left")."""
    want = _content(fact_text)
    if not want:
        return False
    where = _places(fact_text)
    return any(
        want <= words and (not where or where == places) for words, places in _clause_sets(caption)
    )


@functools.lru_cache(maxsize=65536)
def _places(text: str) -> tuple[str, ...]:
    return tuple(w for w in normalise(text).split() if w in PLACE_WORDS)


class ClauseIndex:
    """Which of some texts state a fact, read as :func:`states` reads one, for many facts at
    once: an inverted index from clause words to clauses, so a fact costs a few set
    intersections instead of a pass over every text's clauses."""

    def __init__(self, texts: Sequence[str | None]) -> None:
        self._where: list[tuple[int, tuple[str, ...]]] = []  # clause -> (text row, places)
        self._by_word: dict[str, set[int]] = {}
        for r, text in enumerate(texts):
            if not text:
                continue
            for words, places in _clause_sets(text):
                for w in words:
                    self._by_word.setdefault(w, set()).add(len(self._where))
                self._where.append((r, places))

    def holders(self, fact_text: str) -> set[int]:
        """The rows of the texts that state ``fact_text``."""
        return self.rows_of(self.clauses_stating(fact_text))

    def rows_of(self, clauses: set[int]) -> set[int]:
        """The rows of the texts these clauses belong to."""
        return {self._where[c][0] for c in clauses}

    def clauses_stating(self, fact_text: str) -> set[int]:
        """The clauses (numbered across all texts) that state ``fact_text``."""
        groups = []
        for w in _content(fact_text):
            group = self._by_word.get(w)
            if not group:
                return set()
            groups.append(group)
        if not groups:
            return set()
        groups.sort(key=len)  # the rarest word first: the intersection stays small
        hits = groups[0].intersection(*groups[1:])  # a new set, never the index's own
        place = _places(fact_text)
        return {c for c in hits if self._where[c][1] == place} if place else hits
