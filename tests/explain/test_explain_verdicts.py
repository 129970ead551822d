"""The verdicts of predict_outliers on a trained classifier (issue 12).

Fixture: a 4-class Gaussian mixture, a 10-16-4 ReLU MLP trained to 100 % train
accuracy (seconds on a CPU). Its Gauss-Newton matrix shows the pattern of real MNIST
(docs/theory.md section 5b): the MP predictors miss the top of G by ~90 %, bgn's edge is
G_w's top eigenvalue (itself an outlier of G_w), the class-mean subspace explains the
top within a few per cent; and its exact spectrum has a known count: the top 4 (= C)
eigenvalues are separated from the rest by a gap ratio of 2.6.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from gn_theory.data import load_dataset
from gn_theory.decomposition import class_structure, measure_outlier_inputs
from gn_theory.explain import OutlierPrediction, predict_outliers
from gn_theory.models import build_model
from gn_theory.operators import ggn_operator
from gn_theory.rmt import count_outliers
from gn_theory.spectra import eigh, lanczos, slq
from gn_theory.training import train

C = 4


@pytest.fixture(scope="module")
def fixture():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = load_dataset("gaussian_mixture", num_samples=400, num_classes=C, num_features=10,
                          separation=4.0, noise=1.0, seed=0)
        net = build_model("mlp", input_shape=ds.input_shape, num_classes=C, width=16, depth=1,
                          seed=0)
        train(net, ds, optimizer="sgd", lr=0.05, momentum=0.9, batch_size=32, epochs=30, seed=0)
        net = net.double()
        data = (ds.train_inputs.double(), ds.train_targets)
        assert float((net(data[0]).argmax(1) == data[1]).double().mean()) == 1.0
        cs = class_structure(net, data)
        G = ggn_operator(net, data)
        dense = eigh(G).eigenvalues  # descending, the exact spectrum
        inputs = measure_outlier_inputs(G, cs, k=C, num_probes=4, num_steps=60, seed=0)
        top = lanczos(G, 3 * C, seed=0, return_eigenvectors=False)
        density = slq(G, num_probes=4, num_steps=60, seed=0)
        pred = predict_outliers(cs, inputs=inputs)
        yield cs, dense, inputs, top, density, pred
    finally:
        torch.set_num_threads(n)


def test_the_fixture_has_a_known_count(fixture):
    dense = fixture[1]
    ratios = dense[: 3 * C] / dense[1 : 3 * C + 1]
    assert int(np.argmax(ratios)) + 1 == C and ratios[C - 1] > 2.5  # the known answer: C


def test_outlier_count_on_the_trained_classifier(fixture):
    _, dense, _, top, density, _ = fixture
    res = count_outliers(top, density, num_classes=C)
    assert res.count == C and res.rule == "gap" and res.matches_classes["C"]
    np.testing.assert_allclose(res.values, dense[:C], rtol=1e-8)
    # the MP edge of this bulk is not credible (not MP, heavy tail), and the result says so
    assert not res.bulk_credible and "mp_edge" in res.counts
    assert "The MP-edge count is not used" in str(res.summary())
    # from the density alone (per-rank medians of the probes' nodes)
    assert count_outliers(density, num_classes=C).count == C


def test_default_bulk_edge_lies_below_the_observed_outliers(fixture):
    _, dense, _, _, _, pred = fixture
    first, *others = pred.bulk_alternatives
    assert first["label"] == "outliers excluded" and first["edge_ok"] is True
    assert first["upper_edge"] < pred.observed[:C].min()
    assert pred.diagnostics["bulk_edge_ok"] is True
    assert pred.bulk is not None and pred.bulk.settings["exclude_outliers"] == "auto"
    assert pred.ratio == first["ratio"] and pred.scale == first["scale"]
    # nothing excluded: the edge lands among the observed; the summary says how the verdict moves
    none = next(a for a in others if a["label"] == "nothing excluded")
    assert none["edge_ok"] is False and none["upper_edge"] > pred.observed[:C].min()
    text = str(pred.summary())
    for m in ("iid", "additive"):
        line = next(n for n in pred.summary().notes if n.startswith(f"Sensitivity of {m}"))
        for a in pred.bulk_alternatives:
            e = a["errors"][m]
            assert f"{a['label']}: mean {100 * e['mean']:+.1f}%, {e['direction']}" in line
        same = len({a["errors"][m]["direction"] for a in pred.bulk_alternatives}) == 1
        assert ("verdict holds" in line) == same and ("CHANGES" in line) == (not same)
    assert "FAILED the edge rule" not in text


def test_mp_verdicts_and_directions_follow_the_numbers(fixture):
    pred = fixture[5]
    errs = pred.relative_errors
    for i, m in enumerate(pred.methods):
        e = errs[i]
        d = pred.directions[m]
        if np.mean(np.abs(e)) <= 0.1:
            assert d == "within 10% on average"
        elif np.all(e < 0):
            assert d == "too low"
        elif np.all(e > 0):
            assert d == "too high"
        else:
            assert d == "mixed"
    assert pred.directions["iid"] == "too low" and pred.mean_abs_errors["iid"] > 0.8
    assert pred.directions["bgn"] != "too low"  # bgn is not "too low": the old note said so
    note = next(n for n in pred.summary().notes if n.startswith("Against the observed top"))
    for i, m in enumerate(pred.methods):
        e = errs[i]
        assert (f"{m} {pred.directions[m]} (mean {100 * np.mean(e):+.1f}%, range "
                f"{100 * e.min():+.1f}% to {100 * e.max():+.1f}%)") in note
    best = pred.best_method
    assert f"Best predictor: {best} (mean |relative error| {100 * pred.mean_abs_errors[best]:.1f}%)" in note
    assert best.startswith("subspace")
    # the isotropy note names the largest error among the generic-position predictors
    iso = pred.summary().notes[0]
    generic = {m: pred.mean_abs_errors[m] for m in ("iid", "additive", "bgn")}
    worst = max(generic, key=generic.get)
    assert f"is {100 * generic[worst]:.0f}% ({worst})" in iso
    assert "too low" not in iso


def test_bgn_degenerate_edge_is_flagged(fixture):
    pred = fixture[5]
    i = pred.methods.index("bgn")
    b = pred.edges[i]
    at_edge = np.abs(pred.predicted[i] - b) <= 0.01 * b
    assert at_edge.all() and pred.diagnostics["bgn_at_edge"] == pred.k
    # b is G_w's top eigenvalue, far above the MP edge of G_w with outliers excluded
    assert pred.diagnostics["bgn_edge_over_bulk_edge"] > 1.05
    assert b == pytest.approx(pred.diagnostics["within_top_eigenvalue"], rel=1e-6)
    note = next(n for n in pred.summary().notes if n.startswith("bgn is degenerate"))
    assert f"{pred.k} of its {pred.k} predictions" in note and "itself an outlier of G_w" in note
    energy = pred.diagnostics["within_top_energy_in_span"]
    assert f"{100 * energy:.0f}% of the energy of G_w's top eigenvector" in note


def test_table_markers_say_what_the_numbers_are(fixture):
    pred = fixture[5]
    marks = pred.markers()
    for i, m in enumerate(pred.methods):
        for j in range(pred.k):
            if m.startswith("subspace"):
                top_w = pred.diagnostics["within_top_eigenvalue"]
                assert (marks[i, j] == "+") == (pred.predicted[i, j] <= top_w)
            elif not pred.above[i, j]:
                assert marks[i, j] == "*"
            else:
                near = abs(pred.predicted[i, j] - pred.edges[i]) <= 0.01 * abs(pred.edges[i])
                assert marks[i, j] == ("~" if near else "")
    table = pred.table()
    for mark in ("*", "~", "+"):
        assert (f"({mark} = " in table) == (mark in set(marks.ravel().tolist()))
    assert "value is its bulk edge" not in table or "*" in set(marks.ravel().tolist())
    assert "Ritz value at or below the top eigenvalue of G_w" in table  # not "the bulk edge"


def test_class_mean_trace_share_exact_and_slq_interval(fixture):
    cs, dense, inputs, _, _, pred = fixture
    assert inputs.trace is not None and inputs.trace.method == "exact"
    assert inputs.trace.estimate == pytest.approx(dense.sum(), rel=1e-10)
    d = pred.diagnostics
    share = float(np.trace(cs.gram("G_cm"))) / dense.sum()
    assert d["trace_source"] == "exact"
    assert d["class_mean_trace_share"] == pytest.approx(share, rel=1e-10)
    assert f"G_cm carries {100 * share:.1f}% of tr G (exact)" in str(pred.summary())
    # without the exact trace: the SLQ share with an interval that covers the exact value
    slq_pred = predict_outliers(cs, inputs=inputs.__class__(**{**inputs.__dict__, "trace": None}))
    ds = slq_pred.diagnostics
    lo, hi = ds["class_mean_trace_share_interval"]
    assert ds["trace_source"].startswith("SLQ trace of G_w") and lo <= share <= hi
    assert f"95% interval [{100 * lo:.1f}%, {100 * hi:.1f}%]" in str(slq_pred.summary())


def test_every_number_in_the_notes_is_in_the_result(fixture, tmp_path):
    pred = fixture[5]
    back = OutlierPrediction.load(pred.save(tmp_path / "pred"))
    assert str(back.summary()) == str(pred.summary())
    assert back.bulk_alternatives == pred.bulk_alternatives
    text = " ".join(pred.summary().notes)
    # the percentages quoted in the notes are all derived from stored fields
    pcts = {float(x) for x in re.findall(r"([+-]?\d+\.\d)%", text)}
    derived = set()
    for e in pred.relative_errors:
        derived |= {round(100 * float(np.mean(e)), 1), round(100 * float(e.min()), 1),
                    round(100 * float(e.max()), 1), round(100 * float(np.mean(np.abs(e))), 1)}
    for a in pred.bulk_alternatives:
        derived |= {round(100 * v["mean"], 1) for v in a["errors"].values()}
    d = pred.diagnostics
    derived |= {round(100 * d[key], 1) for key in ("within_energy_in_span", "random_baseline",
                                                  "class_mean_trace_share")}
    assert pcts <= {abs(x) for x in derived} | derived, pcts - derived
