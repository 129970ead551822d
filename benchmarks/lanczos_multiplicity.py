"""Does ``lanczos`` return k eigenvalues with multiplicity? Random matrices against ``eigvalsh``.

The experiment of issue 13: dense symmetric matrices of size P = 5..60 with a random eigenbasis,
``k`` in ``[1, P]`` and ``which`` in {largest, smallest, both}, in four families:

* ``low_rank``   -- rank r < P (random signs, so indefinite), the rest exactly 0: the GGN and
  Hessian case (a large null space);
* ``repeated``   -- at most 6 distinct values, each with an exact multiplicity;
* ``generic``    -- Gaussian eigenvalues (all distinct);
* ``generic_large`` -- (product counts) Gaussian eigenvalues, P = 200..600, k = 1..20, a tenth
  as many matrices: where Lanczos restarts and stops long before exploring the whole space;
* ``rich_repeated`` -- (informative) pairs of equal values, about P/2 distinct: a multiple
  eigenvalue inside a spectrum with more distinct values than the Krylov basis needs to
  converge, which one start vector cannot see (``docs/spectra.md``; use ``block_size``).

A run is *wrong* if some returned eigenvalue differs from ``numpy.linalg.eigvalsh``'s by more
than ``1e-6 * max|lambda|``, and *silently wrong* if it is wrong while every value is flagged
converged and no warning was issued. Products (``num_matvecs``) are summed per family.

Usage::

    python benchmarks/lanczos_multiplicity.py            # 200 matrices per family, ~1 min
    python benchmarks/lanczos_multiplicity.py --num 50   # quicker
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from gn_theory.spectra import lanczos

FAMILIES = ("low_rank", "repeated", "generic", "rich_repeated", "generic_large")


def _rotate(eigs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    Q, _ = np.linalg.qr(rng.standard_normal((eigs.size, eigs.size)))
    A = (Q * eigs) @ Q.T
    return 0.5 * (A + A.T)


def draw(family: str, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    """One test case: a matrix, k and which."""
    P = int(rng.integers(200, 601)) if family == "generic_large" else int(rng.integers(5, 61))
    if family == "low_rank":
        r = int(rng.integers(1, P))
        eigs = np.r_[rng.standard_normal(r) * 3.0, np.zeros(P - r)]
    elif family == "repeated":
        d = int(rng.integers(1, 7))
        eigs = rng.choice(np.round(rng.standard_normal(d) * 3.0, 3), size=P)
    elif family == "rich_repeated":
        vals = rng.standard_normal((P + 1) // 2) * 3.0
        eigs = np.repeat(vals, 2)[:P]
    else:
        eigs = rng.standard_normal(P)
    k = int(rng.integers(1, 21 if family == "generic_large" else P + 1))
    which = str(rng.choice(["largest", "smallest", "both"]))
    return _rotate(eigs, rng), k, which


def reference(A: np.ndarray, k: int, which: str) -> np.ndarray:
    """The k eigenvalues lanczos must return, descending."""
    e = np.linalg.eigvalsh(A)
    if which == "largest":
        return e[-k:][::-1]
    if which == "smallest":
        return e[:k][::-1]
    top = (k + 1) // 2
    return np.r_[e[: k - top], e[-top:]][::-1]


def run(num: int, seed: int, **options) -> dict[str, dict[str, int]]:
    """Counts per family: runs, wrong, silently wrong, errors, products."""
    out = {}
    for f_i, family in enumerate(FAMILIES):
        rng = np.random.default_rng([seed, f_i])
        c = {"runs": 0, "wrong": 0, "silent": 0, "errors": 0, "matvecs": 0, "k": 0, "per_case": []}
        for i in range(max(1, num // 10) if family == "generic_large" else num):
            A, k, which = draw(family, rng)
            ref = reference(A, k, which)
            scale = max(float(np.abs(ref).max()), float(np.abs(np.linalg.eigvalsh(A)).max()))
            c["runs"] += 1
            c["k"] += k
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    s = lanczos(A, k, which, seed=i, **options)
            except Exception as exc:  # noqa: BLE001 - an error is counted, not fatal
                c["errors"] += 1
                c["per_case"].append(-1)
                print(f"  {family} #{i}: {type(exc).__name__}: {exc}")
                continue
            c["matvecs"] += s.num_matvecs
            c["per_case"].append(int(s.num_matvecs))
            bad = s.eigenvalues.shape != ref.shape or not np.allclose(
                s.eigenvalues, ref, rtol=0, atol=1e-6 * max(scale, 1e-300)
            )
            if bad:
                c["wrong"] += 1
                if s.all_converged and not caught:
                    c["silent"] += 1
        out[family] = c
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200, help="matrices per family")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--save", help="write the counts (and products per case) to this JSON file")
    parser.add_argument("--compare", help="a JSON file from --save: compare products case by case")
    parser.add_argument(
        "--no-symmetry-check", action="store_true",
        help="pass check_symmetric=False (products comparable with gn_theory <= 0.2)",
    )
    args = parser.parse_args()
    t0 = time.perf_counter()
    options = {"check_symmetric": False} if args.no_symmetry_check else {}
    res = run(args.num, args.seed, **options)
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(res, fh)
    print(f"{'family':<15}{'runs':>6}{'wrong':>7}{'silent':>8}{'errors':>8}{'matvecs':>9}"
          f"{'sum k':>7}")
    for family, c in res.items():
        print(f"{family:<15}{c['runs']:>6}{c['wrong']:>7}{c['silent']:>8}{c['errors']:>8}"
              f"{c['matvecs']:>9}{c['k']:>7}")
    if args.compare:
        with open(args.compare) as fh:
            old = json.load(fh)
        print("products against", args.compare, "(cases with more / fewer / equal products):")
        for family, c in res.items():
            a = np.array(old[family]["per_case"])
            b = np.array(c["per_case"])
            ok = (a >= 0) & (b >= 0)
            ratio = b[ok] / np.maximum(a[ok], 1)
            print(f"  {family:<15} more {int((b[ok] > a[ok]).sum()):>4}  fewer "
                  f"{int((b[ok] < a[ok]).sum()):>4}  equal {int((b[ok] == a[ok]).sum()):>4}  "
                  f"total {int(a[ok].sum())} -> {int(b[ok].sum())}  max ratio {ratio.max():.2f}")
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
