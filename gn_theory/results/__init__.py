"""Results: the data every gn_theory stage produces, stored and loaded without torch.

Every result type derives from :class:`Result` and shares one vocabulary (see
:mod:`gn_theory.results._base`): ``settings``, ``num_matvecs``, ``params`` /
``bse`` / ``conf_int(alpha)``, eigenvalues in descending order, ``summary()``,
``to_dict()`` / ``from_dict()``, ``save()`` / ``load()``. A result is stored as a
``.npz`` + ``.json`` pair that a crash never leaves half-written (see
:mod:`gn_theory.results._store`); :func:`load_result` loads any of them.

This subpackage imports numpy and scipy only.
"""

from __future__ import annotations

from ._base import Result, load_result
from ._store import SCHEMA_VERSION, atomic_write_bytes, fingerprint, provenance
from ._summary import Summary
from .structure import ClassStructure, FortGanguli, OutlierInputs
from .spectra import Outliers, SpectralDensity, Spectrum, TraceEstimate
from .training import TrainingLog

__all__ = [
    "Result",
    "Summary",
    "load_result",
    # class structure
    "ClassStructure",
    "FortGanguli",
    "OutlierInputs",
    # spectra
    "Spectrum",
    "SpectralDensity",
    "TraceEstimate",
    "Outliers",
    # training
    "TrainingLog",
    "fingerprint",
    "provenance",
    "atomic_write_bytes",
    "SCHEMA_VERSION",
]
