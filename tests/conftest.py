"""Shared test helpers: an independent torch reference for the UFM loss and random orthogonal matrices.

Nothing here imports code under test to compute expected values: the torch loss below is written from
THEORY.md section 3 and differentiated by autograd.
"""

from __future__ import annotations

import numpy as np
import pytest


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
