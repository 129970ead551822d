"""The operator interface: :class:`CurvatureOperator`, torch-side sums, dense and scipy wrappers.

A :class:`CurvatureOperator` is a :class:`scipy.sparse.linalg.LinearOperator` whose
products are computed in torch on the operator's device. Torch is the source of truth:
one private kernel, :meth:`CurvatureOperator._matmat_torch`, takes a block ``V`` of
shape (P, k) and returns ``A V``; ``op @ tensor`` goes straight to it, and scipy's
``matvec`` / ``matmat`` on numpy arrays are thin adapters around the same kernel.
Public methods validate their input once; the kernel trusts it (scipy's split).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from tqdm.auto import tqdm

from .. import _checks, _checks_torch, _memory
from .._autodiff import ParameterLayout
from .._format import fmt_bytes
from ..exceptions import (
    DeviceMismatchError,
    DTypeError,
    InvalidInputError,
    MemoryBudgetError,
    ShapeError,
)
from ..results import fingerprint

__all__ = ["CurvatureOperator", "DenseOperator", "as_operator", "DENSE_MEMORY_BUDGET"]

#: Default memory budget (bytes) of :meth:`CurvatureOperator.to_dense`.
DENSE_MEMORY_BUDGET: int = 4 * 2**30


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype mirroring a floating torch dtype (``torch.float32`` -> ``float32``)."""
    return np.dtype(str(dtype).removeprefix("torch."))


class CurvatureOperator(LinearOperator, metaclass=ABCMeta):
    """A symmetric P x P operator whose products are computed in torch.

    Parameters
    ----------
    num_params : int
        Dimension P.
    device : torch.device
        Where products are computed.
    dtype : torch.dtype
        Precision of products (float16, float32 or float64).

    Attributes
    ----------
    num_params : int
        Dimension P.
    device : torch.device
        Where products are computed.
    torch_dtype : torch.dtype
        Precision of products; ``dtype`` is the matching numpy dtype (scipy).
    num_matvecs : int
        Running count of operator-vector products (a (P, k) block counts k);
        ``matvecs`` is the same number under its older name.
    kind : str
        What the operator is (``"hessian"``, ``"ggn"``, ``"residual"``,
        ``"dense"``, ...); a class attribute of each subclass.
    layout : ParameterLayout or None
        Map between the flat vector and named parameter tensors, for operators
        built from a model.
    metadata : dict
        JSON-able description of how the operator was built (kind, sizes,
        dtype, and for model operators the loss, parameter selection and
        :attr:`fingerprint`). The spectral estimators copy it into the
        ``settings`` of their results.

    Raises
    ------
    DTypeError
        If ``dtype`` is not a floating dtype numpy can mirror.

    Notes
    -----
    **Writing a subclass** (the hook, as in scipy's ``LinearOperator``):

    1. set the class attribute ``kind``;
    2. call ``super().__init__(num_params, device, dtype)`` first, then set
       ``layout`` (if the vector maps to parameters) and extend ``metadata``;
    3. write ``_matmat_torch(V)``: ``V`` is a (P, k) tensor, already checked
       to have the operator's dtype and device, and the result must have the
       same shape, dtype and device. Do not count products there;
    4. to multiply by another operator inside the kernel, call its
       ``_apply(V)`` (trusted input, counts that operator's products).

    Everything else (``@`` on tensors, scipy ``matvec``/``matmat``, checks,
    product counting, :meth:`to_dense`, ``A + B``, ``A - B``, ``c * A``) is
    inherited. :class:`DenseOperator` is a complete example in five lines.
    """

    kind: str = "operator"

    def __init__(self, num_params: int, device: torch.device | str, dtype: torch.dtype) -> None:
        dtype = _checks_torch.check_float_dtype(dtype)
        super().__init__(dtype=_numpy_dtype(dtype), shape=(num_params, num_params))
        self.num_params = int(num_params)
        self.device = torch.device(device)
        self.torch_dtype = dtype
        self.num_matvecs = 0
        self.layout: ParameterLayout | None = None
        self.metadata: dict[str, Any] = {"kind": self.kind}

    # -- the kernel -------------------------------------------------------------
    @abstractmethod
    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        """``A @ V`` for a checked (P, k) block on the device; written by subclasses."""

    def _apply(self, V: torch.Tensor) -> torch.Tensor:
        """The kernel on a trusted (P, k) block, counting its k products."""
        out = self._matmat_torch(V)
        self.num_matvecs += V.shape[1]
        return out

    # -- public torch products --------------------------------------------------
    @property
    def matvecs(self) -> int:
        """Products so far; the older name of :attr:`num_matvecs`."""
        return self.num_matvecs

    @property
    def settings(self) -> dict[str, Any]:
        """A copy of :attr:`metadata`: the options that built the operator (results' name)."""
        return dict(self.metadata)

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """Short hashes of what the operator was built from (``None`` if unknown).

        Model operators hash the model's parameters and buffers, the data, the
        loss, the kind and the parameter selection (see
        :attr:`ModelCurvatureOperator.fingerprint`); a sum of such operators
        combines its terms'. The same dict is ``metadata["fingerprint"]``.
        """
        fp = self.metadata.get("fingerprint")
        return None if fp is None else dict(fp)

    def matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        """Apply the operator to a tensor ``V`` of shape (P,) or (P, k).

        Parameters
        ----------
        V : torch.Tensor
            Vector or block of vectors with the operator's dtype, on its device.

        Returns
        -------
        torch.Tensor
            ``A @ V``, same shape as ``V``, on the operator's device.

        Raises
        ------
        ShapeError
            If ``V`` is not of shape (P,) or (P, k).
        DTypeError
            If ``V`` has another dtype than the operator.
        DeviceMismatchError
            If ``V`` lives on another device.
        """
        _checks_torch.check_vector(V, self.num_params, self.torch_dtype, self.device)
        V = V.detach()  # products are plain tensors, never part of the caller's graph
        if V.ndim == 1:
            return self._apply(V.unsqueeze(1)).squeeze(1)
        return self._apply(V)

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, torch.Tensor):
            return self.matmat_torch(other)
        return super().__matmul__(other)

    # -- scipy adapters ---------------------------------------------------------
    def matvec(self, x: Any) -> Any:
        """``A x`` for a numpy vector of shape (P,) or (P, 1) (scipy's interface).

        Raises
        ------
        ShapeError
            If ``x`` has another number of entries than P.
        """
        arr = np.asarray(x)
        if arr.shape not in ((self.num_params,), (self.num_params, 1)):
            raise ShapeError(
                f"dimension mismatch: the operator has shape {self.shape} but x has shape "
                f"{arr.shape}; expected ({self.num_params},) or ({self.num_params}, 1)"
            )
        return super().matvec(x)

    def matmat(self, X: Any) -> Any:
        """``A X`` for a numpy matrix of shape (P, k) (scipy's interface).

        Raises
        ------
        ShapeError
            If ``X`` is not 2-d with P rows.
        """
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ShapeError(
                f"matmat expects a 2-d array of shape ({self.num_params}, k); got shape "
                f"{arr.shape} (use matvec or op @ v for a vector)"
            )
        if arr.shape[0] != self.num_params:
            raise ShapeError(
                f"dimension mismatch: the operator has shape {self.shape} but X has shape "
                f"{arr.shape}; expected {self.num_params} rows"
            )
        return super().matmat(X)

    def _to_torch(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=self.torch_dtype).to(self.device)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        v = self._to_torch(np.asarray(x).reshape(-1)).unsqueeze(1)
        return self._apply(v).squeeze(1).cpu().numpy()

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        return self._apply(self._to_torch(X)).cpu().numpy()

    def _adjoint(self) -> CurvatureOperator:
        return self

    def _transpose(self) -> CurvatureOperator:
        return self

    # -- dense ------------------------------------------------------------------
    def to_dense(
        self, *, block_size: int = 64, max_bytes: int | None = None, progress: bool = False,
        max_memory: int | str | None = None,
    ) -> torch.Tensor:
        """Materialise the operator as a dense P x P tensor, column block by block.

        Parameters
        ----------
        block_size : int, default 64
            Number of columns computed per batched product (the columns of
            the identity are built one block at a time, so the only P x P
            allocation is the result).
        max_bytes : int, optional
            Memory budget for the result; defaults to
            :data:`DENSE_MEMORY_BUDGET` (4 GiB).
        progress : bool, default False
            Show a tqdm bar over the column blocks.
        max_memory : int or str, optional
            The memory the matrix may take where it is allocated (bytes or ``"4GiB"``):
            default the environment variable ``GN_THEORY_MAX_MEMORY``, else the memory
            available on the operator's device. Checked as well as ``max_bytes``.

        Returns
        -------
        torch.Tensor
            The P x P matrix on the operator's device, in its dtype.

        Raises
        ------
        InvalidInputError
            If ``block_size`` is not a positive integer.
        MemoryBudgetError
            If P x P entries would need more than ``max_bytes`` or ``max_memory``.
        """
        block_size = _checks.check_positive_int("block_size", block_size)
        budget = DENSE_MEMORY_BUDGET if max_bytes is None else int(max_bytes)
        P = self.num_params
        itemsize = torch.empty((), dtype=self.torch_dtype).element_size()
        need = P * P * itemsize
        if need > budget:
            raise MemoryBudgetError(
                f"a dense {P} x {P} {self.torch_dtype} matrix needs {fmt_bytes(need)}, more than "
                f"the budget of {fmt_bytes(budget)}; pass to_dense(max_bytes=...) to allow it, "
                "or use matrix-free methods (gn_theory.spectra.lanczos / slq)"
            )
        _memory.check_memory(
            need, f"to_dense: a dense {P:,} x {P:,} {self.torch_dtype} matrix",
            fix="matrix-free methods (gn_theory.spectra.lanczos, slq, spectral_density), an "
            "operator in float32, or fewer parameters (params=...)",
            max_memory=max_memory, device=self.device,
        )
        out = torch.empty(P, P, dtype=self.torch_dtype, device=self.device)
        starts: Any = range(0, P, block_size)
        if progress:
            starts = tqdm(starts, desc=f"to_dense ({P} x {P})", unit="block")
        for start in starts:
            stop = min(P, start + block_size)
            E = torch.zeros(P, stop - start, dtype=self.torch_dtype, device=self.device)
            cols = torch.arange(stop - start, device=self.device)
            E[cols + start, cols] = 1
            out[:, start:stop] = self._apply(E)
        return out

    # -- torch-native arithmetic ------------------------------------------------
    def _as_term(self, other: Any, op: str) -> CurvatureOperator | None:
        """``other`` as an operator to add, or None for scipy's own handling."""
        if isinstance(other, CurvatureOperator):
            return other
        if isinstance(other, (np.ndarray, torch.Tensor)):
            if tuple(other.shape) != tuple(self.shape):
                raise ShapeError(
                    f"cannot {op} a matrix of shape {tuple(other.shape)} and a "
                    f"{self.num_params} x {self.num_params} operator"
                )
            t = torch.as_tensor(np.asarray(other) if isinstance(other, np.ndarray) else other)
            if t.is_complex():
                raise DTypeError(f"cannot {op} a complex matrix and a real operator")
            return DenseOperator(t.detach(), device=self.device, dtype=self.torch_dtype)
        if isinstance(other, LinearOperator):
            return None
        if isinstance(other, (bool, int, float, complex, np.number, np.bool_)):
            raise DTypeError(
                f"cannot {op} the scalar {other!r} and an operator (it would be ambiguous); "
                f"for A + c I add c * gn_theory.DenseOperator(torch.eye({self.num_params}))"
            )
        raise DTypeError(
            f"cannot {op} a {type(other).__name__} and a {type(self).__name__}; use another "
            "operator, or a matrix of the same shape"
        )

    def __add__(self, other: Any) -> Any:
        term = self._as_term(other, "add")
        if term is None:
            return super().__add__(other)
        return _LinearCombination([(1.0, self), (1.0, term)])

    def __radd__(self, other: Any) -> Any:
        term = self._as_term(other, "add")
        if term is None:
            return NotImplemented
        return _LinearCombination([(1.0, term), (1.0, self)])

    def __sub__(self, other: Any) -> Any:
        term = self._as_term(other, "subtract")
        if term is None:
            return super().__sub__(other)
        return _LinearCombination([(1.0, self), (-1.0, term)])

    def __rsub__(self, other: Any) -> Any:
        term = self._as_term(other, "subtract")
        if term is None:
            return NotImplemented
        return _LinearCombination([(1.0, term), (-1.0, self)])

    def __neg__(self) -> CurvatureOperator:
        return _LinearCombination([(-1.0, self)])

    def _times(self, other: Any) -> Any:
        """``c * A`` for a real scalar, ``A v`` for a tensor; None for scipy's handling."""
        if isinstance(other, torch.Tensor):
            if other.ndim == 0 and not other.is_complex() and other.dtype != torch.bool:
                return _LinearCombination([(float(other), self)])
            return self.matmat_torch(other)
        if _is_real_scalar(other):
            return _LinearCombination([(float(other), self)])
        if isinstance(other, (np.ndarray, list, tuple, LinearOperator)) and not (
            isinstance(other, np.ndarray) and other.dtype.kind not in "fiu"
        ):
            return None
        raise DTypeError(
            f"cannot multiply a {type(self).__name__} by {type(other).__name__} {other!r}: "
            "multiply it by a real number (2.0 * A), or apply it to a vector with A @ v"
        )

    def __mul__(self, other: Any) -> Any:
        out = self._times(other)
        return super().__mul__(other) if out is None else out

    def __rmul__(self, other: Any) -> Any:
        if isinstance(other, torch.Tensor) and other.ndim > 0:
            raise DTypeError(
                "v * A is not defined for a tensor v; apply the operator with A @ v "
                "(it is symmetric, so v @ A would equal A @ v)"
            )
        out = self._times(other)
        return super().__rmul__(other) if out is None else out

    # -- layout helpers ---------------------------------------------------------
    @property
    def param_names(self) -> list[str] | None:
        """Names of the parameters in flat-vector order (``None`` if not from a model)."""
        return None if self.layout is None else list(self.layout.names)

    def unflatten(self, v: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
        """Split a flat vector of length P into named per-parameter tensors.

        Parameters
        ----------
        v : torch.Tensor or numpy.ndarray
            Vector of shape (P,).

        Returns
        -------
        dict of str to torch.Tensor
            Views with the parameters' shapes.

        Raises
        ------
        InvalidInputError
            If the operator was not built from a model.
        ShapeError
            If ``v`` is not of shape (P,).
        """
        if self.layout is None:
            raise InvalidInputError(f"this {self.kind} operator has no parameter layout")
        t = torch.as_tensor(v)
        _checks_torch.check_vector(t, self.num_params, t.dtype, t.device)
        return self.layout.unflatten(t)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} kind={self.kind!r} P={self.num_params} "
            f"dtype={self.torch_dtype} device={self.device}>"
        )


def _is_real_scalar(x: Any) -> bool:
    """A real number (int, float, numpy integer or floating); not bool, complex or str."""
    if isinstance(x, (bool, np.bool_)):
        return False
    return isinstance(x, (int, float, np.integer, np.floating))


class _LinearCombination(CurvatureOperator):
    """``sum_j c_j A_j`` evaluated in torch (no scipy composite)."""

    kind = "combination"

    def __init__(self, terms: list[tuple[float, CurvatureOperator]]) -> None:
        first = terms[0][1]
        for _, op in terms[1:]:
            if op.num_params != first.num_params:
                raise InvalidInputError(
                    f"cannot combine operators of sizes {first.num_params} and {op.num_params}"
                )
            if op.device != first.device:
                raise DeviceMismatchError(
                    f"cannot combine operators on {first.device} and {op.device}"
                )
            if op.torch_dtype != first.torch_dtype:
                raise DTypeError(
                    f"cannot combine operators of dtypes {first.torch_dtype} and {op.torch_dtype}"
                )
        super().__init__(first.num_params, first.device, first.torch_dtype)
        self.terms = terms
        self.layout = first.layout
        self.metadata["terms"] = [{"coefficient": c, "kind": op.kind} for c, op in terms]
        prints = [op.fingerprint for _, op in terms]
        if all(fp is not None for fp in prints):
            self.metadata["fingerprint"] = {
                "operator": fingerprint([[c, fp] for (c, _), fp in zip(terms, prints)]),
                "kind": self.kind,
                "terms": [fp["operator"] for fp in prints],  # type: ignore[index]
            }

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor | None = None
        for c, op in self.terms:
            term = op._apply(V)
            term = term if c == 1.0 else c * term
            out = term if out is None else out + term
        assert out is not None  # terms is never empty
        return out


class DenseOperator(CurvatureOperator):
    """A dense symmetric matrix as a :class:`CurvatureOperator`.

    Lets every spectral routine run on matrices with known spectra.

    Parameters
    ----------
    matrix : torch.Tensor or numpy.ndarray
        Square matrix (assumed symmetric).
    device : str or torch.device, optional
        Where to hold it; default: the matrix's own (numpy arrays: the CPU).
    dtype : torch.dtype, optional
        Precision; default the matrix's floating dtype, else float64.

    Raises
    ------
    ShapeError
        If ``matrix`` is not square.
    DTypeError
        If ``dtype`` is not a floating dtype.

    Examples
    --------
    >>> import torch
    >>> from gn_theory import DenseOperator
    >>> op = DenseOperator(torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)))
    >>> (op @ torch.ones(3, dtype=torch.float64)).tolist()
    [1.0, 2.0, 3.0]
    """

    kind = "dense"

    def __init__(
        self,
        matrix: torch.Tensor | np.ndarray,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        m = torch.as_tensor(matrix)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ShapeError(f"expected a square matrix; got shape {tuple(m.shape)}")
        if m.is_complex():
            raise DTypeError(
                "a complex matrix is not supported (its imaginary part would be lost); for a "
                "Hermitian X + iY use the real symmetric embedding [[X, -Y], [Y, X]]"
            )
        if dtype is None:
            dtype = m.dtype if m.dtype in _checks_torch.FLOAT_DTYPES else torch.float64
        dtype = _checks_torch.check_float_dtype(dtype)
        m = m.to(device=device if device is not None else m.device, dtype=dtype)
        super().__init__(m.shape[0], m.device, dtype)
        self.matrix = m

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        return self.matrix @ V

    def to_dense(
        self, *, block_size: int = 64, max_bytes: int | None = None, progress: bool = False,
        max_memory: int | str | None = None,
    ) -> torch.Tensor:
        """Return (a copy of) the wrapped matrix; the arguments are accepted and ignored.

        Parameters
        ----------
        block_size, max_bytes, progress, max_memory
            As for :meth:`CurvatureOperator.to_dense`; unused.

        Returns
        -------
        torch.Tensor
            A copy of the matrix.
        """
        return self.matrix.clone()


class _ScipyOperator(CurvatureOperator):
    """Any scipy ``LinearOperator`` seen through the torch interface (host round trip)."""

    kind = "scipy"

    def __init__(self, op: LinearOperator, dtype: torch.dtype) -> None:
        if op.shape[0] != op.shape[1]:
            raise ShapeError(f"expected a square operator; got shape {op.shape}")
        super().__init__(op.shape[0], torch.device("cpu"), dtype)
        self.op = op

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        out = self.op.matmat(V.detach().cpu().numpy())
        return torch.as_tensor(np.asarray(out), dtype=self.torch_dtype)


def as_operator(
    A: Any, *, dtype: torch.dtype | None = None, device: str | torch.device | None = None
) -> CurvatureOperator:
    """Wrap a matrix or operator as a :class:`CurvatureOperator`.

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        The symmetric operator or matrix. A ``CurvatureOperator`` is returned
        as is; dense arrays become a :class:`DenseOperator`; any other scipy
        ``LinearOperator`` is applied through numpy (one host round trip per
        product, unavoidable for such operators).
    dtype : torch.dtype, optional
        Precision for wrapped arrays and scipy operators (default float64,
        or the array's floating dtype).
    device : str or torch.device, optional
        Device for wrapped dense arrays.

    Returns
    -------
    CurvatureOperator
        ``A`` itself, or a wrapper around it.

    Raises
    ------
    InvalidInputError
        If ``A`` is none of the accepted types.
    ShapeError
        If ``A`` is not square.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.operators import as_operator
    >>> op = as_operator(np.diag([3.0, 1.0, 2.0]))
    >>> op.matvec(np.ones(3)).tolist()
    [3.0, 1.0, 2.0]
    """
    if isinstance(A, CurvatureOperator):
        return A
    if isinstance(A, (np.ndarray, torch.Tensor)):
        return DenseOperator(A, device=device, dtype=dtype)
    if isinstance(A, LinearOperator):
        if dtype is None:
            dtype = torch.float32 if np.dtype(A.dtype) == np.float32 else torch.float64
        return _ScipyOperator(A, dtype)
    raise InvalidInputError(
        "expected a CurvatureOperator, a scipy LinearOperator, a numpy array or a torch "
        f"tensor; got {type(A).__name__}"
    )
