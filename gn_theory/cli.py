"""The ``gn-theory`` command line (also ``python -m gn_theory``).

This module parses arguments, calls the stage functions of :mod:`gn_theory.stages`,
prints, manages the output directory and maps errors to exit codes; it holds no
logic the library lacks.

Commands
--------
``run`` (the default)
    The main job: train a model (default: an MLP on 1,000 real MNIST digits at
    14x14), measure the spectra of H, G and R, decompose G by class, fit the
    random-matrix theory, draw the figures and write the report.
``train``, ``measure``, ``decompose``, ``fit``, ``plot``, ``report``
    The stages one at a time, each reading the previous stage's files from a run
    directory and adding its own (``fit --spectrum FILE`` fits a spectrum from
    another tool).
``demo``
    A tiny ``run`` (a 4-class Gaussian mixture, seconds).

Exit codes: 0 success; 2 usage error (unknown option, bad value, unknown dataset
or model, bad config file); 1 run failure, with a one-line reason (missing or
corrupt input, an output directory that exists, a failed computation). A
traceback is printed only with ``--debug``. Output is written to a temporary
sibling directory and moved into place at the end, so an existing run is never
half-overwritten.

Data-parallel: ``measure`` and ``decompose`` run under ``torchrun`` (``torchrun
--standalone --nproc_per_node 2 -m gn_theory measure RUN_DIR``): with ``WORLD_SIZE``
above 1 in the environment every process joins one group (gloo on the CPU, NCCL on
CUDA, GPU ``LOCAL_RANK`` each), reads its contiguous shard of the training data, uses
rank 0's seed, and only rank 0 logs, prints and writes the run directory. Every
other command is refused there (exit 2): training is not data-parallel. See
``docs/scaling.md``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from . import stages as st
from .exceptions import GnTheoryError, ResultFileError

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: The commands that run data-parallel under torchrun.
DISTRIBUTED_COMMANDS = ("measure", "decompose")

_HELP = {
    "run": "the main job: train, measure, decompose, fit, plot and report (default)",
    "train": "load the data, build and train the model (model.pt, training.*)",
    "measure": "spectra of H, G, R and the check H = G + R (measurement.*)",
    "decompose": "class structure of G and the inputs of outlier prediction (decomposition.*)",
    "fit": "MP and spiked fits, outlier counts, predictors (fit.*, summary.json); torch-free",
    "plot": "figures from the results (figures/*.png); torch-free",
    "report": "report.md and a self-contained report.html; torch-free",
    "demo": "a tiny run on a generated 4-class Gaussian mixture (seconds)",
}
#: The settings of ``demo`` (over the defaults).
DEMO = {
    "data": {"data": "gaussian_mixture", "num_samples": 240, "num_classes": 4,
             "num_features": 10},
    "model": {"model": "mlp", "width": 16, "depth": 2},
    "train": {"epochs": 30, "batch_size": 32, "lr": 0.05},
    "measure": {"num_probes": 4, "num_steps": 48},
}


class _UsageError(Exception):
    """A command-line mistake found after parsing (exit 2)."""


class _Refused(Exception):
    """The output directory exists and --force was not given (exit 1)."""


class _PeerFailed(Exception):
    """Another process of a data-parallel run failed while setting up (exit 1)."""


# ============================================================================ parser
def _add_common(p: argparse.ArgumentParser, stage: str) -> None:
    g = p.add_argument_group("run options")
    if stage in ("run", "train", "demo"):
        g.add_argument("--out", metavar="DIR", help="output directory (default: a new "
                       "gn-theory-run, gn-theory-run-2, ... here)")
    else:
        p.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                       help="the run directory to read (and, without --out, to add to)")
        g.add_argument("--out", metavar="DIR", help="write a new run directory (a copy of "
                       "RUN_DIR plus this stage's files) instead of adding to RUN_DIR")
    g.add_argument("--config", metavar="FILE.toml", help="settings file ([run], [data], "
                   "[model], [train], [measure], [fit], [plot] tables; flags override it)")
    g.add_argument("--force", action="store_true", help="replace existing outputs (written "
                   "to a temporary sibling and swapped in at the end)")
    if stage in _CHECKPOINTED:
        g.add_argument("--resume", action="store_true", help="continue the Lanczos, density and "
                       "class-structure steps of an interrupted run from OUT/checkpoints/ (same "
                       "numbers as an uninterrupted run; without it such checkpoints are an "
                       "error, --force deletes them)")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    g.add_argument("--quiet", action="store_true", help="no log lines on stderr")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    seen: set[str] = set()
    for section in st.SECTIONS:
        opts = [o for o in st.OPTIONS if (stage if stage != "demo" else "run") in o.stages]
        opts = [o for o in opts if o.section == section]
        if not opts:
            continue
        grp = p.add_argument_group(f"[{section}] settings")
        for o in opts:
            if o.flag in seen:
                continue
            seen.add(o.flag)
            default = "" if o.default is None else f" (default: {o.default})"
            kw: dict[str, Any] = {"dest": f"{o.section}__{o.name}", "default": argparse.SUPPRESS,
                                  "help": o.help + default}
            if o.type is bool:
                kw["action"] = argparse.BooleanOptionalAction
            else:
                kw["type"] = o.type
                kw["metavar"] = o.name.upper()
                if o.choices:
                    kw["choices"] = o.choices
                    kw["metavar"] = "{" + ",".join(map(str, o.choices)) + "}"
            grp.add_argument(o.flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gn-theory`` (one sub-parser per command).

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="gn-theory",
        description="Measure the Hessian H, its Gauss-Newton part G and the residual R of a "
                    "trained classifier, fit the random-matrix theory and report what agrees.",
        epilog="Run `gn-theory COMMAND --help` for a command's options. Without a command: "
               "`run` with its defaults.")
    parser.add_argument("--version", action="version", version=f"gn_theory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in ("run",) + st.STAGES + ("demo",):
        p = sub.add_parser(name, help=_HELP[name], description=_HELP[name])
        _add_common(p, name)
    return parser


# ============================================================================ logging
class _Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    print(f"gn-theory: warning: {message}", file=sys.stderr, flush=True)


# ============================================================================ directories
def _fresh_name(base: str) -> Path:
    p, i = Path(base), 2
    while p.exists():
        p, i = Path(f"{base}-{i}"), i + 1
    return p


def _stage_outputs(stage: str) -> tuple[list[str], list[str]]:
    """(this stage's outputs, the outputs of the stages after it)."""
    if stage in ("run", "demo"):
        return [f for s in st.STAGES for f in st.OUTPUTS[s]], []
    i = st.STAGES.index(stage)
    later = [f for s in st.STAGES[i + 1:] for f in st.OUTPUTS[s]]
    return list(st.OUTPUTS[stage]), later


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


#: The commands whose steps checkpoint to OUT/checkpoints/ (and take --resume).
_CHECKPOINTED = ("measure", "decompose", "run", "demo")


class _Workspace:
    """A temporary sibling of the output directory, swapped in by :meth:`commit`.

    ``OUT/checkpoints/`` (the commands of :data:`_CHECKPOINTED`) lives outside the
    workspace, so an interrupted stage leaves it behind; it is not copied into the
    workspace, so a stage that succeeds removes it when the workspace is swapped in.
    Found without ``resume`` it is refused (``force`` deletes it).
    """

    def __init__(self, out: Path, source: Path | None, stage: str, force: bool, log: _Log,
                 resume: bool = False):
        self.out, self.source, self.stage, self.force, self.log = out, source, stage, force, log
        mine, later = _stage_outputs(stage)
        in_place = source is not None and out.resolve() == source.resolve()
        ck = out / st.CHECKPOINTS
        held = stage in _CHECKPOINTED and ck.is_dir() and any(ck.iterdir())
        if held and not resume:
            if not force:
                raise _Refused(
                    f"{ck} holds the checkpoints of an interrupted `{stage}`; pass --resume to "
                    "continue from them, or --force to start afresh (deletes them)")
            shutil.rmtree(ck)
        elif resume and not held:
            log(f"--resume: no checkpoints in {ck}; starting afresh")
        resuming = held and resume
        if in_place:
            existing = [f for f in mine if (out / f).exists()]
            if existing and not force:
                raise _Refused(
                    f"{out} already has the outputs of `{stage}` ({', '.join(existing)}); pass "
                    "--force to recompute them, or --out DIR to write a new run directory")
        elif out.exists() and not force and not resuming:
            raise _Refused(f"output directory {out} exists; pass --force to replace it, or "
                           "--out DIR to choose another")
        if out.exists() and not out.is_dir():
            raise _Refused(f"{out} exists and is not a directory")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if source is not None:
            top = Path(source)
            shutil.copytree(source, self.tmp, symlinks=True, ignore=lambda d, names: [
                st.CHECKPOINTS] if stage in _CHECKPOINTED and Path(d) == top else [])
            stale = [f for f in mine + later if (self.tmp / f).exists()]
            for f in stale:
                _remove(self.tmp / f)
            if stale:
                log(f"{'replacing' if in_place else 'not copying'} {', '.join(stale)} "
                    f"(outputs of `{stage}` and of the stages after it)")
        else:
            self.tmp.mkdir()

    def commit(self) -> None:
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(self.out, old)
            os.rename(self.tmp, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.tmp, self.out)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# ============================================================================ settings
def _flag_layer(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for key, value in vars(args).items():
        if "__" in key:
            section, name = key.split("__", 1)
            layer.setdefault(section, {})[name] = value
    return layer


def _resolve(args: argparse.Namespace, command: str, source: Path | None) -> dict[str, Any]:
    layers: list[dict[str, Any]] = []
    where: list[str] = []
    if command == "demo":
        layers.append(DEMO)
        where.append("demo settings")
    if source is not None and (source / st.CONFIG_FILE).is_file():
        layers.append(st.read_toml(source / st.CONFIG_FILE))
        where.append(str(source / st.CONFIG_FILE))
    if args.config:
        layers.append(st.read_toml(args.config))
        where.append(args.config)
    layers.append(_flag_layer(args))
    where.append("the command line")
    cfg = st.resolve_config(*layers, where=tuple(where))
    if command in ("run", "train", "demo"):
        st.check_names(cfg)
    return cfg


def _dirs(args: argparse.Namespace, command: str, cfg: dict[str, Any]) -> tuple[Path, Path | None]:
    """(output directory, source directory to copy or None)."""
    if command in ("run", "train", "demo"):
        default = "gn-theory-demo" if command == "demo" else "gn-theory-run"
        return (Path(args.out) if args.out else _fresh_name(default)), None
    run_dir = Path(args.run_dir) if args.run_dir else None
    if command == "fit" and cfg["fit"]["spectrum"] is not None:
        if run_dir is None and not args.out:
            return _fresh_name("gn-theory-fit"), None
        if run_dir is None:
            return Path(args.out), None
    if run_dir is None:
        if not args.out:
            raise _UsageError(f"{command} needs the run directory to read: "
                              f"gn-theory {command} RUN_DIR [--out DIR]")
        run_dir = Path(args.out)
    if not run_dir.is_dir():
        raise ResultFileError(f"no run directory at {str(run_dir)!r}")
    return (Path(args.out) if args.out else run_dir), run_dir


# ============================================================================ printing
def _print_result(command: str, out: Path, files: list[Path], seconds: float) -> None:
    from .analysis import SUMMARY_FILE, read_summary
    from .report import build_report

    if command in ("run", "demo", "fit", "report") and (out / SUMMARY_FILE).exists():
        summary = read_summary(out)
        blocks = build_report(summary)
        print(f"gn-theory {command}: {blocks[1].text}")
        for b in blocks:
            if b.kind == "ul":
                for item in b.items:
                    print(f"- {item}")
                break
    names = sorted({str(p.relative_to(out)).split(os.sep)[0] for p in files
                    if p.is_relative_to(out)} if files else [])
    what = f"{out}/report.html" if (out / "report.html").exists() and command in (
        "run", "demo", "report") else f"{out}/ ({', '.join(names)})"
    print(f"Wrote {what} in {seconds:.1f} s.")


# ============================================================================ main
def _validate(argv: list[str]) -> int:
    """``gn-theory validate ...``: the validation suite of a source checkout (``python -m validation``).

    The suite lives in the repository's ``validation/`` folder, not in the installed package,
    so it is found from the current directory.
    """
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        runner = importlib.import_module("validation.runner")
    except ImportError:
        print(
            "gn-theory validate: error: the validation suite is not here; run it from a source "
            "checkout of gn_theory (the folder holding validation/), e.g. "
            "`cd gn_theory && gn-theory validate --quick --out out`",
            file=sys.stderr,
        )
        return 2
    return int(runner.main(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gn-theory``; returns the process exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for a usage error, 1 for a run failure.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["validate"]:
        return _validate(argv[1:])
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["run", *argv]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help/--version exit 0
        return int(exc.code or 0)
    command = args.command or "run"
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0) if world > 1 else 0
    if world > 1 and command not in DISTRIBUTED_COMMANDS:
        if rank == 0:
            print(f"gn-theory {command}: error: `{command}` does not run data-parallel (only "
                  f"{' and '.join(DISTRIBUTED_COMMANDS)} do; training is not data-parallel): "
                  f"run `gn-theory {command}` in one process, then `torchrun ... -m gn_theory "
                  "measure RUN_DIR`", file=sys.stderr)
        return EXIT_USAGE
    log = _Log(args.quiet or rank > 0)
    progress = sys.stderr.isatty() and not args.no_progress and not args.quiet and rank == 0
    ws = None
    joined = False
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if rank > 0:  # every rank holds the same results: rank 0 reports
                warnings.simplefilter("ignore")
            source = Path(args.run_dir) if getattr(args, "run_dir", None) else None
            if source is None and command not in ("run", "train", "demo") and args.out:
                source = Path(args.out) if Path(args.out).is_dir() else None
            cfg = _resolve(args, command, source)
            if world > 1:
                from . import distributed  # deferred: torch

                joined = distributed.init_from_env(cfg["run"]["device"])
                cfg["run"]["seed"] = distributed.broadcast_seed(cfg["run"]["seed"])
            failure = None
            try:  # rank 0 alone makes the workspace; the others read RUN_DIR and write nothing
                out, source = _dirs(args, command, cfg)
                if rank == 0:
                    log(f"gn_theory {__version__}: {command} -> {out}"
                        + (f" ({world} processes)" if world > 1 else ""))
                    ws = _Workspace(out, source, command, args.force, log,
                                    resume=getattr(args, "resume", False))
            except Exception as exc:
                failure = exc
            if world > 1:  # all ranks go on together, or none does
                failed = distributed.any_rank(failure is not None)
                if failure is None and failed:
                    raise _PeerFailed(f"process(es) {failed} failed before the measurement")
            if failure is not None:
                raise failure
            fn = st.stage_function("run" if command == "demo" else command)
            ck = {"checkpoint_dir": out / st.CHECKPOINTS, "resume": args.resume} if (
                command in _CHECKPOINTED) else {}
            files = fn(cfg, ws.tmp if ws is not None else source, log=log, progress=progress,
                       **ck)
            if ws is not None:
                ws.commit()
                files = [out / p.relative_to(ws.tmp) for p in files if p.is_relative_to(ws.tmp)]
                ws = None
                _print_result(command, out, files, time.perf_counter() - t0)
        return EXIT_OK
    except (st.ConfigError, _UsageError) as exc:
        if args.debug:
            raise
        if rank == 0:
            print(f"gn-theory {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _PeerFailed as exc:
        if rank == 0:
            print(f"gn-theory {command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (GnTheoryError, _Refused, OSError) as exc:
        if args.debug:
            raise
        where = f" (process {rank})" if rank else ""
        print(f"gn-theory {command}{where}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ImportError as exc:
        if args.debug:
            raise
        name = getattr(exc, "name", "") or ""
        if name.split(".")[0] == "torch" or "torch" in str(exc):
            print(f"gn-theory {command}: error: `{command}` needs torch, which cannot be imported "
                  f"({exc}); install torch, or run only fit, plot and report here",
                  file=sys.stderr)
        else:
            print(f"gn-theory {command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"gn-theory {command}: interrupted; nothing was replaced", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, or a user's module:callable failing in its own way
        if args.debug:
            raise
        print(f"gn-theory {command}: error: {type(exc).__name__}: {exc} (run with --debug for "
              "the traceback)", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if ws is not None:
            ws.discard()
        if joined:
            distributed.destroy_from_env()


if __name__ == "__main__":  # python -m gn_theory.cli (also python -m gn_theory)
    sys.exit(main())
