"""Reference networks: the papers' fully connected ReLU nets, a small CNN, the user's module.

:func:`build_model` is the one entry a command line calls with ``--model``: a
built-in name (:data:`MODELS`) or ``module:callable`` returning an
``nn.Module``. The builders underneath (:func:`mlp`, :func:`fully_connected`,
:func:`small_cnn`, :func:`linear`) can be called directly. Initialisation is
seeded and leaves the global RNG state as it was.

Training lives in :mod:`gn_theory.training`; :func:`train` here is the short
SGD loop that earlier examples use, kept for them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from . import training as _training
from ._checks import check_choice, check_positive_int, check_seed
from ._user_code import call_with_accepted, is_callable_spec, resolve_callable
from .exceptions import InvalidInputError, ShapeError

__all__ = [
    "MODELS",
    "build_model",
    "mlp",
    "fully_connected",
    "small_cnn",
    "linear",
    "num_params",
    "train",
]

#: Built-in model names accepted by :func:`build_model`, with a one-line description.
MODELS: dict[str, str] = {
    "mlp": "fully connected ReLU net: input -> width x depth hidden layers -> classes",
    "cnn": "small CNN: two 3x3 conv + ReLU layers, average pooling, one linear layer",
    "linear": "multinomial logistic regression (one linear layer)",
}

_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}


def mlp(
    sizes: Sequence[int], *, activation: str = "relu", bias: bool = True, seed: int | None = None
) -> torch.nn.Sequential:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first, number of outputs last (at least two).
    activation : {"relu", "tanh"}, default "relu"
        Non-linearity between layers (none after the last).
    bias : bool, default True
        Whether layers have biases.
    seed : int, optional
        Seed for the initialisation (the global RNG state is restored).

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    InvalidInputError
        Fewer than two sizes, or an unknown activation.

    Examples
    --------
    >>> from gn_theory.models import mlp
    >>> sum(p.numel() for p in mlp([4, 6, 3]).parameters())
    51
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise InvalidInputError(f"sizes must hold at least two positive widths; got {list(sizes)}")
    if activation not in _ACTIVATIONS:
        raise InvalidInputError(
            f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}"
        )
    state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(int(a), int(b), bias=bias))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
        return torch.nn.Sequential(*layers)
    finally:
        if seed is not None:
            torch.random.set_rng_state(state)


def fully_connected(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    width: int = 24,
    depth: int = 2,
    activation: str = "relu",
    bias: bool = True,
    seed: int = 0,
) -> torch.nn.Sequential:
    """The papers' fully connected net: ``depth`` hidden layers of ``width`` units.

    Inputs of more than one dimension (images) are flattened by a leading
    ``nn.Flatten``, which has no parameters.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one input, e.g. ``(1, 14, 14)`` or ``(2,)``.
    num_classes : int
        Number of outputs C.
    width : int, default 24
        Units per hidden layer.
    depth : int, default 2
        Number of hidden layers (0 gives a linear model).
    activation : {"relu", "tanh"}, default "relu"
        Non-linearity after each hidden layer.
    bias : bool, default True
        Whether layers have biases.
    seed : int, default 0
        Seed of the initialisation (PyTorch's default ``nn.Linear`` init).

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    InvalidInputError
        For non-positive sizes or an unknown activation.

    Examples
    --------
    >>> from gn_theory.models import fully_connected, num_params
    >>> num_params(fully_connected((1, 14, 14), 10, width=24, depth=2))
    5578
    """
    d = _num_features(input_shape)
    c = check_positive_int("num_classes", num_classes)
    w = check_positive_int("width", width)
    k = check_positive_int("depth", depth, minimum=0)
    body = mlp([d, *([w] * k), c], activation=activation, bias=bias, seed=seed)
    if len(input_shape) == 1:
        return body
    return torch.nn.Sequential(torch.nn.Flatten(), *body)


def linear(
    input_shape: Sequence[int], num_classes: int, *, bias: bool = True, seed: int = 0
) -> torch.nn.Sequential:
    """Multinomial logistic regression: ``Flatten`` (for images) and one ``nn.Linear``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one input.
    num_classes : int
        Number of outputs C.
    bias : bool, default True
        Whether the layer has a bias.
    seed : int, default 0
        Seed of the initialisation.

    Returns
    -------
    torch.nn.Sequential
    """
    return fully_connected(input_shape, num_classes, depth=0, bias=bias, seed=seed)


def small_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    channels: Sequence[int] = (4, 8),
    pool: int = 2,
    activation: str = "relu",
    seed: int = 0,
) -> torch.nn.Sequential:
    """A small CNN: conv3x3 -> act -> avgpool(2) -> conv3x3 -> act -> adaptive avgpool -> linear.

    Every convolution keeps the spatial size (padding 1); the adaptive average
    pool reduces the last feature map to ``pool x pool``, so the linear layer has
    ``channels[-1] * pool**2 * num_classes`` weights whatever the image size.
    Average pooling (not max pooling) keeps the network smooth between ReLUs.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C_in, H, W)`` (or ``(H, W)``, read as one channel) with ``H, W >= 2``.
    num_classes : int
        Number of outputs.
    channels : sequence of int, default (4, 8)
        Output channels of the convolutions (one or more layers; the first is
        followed by a 2x2 average pool when there are two or more).
    pool : int, default 2
        Side of the final adaptive average pool.
    activation : {"relu", "tanh"}, default "relu"
        Non-linearity after each convolution.
    seed : int, default 0
        Seed of the initialisation.

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    InvalidInputError
        For an input shape that is not an image or bad sizes.

    Examples
    --------
    >>> import torch
    >>> from gn_theory.models import small_cnn, num_params
    >>> net = small_cnn((1, 14, 14), 10)
    >>> net(torch.zeros(3, 1, 14, 14)).shape, num_params(net)
    (torch.Size([3, 10]), 666)
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1 or min(shape[1:]) < 2:
        raise InvalidInputError(
            f"small_cnn needs image inputs of shape (C, H, W) or (H, W) with H, W >= 2; "
            f"got {tuple(input_shape)}"
        )
    c = check_positive_int("num_classes", num_classes)
    chans = [check_positive_int("channels", int(k)) for k in channels]
    if not chans:
        raise InvalidInputError("channels must name at least one convolution")
    p = check_positive_int("pool", pool)
    check_choice("activation", activation, tuple(_ACTIVATIONS))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_seed(seed))
        layers: list[torch.nn.Module] = []
        if len(input_shape) == 2:
            layers.append(torch.nn.Unflatten(1, (1, shape[1])))
        c_in = shape[0]
        for i, c_out in enumerate(chans):
            layers += [torch.nn.Conv2d(c_in, c_out, 3, padding=1), _ACTIVATIONS[activation]()]
            if i == 0 and len(chans) > 1 and min(shape[1:]) >= 4:
                layers.append(torch.nn.AvgPool2d(2))
            c_in = c_out
        layers += [torch.nn.AdaptiveAvgPool2d(p), torch.nn.Flatten(),
                   torch.nn.Linear(c_in * p * p, c)]
        return torch.nn.Sequential(*layers)


def num_params(model: torch.nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(
    name_or_spec: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    seed: int = 0,
    width: int | None = None,
    depth: int | None = None,
    channels: Sequence[int] | None = None,
    activation: str = "relu",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.nn.Module:
    """Build a model by built-in name or ``module:callable``, checked on one input.

    Parameters
    ----------
    name_or_spec : str
        One of :data:`MODELS` (``"mlp"``, ``"cnn"``, ``"linear"``), or
        ``"module:callable"`` / ``"file.py:callable"``: a callable (an ``nn.Module``
        class or factory) called with those of ``input_shape=``, ``num_classes=``,
        ``seed=`` that its signature accepts, under ``torch.manual_seed(seed)``
        (the global RNG state is restored afterwards).
    input_shape : sequence of int
        Shape of one input (``Dataset.input_shape``).
    num_classes : int
        Number of classes C; the model must map a batch ``(B, *input_shape)`` to
        logits ``(B, C)``.
    seed : int, default 0
        Seed of the initialisation: the same seed builds the same weights.
    width, depth : int, optional
        ``"mlp"`` only: hidden units per layer (default 24) and hidden layers
        (default 2).
    channels : sequence of int, optional
        ``"cnn"`` only: output channels of its convolutions (default (4, 8)).
    activation : {"relu", "tanh"}, default "relu"
        Built-in models only.
    dtype : torch.dtype, optional
        Cast the parameters (e.g. ``torch.float64``) after building.
    device : torch.device or str, optional
        Move the model after building.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    InvalidInputError
        Unknown name (the message lists the known ones), an option that does not
        apply to the model, a callable that fails or does not return an
        ``nn.Module``.
    ShapeError
        If the model's output for one input is not ``(1, num_classes)``.

    Examples
    --------
    >>> from gn_theory.models import build_model, num_params
    >>> net = build_model("mlp", input_shape=(2,), num_classes=2, width=6, depth=2)
    >>> num_params(net)
    74
    """
    seed = check_seed(seed)
    shape = tuple(check_positive_int("input_shape", int(s)) for s in _as_shape(input_shape))
    c = check_positive_int("num_classes", num_classes)
    given = {"width": width, "depth": depth, "channels": channels}
    if not isinstance(name_or_spec, str):
        raise InvalidInputError(
            f"model must be a name or 'module:callable'; got {name_or_spec!r}. {_known()}"
        )
    name = name_or_spec.lower() if name_or_spec.lower() in MODELS else name_or_spec
    allowed = {"mlp": {"width", "depth"}, "cnn": {"channels"}, "linear": set()}.get(name, set())
    bad = sorted(k for k, v in given.items() if v is not None and k not in allowed)
    if bad:
        owners = {"width": "mlp", "depth": "mlp", "channels": "cnn"}
        where = sorted({owners[k] for k in bad})
        raise InvalidInputError(
            f"{', '.join(bad)} do{'es' if len(bad) == 1 else ''} not apply to model "
            f"{name_or_spec!r} (only to {', '.join(repr(w) for w in where)})"
        )
    if name == "mlp":
        model: Any = fully_connected(shape, c, width=24 if width is None else width,
                                     depth=2 if depth is None else depth,
                                     activation=activation, seed=seed)
    elif name == "cnn":
        model = small_cnn(shape, c, channels=(4, 8) if channels is None else channels,
                          activation=activation, seed=seed)
    elif name == "linear":
        model = linear(shape, c, seed=seed)
    elif is_callable_spec(name_or_spec):
        fn = resolve_callable(name_or_spec, what="model")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = call_with_accepted(
                fn, {"input_shape": shape, "num_classes": c, "seed": seed},
                spec=name_or_spec, what="model",
            )
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(
                f"model {name_or_spec!r} must return a torch.nn.Module; got {type(model).__name__}"
            )
    else:
        raise InvalidInputError(f"unknown model {name_or_spec!r}; {_known()}")
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    _check_output(model, shape, c, name_or_spec)
    return model


def _known() -> str:
    return f"known models: {', '.join(repr(k) for k in MODELS)}, or 'module:callable'"


def _as_shape(input_shape: Any) -> tuple[int, ...]:
    if isinstance(input_shape, int):
        return (input_shape,)
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise InvalidInputError(
            f"input_shape must be a sequence of ints; got {input_shape!r}"
        ) from None
    if not shape:
        raise InvalidInputError("input_shape must have at least one dimension")
    return shape


def _num_features(input_shape: Sequence[int]) -> int:
    shape = _as_shape(input_shape)
    return math.prod(check_positive_int("input_shape", int(s)) for s in shape)


def _check_output(model: torch.nn.Module, shape: tuple[int, ...], c: int, spec: str) -> None:
    try:
        p = next(iter(model.parameters()))
        dt, dev = p.dtype, p.device
    except StopIteration:
        dt, dev = torch.get_default_dtype(), torch.device("cpu")
    x = torch.zeros((2, *shape), dtype=dt, device=dev)
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise ShapeError(
            f"model {spec!r} fails on a batch of shape {tuple(x.shape)}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, c):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(
            f"model {spec!r} must map inputs of shape (B, {', '.join(map(str, shape))}) to logits "
            f"(B, {c}); for B = 2 it returned {got}"
        )


def train(
    model: torch.nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    steps: int = 200,
    lr: float = 0.1,
    batch_size: int | None = None,
    momentum: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` in place with SGD on softmax cross-entropy; the short form.

    The same as :func:`gn_theory.training.train` with ``optimizer="sgd"`` and
    ``sampling="replacement"`` (each mini-batch drawn uniformly with replacement);
    it returns only the per-step losses. Use :mod:`gn_theory.training` for
    schedules, Adam, stop rules, evaluation and a saved training log.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (modified in place).
    data : (Tensor, Tensor)
        Inputs and integer targets.
    steps : int, default 200
        Optimiser steps.
    lr : float, default 0.1
        Learning rate.
    batch_size : int, optional
        Mini-batch size (default full batch, i.e. gradient descent).
    momentum : float, default 0.0
        SGD momentum.
    seed : int, default 0
        Seed of the mini-batch sampler.

    Returns
    -------
    list of float
        The mini-batch loss at every step (before that step's update).
    """
    log = _training.train(
        model, data, optimizer="sgd", steps=steps, lr=lr, batch_size=batch_size,
        momentum=momentum, sampling="replacement", seed=seed, log_every=max(int(steps), 1),
    )
    return log.batch_loss.tolist()
