"""The deep-context modified UFM (ufmtheory.analysis.deep_context) and the calibrated family "deep":
gradients against torch autograd on an independent forward, the id-token rule against the baseline's
encoding, the α/β scale invariance of the normalised loss, and calibration recovering a known β."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory.analysis.calibration import FAMILIES, calibrate
from ufmtheory.analysis.deep_context import DeepContextUFM, id_token_contexts

D23 = ut.designs.factorial((2, 3))
HIER = ut.designs.hierarchical(2, 2)


def _torch_loss(problem, params, torch):
    """Independent forward: H = N(E X̂ + β A B), loss Σ_j π_j CE(y_j, softmax(W h_j))."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    X = torch.tensor(np.asarray(problem.design.X, dtype=np.float64))
    ids = torch.tensor(np.eye(problem.design.m)[id_token_contexts(problem.design)])
    Xhat = torch.cat([problem.alpha * X, ids], dim=0)
    H = t["E"] @ Xhat + problem.beta * t["A"] @ t["B"]
    if problem.normalize is not None:
        H = problem.normalize * H / H.norm(dim=0, keepdim=True)
    logp = torch.log_softmax(t["W"] @ H, dim=0)
    Y = torch.tensor(problem.design.Y)
    pi = torch.tensor(problem.design.pi)
    loss = -((Y * logp).sum(dim=0) * pi).sum()
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


@pytest.mark.parametrize("design", [D23, HIER], ids=["factorial", "hierarchical"])
@pytest.mark.parametrize("normalize", [None, 2.0])
def test_loss_and_gradient_match_torch_autograd(design, normalize):
    torch = pytest.importorskip("torch")
    prob = DeepContextUFM(design, dim=5, alpha=1.7, beta=0.6, normalize=normalize, rank=3)
    params = ut.init.normal(prob, 0.4, seed=3)
    loss, grads = prob.loss_and_grad(params)
    ref_loss, ref_grads = _torch_loss(prob, params, torch)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in ("W", "E", "A", "B"):
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-10, atol=1e-13)


def test_id_tokens_follow_the_encoding():
    """Factorial contexts are told apart by their attributes (no id token); hierarchical leaves share
    their parent's attribute set, so every leaf reads its own id token (baseline.data, context_ids=auto)."""
    assert not id_token_contexts(D23).any()
    assert id_token_contexts(ut.designs.hierarchical(3, 2)).all()
    prob = DeepContextUFM(HIER, dim=4)
    assert prob.param_shapes["E"] == (4, HIER.p + HIER.m)
    assert DeepContextUFM(D23, dim=4).param_shapes == {"W": (6, 4), "E": (4, 5), "A": (4, 4), "B": (4, 6)}


def test_normalised_loss_depends_on_alpha_over_beta_only():
    """Without id tokens N(c (E αX + β A B)) = N(E αX + β A B): scaling α and β together changes nothing."""
    a = DeepContextUFM(D23, dim=6, alpha=1.0, beta=0.5, normalize=3.0)
    b = DeepContextUFM(D23, dim=6, alpha=4.0, beta=2.0, normalize=3.0)
    params = ut.init.normal(a, 0.3, seed=1)
    assert a.loss(params) == pytest.approx(b.loss(params), rel=1e-13)


def test_the_deep_path_starts_small():
    """At the GPT's init (std 0.02) the product path is O(std² √r), the shallow path O(std): the step-0
    features are the attributes' (what a GPT's last position reads at init)."""
    prob = DeepContextUFM(D23, dim=64, alpha=1.0, beta=1.0)
    p = ut.init.normal(prob, 0.02, seed=0)
    deep = np.linalg.norm(p["A"] @ p["B"])
    shallow = np.linalg.norm(p["E"] @ prob.X_tilde)
    assert deep < 0.2 * shallow


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lam_W=1e-3), "no ridge"),
        (dict(ridge="E", lam_E=1e-3), "no ridge"),
        (dict(rank=0), "rank"),
        (dict(alpha=-1.0), "alpha"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepContextUFM(D23, dim=4, **kwargs)


def _deep_run(design, beta, seed, steps=200, lr=1e-2):
    """A "trained model" that is itself a same-clock deep-context run, carrying a training config."""
    prob = DeepContextUFM(design, dim=16, alpha=1.0, beta=beta, normalize=4.0)
    tr = ut.optimize(
        prob, steps, optimizer="adamw", lr=lr, init=ut.init.normal(prob, 0.02, seed=seed), saveat=30
    )
    cfg = {"optimizer": "adamw", "lr": lr, "seed": seed, "weight_decay": 0.0, "betas": [0.9, 0.999]}
    return ut.Trajectory(
        ts=tr.ts,
        gram_H=tr.gram_H,
        gram_W=tr.gram_W,
        loss=tr.loss,
        time_unit="step",
        meta={"config": {**cfg, "width": 16, "steps": steps}},
        status=tr.status,
    )


def test_calibrate_deep_recovers_beta():
    assert "deep" in FAMILIES
    runs = [_deep_run(D23, 0.5, seed=s) for s in (0, 1)]
    cal = calibrate(runs, D23, family="deep", grid={"beta": (0.25, 0.5, 1.0)}, dim=16, alpha_rule="fixed")
    assert cal.ok and cal.params["beta"] == 0.5 and cal.params["alpha"] == 1.0
    assert cal.params["normalize"] == 4.0 and cal.objective < 1e-12
    prob = cal.problem(HIER)
    assert isinstance(prob, DeepContextUFM) and prob.rank == 16 and prob.beta == 0.5
    assert math.isfinite(prob.loss(ut.init.normal(prob, 0.02, seed=0)))


def test_the_exact_reduction_refuses_the_subclass():
    """A DeepContextUFM is a ModifiedUFM subclass with another loss: reducing it as its base class (what
    reduced_solve, end_state and predict_phases did, silently, with status ok) would solve another model."""
    prob = DeepContextUFM(ut.designs.factorial((3, 3)), dim=9, beta=0.5, normalize=3.0)
    with pytest.raises(ValueError, match="subclass DeepContextUFM"):
        ut.reduced_solve(prob, 10.0)
    with pytest.raises(ValueError, match="subclass DeepContextUFM"):
        ut.equilibria.end_state(DeepContextUFM(ut.designs.factorial((3, 3)), dim=9, beta=0.5))
    ph = ut.predict_phases(prob, t1=10.0)
    assert ph.method.startswith("full-small (exact reduction needs") and ph.estimates == {}
