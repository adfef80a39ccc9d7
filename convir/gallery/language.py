"""Reading captions as English: lemmas, clauses, and what a caption says about its things.

Question banks and the answer model meet free-form text (people's, a VLM captioner's), not
one template grammar. This module gives them three things:

- :func:`lemma`: one dictionary form per word form (``lemminflect``'s lexicon; "sitting",
  "sits" -> "sit", "dogs" -> "dog", "people" -> "person"), so a fact and a caption agree
  whatever inflection each uses. A few near-synonyms that captions mix are merged
  (:data:`MERGED`: "laying" means lying in captions). Without lemminflect: a small suffix
  stripper.
- :func:`clauses`: a text cut where one thing ends and the next begins (sentence marks,
  ``;``, ``:``, a comma, "with", and an "and" that starts a new noun phrase), each as lemmas.
  "a brown and black puppy" stays one clause; "a red circle and a blue square" is two.
- :func:`parse`: the things a caption mentions (head noun, its attributes, where it is) and
  what they do (subject, verb, object), from a part-of-speech tagger (TextBlob's bundled
  Brill-style tagger, which ships its lexicon inside the package) and a small noun-phrase
  chunker written here. Question banks build their questions from these, never from raw
  word runs. Without TextBlob, :func:`parse` returns None and banks fall back to word runs.

Every function is pure and memoized on its text: a gallery's captions are parsed once.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass

# Words that carry no content of their own: never a fact's content, never a question.
FUNCTION_WORDS = frozenset(
    """a an the and or of on in at to with is are be being been was were there this that
    these those it its for by from as some one into onto their his her them they he she
    has have had do does also while which who very""".split()
)
# Nouns that name the picture, not something in it.
META_NOUNS = frozenset(
    """image picture photo photograph photography shot view scene depiction closeup close-up
    camera frame illustration snapshot screenshot""".split()
)
# Nouns too vague to ask about on their own ("a group of", "the image features", "a pair of").
VAGUE_NOUNS = frozenset(
    """feature features display group pair piece selection color colour variety set type kind
    lot number bunch side item thing part shape form style design pattern detail details
    array assortment collection couple few series range element elements edge middle surface
    brand name word text logo label area ground spot space setting environment""".split()
) | frozenset(
    """
    look appearance top bottom front back left right center""".split()
)
# Nouns read without an article ("is there snow?").
MASS_NOUNS = frozenset(
    """grass snow water sand sky hair fur food furniture clothing pasta rice bread meat dirt
    mud ice smoke fire paper rain fog foliage wood cream sauce grassland traffic hardware
    equipment luggage jewelry jewellery produce clothing lace fabric swimwear footwear
    lingerie sportswear outerwear""".split()
)
# Quantities and determiners a tagger may call adjectives ("several guinea pigs").
QUANTIFIERS = frozenset(
    """several many few multiple various numerous other another both each all more most some
    single couple pair dozen""".split()
)
# Parts of a body: asked about only with an attribute ("brown fur"), never doing anything.
BODY_PARTS = frozenset(
    """fur hair head eye eyes ear ears tail paw paws nose face leg legs arm arms hand hands
    mouth tongue foot feet neck back body skin beak wing wings horn horns whisker whiskers
    teeth tooth finger fingers""".split()
)
# What a thing can be doing without an object: the values of one "what is it doing?" slot.
POSTURES = frozenset(
    """sit stand lie run walk sleep rest swim fly jump play eat drink smile pose perch graze
    kneel climb dance sing laugh wait crouch float hang lean graze surf ski skate fish race
    cry bark stretch yawn""".split()
)
# Colour shades that modify the colour after them ("light brown dog").
SHADES = frozenset("light dark pale bright deep vivid".split())
UNITS = frozenset("milliliter ml inch inches cm mm oz ounce percent liter litre".split())
# What things are made of: an attribute ("a leather bag"), not a thing to ask about.
MATERIALS = frozenset(
    """metal leather plastic wood wooden glass fabric cotton stone concrete steel paper wool
    silk denim ceramic rubber marble brick velvet""".split()
)
# Nouns that are plural in form ("are there glasses?").
PLURAL_ONLY = frozenset(
    "glasses sunglasses jeans pants shorts scissors trousers clothes leggings goggles".split()
)
# A caption that says the captioner saw nothing is not a description.
_REFUSAL = re.compile(
    r"\b(unable to|cannot|can't|can not|sorry|no image|not able to|i am|i'm)\b", re.IGNORECASE
)
PLACE_WORDS = frozenset(
    "top bottom left right middle center centre upper lower front back corner".split()
)
COLOURS = frozenset(
    """red orange yellow green blue purple pink brown black white gray beige cyan magenta
    gold golden silver tan navy maroon teal violet turquoise cream khaki olive""".split()
)
SIZES = frozenset("large small big little tiny huge giant".split())
PEOPLE = frozenset(
    "person man woman boy girl child kid baby lady guy player people adult teenager".split()
)
# Forms captions use for the same thing; the first of each pair becomes the second.
MERGED = {
    "lay": "lie",
    "grey": "gray",
    "centre": "center",
    "people": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "kid": "child",
    "puppy": "puppy",
    "big": "large",
    "little": "small",
}
NUMBERS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}


def words(text: str) -> list[str]:
    """Lower-case words (hyphenated words kept whole)."""
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


@functools.lru_cache(maxsize=1)
def _lemminflect() -> object | None:
    try:
        import lemminflect
    except ImportError:
        return None
    return lemminflect


@functools.lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """The dictionary form of one lower-case word, merged with its near-synonyms."""
    word = MERGED.get(word, word)
    lib = _lemminflect()
    if lib is None or not word.isalpha():
        base = _strip_suffix(word)
    else:
        forms = lib.getAllLemmas(word)  # type: ignore[attr-defined]
        if not forms:
            base = word
        elif "VERB" in forms and word.endswith(("ing", "ed")):
            base = forms["VERB"][0]
        else:
            base = (forms.get("NOUN") or forms.get("VERB") or forms.get("ADJ") or (word,))[0]
    return MERGED.get(base, base)


def _strip_suffix(word: str) -> str:
    """The fallback lemma: plural and -ing endings stripped (no lexicon at hand)."""
    for end, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("s", "")):
        if word.endswith(end) and len(word) - len(end) >= 3 and not word.endswith("ss"):
            return word[: -len(end)] + repl
    return word


def content_lemmas(text: str) -> frozenset[str]:
    """The lemmas of a text's content words (function words dropped)."""
    return frozenset(lemma(w) for w in words(text) if w not in FUNCTION_WORDS)


_CLAUSE_CUT = re.compile(
    r"[.;:!?]|,|\bwith\b|\bwhile\b|\band\b(?=\s+(?:a|an|the|two|three|four|five|some|his|her|"
    r"their|its|one|another|other|is|are|has|have)\b)"
)


# "a dog with a red collar is standing": the dog stands, the collar is an aside.
_WITH_ASIDE = re.compile(r"\bwith\b([^.;:!?]*?)\b(is|are|was|were)\b([^.;:!?]*)")


@functools.lru_cache(maxsize=200_000)
def clauses(text: str) -> tuple[tuple[str, ...], ...]:
    """A text's clauses, each as its words' lemmas in order (function words kept). A "with"
    phrase between a subject and its verb becomes a clause of its own after the verb's."""
    text = _WITH_ASIDE.sub(lambda m: f"{m[2]}{m[3]}; {m[1]}", text.lower())
    parts = _CLAUSE_CUT.split(text.replace("grey", "gray"))
    out = []
    for part in parts:
        ws = words(part)
        if ws:
            out.append(tuple(lemma(w) for w in ws))
    return tuple(out)


def is_refusal(text: str) -> bool:
    """Whether a caption is a captioner's apology rather than a description."""
    return bool(_REFUSAL.search(text))


@dataclass(frozen=True)
class Mention:
    """A thing a caption mentions: its head noun's lemma and surface form, its modifiers
    (colours, sizes, other adjectives and noun modifiers, surface forms in order), and the
    place phrase after it ("on a beach", "at the top left") where there is one."""

    head: str
    noun: str  # the head as written in the singular ("dog" for "dogs")
    modifiers: tuple[str, ...] = ()
    place: str | None = None

    def phrase(self, modifiers: tuple[str, ...] | None = None, place: bool = False) -> str:
        mods = list(self.modifiers if modifiers is None else modifiers)
        for k in range(len(mods) - 1, 0, -1):  # "blue and orange shoe", not "blue orange shoe"
            if mods[k] in COLOURS and mods[k - 1] in COLOURS:
                mods.insert(k, "and")
        text = " ".join((*mods, self.noun))
        return f"{text} {self.place}" if place and self.place else text


@dataclass(frozen=True)
class Action:
    """Something a mentioned thing does: subject noun, the verb's lemma and -ing form, and
    the object or place phrase after it ("riding" "a horse", "lying" "in the snow")."""

    subject: str  # the subject's noun (singular)
    verb: str  # lemma
    ing: str  # the -ing form, for questions ("is the dog running?")
    rest: str | None = None  # "a horse", "on a couch"


@dataclass(frozen=True)
class Parse:
    mentions: tuple[Mention, ...]
    actions: tuple[Action, ...]


@functools.lru_cache(maxsize=1)
def _tagger() -> object | None:
    """TextBlob's pattern tagger, or None without TextBlob."""
    try:
        from textblob.en import PatternTagger  # type: ignore[attr-defined]
    except ImportError:
        try:
            from textblob.en.taggers import PatternTagger
        except ImportError:
            return None
    tagger = PatternTagger()
    with warnings.catch_warnings():  # TextBlob leaves its lexicon file open (ResourceWarning)
        warnings.simplefilter("ignore", ResourceWarning)
        tagger.tag("a dog")  # loads the lexicon now, once
    return tagger


def has_parser() -> bool:
    """Whether captions can be parsed (TextBlob installed); else banks mine word runs."""
    return _tagger() is not None


def _tags(sentence: str) -> list[tuple[str, str]]:
    tagger = _tagger()
    assert tagger is not None
    return [(w.lower(), t) for w, t in tagger.tag(sentence)]  # type: ignore[attr-defined]


def _singular(word: str) -> str:
    if word in PLURAL_ONLY:
        return word
    lib = _lemminflect()
    if lib is None:
        return _strip_suffix(word)
    forms = lib.getAllLemmas(word).get("NOUN")  # type: ignore[attr-defined]
    if not forms:
        return _strip_suffix(word) if word.endswith("s") else word
    return word if word in forms else forms[-1] if word.endswith("es") else forms[0]


def _ing(verb: str, surface: str) -> str:
    """The -ing form of a verb lemma ("laying" is asked as "lying": the two are merged)."""
    lib = _lemminflect()
    if lib is None:
        return surface
    got = lib.getInflection(verb, "VBG")  # type: ignore[attr-defined]
    return got[0] if got else surface


_NOUN = ("NN", "NNS", "NNP", "NNPS")
# Verbs that present the picture ("the image features", "showing", "displayed").
_META_VERBS = frozenset(
    """feature features featuring featured show shows showing shown depict depicts depicting
    depicted display displays displaying displayed include includes including contain
    contains containing present presented presenting""".split()
)
_MOD = ("JJ", "JJR", "JJS", "VBN", "VBG", "NN", "NNS", "NNP", "NNPS", "CD")


def _noun_phrase(tags: list[tuple[str, str]], i: int) -> tuple[int, Mention | None]:
    """The noun phrase starting at ``i`` (after any determiner): (index after it, mention)."""
    j = i
    while j < len(tags) and tags[j][1] in ("DT", "PRP$"):
        j += 1
    start = j
    while j < len(tags):
        w, t = tags[j]
        if t in ("VBG", "VBN") and j > start and tags[j - 1][1] in _NOUN:
            break  # "the beach wearing": a participle after a noun starts a verb phrase
        if t in _MOD or w in COLOURS or w in SHADES:
            j += 1
        elif (
            t == "CC"
            and w == "and"
            and j > start
            and j + 1 < len(tags)
            and (tags[j - 1][0] in COLOURS or tags[j - 1][1].startswith("JJ"))
            and (tags[j + 1][0] in COLOURS or tags[j + 1][1].startswith("JJ"))
        ):
            j += 1  # "brown and black puppy"
        else:
            break
    # the head is the last noun of the run; a participle after it starts a verb phrase
    end = j
    while end > start and not (
        tags[end - 1][1] in _NOUN
        and tags[end - 1][0] not in COLOURS
        and not (tags[end - 1][0] in SHADES and end < j and tags[end][0] in COLOURS)
    ):
        end -= 1
    if end == start:
        return max(j, i + 1), None
    head_word = tags[end - 1][0]
    skip = META_NOUNS | VAGUE_NOUNS | MATERIALS | FUNCTION_WORDS | UNITS | QUANTIFIERS
    noun = _singular(head_word)
    if head_word in skip or noun in skip or not head_word.isalpha():
        return end, None
    mods = tuple(
        w
        for w, t in tags[start : end - 1]
        if w != "and"
        and w not in META_NOUNS
        and w not in VAGUE_NOUNS
        and w not in QUANTIFIERS
        and w not in _META_VERBS
        and t not in ("CD", "JJR", "JJS")  # "a smaller dog" is no thing to ask about
        and w.replace("-", "").isalpha()
    )
    return end, Mention(lemma(noun), noun, mods)


_PREPS = frozenset("on in at near under over above below behind beside inside across".split())


def _place_after(tags: list[tuple[str, str]], i: int) -> tuple[int, str | None]:
    """'on a beach' / 'at the top left' at ``i``: (index after it, the phrase)."""
    if i >= len(tags) or tags[i][0] not in _PREPS:
        return i, None
    prep = tags[i][0]
    k = i + 1
    det = []
    while k < len(tags) and tags[k][1] in ("DT",):
        det.append(tags[k][0])
        k += 1
    place = []
    while k < len(tags) and tags[k][0] in PLACE_WORDS:
        place.append(tags[k][0])
        k += 1
    if place:  # the testbed's and people's positions: "at the top left"
        return k, " ".join([prep, *det, *place])
    end, m = _noun_phrase(tags, i + 1)
    if m is None or m.head in PLACE_WORDS:
        return i, None
    article = "a" if not det or det[0] in ("a", "an") else det[0]
    if article == "a" and m.head in MASS_NOUNS:
        article = ""  # "in white swimwear", not "in a white swimwear"
    return end, " ".join(w for w in (prep, article, m.phrase()) if w)


@functools.lru_cache(maxsize=200_000)
def parse(text: str) -> Parse | None:
    """What a caption mentions and what they do; None without a tagger (see module doc)."""
    if _tagger() is None:
        return None
    mentions: list[Mention] = []
    actions: list[Action] = []
    for sentence in re.split(r"(?<=[.!?;])\s+|,\s+(?=a |an |the |two |three )", text):
        if not sentence.strip() or is_refusal(sentence):
            continue
        tags = _tags(sentence)
        last: Mention | None = None
        i = 0
        while i < len(tags):
            w, t = tags[i]
            starts_np = t in ("DT", "PRP$", "CD", "JJ", "JJR", "JJS") or t in _NOUN
            if t in ("VBN", "VBG") and i + 1 < len(tags) and tags[i + 1][1] in _NOUN:
                starts_np = True  # "sled dogs", "a running dog"
            if starts_np or w in COLOURS:
                end, m = _noun_phrase(tags, i)
                if m is not None and m.head not in PLACE_WORDS:
                    _, place = _place_after(tags, end)
                    if place:
                        m = Mention(m.head, m.noun, m.modifiers, place)
                    mentions.append(m)
                    # "a wolf with a black nose is lying": the wolf is, not its nose
                    # a thing after a preposition ("on the beach wearing") is not the subject
                    after_with = i > 0 and (
                        tags[i - 1][0] in ("with", "of", "has", "have", "its")
                        or tags[i - 1][1] == "IN"
                    )
                    if not after_with and m.head not in BODY_PARTS:
                        last = m
                i = end
                continue
            if t in ("VBG", "VBZ", "VBP", "VBD") and last is not None and w not in FUNCTION_WORDS:
                verb = lemma(w)
                if verb not in ("show", "feature", "depict", "be", "have", "see"):
                    rest = None
                    if i + 1 < len(tags):
                        end, obj = _noun_phrase(tags, i + 1)
                        if obj is not None and tags[i + 1][1] in ("DT", "PRP$", "CD", "JJ", *_NOUN):
                            rest = f"a {obj.phrase()}"
                        else:
                            _, rest = _place_after(tags, i + 1)
                    actions.append(Action(last.noun, verb, _ing(verb, w), rest))
            i += 1
    return Parse(tuple(mentions), tuple(actions))
