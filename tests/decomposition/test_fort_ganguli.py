"""fort_ganguli(model, data, H, G, structure) against dense references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.func import jacrev

from gn_theory import (
    InvalidInputError,
    NumericalWarning,
    ShapeError,
    ggn_operator,
    hessian_operator,
)
from gn_theory.decomposition import ClassStructure, FortGanguli, class_structure, fort_ganguli

from cases import TANH_C3_UNBALANCED
from references import DenseClassStructure, dense_hessian


def _measure(model, data, **kwargs):
    cs = class_structure(model, data)
    H, G = hessian_operator(model, data), ggn_operator(model, data)
    return cs, H, G, fort_ganguli(model, data, H, G, cs, **kwargs)


def test_fort_ganguli_against_dense_references(tmp_path):
    model, (X, y) = TANH_C3_UNBALANCED.build()
    data = [(X[:8], y[:8]), (X[8:], y[8:])]
    cs, H, G, fg = _measure(model, data, ks=[1, 3, 6], tol=1e-10, max_samples=12, seed=0)
    assert isinstance(fg, FortGanguli)
    Hd = dense_hessian(model, X, y).numpy()
    Gd = DenseClassStructure(model, X, y).G.numpy()
    wH, UH = np.linalg.eigh(Hd)
    wG, UG = np.linalg.eigh(Gd)
    UH, UG = UH[:, ::-1], UG[:, ::-1]
    np.testing.assert_allclose(fg.eigenvalues_H, wH[::-1][:6], atol=1e-8)
    np.testing.assert_allclose(fg.eigenvalues_G, wG[::-1][:6], atol=1e-8)
    # confinement of the full gradient
    g = ggn_operator(model, (X, y)).gradient().numpy()
    for j, k in enumerate([1, 3, 6]):
        ref_H = np.sum((UH[:, :k].T @ g) ** 2) / (g @ g)
        ref_G = np.sum((UG[:, :k].T @ g) ** 2) / (g @ g)
        assert abs(fg.confinement_full_H[j] - ref_H) < 1e-6
        assert abs(fg.confinement_full_G[j] - ref_G) < 1e-6
    assert fg.confinement_batches_H.shape == (2, 3) and fg.batch_sizes.tolist() == [8, 13]
    assert np.all(np.diff(fg.confinement_batches_G, axis=1) >= -1e-12)
    assert np.all((fg.confinement_batches_G >= 0) & (fg.confinement_batches_G <= 1 + 1e-12))
    # overlaps: absolute cosines <= 1 and subspace overlaps in [0, 1]
    assert fg.overlap_H_G.shape == (3, 3) and np.all(np.abs(fg.overlap_H_G) <= 1 + 1e-9)
    assert all(0 <= v <= 1 + 1e-9 for v in fg.subspace_overlaps.values())
    assert fg.cosine_groups.shape == (3, 3, 3, 3) and fg.num_cosine_samples == 12
    assert set(fg.cosine_stats) == {"same_logit_same_class", "same_logit_diff_class",
                                    "diff_logit_same_class", "diff_logit_diff_class"}
    assert "grad in top-3" in str(fg.summary())
    np.testing.assert_array_equal(fg.predicted_top, cs.eigenvalues("G_cm")[:3])
    assert fg.num_matvecs == H.num_matvecs + G.num_matvecs > 0
    fg.save(tmp_path / "fg")
    back = FortGanguli.load(tmp_path / "fg")
    np.testing.assert_array_equal(back.cosine_groups, fg.cosine_groups)
    assert back.subspace_overlaps == fg.subspace_overlaps


def test_logit_gradient_cosines_match_jacrev():
    model, (X, y) = TANH_C3_UNBALANCED.build()
    _, _, _, fg = _measure(model, (X, y), ks=[1], max_samples=1000)
    groups, stats, n = fg.cosine_groups, fg.cosine_stats, fg.num_cosine_samples
    assert n == X.shape[0]  # whole data set: same pairs as the reference
    d = DenseClassStructure(model, X, y)
    # reference: logit gradients from jacrev, directly on the flat parameters
    names = [k for k, _ in model.named_parameters()]
    named = dict(model.named_parameters())
    theta = torch.cat([named[k].detach().reshape(-1) for k in names])
    sizes = [named[k].numel() for k in names]

    def f(t, x):
        parts = dict(zip(names, (p.view(named[k].shape) for k, p in zip(names, torch.split(t, sizes)))))
        return torch.func.functional_call(model, parts, (x,))

    J = torch.stack([jacrev(lambda t: f(t, X[i:i + 1]).squeeze(0))(theta) for i in range(d.N)])
    Jn = J / J.norm(dim=2, keepdim=True)
    cos = torch.einsum("ikp,jlp->ikjl", Jn, Jn).numpy()
    yy = y.numpy()
    a, b = 0, 1
    mask = np.outer(yy == a, yy == b)
    np.testing.assert_allclose(groups[2, a, 1, b], cos[:, 2, :, 1][mask].mean(), atol=1e-12)
    same = np.outer(yy == a, yy == a) & ~np.eye(d.N, dtype=bool)
    np.testing.assert_allclose(groups[0, a, 0, a], cos[:, 0, :, 0][same].mean(), atol=1e-12)
    assert names  # the model has parameters
    assert np.isfinite(list(stats.values())).all()


def test_fort_ganguli_works_after_memory_fallback():
    model, (X, y) = TANH_C3_UNBALANCED.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        cs = class_structure(model, (X, y), max_bytes=4 * 3 * 51 * 8)
    assert cs.class_means is None
    fg = fort_ganguli(model, (X, y), hessian_operator(model, (X, y)), ggn_operator(model, (X, y)),
                      cs, ks=[3], max_samples=4)
    assert fg.overlap_G_cm.shape[0] == 3


def test_fort_ganguli_on_a_loaded_structure(tmp_path):
    model, data = TANH_C3_UNBALANCED.build()
    cs, H, G, fg = _measure(model, data, ks=[3], max_samples=6, tol=1e-10)
    back = ClassStructure.load(cs.save(tmp_path / "cs"))
    fg2 = fort_ganguli(model, data, H, G, back, ks=[3], max_samples=6, tol=1e-10)
    np.testing.assert_array_equal(fg2.predicted_top, fg.predicted_top)
    np.testing.assert_allclose(fg2.eigenvalues_G, fg.eigenvalues_G, rtol=1e-10)
    np.testing.assert_allclose(np.abs(fg2.overlap_G_cm), np.abs(fg.overlap_G_cm), atol=1e-6)


def test_bad_inputs():
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    H, G = hessian_operator(model, data), ggn_operator(model, data)
    with pytest.raises(InvalidInputError, match="ClassStructure"):
        fort_ganguli(model, data, H, G, cs.overview())
    with pytest.raises(InvalidInputError, match="CurvatureOperator"):
        fort_ganguli(model, data, np.eye(cs.num_params), G, cs)
    with pytest.raises(ShapeError, match="dimension"):
        fort_ganguli(model, data, H, ggn_operator(model, data, params=["2.bias"]), cs)
    with pytest.raises(InvalidInputError, match="no k in ks"):
        fort_ganguli(model, data, H, G, cs, ks=[1000])
    with pytest.raises(InvalidInputError, match="ks"):
        fort_ganguli(model, data, H, G, cs, ks=[0])
