"""Gradient clipping: rescale by the global norm, or clamp every entry.

Clipping by norm (Pascanu, Mikolov & Bengio 2013, Algorithm 1) keeps the direction of the
gradient and shortens the step:

.. math::

    \\hat{\\mathbf{g}} \\leftarrow \\frac{d\\mathcal{L}}{d\\theta}, \\qquad
    \\text{if } \\lVert \\hat{\\mathbf{g}} \\rVert \\ge \\tau:\\ \\hat{\\mathbf{g}}
    \\leftarrow \\frac{\\tau}{\\lVert \\hat{\\mathbf{g}} \\rVert}\\, \\hat{\\mathbf{g}} .

The functions here follow :func:`torch.nn.utils.clip_grad_norm_` and
:func:`torch.nn.utils.clip_grad_value_` exactly (same results, same in-place updates, same
error message), written out so that the algorithm can be read in one screen.
"""

from __future__ import annotations

import math
import numbers
import types
import warnings
from collections.abc import Iterable

import torch
from torch import Tensor

TensorOrTensors = Tensor | Iterable[Tensor]

# Added to the norm before dividing so that an all-zero gradient does not divide by zero.
EPS = 1e-6


def _as_list(parameters: TensorOrTensors, name: str = "parameters") -> list[Tensor]:
    """Materialize ``parameters`` (a tensor or an iterable of tensors) as a list."""
    if isinstance(parameters, Tensor):
        return [parameters]
    if not isinstance(parameters, Iterable):
        raise TypeError(
            f"{name} must be a tensor or an iterable of tensors, got {type(parameters).__name__}"
        )
    is_generator = isinstance(parameters, types.GeneratorType)
    # A generator can be consumed only once: read it before anything else touches it.
    params = list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{name}[{i}] must be a torch.Tensor, got {type(p).__name__}")
    if is_generator and not params:
        warnings.warn(
            "`parameters` is an empty generator, no gradient clipping will occur.",
            stacklevel=3,
        )
    return params


def _expect_real(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a real number (not a bool), else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    return float(value)


def _total_norm(grads: list[Tensor], norm_type: float) -> Tensor:
    """The ``norm_type``-norm of all ``grads`` viewed as one concatenated vector (a 0-d tensor).

    The norm of the per-tensor norms equals the norm of the concatenation for every p,
    including p = inf (a max of maxes).
    """
    if not grads:
        return torch.tensor(0.0)
    first_device = grads[0].device
    norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.to(first_device) for n in norms]), norm_type)


@torch.no_grad()
def grad_norm(parameters: TensorOrTensors, norm_type: float = 2.0) -> Tensor:
    """Return the total gradient norm of ``parameters`` without changing any gradient.

    Args:
        parameters: a tensor or an iterable of tensors; those whose ``.grad`` is ``None``
            are ignored.
        norm_type: the p of the p-norm; ``float("inf")`` for the largest absolute entry.

    Returns:
        A 0-d tensor (on the first gradient's device): the norm of all gradients
        concatenated into one vector; ``tensor(0.)`` when no parameter has a gradient.
    """
    params = _as_list(parameters)
    norm_type = _expect_real("norm_type", norm_type)
    return _total_norm([p.grad for p in params if p.grad is not None], norm_type)


@torch.no_grad()
def clip_grad_norm_(
    parameters: TensorOrTensors,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients in place so that their total norm is at most ``max_norm``.

    Args:
        parameters: a tensor or an iterable of tensors (a generator is fine); those whose
            ``.grad`` is ``None`` are ignored.
        max_norm: the threshold τ (non-negative).
        norm_type: the p of the p-norm; ``float("inf")`` for the largest absolute entry.
        error_if_nonfinite: raise ``RuntimeError`` when the total norm is ``nan`` or
            ``inf`` instead of scaling by it.

    Returns:
        The total norm **before** clipping, a 0-d tensor; ``tensor(0.)`` when no
        parameter has a gradient.

    Notes:
        Every gradient is multiplied by ``clamp(max_norm / (total + 1e-6), max=1)``,
        also when no clipping is needed (the factor is then 1): a Python ``if`` on the
        norm would force a device-to-host copy on a GPU. With a non-finite total and
        ``error_if_nonfinite=False`` the factor is 0 (for ``inf``) or ``nan``, so an
        ``inf`` entry turns into ``nan`` -- exactly what PyTorch does. Unlike PyTorch, a
        negative ``max_norm`` (which would flip the gradients' sign) raises ``ValueError``.
    """
    params = _as_list(parameters)
    max_norm = _expect_real("max_norm", max_norm)
    norm_type = _expect_real("norm_type", norm_type)
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be a non-negative number, got {max_norm}")
    grads = [p.grad for p in params if p.grad is not None]
    total = _total_norm(grads, norm_type)
    if error_if_nonfinite and torch.logical_or(total.isnan(), total.isinf()):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from "
            "`parameters` is non-finite, so it cannot be clipped. To disable "
            "this error and scale the gradients by the non-finite norm anyway, "
            "set `error_if_nonfinite=False`"
        )
    if not grads:
        return total
    # coef = min(τ / (‖g‖ + ε), 1), applied unconditionally (no branch, no host sync)
    coef = torch.clamp(max_norm / (total + EPS), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.device))
    return total


@torch.no_grad()
def clip_grad_value_(parameters: TensorOrTensors, clip_value: float) -> None:
    """Clamp every gradient entry in place to ``[-clip_value, clip_value]``.

    Unlike :func:`clip_grad_norm_` this changes the gradient's direction.

    Args:
        parameters: a tensor or an iterable of tensors; those whose ``.grad`` is ``None``
            are ignored.
        clip_value: the bound (non-negative, finite or ``inf``).
    """
    params = _as_list(parameters)
    clip_value = _expect_real("clip_value", clip_value)
    if math.isnan(clip_value) or clip_value < 0:
        raise ValueError(f"clip_value must be a non-negative number, got {clip_value}")
    for p in params:
        if p.grad is not None:
            p.grad.clamp_(min=-clip_value, max=clip_value)
