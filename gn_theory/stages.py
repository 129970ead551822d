"""The stages of a run as functions of settings and files: train, measure, decompose, fit, plot, report.

Each stage reads the files of the stages before it from a run directory and
writes its own there:

========== ============================================= ===========================
stage      reads                                         writes
========== ============================================= ===========================
train      (the ``data``, ``model``, ``train`` settings) ``model.pt``, ``training.*``
measure    ``model.pt`` (the model and how to rebuild    ``measurement.*``
           its data)
decompose  ``model.pt``                                  ``decomposition.*``
fit        ``measurement.*`` [``decomposition.*``,       ``fit.*``, ``summary.json``
           ``training.*``], or a spectrum file
plot       the result pairs                              ``figures/*.png`` [``.pdf``]
report     ``summary.json``, ``figures/``                ``report.md``, ``report.html``
========== ============================================= ===========================

(``name.*`` is a result pair ``name.npz`` + ``name.json``.) Every stage takes the
resolved settings (:func:`resolve_config`: one dict of sections ``run``,
``data``, ``model``, ``train``, ``measure``, ``fit``, ``plot``) and the run
directory, writes its files there and returns their paths. ``train``,
``measure`` and ``decompose`` import torch (when called); ``fit``, ``plot`` and
``report`` never do, so a run measured on a GPU machine is fitted, drawn and
reported anywhere.

The stages write into the directory they are given; the command line
(:mod:`gn_theory.cli`) runs them in a temporary copy and swaps it in at the end,
so that an existing run is never half-overwritten.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._checks import check_choice
from ._memory import budget_scope, parse_memory
from .analysis import (
    FILES,
    SUMMARY_FILE,
    Analysis,
    Measurement,
    fit_theory,
    write_summary,
)
from .exceptions import DataError, InvalidInputError, ResultFileError
from .results import SpectralDensity, Spectrum, TrainingLog, atomic_write_bytes, load_result

__all__ = [
    "STAGES",
    "OUTPUTS",
    "OPTIONS",
    "Option",
    "ConfigError",
    "default_config",
    "resolve_config",
    "config_to_toml",
    "read_toml",
    "default_threads",
    "read_spectrum",
    "train",
    "measure",
    "decompose",
    "fit",
    "plot",
    "report",
    "run",
    "FIGURES",
]

#: The stages, in order.
STAGES: tuple[str, ...] = ("train", "measure", "decompose", "fit", "plot", "report")
#: The files (or folders) each stage writes in a run directory.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "train": ("model.pt", f"{FILES['training']}.npz", f"{FILES['training']}.json"),
    "measure": (f"{FILES['measurement']}.npz", f"{FILES['measurement']}.json"),
    "decompose": (f"{FILES['decomposition']}.npz", f"{FILES['decomposition']}.json"),
    "fit": (f"{FILES['theory']}.npz", f"{FILES['theory']}.json", SUMMARY_FILE),
    "plot": ("figures",),
    "report": ("report.md", "report.html"),
}
#: The resolved configuration written into every run directory.
CONFIG_FILE = "config.toml"
#: The folder of a run directory where measure and decompose checkpoint (``--resume``).
CHECKPOINTS = "checkpoints"
#: The figures of the plot stage: file stem -> what it shows.
FIGURES: dict[str, str] = {
    "spectrum": "spectral densities (linear and log scale) with the MP fit and the outliers",
    "predicted_vs_observed": "predicted against observed outlier positions of G",
    "relative_errors": "relative error of each predictor per rank",
    "gram": "the class / cross-class Gram matrix of G_cm",
    "training": "loss, accuracy and gradient norm over training",
}

Log = Callable[[str], None]


class ConfigError(InvalidInputError):
    """A bad setting: unknown key, wrong type, a value out of its choices (a usage error)."""


# ============================================================================ the settings
@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: its section, name, type, default and help (the CLI's flags come from these)."""

    section: str
    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    stages: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line flag (``--num-samples``)."""
        return "--" + self.name.replace("_", "-")


_T, _M, _D, _F, _P = ("train", "run"), ("measure", "decompose", "run"), ("decompose", "run"), \
    ("fit", "run"), ("plot", "run")
_TORCH = ("train", "measure", "decompose", "run")

#: Every setting, by section. ``None`` as a default means "the library's default".
OPTIONS: tuple[Option, ...] = (
    # run-wide
    Option("run", "seed", int, 0, "seed of data, initialisation, training and probes",
           stages=STAGES + ("run",)),
    Option("run", "device", str, "auto", "where to compute: auto (cuda when present), cpu, "
           "cuda, cuda:N", stages=_TORCH),
    Option("run", "dtype", str, "float64", "precision of the curvature measurements (training "
           "runs in float32)", ("float64", "float32"), stages=_M),
    Option("run", "max_memory", str, None, "memory budget of each large allocation (Krylov "
           "bases, dense exports, class sums), bytes or a size such as 4GiB; above it a clear "
           "error before allocating (default: GN_THEORY_MAX_MEMORY, else the memory "
           "available)", stages=_M),
    Option("run", "checkpoints", bool, True, "checkpoint the Lanczos, density and class-"
           "structure steps to OUT/checkpoints/ (continued with --resume; removed once the stage "
           "succeeds)", stages=_M),
    Option("run", "threads", int, None, "torch CPU threads (default: min(4, physical cores "
           "not busy by the load average), at least 1)", stages=_TORCH),
    # data
    Option("data", "data", str, "mnist", "built-in dataset (mnist, blobs, gaussian_mixture), a "
           ".npz/.pt file, or module:callable", stages=_T),
    Option("data", "num_samples", int, 1000, "samples to use (training + evaluation)", stages=_T),
    Option("data", "image_size", int, None, "down-sample images to this side (default 14 for "
           "mnist)", stages=_T),
    Option("data", "standardize", bool, True, "standardise each input feature", stages=_T),
    Option("data", "num_classes", int, None, "keep only labels below this (mnist), or the "
           "classes of gaussian_mixture", stages=_T),
    Option("data", "eval_fraction", float, 0.0, "fraction held out for evaluation", stages=_T),
    Option("data", "balanced", bool, True, "class-balanced subsets", stages=_T),
    Option("data", "random_inputs", bool, False, "replace inputs by noise, keep labels",
           stages=_T),
    Option("data", "num_features", int, None, "dimension of gaussian_mixture", stages=_T),
    Option("data", "separation", float, None, "class separation of gaussian_mixture",
           stages=_T),
    Option("data", "noise", float, None, "within-class std of the generated datasets",
           stages=_T),
    # model
    Option("model", "model", str, "mlp", "built-in model (mlp, cnn, linear) or module:callable",
           stages=_T),
    Option("model", "width", int, None, "mlp: hidden units per layer (default 24)", stages=_T),
    Option("model", "depth", int, None, "mlp: hidden layers (default 2)", stages=_T),
    Option("model", "activation", str, "relu", "activation of the built-in models",
           ("relu", "tanh"), stages=_T),
    # training
    Option("train", "optimizer", str, "sgd", "optimiser", ("sgd", "gd", "adam", "adamw"),
           stages=_T),
    Option("train", "lr", float, 0.05, "learning rate", stages=_T),
    Option("train", "momentum", float, 0.9, "momentum of sgd/gd (0 for adam)", stages=_T),
    Option("train", "batch_size", int, 64, "samples per update (sgd/adam)", stages=_T),
    Option("train", "epochs", int, 50, "passes over the training set", stages=_T),
    Option("train", "steps", int, None, "updates (instead of epochs)", stages=_T),
    Option("train", "weight_decay", float, 0.0, "L2 penalty", stages=_T),
    Option("train", "schedule", str, "constant", "learning-rate schedule",
           ("constant", "step", "cosine"), stages=_T),
    Option("train", "loss", str, "cross_entropy", "training and curvature loss",
           ("cross_entropy", "mse"), stages=_T),
    Option("train", "stop_accuracy", float, None, "stop at this training accuracy", stages=_T),
    Option("train", "stop_loss", float, None, "stop at this training loss", stages=_T),
    # measurement
    Option("measure", "top_k", int, None, "top eigenvalues of H, G, R (default 3 C)", stages=_M),
    Option("measure", "bottom_k", int, 3, "smallest eigenvalues of H (0: skip)", stages=_M),
    Option("measure", "num_probes", int, 2, "probes of the deflated densities of H, G and "
           "G_w (their top eigenpairs exact; docs/performance.md)", stages=_M),
    Option("measure", "num_steps", int, 80, "Lanczos steps per probe of the deflated "
           "densities", stages=_M),
    Option("measure", "identity_probes", int, 4, "probes of the H = G + R check", stages=_M),
    # fit
    Option("fit", "mp_method", str, "moments", "Marchenko-Pastur fit method", ("moments", "ks"),
           stages=_F),
    Option("fit", "num_bootstrap", int, None, "bootstrap replicates of the MP fit", stages=_F),
    Option("fit", "min_ratio", float, 2.0, "smallest eigenvalue ratio the log-gap rule counts "
           "as a gap", stages=_F),
    Option("fit", "predict_k", int, None, "outliers of G the predictors are compared on "
           "(default C)", stages=_F),
    Option("fit", "spectrum", str, None, "fit a spectrum from another tool: eigenvalues "
           "(.npy, .txt, .csv) or SLQ nodes and weights (.npz)", stages=("fit",)),
    Option("fit", "num_classes", int, None, "C, for a given spectrum", stages=("fit",)),
    Option("fit", "num_params", int, None, "P, for a given SLQ density (default: from the "
           "file, else the node count)", stages=("fit",)),
    # plot
    Option("plot", "pdf", bool, False, "also write each figure as PDF", stages=_P),
    Option("plot", "dpi", int, 100, "PNG resolution", stages=_P),
)
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(o.section for o in OPTIONS))
_BY_KEY = {(o.section, o.name): o for o in OPTIONS}


def default_config() -> dict[str, dict[str, Any]]:
    """The defaults of every setting, by section (``None``: the library's default).

    Returns
    -------
    dict of str to dict
    """
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for o in OPTIONS:
        out[o.section][o.name] = o.default
    return out


def _coerce(o: Option, value: Any, where: str) -> Any:
    if value is None:
        return None
    if o.type is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {o.name} must be true or false; got {value!r}")
        return value
    if o.type is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{where}: {o.name} must be an integer; got {value!r}")
        value = int(value)
    elif o.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ConfigError(f"{where}: {o.name} must be a number; got {value!r}")
        value = float(value)
    elif o.type is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {o.name} must be a string; got {value!r}")
    if o.choices is not None and value not in o.choices:
        raise ConfigError(f"{where}: {o.name} must be one of "
                          f"{', '.join(map(str, o.choices))}; got {value!r}")
    return value


def resolve_config(*layers: dict[str, Any], where: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Merge settings layers over the defaults, checking every key and type.

    Parameters
    ----------
    *layers : dict
        Each a dict of sections (``{"train": {"lr": 0.1}}``), later layers
        overriding earlier ones; a key whose value is ``None`` in a later layer
        does not override.
    where : tuple of str
        Names of the layers for the messages (e.g. the TOML file's path).

    Returns
    -------
    dict of str to dict
        Every section and key, with the dependent defaults filled in: image size
        14 for MNIST, momentum 0 for Adam unless set.

    Raises
    ------
    ConfigError
        An unknown section or key (the message lists the known ones), or a value
        of the wrong type or outside its choices.
    """
    cfg = default_config()
    explicit: set[tuple[str, str]] = set()
    for i, layer in enumerate(layers):
        name = where[i] if i < len(where) else "settings"
        if not isinstance(layer, dict):
            raise ConfigError(f"{name}: expected sections of settings; got {type(layer).__name__}")
        for section, values in layer.items():
            if section not in cfg:
                raise ConfigError(f"{name}: unknown section [{section}]; known: "
                                  + ", ".join(SECTIONS))
            if not isinstance(values, dict):
                raise ConfigError(f"{name}: [{section}] must be a table of settings")
            for key, value in values.items():
                o = _BY_KEY.get((section, key))
                if o is None:
                    known = ", ".join(k for s, k in _BY_KEY if s == section)
                    raise ConfigError(f"{name}: unknown setting {key!r} in [{section}]; "
                                      f"known: {known}")
                if value is None:
                    continue
                cfg[section][key] = _coerce(o, value, name)
                explicit.add((section, key))
    if cfg["data"]["image_size"] is None and cfg["data"]["data"] == "mnist":
        cfg["data"]["image_size"] = 14
    if cfg["train"]["optimizer"] in ("adam", "adamw") and ("train", "momentum") not in explicit:
        cfg["train"]["momentum"] = 0.0
    if cfg["train"]["steps"] is not None and ("train", "epochs") not in explicit:
        cfg["train"]["epochs"] = None
    if cfg["train"]["optimizer"] == "gd" and ("train", "batch_size") not in explicit:
        cfg["train"]["batch_size"] = None
    if cfg["model"]["model"] == "mlp":
        cfg["model"]["width"] = 24 if cfg["model"]["width"] is None else cfg["model"]["width"]
        cfg["model"]["depth"] = 2 if cfg["model"]["depth"] is None else cfg["model"]["depth"]
    if cfg["run"]["max_memory"] is not None:
        try:
            parse_memory(cfg["run"]["max_memory"], "max_memory")
        except InvalidInputError as exc:
            raise ConfigError(str(exc)) from None
    return cfg


def check_names(cfg: dict[str, dict[str, Any]]) -> None:
    """Check the dataset and model names: a built-in, a path or module:callable.

    Called for the stages that train (it imports torch).

    Parameters
    ----------
    cfg : dict
        Resolved settings.

    Raises
    ------
    ConfigError
        An unknown name (a usage error; the message lists the known ones).
    """
    from .data import DATASETS  # deferred: torch (gn_theory.data imports it)
    from .models import MODELS  # deferred: torch

    data = cfg["data"]["data"]
    if not (data in DATASETS or ":" in data or Path(data).suffix.lower() in (".npz", ".pt")):
        raise ConfigError(f"unknown dataset {data!r}: give one of {', '.join(DATASETS)}, a "
                          ".npz or .pt file, or module:callable")
    model = cfg["model"]["model"]
    if not (model.lower() in MODELS or ":" in model):
        raise ConfigError(f"unknown model {model!r}: give one of {', '.join(MODELS)} or "
                          "module:callable")


# ---------------------------------------------------------------------------- TOML
def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML settings file (``tomllib``; ``tomli`` on Python 3.10).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        Missing, unreadable or not TOML.
    """
    try:
        import tomllib  # deferred: Python >= 3.11 only; tomli below
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no config file at {str(p)!r}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {str(p)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{str(p)!r} is not valid TOML: {exc}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def config_to_toml(cfg: dict[str, dict[str, Any]], *, header: str = "") -> str:
    """The settings as TOML text (unset settings as comments), readable by :func:`read_toml`.

    Parameters
    ----------
    cfg : dict of str to dict
    header : str, optional
        A comment put on top.

    Returns
    -------
    str
    """
    lines = [f"# {ln}" for ln in header.splitlines()] if header else []
    for section, values in cfg.items():
        lines.append("")
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} = (not set: the library's default)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


#: The settings sections each stage uses (and records in ``config.toml``).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "train": ("run", "data", "model", "train"),
    "measure": ("run", "measure"),
    "decompose": ("run", "measure"),
    "fit": ("run", "fit"),
    "plot": ("plot",),
    "report": (),
}


def write_config(run_dir: Path, cfg: dict[str, dict[str, Any]], stage: str) -> Path:
    """Record the settings ``stage`` used in ``run_dir/config.toml`` (atomically).

    The file keeps the sections of the stages run before (from the file already
    there) and replaces those of ``stage`` (:data:`STAGE_SECTIONS`), so that it
    holds the settings that produced the files of the directory, and no others.
    """
    from . import __version__

    merged: dict[str, dict[str, Any]] = {}
    path = run_dir / CONFIG_FILE
    if path.is_file():
        merged = {k: v for k, v in read_toml(path).items() if k in SECTIONS}
    for section in STAGE_SECTIONS[stage]:
        merged[section] = dict(cfg[section])
    merged = {s: merged[s] for s in SECTIONS if s in merged}
    text = config_to_toml(merged, header=f"gn_theory {__version__}: the resolved settings of this "
                                      "run (defaults < config file < command line)")
    return atomic_write_bytes(run_dir / CONFIG_FILE, text.encode())


# ============================================================================ torch set-up
def physical_cores() -> int:
    """Physical cores this process may use (logical CPUs when the topology is unknown)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((base / "physical_package_id").read_text().strip(),
                       (base / "core_id").read_text().strip()))
        except OSError:
            return len(allowed)
    return max(1, len(cores))


def default_threads() -> tuple[int, str]:
    """The default torch thread count and why: ``min(4, cores not busy)``, at least 1.

    On a loaded machine torch's default (one thread per core) ran 3-35x slower
    than one thread in this package's measurements (docs/performance.md): threads
    spin while waiting for cores that other processes hold. So the default takes
    the physical cores less the 1-minute load average, capped at 4.

    Returns
    -------
    (int, str)
        The count and a one-line reason for the log.
    """
    cores = physical_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover
        load = 0.0
    free = cores - int(round(load))
    n = max(1, min(4, free))
    return n, f"{cores} physical core(s), load average {load:.1f}"


def _setup_torch(cfg: dict[str, Any], log: Log) -> tuple[Any, Any]:
    """Threads and device from the settings; returns ``(device, dtype)`` for the operators."""
    import torch  # deferred: torch (only the measuring stages need it)

    threads = cfg["run"]["threads"]
    if threads is None:
        threads, why = default_threads()
        how = f"auto: {why}"
    else:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1; got {threads}")
        how = "as set"
    torch.set_num_threads(int(threads))
    cfg["run"]["threads"] = int(threads)
    dev = cfg["run"]["device"]
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    elif dev.startswith("cuda"):
        if not torch.cuda.is_available():
            built = "built without CUDA" if torch.version.cuda is None else \
                f"built for CUDA {torch.version.cuda}, but no GPU is visible"
            raise ConfigError(f"--device {dev}: CUDA is not available (torch "
                              f"{torch.__version__} is {built}); use --device cpu or auto")
        m = re.fullmatch(r"cuda(?::(\d+))?", dev)
        if m is None:
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N; got {dev!r}")
        if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
            raise ConfigError(f"--device {dev}: only {torch.cuda.device_count()} GPU(s) visible")
    elif dev != "cpu":
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N; got {dev!r}")
    log(f"torch {torch.__version__}: device {dev}, {threads} thread(s) ({how})")
    dtype = {"float64": torch.float64, "float32": torch.float32}[cfg["run"]["dtype"]]
    return torch.device(dev), dtype


# ============================================================================ files
def _need(run_dir: Path, stem: str, stage: str) -> Path:
    path = run_dir / f"{stem}.json"
    if not path.exists():
        raise ResultFileError(
            f"no {stem}.json in {str(run_dir)!r}: run `gn-theory {stage}` on it first")
    return run_dir / stem


def _progress_callback(progress: bool, total_hint: str) -> Any:
    if not progress:
        return None, None
    from tqdm.auto import tqdm  # deferred: only with progress bars

    bar = tqdm(desc=total_hint, unit="step")

    def cb(step: int, num_steps: int, record: Any) -> None:
        if bar.total != num_steps:
            bar.total = num_steps
        bar.n = step
        if record is not None:
            bar.set_postfix(loss=f"{record['loss']:.4f}", acc=f"{record['accuracy']:.3f}")
        bar.refresh()

    return cb, bar


def _data_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    d = dict(cfg["data"])
    name = d.pop("data")
    return {"name_or_path": name, **{k: v for k, v in d.items() if v is not None}}


def _model_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    d = dict(cfg["model"])
    name = d.pop("model")
    return {"name_or_spec": name, **{k: v for k, v in d.items() if v is not None}}


def _rebuild(run_dir: Path, device: Any, log: Log) -> tuple[Any, Any, dict[str, Any]]:
    """The trained model and its data, from ``model.pt`` and the settings stored with it."""
    from .data import load_dataset  # deferred: torch
    from .models import build_model
    from .training import load_checkpoint

    path = run_dir / "model.pt"
    if not path.exists():
        raise ResultFileError(
            f"no model.pt in {str(run_dir)!r}: run `gn-theory train` first")
    payload = load_checkpoint(path)
    info = payload.get("settings") or {}
    if not {"data", "model", "input_shape", "num_classes"} <= set(info):
        raise ResultFileError(f"{str(path)!r} was not written by `gn-theory train` (its settings "
                              "do not say how to rebuild the model and its data)")
    data_kw = dict(info["data"])
    ds = load_dataset(data_kw.pop("name_or_path"), **data_kw)
    want = info.get("data_fingerprint")
    if want is not None and ds.settings.get("fingerprint") != want:
        raise DataError(
            f"the data rebuilt from {str(path)!r} differ from the training data (fingerprint "
            f"{ds.settings.get('fingerprint')} != {want}): the dataset file or package changed")
    model_kw = dict(info["model"])
    model = build_model(model_kw.pop("name_or_spec"), input_shape=tuple(info["input_shape"]),
                        num_classes=int(info["num_classes"]), **model_kw)
    load_checkpoint(path, model)
    model = model.to(device)
    model.eval()
    log(f"model and data rebuilt from {path.name} ({ds!r})")
    return model, ds, info


def _shard(ds: Any, log: Log) -> Any:
    """This rank's contiguous shard of the training split in a data-parallel run (else ``ds``).

    Rank r of W reads samples ``[r N // W, (r + 1) N // W)``
    (:func:`gn_theory.distributed.shard_range`); the operators all-reduce their sums and
    sample counts, so the measurements are those of all N samples.
    """
    from . import distributed  # deferred: torch

    if not distributed.is_distributed():
        return ds
    n = int(ds.train_targets.shape[0])
    lo, hi = distributed.shard_range(n)
    log(f"data-parallel over {distributed.world_size()} processes: rank 0 reads samples "
        f"[{lo}, {hi}) of {n} (contiguous shards)")
    return dataclasses.replace(ds, train_inputs=ds.train_inputs[lo:hi],
                               train_targets=ds.train_targets[lo:hi])


def _save_stage(run: Path, result: Any, stem: str, config: dict[str, Any],
                stage: str) -> list[Path]:
    """Save a stage's result and record its settings: on rank 0 only in a data-parallel run."""
    from . import distributed  # deferred: torch

    files: list[Path] = []
    if distributed.is_main_process():
        files = [result.save(run / stem), run / f"{stem}.npz", write_config(run, config, stage)]
    distributed.barrier()
    return files


# ============================================================================ stages
def train(config: dict[str, Any], run_dir: str | os.PathLike, *, log: Log | None = None,
          progress: bool = False) -> list[Path]:
    """Stage 1: load the data, build and train the model; write ``model.pt`` and ``training.*``.

    Parameters
    ----------
    config : dict
        Resolved settings (:func:`resolve_config`); sections ``run``, ``data``,
        ``model``, ``train``.
    run_dir : str or os.PathLike
        Where to write (created if missing).
    log : callable, optional
        Called with one line per step.
    progress : bool, default False
        A tqdm bar of the training steps.

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    ConfigError, InvalidInputError, DataError, MissingDependencyError
        Bad settings, data or model.
    """
    from .data import load_dataset  # deferred: torch (the stage module imports without it)
    from .models import build_model, num_params
    from .training import save_checkpoint
    from .training import train as train_model

    log = log or (lambda _: None)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    device, _ = _setup_torch(config, log)
    seed = config["run"]["seed"]
    data_kw = _data_kwargs(config)
    data_kw["seed"] = seed
    t = time.perf_counter()
    ds = load_dataset(data_kw["name_or_path"], **{k: v for k, v in data_kw.items()
                                                  if k != "name_or_path"})
    log(f"data: {ds!r} ({time.perf_counter() - t:.1f} s)")
    model_kw = _model_kwargs(config)
    model_kw["seed"] = seed
    model = build_model(model_kw["name_or_spec"], input_shape=ds.input_shape,
                        num_classes=ds.num_classes, device=device,
                        **{k: v for k, v in model_kw.items() if k != "name_or_spec"})
    tr = {k: v for k, v in config["train"].items() if v is not None}
    log(f"model: {config['model']['model']} with P = {num_params(model):,} parameters; "
        f"training: {tr.get('optimizer')} lr {tr.get('lr')}"
        + (f", momentum {tr['momentum']}" if tr.get("momentum") else "")
        + (f", batch {tr['batch_size']}" if tr.get("batch_size") else ", full batch")
        + (f", {tr['epochs']} epochs" if tr.get("epochs") else f", {tr.get('steps')} steps"))
    cb, bar = _progress_callback(progress, "train")
    try:
        log_ = train_model(model, ds, seed=seed, callback=cb, **tr)
    finally:
        if bar is not None:
            bar.close()
    log(f"trained {log_.num_steps} steps in {log_.elapsed_s:.1f} s: loss {log_.final_loss:.4g}, "
        f"accuracy {100 * log_.final_accuracy:.1f} % (stop: {log_.stop_reason})")
    info = {
        "data": {k: v for k, v in data_kw.items()},
        "model": {k: v for k, v in model_kw.items()},
        "input_shape": list(ds.input_shape),
        "num_classes": int(ds.num_classes),
        "data_fingerprint": ds.settings.get("fingerprint"),
        "loss": config["train"]["loss"],
    }
    files = [save_checkpoint(model, run / "model.pt", settings=info),
             log_.save(run / FILES["training"])]
    files.append(run / f"{FILES['training']}.npz")
    files.append(write_config(run, config, "train"))
    return files


def measure(config: dict[str, Any], run_dir: str | os.PathLike, *, log: Log | None = None,
            progress: bool = False, checkpoint_dir: str | os.PathLike | None = None,
            resume: bool = False) -> list[Path]:
    """Stage 2: the spectra of H, G and R and the check H = G + R; write ``measurement.*``.

    Parameters
    ----------
    config : dict
        Resolved settings; sections ``run`` and ``measure``.
    run_dir : str or os.PathLike
        A run directory holding ``model.pt`` (from :func:`train`).
    log : callable, optional
    progress : bool, default False
    checkpoint_dir : str or os.PathLike, optional
        Where the steps checkpoint (the CLI: ``OUT/checkpoints``), unless the
        setting ``run.checkpoints`` is false; see :func:`~gn_theory.analysis.measure_model`.
    resume : bool, default False
        Continue from the checkpoints there.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    ResultFileError
        No or a corrupt ``model.pt``.
    """
    from .analysis import measure_model

    log = log or (lambda _: None)
    run = Path(run_dir)
    device, dtype = _setup_torch(config, log)
    model, ds, info = _rebuild(run, device, log)
    ds = _shard(ds, log)
    m = config["measure"]
    with budget_scope(config["run"]["max_memory"], "--max-memory"):
        result = measure_model(model, ds, loss=info.get("loss", "cross_entropy"),
                               top_k=m["top_k"], bottom_k=m["bottom_k"],
                               num_probes=m["num_probes"], num_steps=m["num_steps"],
                               identity_probes=m["identity_probes"], seed=config["run"]["seed"],
                               device=device, dtype=dtype, progress=progress, log=log,
                               **_checkpoints(config, checkpoint_dir, resume))
    return _save_stage(run, result, FILES["measurement"], config, "measure")


def _checkpoints(config: dict[str, Any], checkpoint_dir: Any, resume: bool) -> dict[str, Any]:
    """``checkpoint_dir``/``resume`` for the pipeline, unless ``run.checkpoints`` is off."""
    if checkpoint_dir is None or not config["run"].get("checkpoints", True):
        return {}
    return {"checkpoint_dir": checkpoint_dir, "resume": resume}


def decompose(config: dict[str, Any], run_dir: str | os.PathLike, *, log: Log | None = None,
              progress: bool = False, checkpoint_dir: str | os.PathLike | None = None,
              resume: bool = False) -> list[Path]:
    """Stage 3: the class structure of G and the inputs of outlier prediction; ``decomposition.*``.

    Parameters
    ----------
    config : dict
        Resolved settings; sections ``run`` and ``measure``.
    run_dir : str or os.PathLike
        A run directory holding ``model.pt``.
    log : callable, optional
    progress : bool, default False
    checkpoint_dir, resume
        As :func:`measure` (the class-structure pass).

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    ResultFileError
        No or a corrupt ``model.pt``.
    InvalidInputError
        A loss other than cross-entropy (the class structure is a softmax property).
    """
    from .analysis import decompose_model

    log = log or (lambda _: None)
    run = Path(run_dir)
    device, dtype = _setup_torch(config, log)
    model, ds, info = _rebuild(run, device, log)
    ds = _shard(ds, log)
    if info.get("loss", "cross_entropy") != "cross_entropy":
        raise InvalidInputError("the class structure needs the softmax cross-entropy loss; this "
                                f"model was trained with {info.get('loss')!r}")
    m = config["measure"]
    with budget_scope(config["run"]["max_memory"], "--max-memory"):
        result = decompose_model(model, ds, top_k=m["top_k"], num_probes=m["num_probes"],
                                 num_steps=m["num_steps"], identity_probes=m["identity_probes"],
                                 seed=config["run"]["seed"], device=device, dtype=dtype,
                                 progress=progress, log=log,
                                 **_checkpoints(config, checkpoint_dir, resume))
    return _save_stage(run, result, FILES["decomposition"], config, "decompose")


def read_spectrum(path: str | os.PathLike, *, num_params: int | None = None) -> Any:
    """Read a spectrum measured by another tool.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` (a 1-d array of eigenvalues), ``.txt`` / ``.csv`` (eigenvalues,
        one per line or separated by commas or spaces; a header line is
        skipped), ``.npz`` with ``nodes`` and ``weights`` (an SLQ density: one row
        per probe, e.g. PyHessian's ``density_eigen`` / ``density_weight``; an
        optional ``num_params``) or with ``eigenvalues``, or a gn_theory result
        (``.json`` of a Spectrum or SpectralDensity).
    num_params : int, optional
        P of a density (default: the file's ``num_params``, else the node count
        of one probe).

    Returns
    -------
    numpy.ndarray or SpectralDensity or Spectrum

    Raises
    ------
    DataError
        Missing, unreadable or malformed file (the message names it).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no spectrum file at {str(p)!r}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            obj = load_result(p)
            if not isinstance(obj, (Spectrum, SpectralDensity)):
                raise DataError(f"{str(p)!r} holds a {type(obj).__name__}, not a spectrum")
            return obj
        if suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
            return _eigenvalues(arr, p)
        if suffix in (".txt", ".csv", ".tsv", ".dat"):
            text = p.read_text(encoding="utf-8")
            rows = [ln for ln in re.split(r"[\r\n]+", text) if ln.strip() and
                    not ln.lstrip().startswith("#")]
            if rows and not re.match(r"^\s*[-+.\d]", rows[0]):
                rows = rows[1:]  # a header
            values = [float(x) for ln in rows for x in re.split(r"[,;\s]+", ln.strip()) if x]
            return _eigenvalues(np.asarray(values, dtype=float), p)
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = set(z.files)
                if {"nodes", "weights"} <= keys:
                    nodes = np.atleast_2d(np.asarray(z["nodes"], dtype=float))
                    weights = np.atleast_2d(np.asarray(z["weights"], dtype=float))
                    P = num_params or (int(z["num_params"]) if "num_params" in keys else None)
                elif "eigenvalues" in keys:
                    return _eigenvalues(z["eigenvalues"], p)
                else:
                    raise DataError(f"{str(p)!r} needs arrays 'nodes' and 'weights' (an SLQ "
                                    f"density) or 'eigenvalues'; it has {sorted(keys)}")
            return _density(nodes, weights, P, p)
    except (ValueError, OSError, KeyError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise DataError(f"cannot read the spectrum in {str(p)!r}: {exc}") from None
    raise DataError(f"{str(p)!r}: unknown spectrum format {suffix!r}; use .npy, .txt, .csv "
                    "(eigenvalues), .npz (nodes and weights, or eigenvalues) or a gn_theory "
                    "result .json")


def _eigenvalues(arr: Any, p: Path) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind not in "fiu":
        raise DataError(f"{str(p)!r}: eigenvalues must be numbers; got dtype {a.dtype}")
    a = np.squeeze(a.astype(float))
    if a.ndim != 1:
        raise DataError(f"{str(p)!r}: expected a 1-d list of eigenvalues; got shape {a.shape}")
    if a.size < 3:
        raise DataError(f"{str(p)!r}: {a.size} eigenvalue(s); a fit needs at least 3")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{str(p)!r}: {int(np.sum(~np.isfinite(a)))} eigenvalue(s) are NaN or inf")
    return np.sort(a)[::-1].copy()


def _density(nodes: np.ndarray, weights: np.ndarray, P: int | None, p: Path) -> SpectralDensity:
    if nodes.shape != weights.shape:
        raise DataError(f"{str(p)!r}: nodes {nodes.shape} and weights {weights.shape} differ")
    if not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(weights))) or np.any(weights < 0):
        raise DataError(f"{str(p)!r}: nodes and weights must be finite, weights >= 0")
    sums = weights.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        raise DataError(f"{str(p)!r}: a probe's weights sum to 0")
    order = np.argsort(-nodes, axis=1, kind="stable")
    nodes = np.take_along_axis(nodes, order, axis=1)
    weights = np.take_along_axis(weights / sums, order, axis=1)
    return SpectralDensity(
        nodes=nodes, weights=weights, num_params=int(P or nodes.shape[1]),
        num_steps=int(nodes.shape[1]), num_probes=int(nodes.shape[0]),
        bounds=np.array([nodes.min(), nodes.max()]),
        settings={"source": str(p), "kind": "given"},
    )


def fit(config: dict[str, Any], run_dir: str | os.PathLike, *, log: Log | None = None,
        progress: bool = False) -> list[Path]:
    """Stage 4 (torch-free): fit the theory; write ``fit.*`` and ``summary.json``.

    Reads ``measurement.*`` (and ``decomposition.*``, ``training.*`` where
    present) from the run directory, or the file named by ``config["fit"]["spectrum"]``.

    Parameters
    ----------
    config : dict
        Resolved settings; section ``fit``.
    run_dir : str or os.PathLike
    log : callable, optional
    progress : bool, default False
        Unused (the fits are quick).

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    ResultFileError, DataError
        Missing or corrupt inputs.
    """
    log = log or (lambda _: None)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    f = config["fit"]
    opts = dict(mp_method=f["mp_method"], num_bootstrap=f["num_bootstrap"],
                min_ratio=f["min_ratio"], predict_k=f["predict_k"], seed=config["run"]["seed"])
    t = time.perf_counter()
    if f["spectrum"] is not None:
        spectrum = read_spectrum(f["spectrum"], num_params=f["num_params"])
        name = Path(f["spectrum"]).stem
        theory = fit_theory(spectrum, num_classes=f["num_classes"], name=name, **opts)
        analysis = Analysis(theory=theory, settings={k: copy.deepcopy(config[k])
                                                     for k in STAGE_SECTIONS["fit"]})
        log(f"fitted the spectrum in {f['spectrum']} ({time.perf_counter() - t:.1f} s)")
    else:
        measurement = Measurement.load(_need(run, FILES["measurement"], "measure"))
        dec = None
        if (run / f"{FILES['decomposition']}.json").exists():
            dec = load_result(run / FILES["decomposition"])
        training = None
        if (run / f"{FILES['training']}.json").exists():
            training = TrainingLog.load(run / FILES["training"])
        theory = fit_theory(measurement, dec, **opts)
        analysis = Analysis(measurement=measurement, decomposition=dec, theory=theory,
                            training=training, settings=_recorded(run, config, "fit"))
        log(f"fitted MP and spiked models, counted outliers, ran the predictors "
            f"({time.perf_counter() - t:.1f} s)")
    for s in theory.skipped:
        log(f"skipped: {s}")
    o = theory.outliers
    if o is not None:
        log(f"outliers of {theory.spectrum_name}: {o.count} ({o.rule} rule"
            + (f", C = {o.num_classes})" if o.num_classes else ")"))
    path = theory.save(run / FILES["theory"])
    summary = write_summary(run, analysis.summary_dict())
    return [path, run / f"{FILES['theory']}.npz", summary, write_config(run, config, "fit")]


def _recorded(run: Path, config: dict[str, Any], stage: str) -> dict[str, Any]:
    """The settings behind a run directory's files: the recorded sections plus ``stage``'s."""
    sections = set(STAGE_SECTIONS[stage])
    if (run / CONFIG_FILE).is_file():
        sections |= set(read_toml(run / CONFIG_FILE))
    return {s: copy.deepcopy(config[s]) for s in SECTIONS if s in sections}


def _save_figure(fig: Any, path: Path, fmt: str, dpi: int) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


def make_figures(analysis: Analysis) -> dict[str, Any]:
    """The figures of an analysis that its results allow, by :data:`FIGURES` name (torch-free).

    Parameters
    ----------
    analysis : Analysis

    Returns
    -------
    dict of str to matplotlib.figure.Figure
    """
    from . import plots  # deferred: matplotlib (only the figures need it)

    figs: dict[str, Any] = {}
    m, dec, th, tr = analysis.measurement, analysis.decomposition, analysis.theory, analysis.training
    densities: dict[str, Any] = {}
    eigenvalues: dict[str, Any] = {}
    if m is not None:
        densities = {k: d for k, d in (("H", m.H_density), ("G", m.G_density)) if d is not None}
    if dec is not None and dec.inputs is not None and dec.inputs.within_density is not None:
        densities["G_w"] = dec.inputs.within_density
    if th is not None and th.spectrum is not None:  # a spectrum from another tool
        if isinstance(th.spectrum, SpectralDensity):
            densities[th.spectrum_name] = th.spectrum
        else:
            eigenvalues[th.spectrum_name] = th.spectrum
    if densities or eigenvalues:
        mp = None
        if th is not None and th.mp_fit is not None:
            mp = {"G" if "G" in densities else th.spectrum_name: th.mp_fit}
        observed = None
        if th is not None and th.outliers is not None and th.outliers.count:
            observed = {th.spectrum_name: th.outliers.values}
        title = None
        if m is not None:
            title = f"P = {m.num_params:,}, N = {m.num_samples:,}, C = {m.num_classes}"
        figs["spectrum"] = plots.plot_spectrum_overview(
            densities or None, eigenvalues=eigenvalues or None, mp_fit=mp,
            observed_outliers=observed,
            predicted_outliers=None if th is None else th.prediction, title=title)
    if th is not None and th.prediction is not None and th.prediction.observed is not None:
        figs["predicted_vs_observed"] = plots.plot_predicted_vs_observed(th.prediction)
        figs["relative_errors"] = plots.plot_relative_errors(th.prediction)
    if dec is not None and dec.structure.K is not None:
        figs["gram"] = plots.plot_gram(dec.structure, "G_cm")
    if tr is not None:
        figs["training"] = plots.plot_training(tr)
    return figs


def plot(config: dict[str, Any], run_dir: str | os.PathLike, *, log: Log | None = None,
         progress: bool = False) -> list[Path]:
    """Stage 5 (torch-free): draw the figures into ``figures/`` (PNG, and PDF with ``pdf``).

    Parameters
    ----------
    config : dict
        Resolved settings; section ``plot``.
    run_dir : str or os.PathLike
        A run directory with at least ``fit.*`` (or ``measurement.*``).
    log : callable, optional
    progress : bool, default False
        Unused.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    ResultFileError
        No results to draw, or a corrupt pair.
    """
    log = log or (lambda _: None)
    run = Path(run_dir)
    analysis = Analysis.load(run)
    if not analysis.settings:
        analysis = dataclasses.replace(analysis, settings=copy.deepcopy(config))
    t = time.perf_counter()
    folder = run / "figures"
    folder.mkdir(exist_ok=True)
    files = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tight_layout.*")
        figs = make_figures(analysis)
        for name, fig in figs.items():
            files.append(_save_figure(fig, folder / f"{name}.png", "png", config["plot"]["dpi"]))
            if config["plot"]["pdf"]:
                files.append(_save_figure(fig, folder / f"{name}.pdf", "pdf", config["plot"]["dpi"]))
    log(f"drew {len(figs)} figure(s): {', '.join(figs)} ({time.perf_counter() - t:.1f} s)")
    files.append(write_config(run, config, "plot"))
    return files


def report(config: dict[str, Any], run_dir: str | os.PathLike, *, log: Log | None = None,
           progress: bool = False) -> list[Path]:
    """Stage 6 (torch-free): write ``report.md`` and a self-contained ``report.html``.

    Parameters
    ----------
    config : dict
        Resolved settings (unused beyond the record).
    run_dir : str or os.PathLike
        A run directory with ``summary.json`` (and ``figures/``).
    log : callable, optional
    progress : bool, default False
        Unused.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    ResultFileError
        No or a corrupt ``summary.json``.
    """
    from .report import write_report  # deferred: report imports this module

    log = log or (lambda _: None)
    run = Path(run_dir)
    files = write_report(run)
    log(f"wrote {', '.join(p.name for p in files)}")
    return files


_STAGE_FUNCS: dict[str, Callable[..., list[Path]]] = {}


def run(config: dict[str, Any], run_dir: str | os.PathLike, *, log: Log | None = None,
        progress: bool = False, checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False) -> list[Path]:
    """All six stages in one run directory: train, measure, decompose, fit, plot, report.

    Parameters
    ----------
    config : dict
        Resolved settings (:func:`resolve_config`).
    run_dir : str or os.PathLike
    log : callable, optional
    progress : bool, default False
    checkpoint_dir, resume
        Passed to :func:`measure` and :func:`decompose`.

    Returns
    -------
    list of pathlib.Path
        Every file written.
    """
    files: list[Path] = []
    for name in STAGES:
        if name == "decompose" and config["train"]["loss"] != "cross_entropy":
            (log or (lambda _: None))("decompose: skipped (the class structure needs "
                                      "cross-entropy)")
            continue
        ck = {"checkpoint_dir": checkpoint_dir, "resume": resume} if name in (
            "measure", "decompose") else {}
        files += _STAGE_FUNCS[name](config, run_dir, log=log, progress=progress, **ck)
    return files


_STAGE_FUNCS.update(train=train, measure=measure, decompose=decompose, fit=fit, plot=plot,
                    report=report)


def stage_function(name: str) -> Callable[..., list[Path]]:
    """The function of a stage (or of ``"run"``) by name."""
    check_choice("stage", name, STAGES + ("run",))
    return run if name == "run" else _STAGE_FUNCS[name]
