"""Claims on the modified UFM (reduction, saddle, end states, early phase): measurements, validity
conditions, parameter spaces."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ufmtheory.algebra import scheme
from ufmtheory.designs import factorial, hierarchical
from ufmtheory.equilibria import end_state, semantic_saddle
from ufmtheory.models import ModifiedUFM
from ufmtheory.solvers import aligned_full_init, gradient_flow, reduced_solve
from ufmtheory.testing._claim import NotApplicable
from ufmtheory.testing._reference import (
    TIGHT,
    centering,
    centred_cosines,
    digits,
    finished,
    kron_projector,
    scheme_projectors,
    sizes_reason,
    softmax_columns,
)


# -- 4. reduced = full ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ReducedCase:
    """One case of ``reduced_equals_full``: a factorial (``sizes``) or hierarchical (``depth``,
    ``branching``) one-hot design, the modified UFM's parameters (one ridge strength ``lam`` for ``W`` and
    the ridged block), the horizon ``t1`` and the seed of the aligned init."""

    sizes: Any
    depth: int | None
    branching: int | None
    alpha: float
    beta: float
    ridge: str
    lam: float
    t1: float
    seed: int

    def problem(self) -> ModifiedUFM:
        if self.depth is not None and self.branching is not None:
            design = hierarchical(self.depth, self.branching)
        else:
            design = factorial(tuple(self.sizes))
        lam_kw = {"lam_H": self.lam} if self.ridge == "H" else {"lam_E": self.lam}
        return ModifiedUFM(
            design, dim=design.m, alpha=self.alpha, beta=self.beta, ridge=self.ridge, lam_W=self.lam, **lam_kw
        )

    def reason(self) -> str | None:
        """Why the case lies outside the claim, or ``None``."""
        depth, branching = self.depth, self.branching
        if depth is not None:
            if depth < 1 or branching is None or branching < 2 or branching**depth > 27:
                return (
                    f"needs a hierarchy: depth >= 1, branching >= 2, <= 27 leaves; got {depth}, {branching}"
                )
        elif sizes_reason(self.sizes, max_K=16) is not None:
            return sizes_reason(self.sizes, max_K=16)
        if self.ridge not in ("H", "E"):
            return f"ridge must be 'H' or 'E', got {self.ridge!r}"
        if self.alpha < 0 or self.beta <= 0 or self.lam < 0 or self.t1 <= 0:
            return (
                f"needs alpha >= 0, beta > 0, lam >= 0, t1 > 0; got {self.alpha}, {self.beta}, {self.lam}, "
                f"{self.t1}"
            )
        return None


def red_applicable(**params: Any) -> str | None:
    return ReducedCase(**params).reason()


def red_measure(**params: Any) -> tuple[float, str]:
    case = ReducedCase(**params)
    prob = case.problem()
    n_S = len(scheme(prob.design).labels)
    rng = np.random.default_rng(case.seed)
    w0 = 1e-2 * (1 + rng.random(n_S))
    w0[0] = 0.0
    h0 = w0 * (1 + 0.3 * rng.random(n_S))  # any aligned init: the reduction is exact, balanced or not
    sol = reduced_solve(prob, case.t1, init=(w0, h0), saveat=20)
    finished(sol, "reduced_solve")
    full = gradient_flow(prob, case.t1, init=aligned_full_init(prob, w0, h0), saveat=sol.ts, **TIGHT)
    finished(full, "gradient_flow")
    red = sol.trajectory
    Ps = scheme_projectors(case.sizes, case.depth, case.branching)
    ranks = np.array([np.trace(P) for P in Ps])
    err = off = 0.0
    for name in ("gram_H", "gram_W"):
        a, b = np.asarray(getattr(red, name)), np.asarray(getattr(full, name))
        # Coefficients c_S = tr(G P_S)/rank(P_S), compared relative to the largest one at each time, so that
        # small modes are checked on the scale of the large ones (not drowned in a Gram-entry maximum).
        ca = np.einsum("tij,sji->ts", a, np.array(Ps)) / ranks
        cb = np.einsum("tij,sji->ts", b, np.array(Ps)) / ranks
        err = max(err, float(np.max(np.abs(ca - cb).max(axis=1) / np.abs(ca).max(axis=1))))
        # The full Grams stay in the algebra: nothing outside the span of the P_S.
        rebuilt = np.einsum("ts,sij->tij", cb, np.array(Ps))
        off = max(off, float(np.abs(b - rebuilt).max() / np.abs(b).max()))
    err_loss = float(np.max(np.abs(sol.loss - full.loss) / np.abs(full.loss)))
    detail = (
        f"coefficient error {err:.2e} (relative to the largest, per time), off-algebra part of the full "
        f"Grams {off:.1e}, loss error {err_loss:.2e}"
    )
    return max(err, off, err_loss), detail


def red_space(st: Any) -> Any:
    return st.fixed_dictionaries(
        {
            "sizes": st.sampled_from([(2, 2), (2, 3), (3, 3), (2, 2, 2), (4,)]),
            "alpha": st.floats(0.0, 2.0),
            "beta": st.floats(0.3, 1.5),
            "ridge": st.sampled_from(["H", "E"]),
            "lam": st.sampled_from([0.0, 1e-3, 1e-2]),
            "seed": st.integers(0, 1000),
        }
    )


# -- 5. plateau cosines -----------------------------------------------------------------------------------
def plateau_applicable(A: int, B: int | None, alpha: float, beta: float, lam: float) -> str | None:
    if B is not None and B != A:
        return (
            f"the closed form assumes equal main effects, which hold by symmetry on square A×A grids only "
            f"(got {A}×{B}; there the saddle's two main effects differ)"
        )
    if A < 2 or A > 6:
        return f"needs 2 <= A <= 6, got {A}"
    if lam <= 0 or alpha <= 0 or beta <= 0:
        return f"needs ridge H with lam > 0 and alpha, beta > 0, got lam={lam}, alpha={alpha}, beta={beta}"
    return None


def plateau_measure(A: int, B: int | None, alpha: float, beta: float, lam: float) -> tuple[float, str]:
    prob = ModifiedUFM(factorial((A, A)), dim=A * A, alpha=alpha, beta=beta, ridge="H", lam_W=lam, lam_H=lam)
    eq = semantic_saddle(prob)
    if eq.kind != "semantic":
        raise NotApplicable(
            f"the restricted minimiser is {eq.kind!r} (the ridge is too strong for a plateau)"
        )
    dig = digits((A, A))
    shared = (dig[:, :, None] == dig[:, None, :]).sum(axis=0)
    off = ~np.eye(A * A, dtype=bool)
    one, none = (A - 2) / (2 * (A - 1)), -1.0 / (A - 1)  # docs: Theory §10, equal attribute modes
    err = 0.0
    for G in (eq.gram_H, eq.gram_W):
        cos = centred_cosines(np.asarray(G))
        err = max(
            err,
            float(np.abs(cos[off & (shared == 1)] - one).max()),
            float(np.abs(cos[shared == 0] - none).max()),
        )
    return (
        err,
        f"expected cosines {one:.4g} (one shared attribute), {none:.4g} (none); max deviation {err:.2e}",
    )


def plateau_space(st: Any) -> Any:
    return st.fixed_dictionaries(
        {
            "A": st.integers(2, 5),
            "alpha": st.floats(0.3, 2.0),
            "beta": st.floats(0.5, 1.5),
            "lam": st.sampled_from([1e-4, 1e-3, 1e-2]),
        }
    )


# -- 6. the LP boundary -----------------------------------------------------------------------------------
def boundary_sum(A: int, B: int, alpha: float, beta: float) -> tuple[float, float, float]:
    k0, k1 = alpha**2 * B + beta**2, alpha**2 * A + beta**2
    return 1.0 / beta, 1.0 / math.sqrt(k0) + 1.0 / math.sqrt(k1), k0


def lp_applicable(A: int, B: int, alpha: float, beta: float) -> str | None:
    if A < 2 or B < 2 or A * B > 400:
        return f"needs an A×B grid with A, B >= 2 and AB <= 400, got {A}×{B}"
    if alpha < 0 or beta <= 0:
        return f"needs alpha >= 0 and beta > 0, got alpha={alpha}, beta={beta}"
    lhs, rhs, _ = boundary_sum(A, B, alpha, beta)
    if abs(lhs - rhs) <= 1e-9 * lhs:
        return f"on the boundary (1/β = {lhs:.12g}, Σ 1/sqrt κ_f = {rhs:.12g}): a tie, either end state"
    return None


def lp_measure(A: int, B: int, alpha: float, beta: float) -> tuple[float, str]:
    eq = end_state(ModifiedUFM(factorial((A, B)), dim=A * B, alpha=alpha, beta=beta, ridge="E"))
    lhs, rhs, _ = boundary_sum(A, B, alpha, beta)
    expected = "etf" if lhs < rhs else "semantic"
    k0, k1, k01 = alpha**2 * B + beta**2, alpha**2 * A + beta**2, beta**2
    J_etf = (A - 1) / math.sqrt(k0) + (B - 1) / math.sqrt(k1) + (A - 1) * (B - 1) / math.sqrt(k01)
    J_sem = (A - 1) * B / math.sqrt(k0) + (B - 1) * A / math.sqrt(k1)
    err = 0.0 if eq.kind == expected else 1.0
    detail = f"end_state says {eq.kind!r}, the closed form {expected!r} (1/β = {lhs:.6g} vs {rhs:.6g})"
    for key, ref in (("etf_objective", J_etf), ("semantic_objective", J_sem)):
        if key not in eq.stats:  # a renamed key must fail the claim, not skip the comparison
            return math.inf, f"{detail}; end_state reports no {key!r}"
        e = abs(float(eq.stats[key]) - ref) / ref
        err = max(err, e)
        detail += f"; {key} error {e:.1e}"
    return err, detail


def lp_space(st: Any) -> Any:
    return st.fixed_dictionaries(
        {
            "A": st.integers(2, 8),
            "B": st.integers(2, 8),
            "alpha": st.floats(0.05, 3.0),
            "beta": st.floats(0.2, 2.0),
        }
    )


# -- 7. the saddle's escape rate --------------------------------------------------------------------------
def escape_applicable(sizes: Any, lam: float, lam_W: float | None, alpha: float, beta: float) -> str | None:
    reason = sizes_reason(sizes, min_factors=2, max_K=36)
    if reason is not None:
        return reason + " (the escape runs along the interaction modes)"
    if lam <= 0 or (lam_W is not None and lam_W <= 0):
        return f"needs ridge H with lam_W, lam_H > 0, got lam={lam}, lam_W={lam_W}"
    if alpha <= 0 or beta <= 0:
        return f"needs alpha > 0 and beta > 0, got {alpha}, {beta}"
    return None


def escape_measure(
    sizes: Any, lam: float, lam_W: float | None, alpha: float, beta: float
) -> tuple[float, str]:
    sizes = tuple(sizes)
    lW, lH = (lam if lam_W is None else lam_W), lam
    prob = ModifiedUFM(
        factorial(sizes), dim=math.prod(sizes), alpha=alpha, beta=beta, ridge="H", lam_W=lW, lam_H=lH
    )
    eq = semantic_saddle(prob)
    if eq.kind != "semantic":
        raise NotApplicable(f"the restricted minimiser is {eq.kind!r}: no saddle to escape from")
    K = math.prod(sizes)
    Sm = softmax_columns(np.asarray(eq.logits))
    kap = beta**2  # every interaction mode has κ = β²
    mus = []
    for r in range(2, len(sizes) + 1):
        for S in subsets(len(sizes), r):
            P = kron_projector(sizes, S)
            g = (1.0 - np.trace(Sm @ P) / np.trace(P)) / K  # g_S = (1 - σ_S)/K at the saddle
            # top eigenvalue of [[-λ_W, g], [κ g, -κ λ_H]]
            mus.append(0.5 * (-(lW + kap * lH) + math.sqrt((lW - kap * lH) ** 2 + 4 * kap * g * g)))
    mu = max(mus)
    got = float(eq.stats["mu"])
    err = abs(got - mu) / max(abs(mu), lH)
    return err, f"μ from the Jacobian {got:.8g}, from the 2×2 block {mu:.8g} (g* - λ when β = 1, λ_W = λ_H)"


def subsets(F: int, r: int) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for f in range(F):
        out += [s + (f,) for s in out]
    return [s for s in out if len(s) == r]


def escape_space(st: Any) -> Any:
    return st.fixed_dictionaries(
        {
            "sizes": st.sampled_from([(2, 2), (2, 3), (3, 3), (2, 4), (3, 4), (2, 2, 2)]),
            "lam": st.sampled_from([1e-4, 1e-3, 1e-2]),
            "alpha": st.floats(0.5, 2.0),
            "beta": st.floats(0.5, 1.5),
        }
    )


# -- 8. early growth rates --------------------------------------------------------------------------------
def growth_applicable(sizes: Any, alpha: float, beta: float, u0: float) -> str | None:
    reason = sizes_reason(sizes, max_K=24)
    if reason is not None:
        return reason
    if alpha < 0 or beta <= 0 or u0 <= 0:
        return f"needs alpha >= 0, beta > 0, u0 > 0, got {alpha}, {beta}, {u0}"
    K = math.prod(sizes)
    kmax = max(alpha**2 * K / a + beta**2 for a in sizes)
    if u0 * math.exp(3 * math.sqrt(kmax) / beta) > 1e-3:
        reach = u0 * math.exp(3 * math.sqrt(kmax) / beta)
        return f"outside the linear regime: the fastest mode reaches {reach:.2g} > 1e-3 in the window"
    return None


def growth_measure(sizes: Any, alpha: float, beta: float, u0: float) -> tuple[float, str]:
    sizes = tuple(sizes)
    design = factorial(sizes)
    K = design.m
    prob = ModifiedUFM(design, dim=K, alpha=alpha, beta=beta, ridge="E")
    # Balanced aligned init: W = sqrt(u0) C_K, H = K_x^{1/2} W (h_S = sqrt(κ_S) w_S), E = H K_x^{-1} X̃ᵀ.
    X_tilde = np.vstack([alpha * design.X, beta * np.eye(K)])
    Kx = X_tilde.T @ X_tilde
    ev, U = np.linalg.eigh(Kx)
    W = math.sqrt(u0) * centering(K)
    H = (U * np.sqrt(ev)) @ U.T @ W
    E = H @ np.linalg.solve(Kx, X_tilde.T)
    t_end = 3.0 * K / (2 * beta)  # the slowest (interaction, κ = β²) modes grow by e^3: still linear
    ts = np.linspace(0.0, t_end, 40)
    tr = gradient_flow(prob, t_end, init={"W": W, "E": E}, saveat=ts, log_time=False, rtol=1e-11, atol=1e-20)
    finished(tr, "gradient_flow")
    errs = []
    for f, a in enumerate(sizes):
        energy = np.einsum("tij,ji->t", tr.gram_H, kron_projector(sizes, (f,)))
        rate = np.polyfit(tr.ts, np.log(energy), 1)[0]
        expected = 2 * math.sqrt(alpha**2 * K / a + beta**2) / K  # 2 sqrt(κ_f)/K, κ_f = α²K/A_f + β²
        errs.append(abs(rate / expected - 1))
    return max(errs), f"relative rate errors per factor {[f'{e:.1e}' for e in errs]}"


def growth_space(st: Any) -> Any:
    return st.fixed_dictionaries(
        {
            "sizes": st.sampled_from([(2,), (3,), (2, 2), (2, 3), (3, 3), (2, 4), (2, 2, 2)]),
            "alpha": st.floats(0.0, 1.5),
            "beta": st.floats(0.5, 1.5),
        }
    )
