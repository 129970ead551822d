r"""Curvature operators: the Hessian H, its Gauss-Newton term G and R = H - G.

For a model :math:`f(x;\theta)` with selected parameters :math:`\theta\in\mathbb R^P`
and a loss averaged over all :math:`N` samples,

.. math::

    L(\theta) = \frac1N \sum_{i=1}^N \ell(f(x_i;\theta), y_i),\qquad
    H = \nabla^2_\theta L = G + R,

    G = \frac1N\sum_i J_i^\top \nabla^2_f\ell_i\, J_i,\qquad
    R = \frac1N\sum_i\sum_c \frac{\partial\ell_i}{\partial f_{i,c}}\,\nabla^2_\theta f_{i,c},

with :math:`J_i = \partial f(x_i;\theta)/\partial\theta`. For softmax
cross-entropy :math:`\nabla^2_f\ell = \mathrm{diag}(p) - pp^\top`; for ``"mse"``
(:math:`\ell = \tfrac12\|f-y\|^2`) it is the identity.

Every operator is a :class:`CurvatureOperator`: a
:class:`scipy.sparse.linalg.LinearOperator` whose products are computed in
torch on the operator's device. ``op @ V`` with a tensor ``V`` of shape (P,) or
(P, k) never leaves the device; ``op.matvec(x)`` with a numpy array is a thin
adapter around the same kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from . import _checks, _checks_torch
from ._format import fmt_bytes
from ._autodiff import (
    FunctionalModel,
    Loss,
    LossCallable,
    ParameterLayout,
    ggn_batch,
    hessian_batch,
    make_loss,
    residual_batch,
)
from ._data import DataSource, reduce_sum
from .exceptions import (
    DataError,
    DeviceMismatchError,
    DTypeError,
    InvalidInputError,
    MemoryBudgetError,
    NonFiniteError,
    ParameterSelectionError,
)

__all__ = [
    "CurvatureOperator",
    "ModelCurvatureOperator",
    "DenseOperator",
    "as_operator",
    "hessian_operator",
    "ggn_operator",
    "residual_operator",
    "DENSE_MEMORY_BUDGET",
]

#: Default memory budget (bytes) of :meth:`CurvatureOperator.to_dense`.
DENSE_MEMORY_BUDGET: int = 4 * 2**30

_TORCH_TO_NUMPY = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}




class CurvatureOperator(LinearOperator):
    """A symmetric P x P operator whose products are computed in torch.

    Subclasses implement one private kernel, :meth:`_matmat_torch`, taking a
    tensor of shape (P, k) on :attr:`device` with dtype :attr:`torch_dtype`
    and returning one of the same shape. Everything else (scipy adapters,
    ``@``, validation, matvec counting, dense materialisation, arithmetic)
    is shared.

    Attributes
    ----------
    num_params : int
        Dimension P.
    device : torch.device
        Where products are computed.
    torch_dtype : torch.dtype
        Precision of products; ``dtype`` is the matching numpy dtype (scipy).
    matvecs : int
        Running count of operator-vector products (a (P, k) block counts k).
    kind : str
        What the operator is (``"hessian"``, ``"ggn"``, ``"residual"``,
        ``"dense"``, ...).
    layout : ParameterLayout or None
        Map between the flat vector and named parameter tensors, for operators
        built from a model.
    """

    kind: str = "operator"

    def __init__(self, num_params: int, device: torch.device, dtype: torch.dtype) -> None:
        if dtype not in _TORCH_TO_NUMPY:
            raise DTypeError(f"operators need a floating dtype; got {dtype}")
        super().__init__(dtype=np.dtype(_TORCH_TO_NUMPY[dtype]), shape=(num_params, num_params))
        self.num_params = int(num_params)
        self.device = torch.device(device)
        self.torch_dtype = dtype
        self.matvecs = 0
        self.layout: ParameterLayout | None = None
        self.metadata: dict[str, Any] = {"kind": self.kind}

    # -- the kernel -------------------------------------------------------------
    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public torch products --------------------------------------------------
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
        if V.ndim == 1:
            return self._apply(V.unsqueeze(1)).squeeze(1)
        return self._apply(V)

    def _apply(self, V: torch.Tensor) -> torch.Tensor:
        out = self._matmat_torch(V)
        self.matvecs += V.shape[1]
        return out

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, torch.Tensor):
            return self.matmat_torch(other)
        return super().__matmul__(other)

    # -- scipy adapters ---------------------------------------------------------
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
        self, *, block_size: int = 64, max_bytes: int | None = None, progress: bool = False
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

        Returns
        -------
        torch.Tensor
            The P x P matrix on the operator's device, in its dtype.

        Raises
        ------
        MemoryBudgetError
            If P x P entries would need more than ``max_bytes``.
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
        out = torch.empty(P, P, dtype=self.torch_dtype, device=self.device)
        starts = range(0, P, block_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"to_dense ({P} x {P})", unit="block")
        for start in starts:
            stop = min(P, start + block_size)
            E = torch.zeros(P, stop - start, dtype=self.torch_dtype, device=self.device)
            E[torch.arange(start, stop, device=self.device), torch.arange(stop - start, device=self.device)] = 1
            out[:, start:stop] = self._apply(E)
        return out

    # -- torch-native arithmetic ----------------------------------------------------
    def __add__(self, other: Any) -> Any:
        if isinstance(other, CurvatureOperator):
            return _LinearCombination([(1.0, self), (1.0, other)])
        return super().__add__(other)

    def __sub__(self, other: Any) -> Any:
        if isinstance(other, CurvatureOperator):
            return _LinearCombination([(1.0, self), (-1.0, other)])
        return super().__sub__(other)

    def __neg__(self) -> CurvatureOperator:
        return _LinearCombination([(-1.0, self)])

    def __mul__(self, other: Any) -> Any:
        if np.isscalar(other) and not isinstance(other, (bool, np.bool_)):
            return _LinearCombination([(float(other), self)])
        return super().__mul__(other)

    def __rmul__(self, other: Any) -> Any:
        if np.isscalar(other) and not isinstance(other, (bool, np.bool_)):
            return _LinearCombination([(float(other), self)])
        return super().__rmul__(other)

    # -- layout helpers -----------------------------------------------------------
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

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        out = None
        for c, op in self.terms:
            term = op._apply(V)
            term = term if c == 1.0 else c * term
            out = term if out is None else out + term
        assert out is not None
        return out


class DenseOperator(CurvatureOperator):
    """A dense symmetric matrix as a :class:`CurvatureOperator`.

    Lets every spectral routine run on matrices with known spectra.

    Parameters
    ----------
    matrix : torch.Tensor or numpy.ndarray
        Square matrix (assumed symmetric).
    device, dtype : optional
        Where and in what precision to hold it; default: the matrix's own
        (numpy arrays go to the CPU, float64 unless float32).

    Raises
    ------
    ShapeError
        If ``matrix`` is not square.

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
            from .exceptions import ShapeError

            raise ShapeError(f"expected a square matrix; got shape {tuple(m.shape)}")
        if dtype is None:
            dtype = m.dtype if m.dtype in _TORCH_TO_NUMPY else torch.float64
        m = m.to(device=device if device is not None else m.device, dtype=dtype)
        super().__init__(m.shape[0], m.device, dtype)
        self.matrix = m

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        return self.matrix @ V

    def to_dense(
        self, *, block_size: int = 64, max_bytes: int | None = None, progress: bool = False
    ) -> torch.Tensor:
        """Return (a copy of) the wrapped matrix; the arguments are accepted and ignored."""
        return self.matrix.clone()


class _ScipyOperator(CurvatureOperator):
    """Any scipy ``LinearOperator`` seen through the torch interface (host round trip)."""

    kind = "scipy"

    def __init__(self, op: LinearOperator, dtype: torch.dtype) -> None:
        if op.shape[0] != op.shape[1]:
            from .exceptions import ShapeError

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

    Raises
    ------
    InvalidInputError
        If ``A`` is none of the accepted types.
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


# =============================================================================== model operators
_Kind = Literal["hessian", "ggn", "residual"]


def _select_params(model: torch.nn.Module, params: Iterable[Any] | None) -> list[str]:
    named = list(model.named_parameters())
    if params is None:
        selected = [n for n, p in named if p.requires_grad]
        if not selected:
            raise ParameterSelectionError(
                f"{type(model).__name__} has no trainable parameters (all have "
                "requires_grad=False); unfreeze some or pass params=[...]"
            )
        return selected
    if isinstance(params, (str, torch.Tensor)):
        params = [params]
    by_name = dict(named)
    by_id = {id(p): n for n, p in named}
    selected: list[str] = []
    for item in params:
        if isinstance(item, str):
            if item not in by_name:
                close = [n for n in by_name if item in n or n in item][:5]
                hint = f"; did you mean one of {close}?" if close else ""
                raise ParameterSelectionError(
                    f"unknown parameter name {item!r}; the model has {list(by_name)[:20]}{hint}"
                )
            name = item
        elif isinstance(item, torch.Tensor):
            if id(item) not in by_id:
                raise ParameterSelectionError(
                    f"a tensor of shape {tuple(item.shape)} in params is not a parameter of the model"
                )
            name = by_id[id(item)]
        else:
            raise ParameterSelectionError(
                f"params must hold parameter names or parameter tensors; got {type(item).__name__}"
            )
        if not by_name[name].requires_grad:
            raise ParameterSelectionError(
                f"parameter {name!r} is frozen (requires_grad=False); it has no curvature to "
                "measure, leave it out of params"
            )
        if name not in selected:
            selected.append(name)
    if not selected:
        raise ParameterSelectionError("params selects no parameters; pass None for all")
    # keep the model's own order
    order = {n: i for i, (n, _) in enumerate(named)}
    return sorted(selected, key=order.__getitem__)


_STOCHASTIC_MODULES = (
    torch.nn.modules.dropout._DropoutNd,
    torch.nn.modules.batchnorm._BatchNorm,
)


def _resolve_device_dtype(
    model: torch.nn.Module, device: Any, dtype: torch.dtype | None
) -> tuple[torch.device, torch.dtype]:
    tensors = list(model.parameters()) + list(model.buffers())
    devices = {t.device for t in tensors}
    if device is None:
        if len(devices) > 1:
            raise DeviceMismatchError(
                f"the model's tensors live on several devices {sorted(map(str, devices))}; "
                "pass device=... to compute on one"
            )
        device = devices.pop() if devices else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if dtype is None:
        floats = {t.dtype for t in model.parameters() if t.is_floating_point()}
        dtype = floats.pop() if len(floats) == 1 else torch.float32
    if dtype not in _TORCH_TO_NUMPY:
        raise DTypeError(f"dtype must be a floating torch dtype; got {dtype}")
    return device, dtype


class ModelCurvatureOperator(CurvatureOperator):
    """H, G or R of a model's mean loss over a dataset (see module docstring).

    Built by :func:`hessian_operator`, :func:`ggn_operator` and
    :func:`residual_operator`; see those for the parameters.
    """

    def __init__(
        self,
        kind: _Kind,
        model: torch.nn.Module,
        data: Any,
        loss: str | LossCallable,
        *,
        params: Iterable[Any] | None,
        device: Any,
        dtype: torch.dtype | None,
        chunk_size: int | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if chunk_size is not None:
            chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
        self.loss: Loss = make_loss(loss)
        selected = _select_params(model, params)
        if model.training and any(isinstance(m, _STOCHASTIC_MODULES) for m in model.modules()):
            raise InvalidInputError(
                f"{type(model).__name__} is in training mode and has dropout or batch-norm "
                "layers, so its loss is not a fixed function of the parameters; call "
                "model.eval() before building a curvature operator"
            )
        dev, dt = _resolve_device_dtype(model, device, dtype)
        self.kind = kind
        self.function = FunctionalModel(model, selected, dev, dt)
        super().__init__(self.function.layout.num_params, dev, dt)
        self.layout = self.function.layout
        self.data = DataSource(data, dev, dt)
        self.chunk_size = chunk_size
        self.num_samples, self.num_outputs = self._validate_data()
        self.metadata = {
            "kind": kind,
            "model": type(model).__name__,
            "loss": self.loss.name,
            "num_params": self.num_params,
            "num_samples": self.num_samples,
            "num_outputs": self.num_outputs,
            "dtype": str(dt).replace("torch.", ""),
            "device": str(dev),
            "params": list(selected) if params is not None else "all",
        }

    def _validate_data(self) -> tuple[int, int]:
        """One forward pass: check targets, finiteness and determinism; count N."""
        n = 0
        num_outputs = -1
        with torch.no_grad():
            for index, x, y in self.data:
                out = self.function(self.function.theta, x)
                if not isinstance(out, torch.Tensor):
                    raise DataError(
                        f"batch {index}: the model returned {type(out).__name__}, not a tensor"
                    )
                if out.shape[:1] != x.shape[:1]:
                    raise DataError(
                        f"batch {index}: the model returned {out.shape[0] if out.ndim else 0} "
                        f"outputs for {x.shape[0]} inputs"
                    )
                _checks_torch.check_finite_tensor(out, f"batch {index}: the model outputs")
                self.loss.check(out, y, index)
                value = self.loss.sum(out, y)
                if not bool(torch.isfinite(value)):
                    raise NonFiniteError(f"batch {index}: the loss is {float(value)}")
                if n == 0:
                    again = self.function(self.function.theta, x)
                    if not torch.equal(out, again):
                        raise InvalidInputError(
                            "two forward passes on batch 0 gave different outputs: the model is "
                            "not deterministic (dropout? call model.eval())"
                        )
                num_outputs = int(out[0].numel())
                n += x.shape[0]
        if n == 0:
            raise DataError("data is empty: it holds no samples")
        self.data.num_samples = n
        return n, num_outputs

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        f, loss, cs = self.function, self.loss, self.chunk_size
        acc = torch.zeros_like(V)
        for _, x, y in self.data:
            if self.kind == "hessian":
                acc += hessian_batch(f, loss, x, y, V, cs)
            elif self.kind == "ggn":
                acc += ggn_batch(f, loss, x, y, V, cs)
            else:
                # R = Hess of r^T f with the residuals r fixed: one product, not H - G
                acc += residual_batch(f, loss, x, y, V, cs)
        return reduce_sum(acc) / self.num_samples

    def gradient(self) -> torch.Tensor:
        """The full-data gradient of the mean loss, shape (P,), on the operator's device.

        Returns
        -------
        torch.Tensor
            :math:`\\nabla_\\theta L`.
        """
        from torch.func import grad

        f, loss = self.function, self.loss
        acc = torch.zeros_like(f.theta)
        for _, x, y in self.data:
            acc += grad(lambda t: loss.sum(f(t, x), y))(f.theta)
        return reduce_sum(acc) / self.num_samples

    def loss_value(self) -> float:
        """The mean loss over all samples at the current parameters."""
        f, loss = self.function, self.loss
        total = torch.zeros((), dtype=self.torch_dtype, device=self.device)
        with torch.no_grad():
            for _, x, y in self.data:
                total += loss.sum(f(f.theta, x), y)
        return float(reduce_sum(total)) / self.num_samples


_COST = {
    "hessian": "measured about 2.0-2.4 full-data gradients for one vector "
    "(double backward) and about 1.2-1.4 per vector in blocks of 10 "
    "(reverse-over-reverse, vmapped pullback); see docs/performance.md",
    "ggn": "measured about 1.7-2.0 full-data gradients for one vector "
    "(one forward pass on dual numbers, one backward) and about 1.0-1.2 per "
    "vector in blocks of 10; see docs/performance.md",
    "residual": "measured about 2.0-2.3 full-data gradients for one vector and "
    "about 1.2-1.4 per vector in blocks of 10: one Hessian-vector product of "
    "the pseudo-loss r^T f (residuals r held fixed), not H v - G v; see "
    "docs/performance.md",
}


def _factory(kind: _Kind) -> Callable[..., ModelCurvatureOperator]:
    def build(
        model: torch.nn.Module,
        data: Any,
        loss: str | LossCallable = "cross_entropy",
        *,
        params: Iterable[str | torch.Tensor] | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        chunk_size: int | None = None,
    ) -> ModelCurvatureOperator:
        return ModelCurvatureOperator(
            kind, model, data, loss, params=params, device=device, dtype=dtype, chunk_size=chunk_size
        )

    return build


_COMMON_DOC = """
    Parameters
    ----------
    model : torch.nn.Module
        The network, called as ``model(inputs)``. It is never modified: the
        selected parameters are copied (to ``device``/``dtype``) and passed
        through :func:`torch.func.functional_call`. Put it in ``eval()`` mode
        first if it has dropout or batch norm.
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        ``(inputs, targets)``, or a re-iterable of such batches (a list, a
        ``DataLoader``). The operator is for the **mean loss over all
        samples**: batches are summed and divided by the total count once,
        so uneven batches are weighted correctly.
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        ``"cross_entropy"``: softmax cross-entropy, outputs (B, C) logits,
        integer targets (B,) in [0, C). ``"mse"``: per sample
        ``0.5 * ||f - y||^2`` summed over outputs (targets of the outputs'
        shape); note this is *not* ``torch.nn.MSELoss``'s mean over entries.
        A callable ``loss(outputs, targets)`` must return the *mean over the
        batch* of a per-sample loss; G then uses the exact Hessian of that
        callable w.r.t. the outputs.
    params : iterable of str or Tensor, optional
        Restrict to these parameters (names from ``model.named_parameters()``
        or the parameter tensors themselves); default all trainable ones. The
        flat vector follows the model's parameter order; see
        ``op.param_names`` and ``op.unflatten``.
    device : str or torch.device, optional
        Where to compute (default: the model's device). Batches are moved
        there; products never leave it.
    dtype : torch.dtype, optional
        Precision (default: the model's). ``torch.float64`` works end to end.
    chunk_size : int, optional
        Vectors per vmapped pass when applied to a block (default: the whole
        block at once); lower it to save memory.

    Returns
    -------
    ModelCurvatureOperator
        A :class:`CurvatureOperator` (a scipy ``LinearOperator``) of shape
        (P, P) that also supports ``op @ tensor`` on the device.

    Raises
    ------
    DataError
        Empty data, targets out of range or not matching the outputs, batches
        that are not (inputs, targets) pairs, one-shot iterators.
    DTypeError
        Targets of the wrong dtype for the loss.
    ShapeError
        Targets or outputs of the wrong shape.
    ParameterSelectionError
        Unknown or frozen parameter names, or no trainable parameters.
    NonFiniteError
        Non-finite model outputs or loss (the batch is named).
    DeviceMismatchError
        A model spread over several devices with no ``device`` given.
    InvalidInputError
        A model in training mode with dropout/batch norm, an unknown loss.
"""


def _doc(kind: str, head: str, example: str) -> str:
    return head + "\n\n    Cost of one product: " + _COST[kind] + ".\n" + _COMMON_DOC + example


hessian_operator = _factory("hessian")
hessian_operator.__name__ = hessian_operator.__qualname__ = "hessian_operator"
hessian_operator.__doc__ = _doc(
    "hessian",
    r"""Hessian :math:`H = \nabla^2_\theta L` of the mean loss, matrix-free.

    ``H v`` is computed by double backward (the gradient recorded with
    ``create_graph=True``, then the gradient of its inner product with v); a
    block ``V`` of shape (P, k) records the forward and gradient passes once
    (``torch.func.vjp`` of ``torch.func.grad``) and vmaps the pullback over
    the k columns.""",
    """
    Examples
    --------
    A linear model with the ``"mse"`` loss has :math:`H = G = X^\\top X / N`
    (per output), and :math:`R = 0`:

    >>> import torch
    >>> from gn_theory import hessian_operator
    >>> X = torch.randn(20, 3, dtype=torch.float64)
    >>> model = torch.nn.Linear(3, 1, bias=False).double()
    >>> H = hessian_operator(model, (X, torch.randn(20, 1, dtype=torch.float64)), "mse")
    >>> torch.allclose(H.to_dense(), X.T @ X / 20)
    True
""",
)
ggn_operator = _factory("ggn")
ggn_operator.__name__ = ggn_operator.__qualname__ = "ggn_operator"
ggn_operator.__doc__ = _doc(
    "ggn",
    r"""Generalized Gauss-Newton term :math:`G = \frac1N\sum_i J_i^\top \nabla^2_f\ell_i J_i`.

    ``G v`` is ``J v`` by forward mode (one forward pass on dual numbers for
    a single vector; a vmapped ``jvp`` for a block), the output Hessian of the
    loss in closed form (softmax cross-entropy: :math:`\mathrm{diag}(p) - pp^\top`;
    mse: identity; a callable: its exact output Hessian), then ``J^T`` by one
    vjp. G is positive semi-definite for convex losses, with rank at most
    :math:`N(C-1)` for C-class cross-entropy.""",
    """
    Examples
    --------
    >>> import torch
    >>> from gn_theory import ggn_operator
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> X, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    >>> G = ggn_operator(model, (X, y), dtype=torch.float64)
    >>> G.shape
    (67, 67)
    >>> bool(torch.linalg.eigvalsh(G.to_dense()).min() > -1e-12)
    True
""",
)
residual_operator = _factory("residual")
residual_operator.__name__ = residual_operator.__qualname__ = "residual_operator"
residual_operator.__doc__ = _doc(
    "residual",
    r"""Residual :math:`R = H - G`, the part of H weighted by the loss residuals.

    With the loss residuals :math:`r_i = \partial\ell_i/\partial f` held
    fixed, :math:`R = \nabla^2_\theta \frac1N\sum_i r_i^\top f(x_i;\theta)`
    exactly, so ``R v`` is one Hessian-vector product of that pseudo-loss,
    in one pass over the data (not ``H v - G v``, which would cost twice as
    much). R is indefinite; it vanishes for models linear in their parameters
    and is small when the residuals :math:`\partial\ell/\partial f` are.""",
    """
    Examples
    --------
    >>> import torch
    >>> from gn_theory import residual_operator
    >>> model = torch.nn.Linear(3, 2).double()
    >>> X, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    >>> R = residual_operator(model, (X, y))
    >>> float(R.to_dense().abs().max()) < 1e-12   # linear model: H = G
    True
""",
)
