"""`--resume` end to end (issue 16): an interrupted run continues from OUT/checkpoints/.

A stage interrupted after its checkpointed steps (Ctrl-C in the step after them: the
density of ``measure``, the outlier inputs of ``decompose``) leaves OUT/checkpoints/
behind; without ``--resume`` it is refused (``--force`` deletes it), with ``--resume``
the run continues and gives the same numbers as the uninterrupted tiny run, and the
checkpoints are gone once it succeeds.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
from cli_tiny import MEASURE, TINY, tiny_run  # noqa: F401 (fixture)

import gn_theory.decomposition
import gn_theory.spectra
from gn_theory.analysis import Decomposition
from gn_theory.cli import main


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _numbers(obj):
    """The summary without its timings."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    return obj


def _quiet_main(argv) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


def test_run_resumed_gives_the_summary_of_an_uninterrupted_run(tiny_run, tmp_path, monkeypatch,
                                                               capsys):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(gn_theory.spectra, "spectral_density", _interrupt)  # after the top of H, G, R
        assert _quiet_main(["run", "--out", str(out), *TINY]) == 130
    saved = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert saved == ["measure_G_top.npz", "measure_H_bottom.npz", "measure_H_top.npz",
                     "measure_R_top.npz"]
    capsys.readouterr()
    assert _quiet_main(["run", "--out", str(out), *TINY]) == 1  # never silently used
    err = capsys.readouterr().err
    assert "checkpoints" in err and "--resume" in err and "--force" in err
    assert _quiet_main(["run", "--out", str(out), "--resume", *TINY]) == 0
    assert not (out / "checkpoints").exists()  # removed once the run succeeded
    ref = json.loads((tiny_run / "summary.json").read_text())
    back = json.loads((out / "summary.json").read_text())
    assert _numbers(back) == _numbers(ref)


def test_decompose_resumed_and_forced(tiny_run, tmp_path, monkeypatch, capsys):
    ref = Decomposition.load(tiny_run / "decomposition.json")
    for flag in ("--resume", "--force"):
        out = tmp_path / flag.strip("-")
        argv = ["decompose", str(tiny_run), "--out", str(out), "--quiet", *MEASURE]
        with monkeypatch.context() as m:
            m.setattr(gn_theory.decomposition, "measure_outlier_inputs", _interrupt)
            assert _quiet_main(argv) == 130
        assert (out / "checkpoints" / "decompose_class_structure.npz").is_file()
        assert not (tiny_run / "checkpoints").exists()  # the source is left alone
        assert _quiet_main([*argv, flag]) == 0
        assert not (out / "checkpoints").exists()
        back = Decomposition.load(out / "decomposition.json")
        assert np.array_equal(back.structure.K, ref.structure.K)
        assert np.array_equal(back.structure.class_counts, ref.structure.class_counts)
        assert back.structure.loss_value == ref.structure.loss_value
        assert np.array_equal(back.inputs.observed.eigenvalues, ref.inputs.observed.eigenvalues)


def test_resume_without_checkpoints_starts_afresh(tiny_run, tmp_path):
    out = tmp_path / "fresh"
    argv = ["measure", str(tiny_run), "--out", str(out), "--resume", *MEASURE]
    assert _quiet_main(argv) == 0
    assert (out / "measurement.json").is_file() and not (out / "checkpoints").exists()
    assert _quiet_main(["measure", str(tiny_run), "--out", str(out), "--no-checkpoints",
                        "--force", *MEASURE]) == 0
