"""Random-matrix models of curvature spectra: Marchenko-Pastur bulks and BBP outliers.

Conventions (used throughout): ``ratio`` gamma = dimension / number of samples
(p / n); ``scale`` sigma^2 = the population variance, so the MP bulk is
``[scale (1 - sqrt(ratio))**2, scale (1 + sqrt(ratio))**2]`` with an atom of
mass ``1 - 1/ratio`` at zero when ``ratio > 1``. A multiplicative spike
``theta`` is a population eigenvalue ``scale * (1 + theta)``.

This subpackage is torch-free: it works on numpy arrays and on the results
objects of :mod:`gn_theory.spectra` and :mod:`gn_theory.decomposition`.
"""

from __future__ import annotations

from ._mp import MarchenkoPastur, marchenko_pastur, mp_edges, mp_moment

__all__ = [
    # Marchenko-Pastur law
    "MarchenkoPastur",
    "marchenko_pastur",
    "mp_edges",
    "mp_moment",
]
