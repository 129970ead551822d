"""The results layer's files: exact round trips, crash safety, versions, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from gn_theory.exceptions import InvalidInputError, ResultFileError
from gn_theory.results import SCHEMA_VERSION, Result, Summary, fingerprint, load_result


@dataclass
class StoreProbe(Result):
    """A result exercising every kind of field the store supports."""

    values: np.ndarray
    counts: np.ndarray
    label: str = "probe"
    scalar: float = 1.5
    flags: tuple = (True, 3, None)
    settings: dict = field(default_factory=dict)
    child: Result | None = None
    extras: list = field(default_factory=list)


@dataclass
class OtherProbe(Result):
    x: np.ndarray


def _probe(seed: int = 0, n: int = 7) -> StoreProbe:
    rng = np.random.default_rng(seed)
    child = StoreProbe(values=rng.standard_normal(3).astype(np.float32), counts=np.arange(2))
    return StoreProbe(
        values=rng.standard_normal(n),
        counts=rng.integers(0, 9, size=(2, 3)),
        label=f"seed {seed}",
        scalar=float("nan"),
        flags=(True, 2**40, None, float("-inf")),
        settings={"method": "ks", "alpha": 0.05, "nested": {"a": [1, 2.5, float("inf")]}},
        child=child,
        extras=[np.array([1 + 2j, 3.5 - 1j]), "text", {"deep": np.eye(2, dtype=np.float16)}],
    )


def _assert_same(a: object, b: object) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, Result):
        assert type(a) is type(b)
        for k, v in a._fields().items():
            _assert_same(v, getattr(b, k))
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b)
    else:
        assert a == b and type(a) is type(b), (a, b)


def test_save_load_round_trip_is_exact(tmp_path):
    r = _probe()
    js = r.save(tmp_path / "probe")
    assert js == tmp_path / "probe.json" and (tmp_path / "probe.npz").exists()
    back = StoreProbe.load(tmp_path / "probe")
    _assert_same(r, back)
    _assert_same(r, load_result(tmp_path / "probe.npz"))
    _assert_same(r, load_result(tmp_path / "probe.json"))
    assert not list(tmp_path.glob("*.new")) and not list(tmp_path.glob(".*tmp"))


def test_to_dict_from_dict_round_trip_through_json():
    r = _probe(3)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["type"] == "StoreProbe" and d["schema_version"] == SCHEMA_VERSION
    _assert_same(r, StoreProbe.from_dict(d))
    _assert_same(r, Result.from_dict(d))
    with pytest.raises(InvalidInputError, match="not a OtherProbe"):
        OtherProbe.from_dict(d)
    with pytest.raises(InvalidInputError, match="to_dict"):
        Result.from_dict({"values": [1]})


def test_dotted_stems_are_their_own_results(tmp_path):
    a, b = _probe(1), _probe(2)
    a.save(tmp_path / "lr_0.1")
    b.save(tmp_path / "lr_0.2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lr_0.1.json", "lr_0.1.npz", "lr_0.2.json", "lr_0.2.npz"
    ]
    _assert_same(a, load_result(tmp_path / "lr_0.1"))
    _assert_same(b, load_result(tmp_path / "lr_0.2"))


def test_provenance_recorded(tmp_path):
    r = _probe()
    r.settings["fingerprint"] = {"model": fingerprint(np.arange(3.0))}
    r.save(tmp_path / "p")
    prov = load_result(tmp_path / "p").provenance
    assert prov["gn_theory"] and prov["numpy"] == np.__version__ and "created" in prov
    assert prov["fingerprint"] == {"model": fingerprint(np.arange(3.0))}
    assert _probe().provenance == {}


def test_unstorable_field_writes_nothing(tmp_path):
    r = _probe()
    r.settings["bad"] = object()
    with pytest.raises(InvalidInputError, match="settings.bad"):
        r.save(tmp_path / "x")
    assert list(tmp_path.iterdir()) == []
    r.settings = {"__array__": 1}
    with pytest.raises(InvalidInputError, match="reserved"):
        r.save(tmp_path / "x")
    with pytest.raises(InvalidInputError, match="object arrays"):
        OtherProbe(np.array([None, 1], dtype=object)).save(tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_previous_result(tmp_path):
    old = _probe(1)
    old.save(tmp_path / "r")
    bad = _probe(2)
    bad.extras.append({1: "non-string key"})
    with pytest.raises(InvalidInputError):
        bad.save(tmp_path / "r")
    _assert_same(old, load_result(tmp_path / "r"))


def test_bad_files_give_clear_errors(tmp_path):
    r = _probe()
    stem = tmp_path / "r"
    with pytest.raises(ResultFileError, match=r"r\.json.*does not exist"):
        load_result(stem)
    r.save(stem)
    npz, js = tmp_path / "r.npz", tmp_path / "r.json"
    good_npz, good_js = npz.read_bytes(), js.read_bytes()

    npz.write_bytes(good_npz[: len(good_npz) // 2])  # truncated arrays
    with pytest.raises(ResultFileError, match="checksum"):
        load_result(stem)
    npz.unlink()
    with pytest.raises(ResultFileError, match="arrays file does not exist"):
        load_result(stem)
    npz.write_bytes(good_npz)

    js.write_bytes(b"")
    with pytest.raises(ResultFileError, match="empty"):
        load_result(stem)
    js.write_bytes(good_js[:40])
    with pytest.raises(ResultFileError, match="not valid JSON"):
        load_result(stem)
    js.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ResultFileError, match="not a gn_theory result"):
        load_result(stem)
    meta = json.loads(good_js)
    meta["schema_version"] = SCHEMA_VERSION + 1
    js.write_text(json.dumps(meta))
    with pytest.raises(ResultFileError, match="newer than this gn_theory"):
        load_result(stem)
    meta = json.loads(good_js)
    meta["type"] = "NoSuchResult"
    js.write_text(json.dumps(meta))
    with pytest.raises(ResultFileError, match="unknown result type 'NoSuchResult'"):
        load_result(stem)
    meta = json.loads(good_js)
    meta["fields"]["unexpected"] = 1
    js.write_text(json.dumps(meta))
    with pytest.raises(ResultFileError, match="do not make a StoreProbe"):
        load_result(stem)
    js.write_bytes(good_js)

    # arrays of another result under this JSON: a mismatched pair
    OtherProbe(np.ones(3)).save(tmp_path / "other")
    npz.write_bytes((tmp_path / "other.npz").read_bytes())
    with pytest.raises(ResultFileError, match="checksum"):
        load_result(stem)
    # a foreign zip with the right checksum is still refused cleanly
    npz.write_bytes(good_npz)
    with pytest.raises(ResultFileError, match="holds a StoreProbe, not a OtherProbe"):
        OtherProbe.load(stem)
    _assert_same(r, load_result(stem))


def test_unreadable_zip_with_matching_checksum(tmp_path):
    # an arrays file whose checksum matches but that numpy cannot read (hand-made JSON)
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 not really a zip")
    import hashlib

    sha = hashlib.sha256((tmp_path / "z.npz").read_bytes()).hexdigest()
    meta = {"format": "gn_theory.result", "schema_version": 1, "type": "OtherProbe",
            "fields": {"x": {"__array__": "x"}}, "arrays": {"sha256": sha, "keys": ["x"]}}
    (tmp_path / "z.json").write_text(json.dumps(meta))
    with pytest.raises(ResultFileError, match="unreadable arrays file"):
        load_result(tmp_path / "z")
    assert zipfile  # the error is the package's, not zipfile.BadZipFile


def test_interrupted_last_rename_is_completed(tmp_path):
    old, new = _probe(1), _probe(2)
    old.save(tmp_path / "r")
    # simulate a crash after the JSON was written but before <stem>.npz.new was renamed
    new.save(tmp_path / "tmp_new")
    os.replace(tmp_path / "tmp_new.npz", tmp_path / "r.npz.new")
    os.replace(tmp_path / "tmp_new.json", tmp_path / "r.json")
    _assert_same(new, load_result(tmp_path / "r"))
    assert not (tmp_path / "r.npz.new").exists()
    _assert_same(new, load_result(tmp_path / "r"))


def test_summary_and_html():
    r = _probe()
    s = r.summary()
    assert isinstance(s, Summary) and "StoreProbe" in str(s) and "values" in str(s)
    assert "<table>" in r._repr_html_()


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from kill_probe import make
    r = make(int(sys.argv[2]))
    print("ready", flush=True)
    sys.stdin.readline()
    r.save(sys.argv[3])
    print("saved", flush=True)
    """
)
_MODULE = textwrap.dedent(
    """
    from dataclasses import dataclass
    import numpy as np
    from gn_theory.results import Result

    @dataclass
    class KillProbe(Result):
        tag: int
        big: np.ndarray
        small: np.ndarray

    def make(tag):
        rng = np.random.default_rng(tag)
        return KillProbe(tag=tag, big=rng.standard_normal(3_000_000), small=np.full(5, tag))
    """
)


def test_sigkill_during_save_leaves_old_or_new(tmp_path):
    """20+ saves of a 24 MB result killed at random moments: the pair always loads as old or new."""
    (tmp_path / "kill_probe.py").write_text(_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        import kill_probe
    finally:
        sys.path.remove(str(tmp_path))
    stem = tmp_path / "runs" / "lr_0.1"
    expected = {t: kill_probe.make(t) for t in range(2)}
    expected[0].save(stem)

    def child_save(tag: int, target) -> tuple[subprocess.Popen, float]:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path), str(tag), str(target)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        return child, time.perf_counter()

    # calibrate: how long a child's save takes on this machine now (load varies)
    child, t0 = child_save(1, tmp_path / "timing")
    assert child.stdout.readline().strip() == "saved"
    t_save = time.perf_counter() - t0
    child.wait()
    rng = np.random.default_rng(0)
    current, seen = 0, {"old": 0, "new": 0}
    trial = 0
    while trial < 24 or (min(seen.values()) == 0 and trial < 48):
        tag = 1 - current
        child, _ = child_save(tag, stem)
        # kill anywhere from before the first byte to just after the last rename
        time.sleep(rng.uniform(0.0, 1.3 * t_save))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        back = load_result(stem)
        assert back.tag in (current, tag), back.tag
        exp = expected[back.tag]
        np.testing.assert_array_equal(back.big, exp.big)
        np.testing.assert_array_equal(back.small, exp.small)
        seen["new" if back.tag == tag else "old"] += 1
        current = back.tag
        trial += 1
    # the random kill times must have hit both outcomes, or the test tested nothing
    assert seen["old"] > 0 and seen["new"] > 0, seen


def test_saved_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    _probe().save(tmp_path / "perm")
    for suffix in (".npz", ".json"):
        mode = (tmp_path / f"perm{suffix}").stat().st_mode & 0o777
        assert mode == 0o666 & ~umask, oct(mode)
