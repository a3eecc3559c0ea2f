"""Run the book's notebooks with one math-library thread per kernel.

The chapters train small models on small tensors. With several threads per kernel, the
threads of concurrently running kernels (and other processes) compete for the same cores,
and a cell that takes one second alone can take twenty. Setting the thread counts in the
build's environment before any kernel starts makes every kernel inherit them. Values that
are already set are left alone, so ``OMP_NUM_THREADS=4 jupyter-book build .`` still works.
"""

from __future__ import annotations

import os
from typing import Any

from sphinx.application import Sphinx

#: Environment variables read by PyTorch (OpenMP), NumPy's BLAS and MKL at start-up.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the extension with Sphinx (kernels are started later, during reading)."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
