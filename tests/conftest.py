import pytest
import torch

from cases import CASES


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- BLAS threads
def _openblas_thread_setters():
    """(getter, setter) pairs of every OpenBLAS loaded in this process (numpy's, scipy's)."""
    import ctypes

    pairs = []
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return pairs
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, put in [
            ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
            ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
            ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
            ("openblas_get_num_threads", "openblas_set_num_threads"),
        ]:
            if hasattr(lib, get) and hasattr(lib, put):
                pairs.append((getattr(lib, get), getattr(lib, put)))
                break
    return pairs


@pytest.fixture(scope="module")
def single_blas_thread():
    """Run the simulations on one BLAS thread.

    On a machine shared by several processes a multi-threaded OpenBLAS eigh/svd
    can run 20x slower than a single thread (threads spin while waiting for cores).
    """
    pairs = _openblas_thread_setters()
    old = [get() for get, _ in pairs]
    for _, put in pairs:
        put(1)
    yield
    for (_, put), n in zip(pairs, old):
        put(n)
