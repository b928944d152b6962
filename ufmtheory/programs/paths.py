"""The ridge path of the UFM towards the max-margin geometry (docs: Theory §4.5).

:func:`regularization_path`: ridge equilibria of the UFM for decreasing λ by warm-started gradient flow, with
the decomposition ``L_λ ≈ L_in + c(λ) L_mm`` (in-support log-odds plus a growing multiple of the max-margin
solution) measured along the path. Logit matrices are (m, V): contexts × tokens.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ufmtheory import _validate
from ufmtheory._results import ResultMixin, finish
from ufmtheory.models import UFM
from ufmtheory.programs.max_margin import ConvexResult, in_support_logits, nn_svm, uf_svm
from ufmtheory.programs.proxies import gram_cosine
from ufmtheory.solvers import init as init_mod
from ufmtheory.solvers.flow import gradient_flow

__all__ = ["RegularizationPath", "regularization_path"]


@dataclass(frozen=True, eq=False, kw_only=True)
class RegularizationPath(ResultMixin):
    """Ridge equilibria along decreasing ``λ = λ_W = λ_H`` (:func:`regularization_path`).

    Attributes:
        lambdas: (n,) the ridge strengths, in the order solved (decreasing).
        gram_H: (n, m, m) ``HᵀH`` at each λ. gram_W: (n, V, V) ``W Wᵀ``.
        logits: (n, m, V) ``(W H)ᵀ`` (contexts × tokens, as in :class:`ConvexResult`).
        grad_norm: (n,) Euclidean norm of the full gradient at the end of each flow (convergence check).
        gram_cosine_H, gram_cosine_W: (n,) Frobenius cosine of the Grams to the SVM geometry.
        c: (n,) least-squares coefficient in ``L_λ C ≈ (L_in + c L_mm) C`` (``C = I - 11ᵀ/V`` removes the
            per-context shift the softmax ignores).
        residual: (n,) ``‖(L_λ - L_in - c L_mm) C‖_F``; relative_residual: divided by ``‖L_λ C‖_F``.
        in_support_error: (n,) max over contexts of the error of the centred in-support logits against
            the log-odds ``L_in``.
        t1: flow time per λ; svm: the max-margin ConvexResult.
        status: ``"ok"``, the first failed flow's status, or ``"inaccurate"`` (a λ missed ``gtol``);
            message: which λ and why.
        stats: ``n_evals`` and ``wall_time_s`` over all flows, ``per_lambda``: per-λ flow statistics.
    """

    lambdas: np.ndarray
    gram_H: np.ndarray
    gram_W: np.ndarray
    logits: np.ndarray
    grad_norm: np.ndarray
    gram_cosine_H: np.ndarray
    gram_cosine_W: np.ndarray
    c: np.ndarray
    residual: np.ndarray
    relative_residual: np.ndarray
    in_support_error: np.ndarray
    t1: float
    svm: ConvexResult
    status: str = "ok"
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_result()


# -- regularisation path ---------------------------------------------------------------------------
def regularization_path(
    problem: UFM,
    lambdas: Sequence[float] | np.ndarray,
    *,
    t1: float = 1e5,
    init: Any = None,
    svm: ConvexResult | None = None,
    gtol: float = 1e-7,
    max_restarts: int = 3,
    method: str = "auto",
    rtol: float = 1e-9,
    atol: float = 1e-11,
    throw: bool = False,
) -> RegularizationPath:
    """Ridge equilibria of the UFM for decreasing ``λ_W = λ_H = λ`` by warm-started gradient flow.

    Each λ is flowed for ``t1`` (restarted from its end up to ``max_restarts`` times while the gradient
    norm exceeds ``gtol``), starting from the previous λ's end point. Along the path the logits
    ``L_λ = (W H)ᵀ: (m, V)`` are decomposed as ``L_in + c(λ) L_mm`` (``L_in``: :func:`in_support_logits`;
    ``L_mm``: the max-margin solution, :func:`uf_svm` for one-hot designs, :func:`nn_svm` otherwise) by
    least squares after removing each context's mean (the softmax ignores it).

    Args:
        problem: a :class:`~ufmtheory.models.UFM` (its λs are replaced; its design and ``dim`` are used).
        lambdas: ridge strengths (> 0); solved in decreasing order.
        t1: gradient-flow time per λ (and per restart).
        init: initial parameters for the first λ (``None``: ``init.small(problem, 0.1, seed=0)``).
        svm: precomputed max-margin :class:`ConvexResult` (solved if ``None``).
        gtol: gradient-norm target; ``status`` says which λ missed it.
        max_restarts, method, rtol, atol: flow controls (see :func:`ufmtheory.gradient_flow`).
        throw: raise :class:`~ufmtheory._results.SolverError` instead of returning a result that is not ok.

    Returns:
        :class:`RegularizationPath`.
    """
    start = time.perf_counter()
    if type(problem) is not UFM:
        raise TypeError(f"problem must be a standard ufmtheory.UFM, got {type(problem).__name__}")
    lams = np.asarray(lambdas, dtype=np.float64).ravel()
    if lams.size == 0 or not np.all(np.isfinite(lams)) or np.any(lams <= 0):
        raise ValueError(f"lambdas must be a non-empty sequence of finite values > 0, got {lams}")
    lams = np.sort(lams)[::-1]
    gtol = _validate.positive("gtol", gtol)
    max_restarts = _validate.integer("max_restarts", max_restarts, low=0)
    design = problem.design
    if svm is None:
        svm = uf_svm(design) if design.is_one_hot else nn_svm(design)
    m, V = design.m, design.V
    if svm.solution.shape != (m, V):
        raise ValueError(f"svm solution has shape {svm.solution.shape}, expected (m, V) = {(m, V)}")
    L_in = in_support_logits(design).solution
    S = design.Y.T > 0
    C = np.eye(V) - 1.0 / V
    mm_c = svm.solution @ C
    theta = init if init is not None else init_mod.small(problem, 0.1, seed=0)
    out: dict[str, list[Any]] = {k: [] for k in ("gH", "gW", "L", "g", "cH", "cW", "c", "res", "rel", "ins")}
    stats: list[dict[str, Any]] = []
    status, message, n_evals = "ok", "", 0
    for lam in lams:
        prob = dataclasses.replace(problem, lam_W=float(lam), lam_H=float(lam))
        evals, wall, restarts = 0, 0.0, 0
        while True:
            traj = gradient_flow(
                prob, t1, init=theta, saveat=np.array([t1]), method=method, rtol=rtol, atol=atol,
                save_params=True,
            )  # fmt: skip
            evals += traj.stats["n_evals"]
            wall += traj.stats["wall_time_s"]
            assert traj.params is not None  # save_params=True: the flow keeps them, even when it stops early
            theta = prob.pack({k: v[-1] for k, v in traj.params.items()})
            gnorm = float(np.linalg.norm(prob.flat_loss_and_grad(theta)[1]))
            if traj.status != "ok" or gnorm <= gtol or restarts >= max_restarts:
                break
            restarts += 1
        n_evals += evals
        if status == "ok" and traj.status != "ok":
            status, message = traj.status, f"flow stopped at lambda={lam:.3g}: {traj.message}"
        elif status == "ok" and gnorm > gtol:
            status = "inaccurate"
            message = f"not converged at lambda={lam:.3g}: gradient norm {gnorm:.3g} > gtol {gtol:.3g}"
        params = prob.unpack(theta)
        gH, gW = prob.grams(params)
        L = prob.logits(params).T
        Lc = L @ C
        target = (L - L_in) @ C
        denom = float(np.vdot(mm_c, mm_c))
        c = float(np.vdot(target, mm_c) / denom) if denom > 0 else 0.0
        res = float(np.linalg.norm(target - c * mm_c))
        # in-support logits centred over the support, against the log-odds
        ins_mean = np.where(S, L, 0.0).sum(axis=1, keepdims=True) / S.sum(axis=1, keepdims=True)
        ins_err = float(np.abs(np.where(S, L - ins_mean - L_in, 0.0)).max())
        for key, val in (
            ("gH", gH), ("gW", gW), ("L", L), ("g", gnorm), ("cH", gram_cosine(gH, svm.gram_H)),
            ("cW", gram_cosine(gW, svm.gram_W)), ("c", c), ("res", res),
            ("rel", res / max(float(np.linalg.norm(Lc)), 1e-300)), ("ins", ins_err),
        ):  # fmt: skip
            out[key].append(val)
        stats.append({"lambda": float(lam), "n_evals": evals, "wall_time_s": wall, "restarts": restarts,
                      "flow_status": traj.status, "method": traj.method})  # fmt: skip
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    for v in arr.values():
        v.setflags(write=False)
    path = RegularizationPath(
        lambdas=lams, gram_H=arr["gH"], gram_W=arr["gW"], logits=arr["L"], grad_norm=arr["g"],
        gram_cosine_H=arr["cH"], gram_cosine_W=arr["cW"], c=arr["c"], residual=arr["res"],
        relative_residual=arr["rel"], in_support_error=arr["ins"], t1=float(t1), status=status,
        message=message, svm=svm,
        stats={"n_evals": n_evals, "wall_time_s": time.perf_counter() - start, "per_lambda": stats},
    )  # fmt: skip
    return finish(path, throw)
