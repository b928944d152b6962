"""Test configuration: hypothesis profiles, and fixtures for an independent torch reference of the UFM loss
and random orthogonal matrices.

Hypothesis profiles (``HYPOTHESIS_PROFILE`` picks one; otherwise ``ci`` when ``CI`` is set, else ``dev``):

- ``ci``: derandomized (the examples are a fixed function of each test's source), no example database,
  no deadline: a run passes or fails the same way every time. ``make test`` uses it.
- ``dev``: random examples, the local example database, no deadline (the default on a workstation).
- ``many``: random and 20× the examples of each test (``helpers.budget``): run it by hand now and then,
  ``HYPOTHESIS_PROFILE=many pytest tests/test_x.py``, never in CI.

Shared builders (designs, projectors, soft labels) live in ``tests/helpers.py``. Nothing here imports
code under test to compute expected values: the torch loss below is written from the Theory page,
section 3, and differentiated by autograd.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "print_blob": True, "suppress_health_check": [HealthCheck.too_slow]}
# max_examples is the base that helpers.budget scales each test's own budget by (100 = as written).
settings.register_profile("ci", derandomize=True, database=None, max_examples=100, **_COMMON)
settings.register_profile("dev", max_examples=100, **_COMMON)
settings.register_profile("many", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def torch_ufm_loss_and_grad(
    Y: np.ndarray, pi: np.ndarray, W: np.ndarray, H: np.ndarray, lam_W: float, lam_H: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """Reference ``f(W, H) = Σ_j π_j CE(y_j, softmax(W h_j)) + λ_W/2 ‖W‖² + λ_H/2 ‖H‖²`` in float64 torch,
    with the gradient from autograd (independent of the package's analytic gradient)."""
    import torch

    Wt = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    Ht = torch.tensor(H, dtype=torch.float64, requires_grad=True)
    Yt = torch.tensor(Y, dtype=torch.float64)
    pit = torch.tensor(pi, dtype=torch.float64)
    logp = torch.log_softmax(Wt @ Ht, dim=0)  # softmax over tokens, one column per context
    ce = -(Yt * logp).sum(dim=0)
    loss = (ce * pit).sum() + 0.5 * lam_W * (Wt**2).sum() + 0.5 * lam_H * (Ht**2).sum()
    loss.backward()
    return float(loss.detach()), Wt.grad.numpy().copy(), Ht.grad.numpy().copy()


def random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-random orthogonal (n, n) matrix (QR of a Gaussian with the sign fix)."""
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    return Q * np.sign(np.diag(R))


@pytest.fixture(scope="session")
def torch_ref():
    """The torch reference loss-and-gradient (session scoped, so hypothesis tests may use it)."""
    return torch_ufm_loss_and_grad


@pytest.fixture(scope="session")
def orthogonal():
    return random_orthogonal
