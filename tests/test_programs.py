"""Tests for ufmtheory.programs: nuclear-norm SVM, UF-SVM, closed-form proxies, regularisation path.

Expected values come from closed forms computed independently of the solvers:
* balanced one-hot (K classes): ``L = I - J/K`` has margins exactly 1 and ``‖L‖_* = K - 1``;
* 8 contexts with supports of 3 cyclically consecutive tokens of 8: the centred support ``S C_8`` is
  circulant, its nuclear norm is ``Σ_{k=1}^{7} |sin(3πk/8) / sin(πk/8)| = 3 + 4√2 ≈ 8.657`` (computed
  below from the DFT); the optimum is ``4 + 3√2 ≈ 8.243``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import ufmtheory as ut
from ufmtheory import programs as svm
from ufmtheory._results import SolverError
from ufmtheory.designs import Design


def one_hot(counts: list[int]) -> Design:
    labels = np.repeat(np.arange(len(counts)), counts)
    Y = np.zeros((len(counts), labels.size))
    Y[labels, np.arange(labels.size)] = 1.0
    return Design(Y=Y, X=np.zeros((0, labels.size)))


def cyclic(V: int = 8, k: int = 3) -> np.ndarray:
    P = np.zeros((V, V))
    for j in range(V):
        P[j, [(j + i) % V for i in range(k)]] = 1.0 / k
    return P


def etf_class_gram(K: int) -> np.ndarray:
    return np.eye(K) - 1.0 / K


# -- convex programmes -----------------------------------------------------------------------------
@pytest.mark.parametrize("K", [3, 5])
def test_balanced_one_hot_is_etf(K: int) -> None:
    d = ut.designs.factorial((K,))
    expected = np.eye(K) - 1.0 / K  # margins 1, nuclear norm K - 1
    for res in (svm.nn_svm(d), svm.uf_svm(d), svm.uf_svm(d, reduce=False)):
        assert res.status == "ok"
        assert res.objective == pytest.approx(K - 1, abs=1e-6)
        np.testing.assert_allclose(res.solution, expected, atol=1e-6)
        # Grams: U Σ Uᵀ and V Σ Vᵀ of C_K are C_K itself (the ETF up to scale)
        np.testing.assert_allclose(res.gram_H, expected, atol=1e-6)
        np.testing.assert_allclose(res.gram_W, expected, atol=1e-6)
        assert res.stats["min_margin"] == pytest.approx(1.0, abs=1e-6)


def test_factors_reproduce_logits() -> None:
    res = svm.uf_svm(one_hot([3, 1, 1]))
    W, H = res.factors()
    np.testing.assert_allclose(W @ H, res.solution.T, atol=1e-9)
    np.testing.assert_allclose(H.T @ H, res.gram_H, atol=1e-9)
    assert 0.5 * (np.sum(W**2) + np.sum(H**2)) == pytest.approx(res.objective, rel=1e-9)


def test_disjoint_equal_blocks_proxy_is_exact() -> None:
    # 3 contexts, each with its own block of 2 of 6 tokens (probabilities need not be uniform)
    P = np.zeros((3, 6))
    for j in range(3):
        P[j, 2 * j : 2 * j + 2] = [0.3, 0.7] if j % 2 else [0.5, 0.5]
    gap = svm.proxy_gap(P)
    # closed form: S C_6 has singular value sqrt(2) (twice), nuclear norm 2√2; margins are 1
    assert gap.proxy_nuclear == pytest.approx(2 * math.sqrt(2), abs=1e-12)
    assert gap.optimum_nuclear == pytest.approx(2 * math.sqrt(2), abs=1e-6)
    assert abs(gap.relative_gap) < 1e-6
    assert gap.gram_cosine_H == pytest.approx(1.0, abs=1e-6)
    assert gap.logit_error < 1e-5


def test_cyclic_supports_proxy_strictly_above_optimum() -> None:
    P = cyclic(8, 3)
    V = 8
    # independent: eigenvalues of the circulant support (k != 0 survive the centring)
    w = np.exp(2j * np.pi * np.arange(V) / V)
    proxy_expected = sum(abs(1 + w[k] + w[k] ** 2) for k in range(1, V))
    assert proxy_expected == pytest.approx(3 + 4 * math.sqrt(2), abs=1e-12)
    assert proxy_expected == pytest.approx(8.657, abs=1e-3)
    gap = svm.proxy_gap(P)
    assert gap.proxy_nuclear == pytest.approx(proxy_expected, abs=1e-10)
    assert gap.optimum_nuclear == pytest.approx(4 + 3 * math.sqrt(2), abs=1e-5)  # ≈ 8.2426
    assert gap.optimum_nuclear == pytest.approx(8.243, abs=1e-3)
    assert gap.relative_gap > 0.04
    opt = gap.optimum_result
    assert opt.stats["min_margin"] >= 1 - 1e-6
    assert opt.stats["equality_violation"] < 1e-6


def test_imbalanced_uf_svm_is_sel_and_departs_from_etf() -> None:
    d = one_hot([4, 4, 1])
    full, red, sel = svm.uf_svm(d, reduce=False), svm.uf_svm(d), svm.sel_matrix(d)
    assert full.objective == pytest.approx(red.objective, abs=1e-6)
    np.testing.assert_allclose(red.solution, sel.solution, atol=1e-6)
    np.testing.assert_allclose(full.gram_W, sel.gram_W, atol=1e-5)
    # sel equals the centred-support proxy for one-hot labels
    np.testing.assert_allclose(sel.solution, svm.centred_support_proxy(d).solution, atol=1e-15)
    # SELI: the class Gram W Wᵀ departs from the ETF as the imbalance ratio grows
    cos = [svm.gram_cosine(svm.sel_matrix(one_hot([R, R, 1])).gram_W, etf_class_gram(3)) for R in (1, 3, 10)]
    assert cos[0] == pytest.approx(1.0, abs=1e-12)
    assert cos[0] > cos[1] > cos[2]
    assert cos[2] < 0.99


def test_full_support_context_is_handled() -> None:
    P = np.array([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 1.0]])
    res = svm.nn_svm(P)
    assert res.status == "ok"
    assert res.stats["full_support_contexts"] == 1
    row = res.solution[1]
    assert np.ptp(row) < 1e-6  # equalities only: a constant row
    assert res.stats["min_margin"] >= 1 - 1e-6
    # every context with full support: nothing to separate, L = 0 without a solve
    zero = svm.nn_svm(np.full((2, 3), 1 / 3))
    assert zero.objective == 0.0 and zero.solver == "none" and zero.status == "ok"
    assert svm.centred_support_proxy(np.full((2, 3), 1 / 3)).objective == pytest.approx(0.0, abs=1e-12)


def test_in_support_logits_are_centred_log_odds() -> None:
    P = np.array([[0.6, 0.3, 0.1, 0.0], [0.0, 0.0, 0.25, 0.75]])
    L = svm.in_support_logits(P).solution
    assert L[0, 0] - L[0, 1] == pytest.approx(math.log(2))
    assert L[1, 3] - L[1, 2] == pytest.approx(math.log(3))
    assert L[0].sum() == pytest.approx(0.0, abs=1e-12)
    assert L[0, 3] == 0.0 and L[1, 0] == 0.0


# -- solver status and validation ------------------------------------------------------------------
def test_solver_choice_and_non_optimal_status() -> None:
    assert svm.choose_solver(25, 40) == "CLARABEL"  # m·V at the CLARABEL_MAX_SIZE limit
    assert svm.choose_solver(25, 41) == "SCS"
    assert svm.choose_solver(50, 50) == "SCS"
    assert svm.choose_solver(50, 50, "clarabel") == "CLARABEL"
    P = cyclic(8, 3)
    with pytest.raises(SolverError, match="status"):
        svm.nn_svm(P, solver="SCS", solver_options={"max_iters": 5}, throw=True)
    res = svm.nn_svm(P, solver="SCS", solver_options={"max_iters": 5})
    assert res.status != "ok" and not res.ok and "status" in res.message


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([[0.5, -0.5, 1.0]], "non-negative"),
        ([[0.5, 0.4, 0.0]], "sum to 1"),
        ([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], "non-empty support"),
        ([0.5, 0.5], "2-D"),
        ([[1.0]], "2 tokens"),
        ([[np.nan, 1.0]], "finite"),
    ],
)
def test_malformed_designs_raise(bad: list, match: str) -> None:
    for fn in (svm.nn_svm, svm.centred_support_proxy, svm.in_support_logits):
        with pytest.raises(ValueError, match=match):
            fn(bad)


def test_malformed_inputs_raise() -> None:
    with pytest.raises(ValueError, match="one-hot"):
        svm.uf_svm([[0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="one-hot"):
        svm.sel_matrix([[0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(TypeError):
        svm.nn_svm("abc")
    with pytest.raises(ValueError, match="shape"):
        svm.support_margins(np.zeros((2, 3)), np.ones((3, 2)))
    opt = svm.nn_svm(ut.designs.factorial((3,)))
    with pytest.raises(ValueError, match="shape"):
        svm.proxy_gap(ut.designs.factorial((4,)), optimum=opt)
    with pytest.raises(ValueError, match="proxy"):
        svm.proxy_gap(ut.designs.factorial((3,)), proxy="nope")
    with pytest.raises(ValueError, match="Y columns must sum to 1"):
        Design(Y=np.array([[0.5, 1.0], [0.4, 0.0]]), X=np.zeros((0, 2)))
    with pytest.raises(ValueError, match="X must have"):
        Design(Y=np.eye(2), X=np.zeros((1, 3)))
    prob = ut.UFM(ut.designs.factorial((3,)), dim=3)
    with pytest.raises(ValueError, match="lambdas"):
        svm.regularization_path(prob, [1e-2, -1.0])
    with pytest.raises(ValueError, match="svm solution"):
        svm.regularization_path(prob, [1e-2], svm=svm.nn_svm(ut.designs.factorial((4,))))


# -- regularisation path ---------------------------------------------------------------------------
def test_path_imbalanced_approaches_uf_svm_geometry() -> None:
    d = one_hot([6, 6, 1])
    path = svm.regularization_path(ut.UFM(d, dim=4), [1e-1, 1e-2, 1e-3, 1e-4, 1e-5], t1=1e5)
    assert path.status == "ok"
    assert np.all(path.grad_norm < 1e-7)
    np.testing.assert_allclose(path.svm.solution, svm.sel_matrix(d).solution, atol=1e-6)
    cos = path.gram_cosine_H
    assert np.all(np.diff(cos) > 0), cos  # rising toward 1 as λ decreases
    assert cos[-1] > 0.99
    assert np.all(np.diff(path.gram_cosine_W) > 0)
    assert path.gram_cosine_W[-1] > 0.99
    assert np.all(np.diff(path.c) > 0)  # the max-margin part grows like ln(1/λ)
    assert np.all(np.diff(path.relative_residual) < 0)
    # balanced-ETF cosine is lower than the SVM cosine at small λ: the path sees the imbalance
    gram_W_class = path.gram_W[-1]
    assert svm.gram_cosine(gram_W_class, etf_class_gram(3)) < cos[-1]


def test_path_soft_labels_match_log_odds() -> None:
    P = np.array(
        [
            [0.6, 0.3, 0.1, 0.0, 0.0],
            [0.0, 0.0, 0.5, 0.5, 0.0],
            [0.2, 0.0, 0.0, 0.0, 0.8],
            [0.0, 0.7, 0.0, 0.3, 0.0],
        ]
    )
    d = ut.designs.from_distributions(P)
    path = svm.regularization_path(ut.UFM(d, dim=5), [1e-2, 1e-3, 1e-4, 1e-5], t1=1e5)
    assert path.status == "ok"
    assert np.all(path.grad_norm < 1e-7)
    err = path.in_support_error
    assert np.all(np.diff(err) < 0), err  # error shrinks as λ decreases
    assert err[-1] < 1e-3
    # independent check of one log-odd at the smallest λ
    L = path.logits[-1]
    assert L[3, 1] - L[3, 3] == pytest.approx(math.log(0.7 / 0.3), abs=1e-3)
    assert np.all(np.diff(path.c) > 0)


def test_import_stays_cvxpy_free() -> None:
    import subprocess

    code = "import sys, ufmtheory.programs.proxies; print('cvxpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_automatic_solver_falls_back_when_the_first_stops_short():
    # an iteration cap of 2 makes CLARABEL stop at its limit; the automatic choice then retries with SCS
    P = np.array([[0.5, 0.5, 0, 0, 0], [0, 0.3, 0.7, 0, 0], [0, 0, 0, 0.2, 0.8], [0.1, 0, 0, 0, 0.9]])
    reference = svm.nn_svm(P)
    assert reference.ok and reference.solver == "CLARABEL"
    fallback = svm.nn_svm(P, solver_options={"max_iter": 2})
    assert fallback.ok and fallback.solver == "SCS" and "CLARABEL: user_limit" in fallback.message
    assert fallback.objective == pytest.approx(reference.objective, rel=1e-6)
    pinned = svm.nn_svm(
        P, solver="CLARABEL", solver_options={"max_iter": 2}
    )  # a named solver is not replaced
    assert pinned.status == "max_evals" and not pinned.ok


def test_difference_matrix_picks_the_constrained_logit_differences() -> None:
    # The sparse constraint rows of the nuclear-norm programmes, against direct indexing of L.
    from ufmtheory.programs._nuclear import _differences

    rng = np.random.default_rng(0)
    n_rows, V, k = 4, 5, 9
    r, a, b = rng.integers(0, n_rows, k), rng.integers(0, V, k), rng.integers(0, V, k)
    L = rng.normal(size=(n_rows, V))
    np.testing.assert_allclose(_differences((r, a, b), n_rows, V) @ L.ravel(), L[r, a] - L[r, b], atol=0)
    assert _differences((r[:0], a[:0], b[:0]), n_rows, V).shape == (0, n_rows * V)
