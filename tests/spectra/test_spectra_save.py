"""Spectral results of real estimator runs save and load exactly, with their settings."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

import gn_theory as gt
import gn_theory.results
import gn_theory.spectra
from gn_theory.results import (
    Outliers,
    SpectralDensity,
    Spectrum,
    TraceEstimate,
    load_result,
)
from gn_theory.spectra import eigh, lanczos, outliers, slq, trace


def _assert_same(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, f.name


def test_results_round_trip_exactly(tmp_path, tiny_model):
    model, data = tiny_model
    op = gt.hessian_operator(model, data)
    objs = [
        lanczos(op, 3, seed=0),
        lanczos(op, 3, seed=0, return_eigenvectors=False),
        eigh(op),
        slq(op, num_probes=3, num_steps=10, seed=0),
        trace(op, method="hutch++", num_matvecs=12, seed=0),
        outliers(np.r_[np.linspace(0, 1, 20), 5.0]),
    ]
    for i, obj in enumerate(objs):
        path = obj.save(tmp_path / f"r{i}")
        back = type(obj).load(path)
        _assert_same(obj, back)
        _assert_same(obj, load_result(tmp_path / f"r{i}.json"))
    meta = json.loads((tmp_path / "r0.json").read_text())
    fields = meta["fields"]
    assert fields["settings"]["kind"] == "hessian" and fields["settings"]["model"] == "Sequential"
    assert fields["settings"]["dtype"] == "float64" and fields["settings"]["device"] == "cpu"
    assert fields["seed"] == 0 and "torch" in meta["provenance"]
    assert isinstance(objs[0], Spectrum) and isinstance(objs[3], SpectralDensity)
    assert isinstance(objs[4], TraceEstimate) and isinstance(objs[5], Outliers)


def test_result_classes_are_the_same_everywhere():
    for name in ("Spectrum", "SpectralDensity", "TraceEstimate", "Outliers"):
        a, b = getattr(gn_theory.spectra, name), getattr(gn_theory.results, name)
        assert a is b is getattr(gt, name)
