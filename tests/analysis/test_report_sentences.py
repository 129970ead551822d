"""Every sentence of the report, computed from hand-made numbers: it says what they show, no more."""

from __future__ import annotations

import math

import pytest

from gn_theory.report import (
    Block,
    best_predictor_sentence,
    build_report,
    describe_run,
    identity_sentence,
    isotropy_sentence,
    mp_sentence,
    negative_sentence,
    outlier_sentence,
    predictor_sentence,
    rank_sentence,
    render_html,
    render_markdown,
    residual_sentence,
    spiked_sentence,
    top_agreement_sentence,
    trace_share_sentence,
    training_sentence,
)


# ---------------------------------------------------------------------------- identities
def test_identity_holds_and_fails():
    assert identity_sentence("H = G + R", 3e-15, num_probes=4) == \
        "H = G + R holds to 3e-15 (relative error on 4 random probes, float64)."
    assert identity_sentence("H = G + R", 2e-6, dtype="float32").startswith(
        "H = G + R holds to 2e-06")
    s = identity_sentence("G = G_cm + G_w", 2e-6)
    assert s.startswith("G = G_cm + G_w does not hold: relative error 2e-06") and "holds to" not in s
    assert identity_sentence("H = G + R", None) == "H = G + R was not checked."
    assert identity_sentence("H = G + R", math.nan) == "H = G + R was not checked."


# ---------------------------------------------------------------------------- outlier counts
def _count(n, C, rule="gap", ratio=3.0, rank=None, **kw):
    return {"operator": "H", "rule": rule, "count": n, "num_classes": C,
            "largest_gap_ratio": ratio, "largest_gap_rank": rank or n, "min_ratio": 2.0,
            "num_candidates": 30, **kw}


def test_outliers_equal_to_C():
    assert outlier_sentence(_count(10, 10, ratio=3.4)) == (
        "10 outliers of H found by the log-gap rule for C = 10 classes (= C): the ratio "
        "across the gap after rank 10 is 3.4.")


def test_outliers_equal_to_C_minus_1_and_neither():
    assert "(= C - 1)" in outlier_sentence(_count(9, 10))
    s = outlier_sentence(_count(4, 10))
    assert "(the theory expects C = 10 or C - 1 = 9)" in s and "(= C" not in s
    assert "1 outlier of H found" in outlier_sentence(_count(1, 10))


def test_no_outliers_says_the_largest_ratio():
    s = outlier_sentence(_count(0, 10, ratio=1.37, rank=5))
    assert s == ("No outliers of H found by the log-gap rule among the top 30 eigenvalues: the "
                 "largest ratio of consecutive eigenvalues is 1.37 (after rank 5), below the "
                 "threshold 2; the theory expects C = 10 or C - 1 = 9.")


def test_outliers_without_classes_and_mp_edge_rule():
    s = outlier_sentence(_count(3, None, rule="mp_edge", edges={"mp_edge": 2.9}))
    assert s == ("3 outliers of H found by the MP-edge rule: the eigenvalues above the cut 2.9 "
                 "of a credible Marchenko-Pastur fit.")


def test_uncredible_mp_edge_is_explained_once():
    o = _count(0, 3, ratio=1.2, counts={"gap": 0, "mp_edge": 12}, bulk_credible=False,
               bulk_reason="its KS statistic 0.8 exceeds 0.1")
    assert "The MP-edge rule was not used: the bulk fit is not credible (its KS statistic 0.8" \
        in outlier_sentence(o)
    assert "MP-edge rule was not used" not in outlier_sentence(o, explain_rule=False)
    assert outlier_sentence(None) == "The outliers were not counted."


# ---------------------------------------------------------------------------- predictors
def test_predictor_misses_and_lands():
    assert predictor_sentence("iid", [-0.9, -0.87, -0.9] + [-0.89] * 7) == (
        "The iid predictor misses the top-10 outliers of G by 89 % (mean |relative error|; "
        "all too low).")
    assert predictor_sentence("subspace", [0.03, 0.04]) == (
        "The subspace predictor lands within 3.5 % of the top-2 outliers of G (mean |relative "
        "error|; all too high).")


def test_predictor_mixed_signs_claim_no_direction():
    s = predictor_sentence("bgn", [0.5, -0.5, 0.2])
    assert "misses the top-3" in s and "all too" not in s and "40 %" in s


def test_predictor_threshold_is_ten_percent():
    assert "lands within 10 %" in predictor_sentence("a", [0.1, -0.1])
    assert "misses the top-2 outliers of G by 11 %" in predictor_sentence("a", [0.11, -0.11])


def test_predictor_ignores_non_comparable_entries():
    assert "top-2" in predictor_sentence("iid", [0.01, None, float("nan"), 0.02])
    assert predictor_sentence("iid", [None]) == (
        "The iid predictor could not be compared with observed outliers of G.")


def test_best_predictor():
    assert best_predictor_sentence({"iid": 0.89, "subspace_corrected": 0.033, "bgn": 1.14,
                                    "additive": None}) == \
        "Closest: subspace_corrected (3.3 %); farthest: bgn (114 %)."
    assert best_predictor_sentence({"iid": 0.2}) == "Only iid could be compared (20 %)."
    assert best_predictor_sentence({}) == "No predictor could be compared with observed outliers."


# ---------------------------------------------------------------------------- fits
def _mp(**kw):
    d = {"fitted_to": "the SLQ density of G", "converged": True, "ks_statistic": 0.05,
         "third_moment_ratio": 1.02, "params": {"scale": 2.3, "ratio": 0.4},
         "conf_int": {"scale": [2.2, 2.4], "ratio": [0.38, 0.42]}, "alpha": 0.05,
         "n_outliers": 2, "n_total": 600, "weighted": False}
    d.update(kw)
    return d


def test_mp_fits():
    assert mp_sentence(_mp()) == (
        "The Marchenko-Pastur law fits the SLQ density of G: KS distance 0.05 (at most 0.1); "
        "fitted scale 2.3 [2.2, 2.4], ratio 0.4 [0.38, 0.42] (95 % intervals), with 2 of 600 "
        "values excluded as outliers.")


def test_mp_does_not_fit():
    s = mp_sentence(_mp(ks_statistic=0.56, third_moment_ratio=0.11, weighted=True,
                        n_outliers=721, n_total=5578))
    assert s.startswith("The Marchenko-Pastur law does not describe the SLQ density of G: KS "
                        "distance 0.56 (above 0.1) and third moment 0.11x the law's")
    assert "the mass of 721 of 5578 eigenvalues excluded" in s
    # a small KS but a fit that did not converge does not "fit"
    s = mp_sentence(_mp(converged=False, message="degenerate data"))
    assert s.startswith("The Marchenko-Pastur law does not describe") and "degenerate data" in s
    # no intervals without a bootstrap
    s = mp_sentence(_mp(conf_int={"scale": [None, None], "ratio": [None, None]}))
    assert "fitted scale 2.3, ratio 0.4, with" in s and "intervals" not in s
    assert mp_sentence(None) == "No Marchenko-Pastur fit was made."


def test_spiked():
    sp = {"num_outliers": 3, "num_spikes": 2, "separation": 4.1, "spikes": [9.0, 4.0, None],
          "model": "multiplicative", "weighted": False}
    assert spiked_sentence(sp, bulk_fits=True) == (
        "3 values lie above the fitted bulk; 2 of them lie beyond the separation 4.1 and imply "
        "multiplicative BBP spikes of strength 9, 4.")
    s = spiked_sentence({**sp, "weighted": True}, bulk_fits=False)
    assert s.startswith("3 SLQ nodes lie above the fitted bulk (2 beyond the separation 4.1)")
    assert "not meaningful and are not quoted" in s and "9" not in s
    assert "no spikes" in spiked_sentence({**sp, "num_outliers": 0, "num_spikes": 0})
    assert spiked_sentence(None) == "No spiked model was fitted."


# ---------------------------------------------------------------------------- spectra
def test_residual_small_or_not():
    assert residual_sentence({"H": [0.18], "R": [0.0012]}).startswith("R is small next to G:")
    s = residual_sentence({"H": [1.0], "R": [0.5]})
    assert s == "R is not small next to G: its largest eigenvalue, 0.5, is 50 % of H's largest, 1."
    assert "not measured" in residual_sentence({"H": [1.0]})


def test_top_agreement():
    assert top_agreement_sentence({"H": [1.0, 0.5], "G": [1.001, 0.5]}) == \
        "The top-2 eigenvalues of H and G agree within 0.1 %."
    assert "differ by up to 50 %" in top_agreement_sentence({"H": [1.0, 0.5], "G": [1.0, 1.0]})
    assert "not both measured" in top_agreement_sentence({"H": [1.0]})


def test_negative_end():
    assert negative_sentence([-0.1, -0.05], [1.0], converged=True) == (
        "H has negative eigenvalues: the smallest is -0.1, 10 % of H's largest in magnitude "
        "(converged).")
    assert "smallest estimate" in negative_sentence([-0.1], [1.0], converged=False)
    assert "no negative eigenvalue found" in negative_sentence([0.01], [1.0])
    assert "not measured" in negative_sentence([], [1.0])


def test_isotropy():
    d = {"within_energy_in_span": 0.75, "random_baseline": 0.018, "span_dim": 100,
         "num_within_vectors": 30}
    assert "is not isotropic" in isotropy_sentence(d)
    iso = isotropy_sentence({**d, "within_energy_in_span": 0.05})
    assert "consistent with an isotropic" in iso and "not isotropic" not in iso
    # 5 x baseline but below the 20 % floor still counts as isotropic
    assert "consistent" in isotropy_sentence({**d, "within_energy_in_span": 0.15})
    assert "not measured" in isotropy_sentence({"within_energy_in_span": None})


def test_trace_rank_training():
    assert trace_share_sentence({"class_mean_trace_share": 0.25}) == (
        "The class means (G_cm) carry 25 % of tr G; the within-class part G_w the other 75 %.")
    assert rank_sentence(120, 10).startswith("G_cm has 120 nonzero eigenvalues, above the bound")
    assert "not measured" in rank_sentence(None, 10)
    t = {"loss": 0.5, "accuracy": 0.875, "num_steps": 10, "optimizer": "adam",
         "eval_accuracy": 0.8}
    assert training_sentence(t) == ("Training (adam, 10 steps) ended at 87.5 % training accuracy "
                                     "and loss 0.5; 80.0 % on the held-out split.")
    assert training_sentence(None) == "No training log was recorded."


def test_describe_run():
    assert describe_run({"num_classes": 4, "settings": {"fit": {"spectrum": "eigs.npy"}}}) == \
        "A spectrum from another tool (eigs.npy), C = 4 classes."
    s = describe_run({"num_params": 74, "num_samples": 200, "num_classes": 2, "settings": {
        "data": {"data": "blobs", "random_inputs": True}, "model": {"model": "linear"}}})
    assert s == "linear (P = 74 parameters) on N = 200 samples of blobs (random inputs), C = 2 classes."


# ---------------------------------------------------------------------------- rendering
def test_build_and_render(tmp_path):
    png = tmp_path / "figures" / "spectrum.png"
    png.parent.mkdir()
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    summary = {"num_params": 10, "num_samples": 5, "num_classes": 2, "settings": {},
               "top_eigenvalues": {"H": [2.0, 1.0], "G": [2.0, 1.0], "R": [1e-3]},
               "identity": {"H = G + R": 1e-16}, "identity_probes": 4, "dtype": "float64",
               "outliers": _count(1, 2, ratio=2.0), "skipped": ["the predictors (no structure)"]}
    blocks = build_report(summary, {"spectrum": "figures/spectrum.png"})
    assert all(isinstance(b, Block) for b in blocks)
    md = render_markdown(blocks)
    assert "- H = G + R holds to 1e-16" in md and "![spectrum](figures/spectrum.png)" in md
    assert "| rank | H | G | R |" in md and "Not run: the predictors (no structure)." in md
    page = render_html(blocks, tmp_path)
    assert "data:image/png;base64," in page and "<script" not in page
    assert "&lt;" not in page.split("<body>")[0]
    with pytest.raises(FileNotFoundError):
        render_html(blocks, tmp_path / "elsewhere")
