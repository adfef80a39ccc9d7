"""How sure a ChatIR-protocol number is: bootstrap intervals over dialogues, and paired
comparisons of two systems on the same dialogues.

Every reported metric is a mean over dialogues of a per-dialogue value (a 0/1 hit at
round t, a 0/1 first place, one dialogue's BRI term), so the dialogues are the unit to
resample:

* **Interval** (one run): the percentile bootstrap. ``resamples`` times, draw N dialogues
  with replacement, take the mean; the 2.5% and 97.5% quantiles of those means bound the
  95% interval. Seeded, so the same run file always prints the same interval.
* **Paired interval** (two runs): the same bootstrap on each dialogue's difference B - A;
  pairing removes the dialogue-to-dialogue spread both systems share (an easy target is easy
  for both), so it is much narrower than two separate intervals suggest.
* **p-values**: hits and first places are 0/1 per dialogue, so only the dialogues where
  the two systems disagree carry information: the exact McNemar test (two-sided binomial
  test of those discordant pairs at 1/2). BRI is continuous: a paired sign-flip
  randomisation test of the mean difference (each dialogue's difference flips sign with
  probability 1/2 under "no difference"), seeded like the bootstrap.

A percentile interval cannot be wider than the data: when every dialogue hits (or every
one misses) the interval is a single point. That says "no dialogue disagreed", not
"certain"; run more dialogues before reading it as more.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from convir.errors import InputError
from convir.evaluation import metrics

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
LEVEL = 0.95
MIN_RESAMPLES = 100  # fewer puts the 2.5% quantile among a handful of draws
_CHUNK = 256  # resamples drawn at once (memory: chunk x dialogues counts)


def check_resamples(resamples: int) -> int:
    """0 (no intervals) or at least :data:`MIN_RESAMPLES`; an InputError otherwise."""
    if resamples != 0 and not MIN_RESAMPLES <= resamples <= 1_000_000:
        raise InputError(
            f"--resamples must be 0 (no intervals) or between {MIN_RESAMPLES} and 1,000,000, "
            f"got {resamples}"
        )
    return resamples


@dataclass(frozen=True)
class DialogueValues:
    """Per-dialogue values whose means are the run's metrics (rows: dialogues)."""

    hits: np.ndarray  # [N, R] 0/1: target in the top K at some round <= t (cumulative)
    recall_at_1: np.ndarray  # [N, R] 0/1: target first at round t
    bri: np.ndarray  # [N] each dialogue's best-log-rank integral

    @classmethod
    def of(cls, ranks: np.ndarray, k: int, missing_rank: float) -> DialogueValues:
        """From ``[dialogues, rounds]`` 0-based ranks (inf: not found), as the scorers rank."""
        r = np.asarray(ranks, dtype=np.float64)
        return cls(
            hits=np.logical_or.accumulate(r < k, axis=1).astype(np.float64),
            recall_at_1=(r < 1).astype(np.float64),
            bri=metrics.best_log_rank_per_dialogue(r, missing_rank),
        )

    def matrix(self) -> np.ndarray:
        """Every value side by side, ``[N, 2R + 1]``: hits, recall@1, BRI."""
        return np.column_stack([self.hits, self.recall_at_1, self.bri])


def bootstrap_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, M]``: the column means of ``values [N, M]`` over dialogues resampled
    with replacement (each resample is a multinomial count per dialogue)."""
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    if n == 0:
        raise InputError("no dialogues to resample")
    rng = np.random.default_rng(seed)
    uniform = np.full(n, 1.0 / n)
    out = []
    for start in range(0, resamples, _CHUNK):
        counts = rng.multinomial(n, uniform, size=min(_CHUNK, resamples - start))
        out.append(counts @ x / n)
    return np.concatenate(out)


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """``[M, 2]``: the central ``level`` quantiles of each column of bootstrap draws."""
    tail = (1.0 - level) / 2.0
    return np.quantile(draws, [tail, 1.0 - tail], axis=0).T


def intervals(
    ranks: np.ndarray,
    k: int,
    missing_rank: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, object]:
    """95% bootstrap intervals of a run's Hits@K and Recall@1 per round and of its BRI:
    ``{"hits_at_k": [[lo, hi], ...], "recall_at_1": [[lo, hi], ...], "bri": [lo, hi]}``."""
    values = DialogueValues.of(ranks, k, missing_rank)
    rounds = values.hits.shape[1]
    ci = percentile_interval(bootstrap_means(values.matrix(), resamples, seed))
    return {
        "hits_at_k": ci[:rounds].tolist(),
        "recall_at_1": ci[rounds : 2 * rounds].tolist(),
        "bri": ci[2 * rounds].tolist(),
    }


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of paired 0/1 outcomes: a binomial test at 1/2 on
    the dialogues where exactly one of the two succeeded (1.0 when none disagree)."""
    a_only = int(np.sum((a > 0) & (b <= 0)))
    b_only = int(np.sum((a <= 0) & (b > 0)))
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers until this one division


def sign_flip_p(diff: np.ndarray, resamples: int, seed: int) -> float:
    """Two-sided p-value of "mean difference 0" by flipping each paired difference's sign
    at random; the observed assignment counts as one draw, so p is never 0."""
    d = np.asarray(diff, dtype=np.float64)
    observed = abs(d.mean())
    if not np.any(d != 0):
        return 1.0
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, resamples, _CHUNK):
        signs = rng.choice((-1.0, 1.0), size=(min(_CHUNK, resamples - start), d.size))
        means = np.abs(signs @ d) / d.size
        extreme += int(np.sum(means >= observed - 1e-12))
    return (1 + extreme) / (1 + resamples)


def paired(
    a: DialogueValues,
    b: DialogueValues,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, object]:
    """B against A on the same dialogues (rows in the same order): per metric, both
    means, the difference B - A, its paired-bootstrap 95% interval and a p-value.

    ``{"hits": [per round], "recall_at_1": [per round], "bri": {...}}``, each entry
    ``{"a", "b", "diff", "ci": [lo, hi], "p"}``."""
    ma, mb = a.matrix(), b.matrix()
    if ma.shape != mb.shape:
        raise InputError(f"paired values differ in shape: {ma.shape} vs {mb.shape}")
    rounds = a.hits.shape[1]
    ci = percentile_interval(bootstrap_means(mb - ma, resamples, seed))

    def entry(col: int, p: float) -> dict[str, object]:
        va, vb = float(ma[:, col].mean()), float(mb[:, col].mean())
        return {"a": va, "b": vb, "diff": vb - va, "ci": ci[col].tolist(), "p": p}

    hits = [entry(t, mcnemar_exact(a.hits[:, t], b.hits[:, t])) for t in range(rounds)]
    first = [
        entry(rounds + t, mcnemar_exact(a.recall_at_1[:, t], b.recall_at_1[:, t]))
        for t in range(rounds)
    ]
    bri = entry(2 * rounds, sign_flip_p(b.bri - a.bri, resamples, seed))
    return {"hits": hits, "recall_at_1": first, "bri": bri}


__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "LEVEL",
    "check_resamples",
    "DialogueValues",
    "bootstrap_means",
    "percentile_interval",
    "intervals",
    "mcnemar_exact",
    "sign_flip_p",
    "paired",
]
