# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Imbalance and next-token supports
#
# Vanishing-ridge geometry beyond the balanced ETF (docs: Theory §4.5; docs page *Imbalance and
# next-token supports*). Logit matrices here are $(m, V)$: contexts × tokens. This notebook
#
# 1. checks the nuclear-norm SVM against the ETF on a balanced one-hot design;
# 2. shows the SELI geometry departing from the ETF as class imbalance grows;
# 3. shows that the centred-support proxy is only an approximation (cyclic supports: 8.657 vs 8.243);
# 4. follows the regularisation path of an imbalanced and a soft-label design.
#
# It runs in a few seconds.

# %%
import numpy as np

import ufmtheory as ut
from ufmtheory import programs as svm
from ufmtheory.designs import Design


def one_hot(counts):
    labels = np.repeat(np.arange(len(counts)), counts)
    Y = np.zeros((len(counts), labels.size))
    Y[labels, np.arange(labels.size)] = 1.0
    return Design(Y=Y, X=np.zeros((0, labels.size)))


# %% [markdown]
# ## 1. Balanced one-hot: the ETF
# For $K$ classes, $L = I - 11^\top/K$ has margins exactly 1 and $\|L\|_* = K - 1$.

# %%
K = 5
res = svm.nn_svm(ut.designs.factorial((K,)))
print(res.status, res.solver, f"objective {res.objective:.8f} (expected {K - 1})")
print("max |L - C_K| =", np.abs(res.solution - (np.eye(K) - 1 / K)).max())

# %% [markdown]
# ## 2. Imbalance: SELI departs from the ETF
# Classes with $R, R, 1$ contexts. The UF-SVM optimum equals the SEL matrix; its class Gram $WW^\top$
# moves away from the ETF as $R$ grows.

# %%
etf = np.eye(3) - 1 / 3
for R in (1, 2, 5, 10, 50):
    d = one_hot([R, R, 1])
    uf = svm.uf_svm(d)
    sel = svm.sel_matrix(d)
    print(
        f"R={R:3d}  |uf - sel|={np.abs(uf.solution - sel.solution).max():.1e}"
        f"  cos(W Wᵀ, ETF)={svm.gram_cosine(sel.gram_W, etf):.4f}"
        f"  singular values {np.round(sel.singular_values[:2], 3)}"
    )

# %% [markdown]
# ## 3. The centred-support proxy is an approximation
# 8 contexts, supports of 3 cyclically consecutive tokens of 8.

# %%
P = np.zeros((8, 8))
for j in range(8):
    P[j, [(j + i) % 8 for i in range(3)]] = 1 / 3
gap = svm.proxy_gap(P)
print(f"proxy ‖L‖_* = {gap.proxy_nuclear:.4f}  (3 + 4√2 = {3 + 4 * np.sqrt(2):.4f})")
print(f"optimum     = {gap.optimum_nuclear:.4f}  (4 + 3√2 = {4 + 3 * np.sqrt(2):.4f})")
print(f"relative gap {gap.relative_gap:.3f}, Gram cosine (H) {gap.gram_cosine_H:.4f}")
print("singular values: proxy", np.round(gap.proxy_result.singular_values, 3))
print("                 optimum", np.round(gap.optimum_result.singular_values, 3))

# %% [markdown]
# ## 4. Regularisation paths
# Warm-started ridge equilibria for decreasing λ. Imbalanced one-hot: the Grams approach the UF-SVM (SELI)
# geometry. Soft labels: in-support logit differences approach the log-odds, and $c(\lambda)$ grows like
# $\ln(1/\lambda)$.

# %%
lams = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]
path = svm.regularization_path(ut.UFM(one_hot([6, 6, 1]), dim=4), lams, t1=1e5)
print("status:", path.status)
print(f"{'lambda':>8} {'|grad|':>9} {'cos H':>8} {'cos W':>8} {'c':>7} {'rel res':>8}")
for i, lam in enumerate(path.lambdas):
    print(
        f"{lam:8.0e} {path.grad_norm[i]:9.1e} {path.gram_cosine_H[i]:8.5f} {path.gram_cosine_W[i]:8.5f}"
        f" {path.c[i]:7.3f} {path.relative_residual[i]:8.4f}"
    )

# %%
P = np.array(
    [
        [0.6, 0.3, 0.1, 0.0, 0.0],
        [0.0, 0.0, 0.5, 0.5, 0.0],
        [0.2, 0.0, 0.0, 0.0, 0.8],
        [0.0, 0.7, 0.0, 0.3, 0.0],
    ]
)
soft = svm.regularization_path(ut.UFM(ut.designs.from_distributions(P), dim=5), lams[1:], t1=1e5)
print("status:", soft.status)
print(f"{'lambda':>8} {'|grad|':>9} {'log-odds err':>12} {'c':>7} {'cos H':>8}")
for i, lam in enumerate(soft.lambdas):
    print(
        f"{lam:8.0e} {soft.grad_norm[i]:9.1e} {soft.in_support_error[i]:12.2e} {soft.c[i]:7.3f}"
        f" {soft.gram_cosine_H[i]:8.5f}"
    )

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].semilogx(path.lambdas, 1 - path.gram_cosine_H, "o-", label="imbalanced one-hot (H)")
axes[0].semilogx(soft.lambdas, 1 - soft.gram_cosine_H, "s-", label="soft labels (H)")
axes[0].set(xlabel="λ", ylabel="1 − Gram cosine to SVM", yscale="log")
axes[0].invert_xaxis()
axes[0].legend()
axes[1].loglog(soft.lambdas, soft.in_support_error, "s-")
axes[1].set(xlabel="λ", ylabel="max in-support log-odds error")
axes[1].invert_xaxis()
fig.tight_layout()
