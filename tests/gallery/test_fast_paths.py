"""The fast paths of a turn give exactly what the straightforward code gives: the caption
bank's proposals worked out once per text (``proposal_forms``), and the answer model
skipping the embedding of facts whose answers are all read off the candidates' texts."""

import zlib
from pathlib import Path

import numpy as np
import pytest

import convir.gallery.answers as answers_module
import convir.gallery.questions as questions_module
from convir.gallery.answers import AnswerModel
from convir.gallery.language import (
    BODY_PARTS,
    COLOURS,
    PEOPLE,
    PLACE_WORDS,
    PLURAL_ONLY,
    POSTURES,
    SIZES,
    Parse,
    parse,
)
from convir.gallery.parsed_questions import (
    PLURAL_SUBJECTS,
    STATIVE,
    Proposal,
    _a,
    _narrowed,
    dialogue_lemmas,
    proposals,
)
from convir.gallery.questions import Candidates, CaptionBank
from convir.gallery.text_reader import GalleryTexts
from convir.testbed.captions import full_caption
from convir.testbed.world import World

DEV_SET = Path(__file__).resolve().parents[3] / "shared/benchmarks/captions/cirr_vlm_captions.jsonl"


def reference_proposals(text: str, said: frozenset[str]) -> list[Proposal]:
    """Every question one caption could answer; ``said``: the dialogue's content lemmas (a
    thing already named is "the bus", not "a bus")."""
    parsed: Parse | None = parse(text)
    if parsed is None:
        return []
    out: list[Proposal] = []
    for m in parsed.mentions:
        known = m.head in said or m.head == "background"  # every picture has one
        there = "are there" if m.noun in PLURAL_ONLY else "is there"
        if m.head not in BODY_PARTS:  # "is there a head?" is not a question about a picture
            out.append(Proposal(m.noun, f"{there} {_a(m.noun, m.head)}?"))
        for mod in m.modifiers:
            phrase = f"{mod} {m.noun}"
            if mod in COLOURS or mod in SIZES:
                wording = f"is the {m.noun} {mod}?" if known else f"is there {_a(phrase, m.head)}?"
                slot = ("colour", m.noun) if mod in COLOURS else ("size", m.noun)
                out.append(Proposal(phrase, wording, slot, mod))
                if mod in COLOURS and m.head not in BODY_PARTS:  # "which blue thing is there?"
                    out.append(Proposal(phrase, wording, ("thing", mod), _a(m.noun, m.head)))
            else:
                out.append(Proposal(phrase, f"{there} {_a(phrase, m.head)}?"))
        if len(m.modifiers) > 1:
            phrase = m.phrase()
            out.append(Proposal(phrase, f"{there} {_a(phrase, m.head)}?"))
        out += _narrowed(m, there)
        if m.place:
            colour = next((x for x in m.modifiers if x in COLOURS), None)
            thing = f"{colour} {m.noun}" if colour else m.noun
            fact = f"{thing} {m.place}"
            wording = f"is the {thing} {m.place}?" if known else f"is there {_a(fact, m.head)}?"
            out.append(Proposal(fact, wording, ("place", thing), m.place))
            if len(m.modifiers) > 1:  # "is there a small red diamond at the bottom right?"
                full = m.phrase(place=True)
                out.append(Proposal(full, f"{there} {_a(full, m.head)}?"))
            if any(w in PLACE_WORDS - {"front", "back"} for w in m.place.split()):
                out.append(Proposal(m.place, f"is there anything {m.place}?"))
    for act in parsed.actions:
        be = "are" if act.subject in PLURAL_SUBJECTS else "is"
        who = f"the {act.subject}"
        if act.subject in PEOPLE:
            be, who = "is", "someone"
        elif act.subject not in said:
            be, who = "is", f"there {_a(act.subject, act.subject)}"
        doing = f"{act.subject} {act.ing}"
        if act.verb in POSTURES:  # "is the dog sleeping?"; "is someone using?" says nothing
            slot = ("action", act.subject)
            out.append(Proposal(doing, f"{be} {who} {act.ing}?", slot, act.ing))
        if act.rest and act.verb in STATIVE:  # "does the dish contain a creamy mixture?"
            does = "does" if be == "is" else "do"
            who = "someone" if act.subject in PEOPLE else f"the {act.subject}"
            wording = f"{does} {who} {act.verb} {act.rest}?"
            out.append(Proposal(f"{act.subject} {act.verb} {act.rest}", wording))
        elif act.rest:
            out.append(Proposal(f"{doing} {act.rest}", f"{be} {who} {act.ing} {act.rest}?"))
    return out


def testbed_texts() -> list[str]:
    world = World(seed=0, size=200)
    return [full_caption(world.scene(i)) for i in range(world.size)]


def dev_texts() -> list[str]:
    if not DEV_SET.is_file():
        pytest.skip(f"{DEV_SET} absent")
    from convir.index.captions_only import caption_text, read_caption_file

    return [caption_text(item.captions[1:3]) for item in read_caption_file(DEV_SET)[:1500]]


def pools(texts: list[str], seed: int, n: int = 20, size: int = 50):
    """(dialogue, pool texts, weights) of ``n`` random pools, each dialogue opened with a
    text of its pool (as a user describing the target does), some with a question asked."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        rows = rng.choice(len(texts), size=min(size, len(texts)), replace=False)
        pool = [texts[r] for r in rows]
        dialogue = [pool[int(rng.integers(len(pool)))]]
        if k % 2:
            dialogue.append(f"is there a dog? {'yes' if k % 4 == 1 else 'no'}")
        yield dialogue, pool, rng.dirichlet(np.ones(len(pool)))


@pytest.mark.parametrize("source", ["testbed", "dev"])
def test_proposals_and_menus_are_the_straightforward_ones(source, monkeypatch):
    texts = testbed_texts() if source == "testbed" else dev_texts()
    bank = CaptionBank()
    for dialogue, pool, w in pools(texts, seed=1):
        said = dialogue_lemmas(dialogue)
        for text in pool:
            assert proposals(text, said) == reference_proposals(text, said)
        view = Candidates([f"id{i}" for i in range(len(pool))], w, pool)
        fast = bank.menu(dialogue, view)
        with monkeypatch.context() as patch:
            patch.setattr(questions_module, "proposals", reference_proposals)
            slow = bank.menu(dialogue, view)
        assert fast == slow


class Counting:
    """A fake text embedder (a fixed random vector per word, whatever was embedded before)
    that records what it embeds."""

    def __init__(self, dim=32):
        self.words, self.dim, self.embedded = {}, dim, []

    def encode_text(self, texts, *, tokens=False):
        import torch

        from convir.models.embedder import TextFeatures

        self.embedded += list(texts)
        rows = []
        for text in texts:
            v = np.zeros(self.dim, dtype=np.float32)
            for word in text.split():
                if word not in self.words:
                    rng = np.random.default_rng(zlib.crc32(word.encode()))
                    self.words[word] = rng.standard_normal(self.dim).astype(np.float32)
                v += self.words[word]
            rows.append(v / (np.linalg.norm(v) or 1.0))
        return TextFeatures(torch.from_numpy(np.stack(rows)))


@pytest.mark.parametrize("source", ["testbed", "dev"])
def test_gains_skip_only_facts_whose_answers_are_read_off_the_texts(source, monkeypatch):
    texts = testbed_texts() if source == "testbed" else dev_texts()
    gallery = GalleryTexts(texts)
    bank = CaptionBank()
    rng = np.random.default_rng(2)
    skipped = 0
    for dialogue, pool, w in pools(texts, seed=3):
        positions = np.array([texts.index(t) for t in pool])
        # a pool where some candidates have no text: their answers need the embedder
        pool_texts = (
            gallery.pool(positions)
            if rng.random() < 0.5
            else [t if rng.random() < 0.9 else None for t in pool]
        )
        menu = bank.menu(dialogue, Candidates([str(p) for p in positions], w, pool))
        menu += bank.menu(["x"], Candidates([str(p) for p in positions], w, texts[-50:]))[:5]
        X = rng.standard_normal((len(pool), 32)).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        lazy, full = AnswerModel(Counting()), AnswerModel(Counting())
        got = lazy.gains(menu, X, w, pool_texts)
        probs = lazy.probabilities_many(menu, X, pool_texts)
        with monkeypatch.context() as patch:
            patch.setattr(answers_module, "_read_whole", lambda *a: None)
            want = full.gains(menu, X, w, pool_texts)
            want_probs = full.probabilities_many(menu, X, pool_texts)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
        assert int(np.argmax(got)) == int(np.argmax(want))
        for p, q in zip(probs, want_probs, strict=True):
            np.testing.assert_allclose(
                p, q, rtol=1e-5, atol=1e-7
            )  # float32 matmuls of other widths
        skipped += len(set(full.embedder.embedded)) - len(set(lazy.embedder.embedded))
    assert skipped > 0


def reference_clauses_stating(index, fact_text):
    """:meth:`ClauseIndex.clauses_stating` as first written: intersect word by word."""
    from convir.gallery.clauses import _content, _places

    want = sorted(_content(fact_text), key=lambda w: len(index._by_word.get(w, ())))
    if not want:
        return set()
    hits = set(index._by_word.get(want[0], ()))
    for w in want[1:]:
        hits &= index._by_word.get(w, set())
    place = _places(fact_text)
    return {c for c in hits if not place or index._where[c][1] == place}


@pytest.mark.parametrize("source", ["testbed", "dev"])
def test_clauses_stating_is_the_word_by_word_intersection(source):
    from convir.gallery.clauses import ClauseIndex

    texts = testbed_texts() if source == "testbed" else dev_texts()
    for dialogue, pool, _ in pools(texts, seed=4, n=5):
        index = ClauseIndex(pool)
        facts = {p.fact for t in pool for p in proposals(t, dialogue_lemmas(dialogue))}
        for fact in [*facts, "", "the", "purple giraffe", "at the top left"]:
            got = index.clauses_stating(fact)
            assert got == reference_clauses_stating(index, fact), fact
            got.add(-1)  # a copy: the index itself is untouched
            assert -1 not in index.clauses_stating(fact)
