"""A tiny end-to-end run shared by the CLI tests."""

from __future__ import annotations

import contextlib
import io

import pytest
from cli_tiny import TINY

from gn_theory.cli import main


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The output directory of `gn-theory run` on the tiny configuration."""
    out = tmp_path_factory.mktemp("cli") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", "--out", str(out), *TINY]) == 0
    (out.parent / "printed.txt").write_text(printed.getvalue())
    return out
