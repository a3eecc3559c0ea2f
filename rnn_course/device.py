"""Where tensors live: the GPU when one is present, otherwise the CPU."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    """Return ``cuda`` when a CUDA device is available, else ``cpu``.

    Choose the device once, at the top of a script or notebook, and create every tensor on
    it; the package's functions take a ``device`` argument rather than moving data around.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
