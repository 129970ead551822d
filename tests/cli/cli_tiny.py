"""The tiny configuration of the CLI tests (a 3-class mixture, P = 83: seconds)."""

#: Flags of a tiny configuration: 120 samples of a 3-class Gaussian mixture in 6 dimensions,
#: an MLP 6-8-3 (P = 83), short SLQ runs.
TRAIN = [
    "--data", "gaussian_mixture", "--num-samples", "120", "--num-classes", "3",
    "--num-features", "6", "--model", "mlp", "--width", "8", "--depth", "1",
    "--epochs", "15", "--batch-size", "32", "--lr", "0.1", "--threads", "1", "--quiet",
]
#: The measurement flags (measure, decompose, run).
MEASURE = ["--num-probes", "3", "--num-steps", "20", "--bottom-k", "2"]
#: Every flag of the tiny run.
TINY = TRAIN + MEASURE
#: The files a full run writes.
RUN_FILES = [
    "config.toml", "model.pt", "training.npz", "training.json", "measurement.npz",
    "measurement.json", "decomposition.npz", "decomposition.json", "fit.npz", "fit.json",
    "summary.json", "report.md", "report.html", "figures/spectrum.png",
    "figures/predicted_vs_observed.png", "figures/relative_errors.png", "figures/gram.png",
    "figures/training.png",
]

import contextlib  # noqa: E402
import io  # noqa: E402

import pytest  # noqa: E402

from gn_theory.cli import main  # noqa: E402

_CACHE: dict = {}


@pytest.fixture
def tiny_run(tmp_path_factory):
    """The output directory of `gn-theory run` on the tiny configuration (made once a session).

    A module-level cache, not a conftest.py: a conftest in tests/cli would be imported as
    ``conftest`` before tests/conftest.py is collected (``--doctest-modules``) and clash with it.
    """
    if "run" not in _CACHE:
        out = tmp_path_factory.mktemp("cli") / "run"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["run", "--out", str(out), *TINY]) == 0
        (out.parent / "printed.txt").write_text(printed.getvalue())
        _CACHE["run"] = out
    return _CACHE["run"]
