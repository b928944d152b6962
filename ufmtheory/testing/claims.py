"""The catalogue of the theory's claims, each checked against a closed form written out here.

Every claim runs the package (solvers, equilibria, programmes) and compares with expected values computed
independently in this module (formulas from the docs, Kronecker-built projectors, scipy quadrature and root
finding): never by calling the function under test a second time.

| name | claim | docs |
|---|---|---|
| `zhu_closed_form` | Zhu et al.'s global minimiser of the regularised UFM | Standard UFM |
| `etf_mode_time` | the exact ETF-mode time `t(u)` along the aligned flow | Standard UFM |
| `conservation` | `WᵀW - HHᵀ` is conserved (decays as `e^{-2λt}` with equal ridges) | Standard UFM |
| `reduced_equals_full` | the reduced (association-scheme) flow equals the full flow | Modified UFM |
| `plateau_cosines` | cosines at the semantic saddle of an A×A grid | Modified UFM |
| `lp_boundary` | ridge-E end state: ETF iff `1/β < 1/sqrt(α²B+β²) + 1/sqrt(α²A+β²)` | Modified UFM |
| `escape_rate` | the saddle's unstable eigenvalue is that of the interaction 2×2 block | Modified UFM |
| `growth_rates` | early main-effect growth rates `2 sqrt(κ_f)/K` | Modified UFM |
| `gd_first_order` | gradient descent converges to the flow at first order in the step | Standard UFM |
| `proxy_exact_disjoint` | the centred-support proxy solves the NN-SVM (disjoint equal supports) | NTP |

Example:
    >>> from ufmtheory.testing import claims
    >>> c = claims.get("lp_boundary")
    >>> c.check(A=3, B=3, alpha=0.5, beta=1.0).status
    'ok'
    >>> c.check(A=3, B=3, alpha=1.0, beta=1.0).status  # exactly on the boundary: a tie
    'not_applicable'
"""

from __future__ import annotations

from typing import Any

from ufmtheory.testing import _modified_claims as mod
from ufmtheory.testing import _standard_claims as std
from ufmtheory.testing._claim import Claim, ClaimResult, ExploreResult, NotApplicable, RunFailed

__all__ = [
    "Claim",
    "ClaimResult",
    "ExploreResult",
    "NotApplicable",
    "RunFailed",
    "CLAIMS",
    "get",
    "names",
    "check",
]

# -- the catalogue ----------------------------------------------------------------------------------------
CLAIMS: dict[str, Claim] = {
    c.name: c
    for c in [
        Claim(
            name="zhu_closed_form",
            statement=(
                "On a balanced one-hot design (K classes, n contexts each) with λ_W, λ_H > 0 the global "
                "minimiser has class-mean logits x* C_K, x* = ln(1/ε - (K-1)), ε = sqrt(n λ_W λ_H), HᵀH = "
                "sqrt(λ_W/(nλ_H)) x* C_K, W Wᵀ = sqrt(nλ_H/λ_W) x* C_K, and is W = H = 0 when ε >= 1/K; "
                "the point is stationary."
            ),
            section="docs/standard_ufm.md (Zhu et al.'s minimiser); docs: Theory §4.1",
            conditions=("balanced one-hot design", "lam_W > 0 and lam_H > 0", "dim >= K - 1"),
            tol=1e-9,
            base={"K": 3, "n": 1, "lam_W": 1e-2, "lam_H": 1e-2},
            defaults=(
                {},
                {"K": 4, "n": 2, "lam_W": 1e-2, "lam_H": 4e-3},
                {"K": 4, "lam_W": 0.3, "lam_H": 0.3},
            ),
            measure=std.zhu_measure,
            applicable=std.zhu_applicable,
            catalogued=True,
            space=std.zhu_space,
        ),
        Claim(
            name="etf_mode_time",
            statement=(
                "From the aligned balanced init (W Wᵀ = HᵀH = u₀ C_K) without ridge the flow stays u(t) "
                "C_K with t(u) = ½[(K-1) ln(u/u₀) + Ei(u) - Ei(u₀)]; etf_mode_time computes it."
            ),
            section="docs/standard_ufm.md (exact ETF mode); docs: Theory §4.3",
            conditions=("one-hot K classes", "no ridge", "aligned balanced init"),
            tol=1e-6,
            base={"K": 3, "u0": 1e-2, "t1": 1e4, "dim": None},
            defaults=({}, {"K": 2, "u0": 1e-3, "t1": 1e5}, {"K": 5, "u0": 0.5, "t1": 1e3}),
            measure=std.etf_measure,
            applicable=std.etf_applicable,
            catalogued=True,
            space=std.etf_space,
        ),
        Claim(
            name="conservation",
            statement=(
                "Along the gradient flow with λ_W = λ_H = λ, D = WᵀW - HHᵀ obeys D(t) = e^{-2λt} D(0): "
                "conserved without ridge (measured relative to ‖WᵀW‖ + ‖HHᵀ‖)."
            ),
            section="docs/standard_ufm.md (balanced reduction); docs: Theory §4.4",
            conditions=("standard UFM (any design)", "equal ridges lam_W == lam_H (0 included)"),
            tol=1e-6,
            base={
                "sizes": (2, 3),
                "counts": None,
                "dim": 5,
                "scale": 0.3,
                "lam_W": 0.0,
                "lam_H": 0.0,
                "t1": 1e4,
                "seed": 4,
            },
            defaults=(
                {},
                {"counts": ((3, 1, 0, 0), (0, 2, 2, 0), (1, 0, 0, 5)), "dim": 3, "scale": 0.5},
                {"sizes": (3,), "dim": 4, "scale": 0.8, "lam_W": 0.05, "lam_H": 0.05, "t1": 40.0, "seed": 2},
            ),
            measure=std.cons_measure,
            applicable=std.cons_applicable,
            catalogued=True,
            space=std.cons_space,
        ),
        Claim(
            name="reduced_equals_full",
            statement=(
                "For factorial/hierarchical one-hot designs and an aligned init the reduced ODE on the "
                "scheme coefficients (w_S, h_S) reproduces the full flow's Grams and loss."
            ),
            section="docs/modified_ufm.md (exact symmetric reduction); docs: Theory §6",
            conditions=(
                "factorial (K <= 16) or hierarchical (<= 27 leaves) one-hot design",
                "beta > 0",
                "aligned init",
            ),
            tol=1e-6,
            base={
                "sizes": (2, 3),
                "depth": None,
                "branching": None,
                "alpha": 1.0,
                "beta": 1.0,
                "ridge": "H",
                "lam": 1e-3,
                "t1": 1e3,
                "seed": 0,
            },
            defaults=(
                {},
                {"sizes": (3, 3), "alpha": 1.5, "beta": 0.5, "ridge": "E"},
                {"depth": 2, "branching": 2},
            ),
            measure=mod.red_measure,
            applicable=mod.red_applicable,
            catalogued=True,
            space=mod.red_space,
        ),
        Claim(
            name="plateau_cosines",
            statement=(
                "At the semantic saddle of the ridge-H modified UFM on an A×A grid (the plateau the flow "
                "lingers at) the centred cosines of HᵀH and W Wᵀ are (A-2)/(2(A-1)) for contexts sharing "
                "one attribute and -1/(A-1) for contexts sharing none."
            ),
            section="docs/modified_ufm.md (the semantic saddle); docs: Theory §9",
            conditions=(
                "A×A factorial grid (equal main effects)",
                "ridge H, lam > 0",
                "a non-zero saddle exists",
            ),
            tol=1e-8,
            base={"A": 3, "B": None, "alpha": 1.0, "beta": 1.0, "lam": 1e-3},
            defaults=({}, {"A": 4}, {"A": 3, "alpha": 1.5, "beta": 0.7, "lam": 1e-2}),
            measure=mod.plateau_measure,
            applicable=mod.plateau_applicable,
            catalogued=True,
            space=mod.plateau_space,
        ),
        Claim(
            name="lp_boundary",
            statement=(
                "With ridge on E and λ -> 0 the modified UFM on an A×B grid ends in the ETF iff 1/β < "
                "1/sqrt(α²B+β²) + 1/sqrt(α²A+β²), and in the semantic state otherwise; the LP costs are "
                "J_etf = Σ m_S/sqrt κ_S and J_sem = (A-1)B/sqrt κ_0 + (B-1)A/sqrt κ_1."
            ),
            section="docs/modified_ufm.md (end states); docs: Theory §8",
            conditions=("A×B factorial grid", "ridge E, λ -> 0", "not on the boundary (a tie)"),
            tol=1e-9,
            base={"A": 3, "B": 3, "alpha": 0.9, "beta": 1.0},
            defaults=(
                {},
                {"alpha": 1.1},
                {"A": 2, "B": 3, "alpha": 0.8},
                {"A": 3, "B": 4, "alpha": 2.0, "beta": 0.5},
            ),
            measure=mod.lp_measure,
            applicable=mod.lp_applicable,
            catalogued=True,
            space=mod.lp_space,
        ),
        Claim(
            name="escape_rate",
            statement=(
                "At the semantic saddle (ridge H) the top Jacobian eigenvalue μ is that of the "
                "interaction block [[-λ_W, g*], [κ g*, -κ λ_H]] with κ = β² and g* = (1 - tr(softmax(L*) "
                "P_S)/m_S)/K (the largest over interaction modes S): μ = g* - λ when β = 1 and λ_W = λ_H "
                "= λ."
            ),
            section="docs/modified_ufm.md (timing: escape from the saddle); docs: Theory §9, §11",
            conditions=(
                "factorial design with >= 2 factors",
                "ridge H with lam_W, lam_H > 0",
                "a non-zero saddle",
            ),
            tol=1e-6,
            base={"sizes": (3, 3), "lam": 1e-3, "lam_W": None, "alpha": 1.0, "beta": 1.0},
            defaults=({}, {"sizes": (2, 3), "lam": 1e-2}, {"sizes": (2, 2, 2), "alpha": 1.5, "beta": 0.7}),
            measure=mod.escape_measure,
            applicable=mod.escape_applicable,
            catalogued=True,
            space=mod.escape_space,
        ),
        Claim(
            name="growth_rates",
            statement=(
                "Near the origin (ridge E or none, balanced aligned init) the main-effect energy tr(HᵀH "
                "P_f) of factor f grows like exp(2 sqrt(κ_f) t/K) with κ_f = α²K/A_f + β²."
            ),
            section="docs/modified_ufm.md (early phase); docs: Theory §7",
            conditions=("factorial design", "no ridge", "linear regime: modes stay < 1e-3 over the window"),
            tol=1e-4,
            base={"sizes": (3, 3), "alpha": 1.0, "beta": 1.0, "u0": 1e-8},
            defaults=({}, {"sizes": (2, 4), "alpha": 0.5}),
            measure=mod.growth_measure,
            applicable=mod.growth_applicable,
            catalogued=True,
            space=mod.growth_space,
        ),
        Claim(
            name="gd_first_order",
            statement=(
                "Gradient descent with step lr reaches θ_GF(T) with error O(lr): the fitted order is 1."
            ),
            section="docs/standard_ufm.md (solvers); DESIGN: tests regress convergence order",
            conditions=("standard UFM, equal ridges", "lr <= 0.5 (asymptotic regime)"),
            tol=0.1,
            base={
                "sizes": (2, 3),
                "counts": None,
                "dim": 4,
                "lam": 1e-2,
                "T": 20.0,
                "scale": 0.4,
                "seed": 3,
                "lr_max": 0.4,
            },
            defaults=({}, {"counts": ((6, 4, 0, 0), (0, 5, 5, 0), (1, 0, 0, 9)), "lam": 0.0, "T": 30.0}),
            measure=std.gd_measure,
            applicable=std.gd_applicable,
            catalogued=True,
            space=std.gd_space,
        ),
        Claim(
            name="proxy_exact_disjoint",
            statement=(
                "For contexts with disjoint supports of equal size s (m contexts, V tokens) the "
                "centred-support proxy S(I - 11ᵀ/V) solves the nuclear-norm SVM: both have nuclear norm "
                "(m-1) sqrt(s) + sqrt(s(1 - sm/V))."
            ),
            section="docs/ntp_geometry.md (closed-form proxies); docs: Theory §4.5",
            conditions=("disjoint supports", "equal support sizes"),
            tol=1e-5,
            base={"blocks": (2, 2, 2), "V": 6, "seed": 0},
            defaults=({}, {"blocks": (1, 1, 1, 1), "V": 6}, {"blocks": (3, 3), "V": 7}),
            measure=std.proxy_measure,
            applicable=std.proxy_applicable,
            catalogued=True,
            space=std.proxy_space,
        ),
    ]
}


def names() -> list[str]:
    """The claims' names, in catalogue order."""
    return list(CLAIMS)


def get(name: str) -> Claim:
    """The claim called ``name``.

    Raises:
        ValueError: unknown name (the message lists the catalogue).
    """
    if name not in CLAIMS:
        raise ValueError(f"unknown claim {name!r}; the catalogue has {names()}")
    return CLAIMS[name]


def check(name: str, **params: Any) -> ClaimResult:
    """``get(name).check(**params)``: the form in which counterexamples are printed."""
    return get(name).check(**params)
