"""Exit codes and messages of the CLI: bad flags, missing or corrupt inputs, --force, TOML."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from cli_tiny import TRAIN, tiny_run  # noqa: F401 (fixture)

from gn_theory.cli import main


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _no_leftovers(parent):
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


@pytest.mark.parametrize("argv, words", [
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--lr", "abc"], "invalid float value: 'abc'"),
    (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "--data", "imagenet"], "unknown dataset 'imagenet'"),
    (["train", "--model", "resnet"], "unknown model 'resnet'"),
    (["measure"], "measure needs the run directory"),
    (["run", "--dtype", "float16"], "invalid choice: 'float16'"),
])
def test_usage_errors_exit_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing was written


def test_cuda_asked_and_absent(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["train", "--out", str(tmp_path / "c"), "--device", "cuda", *TRAIN]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu" in err
    assert not (tmp_path / "c").exists() and not _no_leftovers(tmp_path)


def test_missing_run_directory(tmp_path, capsys):
    assert main(["measure", str(tmp_path / "nowhere")]) == 1
    assert "no run directory" in capsys.readouterr().err


def test_missing_stage_input(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["fit", str(empty), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no measurement.json" in err and "gn-theory measure" in err
    assert main(["measure", str(empty), "--quiet"]) == 1
    assert "no model.pt" in capsys.readouterr().err
    assert main(["report", str(empty), "--quiet"]) == 1
    assert "no summary.json" in capsys.readouterr().err
    assert list(empty.iterdir()) == [] and not _no_leftovers(tmp_path)


def test_corrupt_input_is_a_clear_error_and_nothing_is_overwritten(tiny_run, tmp_path, capsys):
    run = tmp_path / "corrupt"
    shutil.copytree(tiny_run, run)
    data = (run / "measurement.npz").read_bytes()
    (run / "measurement.npz").write_bytes(data[: len(data) // 2])  # truncated
    before = _snapshot(run)
    assert main(["fit", str(run), "--force", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "measurement" in err and "Traceback" not in err
    assert _snapshot(run) == before and not _no_leftovers(tmp_path)
    (run / "model.pt").write_bytes(b"not a checkpoint")
    assert main(["measure", str(run), "--force", "--quiet"]) == 1
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_debug_shows_the_error(tmp_path):
    from gn_theory.exceptions import ResultFileError

    with pytest.raises(ResultFileError):
        main(["measure", str(tmp_path / "nowhere"), "--debug"])


def test_existing_output_is_refused(tiny_run, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["train", "--out", str(out), *TRAIN]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep me" and not _no_leftovers(tmp_path)
    # a stage whose outputs are already in the run directory
    run = tmp_path / "again"
    shutil.copytree(tiny_run, run)
    before = _snapshot(run)
    assert main(["measure", str(run), "--quiet"]) == 1
    assert "already has the outputs of `measure`" in capsys.readouterr().err
    assert _snapshot(run) == before


def test_force_replaces_only_on_success(tmp_path, capsys):
    out = tmp_path / "forced"
    out.mkdir()
    (out / "old.txt").write_text("old run")
    # a failing run with --force leaves the old directory as it was
    bad = [*TRAIN]
    bad[bad.index("gaussian_mixture")] = str(tmp_path / "missing.npz")
    assert main(["train", "--out", str(out), "--force", *bad]) == 1
    assert "missing.npz" in capsys.readouterr().err
    assert (out / "old.txt").read_text() == "old run" and not _no_leftovers(tmp_path)
    # a successful one replaces it whole
    assert main(["train", "--out", str(out), "--force", *TRAIN]) == 0
    assert not (out / "old.txt").exists() and (out / "model.pt").is_file()
    assert not _no_leftovers(tmp_path)


def test_force_in_place_recomputes_and_drops_later_outputs(tiny_run, tmp_path):
    run = tmp_path / "inplace"
    shutil.copytree(tiny_run, run)
    assert main(["fit", str(run), "--force", "--min-ratio", "1.1", "--quiet"]) == 0
    assert (run / "summary.json").is_file()
    # the figures and the report were made from the old fit: gone until re-run
    assert not (run / "figures").exists() and not (run / "report.html").exists()
    assert (run / "measurement.json").read_bytes() == (tiny_run / "measurement.json").read_bytes()


def test_toml_config(tmp_path, capsys):
    cfg = tmp_path / "settings.toml"
    cfg.write_text('[train]\nweight_decay = 0.001\nlr = 0.2\n[run]\nseed = 5\n')
    out = tmp_path / "toml"
    assert main(["train", "--out", str(out), "--config", str(cfg), *TRAIN]) == 0
    written = (out / "config.toml").read_text()
    # TRAIN sets lr 0.1 on the command line: flags override the file; the file's other keys stay
    assert "weight_decay = 0.001" in written and "lr = 0.1" in written and "seed = 5" in written
    # a later stage inherits the run's settings (seed 5)
    assert main(["measure", str(out), "--quiet"]) == 0
    assert "seed = 5" in (out / "config.toml").read_text()


@pytest.mark.parametrize("text, words", [
    ("[train]\nepochz = 3\n", "unknown setting 'epochz' in [train]"),
    ("[trian]\nepochs = 3\n", "unknown section [trian]"),
    ("[train]\nepochs = 'many'\n", "epochs must be an integer"),
    ("[train\nepochs = 3\n", "is not valid TOML"),
])
def test_bad_toml_is_a_usage_error(text, words, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main(["train", "--out", str(tmp_path / "o"), "--config", str(cfg), *TRAIN]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_missing_toml(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.toml"), "--quiet"]) == 2
    assert "no config file" in capsys.readouterr().err


def test_output_default_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gn-theory-run").mkdir()
    assert main(["train", *TRAIN]) == 0
    assert (tmp_path / "gn-theory-run-2" / "model.pt").is_file()
    assert list((tmp_path / "gn-theory-run").iterdir()) == []
    assert os.path.isdir(tmp_path / "gn-theory-run-2")
