"""STiTch's set-to-set scores: the published conditional transport and the Sinkhorn form."""

import numpy as np
import pytest
import torch

from convir.errors import InputError
from convir.tools.set_scores import conditional_transport, sinkhorn_set_score


def _unit(x):
    return torch.nn.functional.normalize(x, dim=-1)


def _ct_by_hand(d, v, tau):
    """The formula written out for one candidate, loops only."""
    s = [[float(d[k] @ v[j]) for j in range(len(v))] for k in range(len(d))]
    fwd = 0.0
    for j in range(len(v)):
        w = np.exp(np.array([s[k][j] for k in range(len(d))]) / tau)
        w /= w.sum()
        fwd += sum(w[k] * s[k][j] for k in range(len(d))) / len(v)
    bwd = 0.0
    for k in range(len(d)):
        w = np.exp(np.array(s[k]) / tau)
        w /= w.sum()
        bwd += sum(w[j] * s[k][j] for j in range(len(v))) / len(d)
    return (fwd + bwd) / 2


def test_conditional_transport_matches_the_formula_written_out():
    g = torch.Generator().manual_seed(0)
    d = _unit(torch.randn(5, 16, generator=g, dtype=torch.float64))
    v = _unit(torch.randn(3, 11, 16, generator=g, dtype=torch.float64))
    got = conditional_transport(d, v, temperature=0.2)
    want = [_ct_by_hand(d, v[n], 0.2) for n in range(3)]
    assert got.tolist() == pytest.approx(want, rel=1e-10)


def test_at_the_published_temperature_it_is_a_symmetric_chamfer_similarity():
    g = torch.Generator().manual_seed(1)
    d = _unit(torch.randn(5, 32, generator=g, dtype=torch.float64))
    v = _unit(torch.randn(4, 11, 32, generator=g, dtype=torch.float64))
    s = torch.einsum("kd,nvd->nkv", d, v)
    chamfer = (s.max(dim=1).values.mean(dim=1) + s.max(dim=2).values.mean(dim=1)) / 2
    assert conditional_transport(d, v).tolist() == pytest.approx(chamfer.tolist(), abs=1e-3)


def test_a_candidate_whose_views_match_the_descriptions_wins():
    g = torch.Generator().manual_seed(2)
    d = _unit(torch.randn(5, 32, generator=g))
    match = _unit(d[torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0])] + 0.1 * torch.randn(11, 32))
    other = _unit(torch.randn(11, 32, generator=g))
    for score in (conditional_transport, sinkhorn_set_score):
        s = score(d, torch.stack([other, match]))
        assert s[1] > s[0] + 0.5


def test_sinkhorn_set_score_is_the_similarity_under_pots_plan():
    ot = pytest.importorskip("ot")
    g = torch.Generator().manual_seed(3)
    d = _unit(torch.randn(5, 16, generator=g, dtype=torch.float64))
    v = _unit(torch.randn(2, 11, 16, generator=g, dtype=torch.float64))
    got = sinkhorn_set_score(d, v, reg=0.05)
    for n in range(2):
        s = (d @ v[n].T).numpy()
        plan = ot.sinkhorn(np.full(5, 0.2), np.full(11, 1 / 11), 1 - s, 0.05, stopThr=1e-12)
        assert float(got[n]) == pytest.approx(float((plan * s).sum()), abs=1e-5)


def test_bad_shapes_and_temperatures_are_input_errors():
    d, v = torch.randn(5, 8), torch.randn(3, 11, 8)
    with pytest.raises(InputError, match=r"\[K, D\]"):
        conditional_transport(d[None], v)
    with pytest.raises(InputError, match="dim"):
        conditional_transport(torch.randn(5, 4), v)
    with pytest.raises(InputError, match="temperature"):
        conditional_transport(d, v, temperature=0.0)
