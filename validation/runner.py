"""Run the validation scripts and write ``claims.json`` and ``validation.md``.

``python -m validation [--quick | --full] [--only ID ...] --out DIR`` (``gn-theory validate`` runs
the same :func:`main`). Every script of :data:`SCRIPTS` checks the claims of ``claims.md`` it
names; the runner collects their rows into ``DIR/claims.json`` (one row per claim ID: ``id``,
``paper``, ``claim``, ``expected``, ``measured``, ``values``, ``criterion``, ``passed``,
``verdict``, ``evidence``, ``figure``, ``script``, ``size``), writes ``DIR/run.json`` (sizes,
seeds, wall times) and ``DIR/validation.md`` (the table of verdicts, then each script's claims
with its figures embedded). A claim of ``claims.md`` that no script covers gets a
``"NOT TESTED"`` row saying so.

Exit status: 0 when every selected script ran (whatever the verdicts: a FAIL is a finding),
1 when a script raised (its rows say ``"ERROR"``), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from validation import _common as C

__all__ = ["SCRIPTS", "NOT_COVERED", "main", "run_scripts", "write_report"]

#: The scripts, in the order they run (one per paper figure or table).
SCRIPTS: tuple[str, ...] = (
    "sagun2016_mnist_width",
    "sagun2016_random_inputs",
    "sagun2016_network_size",
    "sagun2016_init_and_std",
    "sagun2016_interpolation",
    "sagun2017_gauss_newton",
    "sagun2017_num_classes",
    "sagun2017_batch_size",
    "papyan2019_spectrum",
    "papyan2019_sample_size",
    "papyan2019_hierarchy",
    "papyan2020_spikes",
    "papyan2020_logistic_regression",
    "papyan2020_depth",
    "fortganguli2019_local_geometry",
    "fortganguli2019_training",
    "fortganguli2019_goldilocks",
    "fortganguli2019_random_model",
    "rmt_simulations",
    "rmt_real_mnist",
)
#: Claims of claims.md that no script tests, with the reason.
NOT_COVERED: dict[str, str] = {
    "P20-4": "out of scope (claims.md): the KFAC correction is not part of gn_theory",
}


def _load(name: str) -> Any:
    return importlib.import_module(f"validation.{name}")


def run_scripts(
    names: Sequence[str], *, size: str, out: Path, seed: int, device: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the named scripts in order; return their claim rows and per-script timings."""
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for i, name in enumerate(names, 1):
        mod = _load(name)
        print(f"[{i}/{len(names)}] {name} ({', '.join(mod.CLAIMS)}) ...", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                numbers = mod.run(size, out=out, seed=seed, device=device)
            got = numbers["claims"]
            status = "ok"
        except Exception as exc:  # a script that crashes still leaves rows, marked ERROR
            tb = traceback.format_exc()
            print(tb, file=sys.stderr)
            got = [dict(C.not_tested(cid, f"the script raised {type(exc).__name__}: {exc}"),
                        verdict="ERROR") for cid in mod.CLAIMS]
            status = f"error: {type(exc).__name__}: {exc}"
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        for r in got:
            r.update(script=name, size=size)
            print(f"      {r['id']:8s} {r['verdict']:10s} {r['measured'][:110]}", flush=True)
        print(f"      done in {dt:.0f} s", flush=True)
        seen = sorted({f"{w.category.__name__}: {w.message}" for w in caught
                       if not issubclass(w.category, DeprecationWarning)})
        if seen:
            print(f"      {len(seen)} distinct warning(s), kept in run.json", flush=True)
        info[name] = {"seconds": round(dt, 1), "cpu_seconds": round(dc, 1), "status": status, "claims": list(mod.CLAIMS),
                      "warnings": seen, "sizes": _sizes_paragraph(mod),
                      "config": C.jsonable(mod.SIZES.get(size, {}))}
        rows.extend(got)
    return rows, info


def _sizes_paragraph(mod: Any) -> str:
    """The "Sizes" paragraph of a script's docstring (which sizes, and why they test the claim)."""
    doc = mod.__doc__ or ""
    for para in doc.split("\n\n"):
        if para.strip().startswith("Sizes"):
            return " ".join(para.split()).replace("``", "`")
    return ""


def _selected(only: Sequence[str] | None) -> list[str]:
    if not only:
        return list(SCRIPTS)
    known = C.claims_table()
    wanted = {o.upper() if o.upper() in known else o for o in only}
    unknown = sorted(w for w in wanted if w not in known and w not in SCRIPTS)
    if unknown:
        raise SystemExit(f"unknown claim ID or script: {', '.join(unknown)} "
                         f"(IDs are listed in validation/claims.md)")
    return [s for s in SCRIPTS if s in wanted or wanted & set(_load(s).CLAIMS)]


def _order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = list(C.claims_table())
    return sorted(rows, key=lambda r: ids.index(r["id"]) if r["id"] in ids else len(ids))


def _cell(text: Any, limit: int = 220) -> str:
    s = str(text).replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def write_report(rows: list[dict[str, Any]], run: dict[str, Any], page: Path,
                 figures_dir: Path) -> Path:
    """Write the markdown page: the claims table, then every claim with its figure.

    Figure links are relative to the page, so the page may live outside ``figures_dir``.
    """
    rel = os.path.relpath(figures_dir, page.parent)
    link = (lambda f: f if rel == "." else f"{rel}/{f}")
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("PASS", "FAIL", "NOT TESTED", "ERROR")}
    lines = [
        "# Validation: the papers' claims, measured",
        "",
        f"Generated by `{run['command']}` ({run['size']} sizes, seed {run['seed']}, device "
        f"{run['device']}) in {run['wall_s']:.0f} s wall time"
        + (f" ({run['cpu_s']:.0f} s of CPU time)" if "cpu_s" in run else "")
        + f" on {run['machine']}, "
        f"{run['finished']}. Verdicts: {counts['PASS']} PASS, {counts['FAIL']} FAIL, "
        f"{counts['NOT TESTED']} NOT TESTED" + (f", {counts['ERROR']} ERROR" if counts["ERROR"] else "")
        + ".",
        "",
    ]
    for rr in run.get("reruns", []):
        lines += [f"Then `{rr['command']}` re-ran {', '.join(rr['scripts'])} "
                  f"({rr['wall_s']:.0f} s, {rr['finished']}).", ""]
    lines += [
        "Each criterion was fixed in its script before the run, from the claim as "
        "`validation/claims.md` states it. A FAIL keeps its evidence; nothing is re-read to pass.",
        "",
        "| ID | paper | verdict | measured | criterion | figure |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        fig = f"[png]({link(r['figure'])})" if r.get("figure") else ""
        lines.append(f"| {r['id']} | {_cell(r['paper'], 60)} | **{r['verdict']}** | "
                     f"{_cell(r['measured'])} | {_cell(r['criterion'])} | {fig} |")
    by_script: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_script.setdefault(r.get("script") or "(no script)", []).append(r)
    for name, group in by_script.items():
        lines += ["", f"## {name}", ""]
        info = run.get("scripts", {}).get(name)
        if info and "sizes" not in info and name in SCRIPTS:  # a run.json of an older runner
            info["sizes"] = _sizes_paragraph(_load(name))
        if info:
            lines.append(f"`validation/{name}.py`, {info['seconds']:.0f} s at {run['size']} size.")
            if info.get("sizes"):
                lines += ["", f"*{info['sizes']}*"]
            shown_w = [w for w in info.get("warnings", []) if not w.startswith("Deprecation")]
            if shown_w:
                info = dict(info, warnings=shown_w)
                lines += ["", f"Warnings raised ({len(info['warnings'])}, in `run.json`): "
                          + "; ".join(_cell(w, 160) for w in info["warnings"][:3])
                          + (" ..." if len(info["warnings"]) > 3 else "")]
            lines.append("")
        shown: set[str] = set()
        for r in group:
            lines += [
                f"### {r['id']}: {r['verdict']}",
                "",
                f"- **Claim** ({r['paper']}): {r['claim']}",
                f"- **Expected** (claims.md): {r['expected']}",
            ]
            if r.get("setting"):
                lines.append(f"- **Our setting**: {r['setting']}")
            lines += [f"- **Measured**: {r['measured']}", f"- **Criterion**: {r['criterion']}"]
            if r.get("evidence"):
                lines.append(f"- **Evidence**: {r['evidence']}")
            lines.append("")
            if r.get("figure") and r["figure"] not in shown:
                shown.add(r["figure"])
                lines += [f"![{r['id']}]({link(r['figure'])})", ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return page


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m validation",
        description="Reproduce the papers' claims (validation/claims.md) and write "
                    "DIR/claims.json and DIR/validation.md.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="size", action="store_const", const="quick",
                   help="reduced sizes, every claim within 15 minutes on 2 CPU cores (default)")
    g.add_argument("--full", dest="size", action="store_const", const="full",
                   help="the papers' sizes where a CPU can (hours; some want --device cuda)")
    g.add_argument("--tiny", dest="size", action="store_const", const="tiny",
                   help="seconds per script: what the test suite runs (too small to judge)")
    p.set_defaults(size="quick")
    p.add_argument("--only", nargs="+", metavar="ID",
                   help="claim IDs (e.g. S16-3 FG-2) or script names to run")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--page", default=None,
                   help="where to write the markdown report (default DIR/validation.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device for the models (e.g. cuda)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: --quick is sized single-threaded; more "
                        "threads help only on an otherwise idle machine)")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the markdown report from DIR/claims.json and DIR/run.json "
                        "without running anything")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: run the scripts, write claims.json, run.json and validation.md."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    try:
        names = _selected(args.only)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    out = Path(args.out)
    if args.report_only:
        try:
            rows = json.loads((out / "claims.json").read_text())
            run = json.loads((out / "run.json").read_text())
        except (OSError, ValueError) as exc:
            print(f"--report-only needs {out}/claims.json and run.json: {exc}", file=sys.stderr)
            return 2
        page = write_report(rows, run, Path(args.page) if args.page else out / "validation.md", out)
        print(f"validation: wrote {page}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(int(args.threads), 1))
    try:
        return _run(args, argv, names, out)
    finally:
        torch.set_num_threads(threads)  # the caller's setting back (tests run in one process)


def _run(args: argparse.Namespace, argv: list[str], names: list[str], out: Path) -> int:
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    print(f"validation: {len(names)} scripts at {args.size} size -> {out}", flush=True)
    rows, info = run_scripts(names, size=args.size, out=out, seed=args.seed, device=args.device)
    covered = {r["id"] for r in rows}
    if not args.only:
        for cid in C.claims_table():
            if cid not in covered:
                reason = NOT_COVERED.get(cid, "no validation script covers this claim")
                rows.append(dict(C.not_tested(cid, reason), script=None, size=args.size))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    command = "python -m validation " + " ".join(argv)
    run = {
        "command": command,
        "size": args.size, "seed": args.seed, "device": args.device,
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "threads": torch.get_num_threads(),
        "scripts": info,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads "
                   f"{_torch_threads()}",
        "finished": time.strftime("%Y-%m-%d %H:%M"),
    }
    previous = _previous(out, args) if args.only else None
    if previous is not None:  # --only into a folder with a run of the same size: update it
        old_rows, old_run = previous
        rerun = {cid for name in names for cid in _load(name).CLAIMS}
        rows = [r for r in old_rows if r["id"] not in rerun] + rows
        old_run["scripts"].update(info)
        old_run.setdefault("reruns", []).append(
            {"command": command, "scripts": names, "wall_s": round(wall, 1),
             "finished": run["finished"]})
        run = old_run
    rows = _order(rows)
    (out / "claims.json").write_text(json.dumps(C.jsonable(rows), indent=1) + "\n")
    (out / "run.json").write_text(json.dumps(C.jsonable(run), indent=1) + "\n")
    page = write_report(rows, run, Path(args.page) if args.page else out / "validation.md", out)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("PASS", "FAIL", "NOT TESTED", "ERROR")}
    print(f"validation: {counts} in {wall:.0f} s; wrote {out / 'claims.json'} and {page}")
    return 1 if counts["ERROR"] else 0


def _previous(out: Path, args: argparse.Namespace) -> tuple[list, dict] | None:
    """The rows and run record already in ``out``, if they come from a run of the same size."""
    try:
        rows = json.loads((out / "claims.json").read_text())
        run = json.loads((out / "run.json").read_text())
    except (OSError, ValueError):
        return None
    same = (run.get("size"), run.get("seed"), run.get("device")) == (args.size, args.seed,
                                                                      args.device)
    return (rows, run) if same and isinstance(rows, list) else None


def _torch_threads() -> int:
    return torch.get_num_threads()


if __name__ == "__main__":
    raise SystemExit(main())
