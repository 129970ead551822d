"""`gn-theory validate` hands over to the validation suite of a source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

from gn_theory.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_runs_the_suite_from_a_checkout(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["validate", "--help"]) == 0
    assert "python -m validation" in capsys.readouterr().out


def test_validate_outside_a_checkout_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != ROOT])
    for name in [m for m in sys.modules if m == "validation" or m.startswith("validation.")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["validate", "--quick", "--out", "x"]) == 2
    assert "source checkout" in capsys.readouterr().err
