"""Argument checks for the public boundary, with messages that say what was expected.

Hot loops never call these: a public function validates its arguments once and then runs
unchecked code.

The exceptions keep this package's types (``TypeError`` for a wrong type, ``ValueError``
for a wrong value) and add the type :mod:`torch.nn`'s recurrent layers raise for the same
misuse, so that code written for either catches both: ``except RuntimeError`` catches a
wrong input size as it does for :class:`torch.nn.LSTM`, and ``except ValueError`` catches
it as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ShapeError(ValueError, RuntimeError):
    """A tensor of the wrong shape (:mod:`torch.nn` raises ``RuntimeError``)."""


class DeviceError(ValueError, RuntimeError):
    """Tensors on different devices (:mod:`torch.nn` raises ``RuntimeError``)."""


class DtypeError(TypeError, ValueError, RuntimeError):
    """A tensor of the wrong dtype (:mod:`torch.nn` raises ``ValueError`` for the input and
    ``RuntimeError`` for a state or a layer built with an integer dtype)."""


class NotATensorError(TypeError, AttributeError):
    """Something else where a tensor belongs (:mod:`torch.nn` fails with ``AttributeError``
    when it calls a tensor's method on it)."""


class StateStructureError(TypeError, IndexError):
    """A state of the wrong structure, such as one tensor where an LSTM takes the pair
    ``(h_0, c_0)`` (:mod:`torch.nn` fails with ``IndexError`` when it indexes it)."""


def expect_tensor(name: str, value: object) -> torch.Tensor:
    """Return ``value`` if it is a tensor, else raise :class:`NotATensorError`."""
    if not isinstance(value, torch.Tensor):
        raise NotATensorError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def expect_floating(name: str, value: torch.Tensor) -> None:
    """Raise :class:`DtypeError` unless ``value`` has a floating-point dtype."""
    if not value.is_floating_point():
        raise DtypeError(f"{name} must have a floating-point dtype, got {value.dtype}")


def expect_shape(name: str, value: torch.Tensor, shape: Sequence[int | None], layout: str) -> None:
    """Raise :class:`ShapeError` unless ``value.shape`` matches ``shape`` (``None``: any size).

    ``layout`` names the dimensions for the message, for example ``"(N, T, D)"``.
    """
    ok = value.dim() == len(shape) and all(
        want is None or want == got for want, got in zip(shape, value.shape, strict=False)
    )
    if not ok:
        sizes = ", ".join("?" if s is None else str(s) for s in shape)
        raise ShapeError(f"{name} must have shape {layout} = ({sizes}), got {tuple(value.shape)}")


def expect_same_device_and_dtype(**tensors: torch.Tensor) -> None:
    """Raise :class:`DeviceError` or :class:`DtypeError` unless the named tensors share both."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, tensor in items[1:]:
        if tensor.device != first.device:
            raise DeviceError(
                f"{name} is on {tensor.device} but {first_name} is on {first.device}; "
                "create all tensors on one device"
            )
        if tensor.dtype != first.dtype:
            raise DtypeError(
                f"{name} has dtype {tensor.dtype} but {first_name} has dtype {first.dtype}"
            )


def expect_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` greater than zero, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def expect_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
