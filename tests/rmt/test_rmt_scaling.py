"""scaling_fit: recovery of planted laws, interval coverage, modes, summary, save/load, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gn_theory.exceptions import InvalidInputError
from gn_theory.rmt import ScalingFit, scaling_fit


def _power_law(seed, *, a=2.5, b=-0.7, noise=0.05, n=12):
    rng = np.random.default_rng(seed)
    x = np.geomspace(1.0, 1000.0, n)
    y = a * x**b * np.exp(noise * rng.standard_normal(n))
    return x, y


def test_recovers_power_law_exponent():
    x, y = _power_law(0, noise=0.02)
    fit = scaling_fit(x, y, x_name="width", y_name="top eigenvalue")
    assert fit.log == "both"
    assert fit.exponent == pytest.approx(-0.7, abs=0.02)
    assert fit.prefactor == pytest.approx(2.5, rel=0.05)
    assert fit.nobs == 12 and fit.df_resid == 10
    assert fit.rsquared > 0.99
    assert fit.exponent_se == pytest.approx(float(fit.bse[1]))
    # numbers equal a direct least-squares fit on the log axes
    lx, ly = np.log(x), np.log(y)
    slope, icpt, r, _, se = stats.linregress(lx, ly)
    assert fit.slope == pytest.approx(slope, rel=1e-10)
    assert fit.intercept == pytest.approx(icpt, rel=1e-10)
    assert fit.exponent_se == pytest.approx(se, rel=1e-8)
    assert fit.rsquared == pytest.approx(r**2, rel=1e-10)
    # interval = params -+ t quantile * bse
    q = stats.t.ppf(0.975, 10)
    np.testing.assert_allclose(fit.conf_int(), np.column_stack([fit.params - q * fit.bse, fit.params + q * fit.bse]))
    lo, hi = fit.exponent_conf_int(0.1)
    assert lo < fit.exponent < hi and hi - lo < fit.conf_int(0.05)[1, 1] - fit.conf_int(0.05)[1, 0]
    # prediction
    assert fit.predict(10.0) == pytest.approx(math.exp(fit.intercept) * 10.0**fit.exponent, rel=1e-12)
    pred, lo_b, hi_b = fit.predict(np.array([1.0, 30.0]), interval=True)
    assert np.all(lo_b < pred) and np.all(pred < hi_b)


def test_confidence_interval_coverage_over_seeds():
    """The 90% interval of the exponent covers the truth at about the nominal rate."""
    seeds = range(200)
    hits = 0
    for seed in seeds:
        x, y = _power_law(seed, noise=0.2, n=8)
        lo, hi = scaling_fit(x, y, alpha=0.1).exponent_conf_int()
        hits += lo <= -0.7 <= hi
    rate = hits / len(seeds)
    # binomial sd at p = 0.9, n = 200 is 0.021
    assert 0.84 <= rate <= 0.96


def test_linear_and_semilog_modes():
    rng = np.random.default_rng(1)
    x = np.linspace(1.0, 10.0, 15)
    eps = 0.01 * rng.standard_normal(15)
    lin = scaling_fit(x, 3.0 + 2.0 * x + eps, log=False)
    assert lin.log == "none" and lin.slope == pytest.approx(2.0, abs=0.01)
    assert lin.prefactor == pytest.approx(lin.intercept) and lin.intercept == pytest.approx(3.0, abs=0.05)
    assert lin.predict(4.0) == pytest.approx(3.0 + 8.0, abs=0.05)
    semix = scaling_fit(x, 1.0 + 0.5 * np.log(x) + eps, log="x")
    assert semix.log == "x" and semix.slope == pytest.approx(0.5, abs=0.02)
    semiy = scaling_fit(x, 4.0 * np.exp(-0.3 * x + eps), log="y")
    assert semiy.log == "y" and semiy.slope == pytest.approx(-0.3, abs=0.01)
    assert semiy.prefactor == pytest.approx(4.0, rel=0.03)
    assert scaling_fit(x, 4.0 * x**1.5, log="both").exponent == pytest.approx(1.5, rel=1e-10)
    # semi-log y accepts x <= 0 (x is not logged); linear accepts negative y
    assert scaling_fit(x - 5.0, np.exp(x), log="y").slope == pytest.approx(1.0, rel=1e-10)
    assert scaling_fit(x, -x, log=False).slope == pytest.approx(-1.0, rel=1e-10)
    # robust covariance option
    hc = scaling_fit(x, 3.0 + 2.0 * x + eps, log=False, cov_type="HC3")
    assert hc.cov_type == "HC3" and hc.slope == pytest.approx(lin.slope, rel=1e-12)


def test_summary_text():
    x, y = _power_law(2)
    fit = scaling_fit(x, y, x_name="data std", y_name="outlier")
    text = str(fit.summary())
    assert "outlier" in text and "data std" in text
    assert "exponent b" in text and "95% CI" in text and "prefactor a" in text
    assert f"{fit.slope:.6g}" in text
    assert "log-normal" in text  # the note on the back-transformed prefactor
    assert fit.summary().as_text() == text
    assert "<table" in fit.summary().as_html()
    assert "90% CI" in str(fit.summary(alpha=0.1))
    few = scaling_fit([1.0, 2.0, 4.0, 8.0], [1.0, 2.1, 3.9, 8.2])
    assert "Only 4 points" in str(few.summary())
    assert "Only" not in text
    lin = scaling_fit(x, y, log=False)
    assert "slope b" in str(lin.summary()) and "prefactor" not in str(lin.summary())
    assert "ScalingFit(log='both'" in repr(fit)


def test_save_load_round_trip(tmp_path):
    x, y = _power_law(3)
    fit = scaling_fit(x, y, alpha=0.1, x_name="P", y_name="bulk width")
    fit.settings["note"] = "planted"
    path = fit.save(tmp_path / "fit")
    assert path.suffix == ".json" and (tmp_path / "fit.npz").exists()
    back = ScalingFit.load(tmp_path / "fit")
    for name in ("x", "y", "params", "bse", "cov_params", "pvalues"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fit, name))
    for name in ("log", "alpha", "rsquared", "nobs", "df_resid", "resid_std", "cov_type", "x_name", "y_name"):
        assert getattr(back, name) == getattr(fit, name), name
    assert back.settings == fit.settings and back.settings["note"] == "planted"
    np.testing.assert_allclose(back.conf_int(0.2), fit.conf_int(0.2), rtol=1e-14)
    assert str(back.summary()) == str(fit.summary())
    # the statsmodels object is rebuilt by refitting
    np.testing.assert_allclose(back.results.params, fit.params, rtol=1e-12)
    assert back.predict(7.0) == pytest.approx(fit.predict(7.0), rel=1e-14)


@pytest.mark.parametrize(
    "x,y,kwargs,match",
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], {}, "same length"),
        ([1.0, 2.0], [1.0, 2.0], {}, "at least 3"),
        ([1.0, 2.0, float("nan")], [1.0, 2.0, 3.0], {}, "non-finite"),
        ([1.0, 2.0, 3.0], [1.0, float("inf"), 3.0], {}, "non-finite"),
        ([1.0, -2.0, 3.0], [1.0, 2.0, 3.0], {}, "> 0"),
        ([1.0, 2.0, 3.0], [1.0, 0.0, 3.0], {"log": "y"}, "> 0"),
        ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], {}, "constant"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], {"log": "z"}, "log must be"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], {"alpha": 1.5}, "alpha"),
        (5.0, [1.0, 2.0, 3.0], {}, "1-d"),
        ([[1.0, 2.0, 3.0]], [1.0, 2.0, 3.0], {}, "1-d"),
        (["a", "b", "c"], [1.0, 2.0, 3.0], {}, "real numbers"),
    ],
)
def test_bad_input(x, y, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        scaling_fit(x, y, **kwargs)


def test_bad_input_after_fit(tmp_path):
    fit = scaling_fit([1.0, 2.0, 4.0, 8.0], [1.0, 2.0, 4.1, 7.9])
    with pytest.raises(InvalidInputError):
        fit.conf_int(alpha=0.0)
    with pytest.raises(InvalidInputError):
        fit.predict(-1.0)  # x on a log axis
    with pytest.raises(InvalidInputError):
        ScalingFit.load(tmp_path / "missing")
