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
# # The standard UFM: from a small initialisation to the simplex ETF
#
# A short walk-through of the standard unconstrained features model (docs: Theory §3-§4; docs page
# *Standard UFM*):
#
# 1. a $3\times3$ factorial design (9 contexts, colour × shape, each with its own next token);
# 2. gradient flow of the regularised UFM from a small random init, its Gram matrices over time and the
#    ETF-distance and loss curves;
# 3. the end point against the closed-form minimiser of Zhu et al. (arXiv 2105.02375);
# 4. the exact ETF-mode flow $du/dt = 2u/(e^u + K - 1)$ from an aligned init, against
#    `ut.etf_mode_u`;
# 5. an unregularised run to $t = 10^8$: the scale grows like $\ln t$ while the direction creeps to the ETF.
#
# Everything runs in a few seconds on a laptop CPU.

# %%
import matplotlib.pyplot as plt
import numpy as np

import ufmtheory as ut
from ufmtheory import plotting as uplot

np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## 1. Design and problem
#
# `factorial((3, 3))` has $K = 9$ contexts `a0b0 ... a2b2`; `X` codes the 6 attribute values, `Y = I_9`
# gives every context its own label. The standard UFM ignores `X` entirely (features are free), so it has no
# reason to prefer the attribute structure: it is the structure-blind baseline.

# %%
design = ut.designs.factorial((3, 3))
K = design.m
print(design)
print(design.context_names)

lam = 5e-3
problem = ut.UFM(design, dim=9, lam_W=lam, lam_H=lam)
eq = ut.zhu(problem)
print(eq.kind, {k: round(v, 4) for k, v in eq.stats.items() if isinstance(v, float)})

# %% [markdown]
# $\varepsilon = \sqrt{n\lambda_W\lambda_H} = 0.005 < 1/K$, so the minimiser is the non-trivial ETF with
# logit scale $x^\star = \ln(1/\varepsilon - (K-1))$.
#
# ## 2. Gradient flow from a small random init
#
# `gradient_flow` integrates in log-time $s = \ln(1+t)$ and saves on a log-spaced grid (0 and 200 times up
# to $t_1$).

# %%
init = ut.init.small(problem, 1e-2, seed=0)
traj = ut.gradient_flow(problem, 1e4, init=init)
print(traj)
print({k: traj.stats[k] for k in ("n_evals", "wall_time_s")})

# %% [markdown]
# Centred cosine Grams $\hat G$ of the context features $H^\top H$ at several times. From $u_0 = 10^{-2}$ the
# logits grow like $e^{2t/K}$ and become order one around $t \approx 40$ (the loss drops there); the
# direction is then still partly random and straightens out to the ETF (ones on the diagonal, $-1/8$
# everywhere else) over the next few hundred time units.

# %%
times = [0.01, 40.0, 100.0, 300.0, 1e4]
fig, axes = uplot.plot_gram_snapshots(traj, times, which="H", labels=design.context_names)
plt.show()

# %% [markdown]
# ETF distance (context and label Grams) and loss against $\log t$. The third panel, semantic strength, stays
# near 0 for the contexts: without a shared path through the attributes the standard UFM has no semantic
# phase, only fluctuations inherited from the random init (the label Gram starts at a random value and
# relaxes to 0 as well). Compare the modified UFM, where this curve rises to a plateau first.

# %%
fig, axes = uplot.plot_curves(traj, design)
plt.show()

curves = traj.metrics(design, which="H")
for t in (1.0, 10.0, 100.0, 1e3, 1e4):
    i = int(np.argmin(np.abs(traj.ts - t)))
    print(f"t = {traj.ts[i]:8.3g}   ETF distance (H) = {curves['etf_distance'][i]:.2e}   loss = {traj.loss[i]:.6f}")

# %% [markdown]
# ## 3. The end point against Zhu et al.'s closed form

# %%
gH, gW = traj.final()
err_H = np.abs(gH - eq.gram_H).max()
err_W = np.abs(gW - eq.gram_W).max()
print(f"max |HᵀH - zhu| = {err_H:.2e}   max |WWᵀ - zhu| = {err_W:.2e}")
print(f"loss: flow {traj.loss[-1]:.12f}   closed form {eq.loss:.12f}")
print(f"‖H‖² = tr(HᵀH): flow {np.trace(gH):.6f}   closed form {eq.stats['norm_H_sq']:.6f}")
assert max(err_H, err_W) < 1e-5

# %% [markdown]
# ## 4. The exact ETF mode
#
# From an aligned, balanced init (`ut.init.aligned`: $WH = WW^\top = H^\top H = u_0 C_K$) the
# unregularised flow stays on the ETF direction, and its amplitude obeys
# $du/dt = 2u/(e^u + K - 1)$, solved by $t(u) = \tfrac12[(K-1)\ln(u/u_0) + \mathrm{Ei}(u) - \mathrm{Ei}(u_0)]$.
# We read $u$ off the Gram as $\langle H^\top H, C_K\rangle / \|C_K\|^2$.

# %%
free = ut.UFM(design, dim=9)  # no ridge
u0 = 1e-2
traj_al = ut.gradient_flow(free, 1e8, init=ut.init.aligned(free, u0))
C = np.eye(K) - 1.0 / K


def etf_amplitude(grams):
    """Projection of each Gram onto C_K: the u of G = u C_K."""
    return np.einsum("tij,ij->t", grams, C) / np.sum(C * C)


u_flow = etf_amplitude(traj_al.gram_H)
u_exact = ut.etf_mode_u(traj_al.ts, K, u0)
rel = np.abs(u_flow - u_exact) / u_exact
print(f"{traj_al.stats['n_evals']} gradient evaluations to t = 1e8")
print(f"max relative error of u(t) against etf_mode_u: {rel.max():.2e}")
print(f"max distance of HᵀH from u C_K: {np.abs(traj_al.gram_H - u_flow[:, None, None] * C).max():.2e}")

t = traj_al.ts[1:]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogx(t, u_flow[1:], lw=3, alpha=0.4, label="gradient flow (aligned init)")
ax.semilogx(t, u_exact[1:], "k--", label="etf_mode_u (exact, Ei)")
late = t > 10
ax.semilogx(t[late], np.log(2 * t[late]) + np.log(np.log(2 * t[late])), ":", label=r"$\ln 2t + \ln\ln 2t$")
ax.set_xlabel("t")
ax.set_ylabel("u")
ax.legend()
plt.show()

# %% [markdown]
# Early on $u \approx u_0 e^{2t/K}$; late, $t \approx \mathrm{Ei}(u)/2 \approx e^u/(2u)$, i.e. $u \approx \ln t$.
#
# With a ridge $\lambda$ on both factors the same mode obeys $du/dt = 2u[1/(e^u+K-1) - \lambda]$ and stops at
# $u^\star = \ln(1/\lambda - K + 1)$, which is Zhu et al.'s $x^\star$:

# %%
traj_al_reg = ut.gradient_flow(problem, 1e4, init=ut.init.aligned(problem, u0), saveat=20)
u_end = etf_amplitude(traj_al_reg.gram_H)[-1]
print(f"u(1e4) = {u_end:.8f}   ln(1/λ - K + 1) = {np.log(1 / lam - K + 1):.8f}   x* = {eq.stats['x_star']:.8f}")

# %% [markdown]
# ## 5. Unregularised flow from a small random init, to $t = 10^8$
#
# Without ridge there is no minimiser: the logits grow like $\ln t$ and only the *direction* converges to the
# ETF (implicit bias, Ji et al., arXiv 2110.02796). Log-time integration keeps this cheap.

# %%
traj_free = ut.gradient_flow(free, 1e8, init=ut.init.small(free, 1e-2, seed=0))
print(traj_free)
print(f"{traj_free.stats['n_evals']} gradient evaluations, {traj_free.stats['wall_time_s']:.2f} s")

u_free = np.trace(traj_free.gram_H, axis1=1, axis2=2) / (K - 1)  # mean squared centred scale
dist_free = traj_free.metrics(design)["etf_distance"]
ts = traj_free.ts[1:]

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].semilogx(ts, u_free[1:], label=r"$\mathrm{tr}(H^\top H)/(K-1)$, random init")
axes[0].semilogx(t, u_exact[1:], "k--", label="exact ETF mode (aligned init)")
axes[0].semilogx(ts[ts >= 1], np.log(ts[ts >= 1]), ":", label=r"$\ln t$")
axes[0].set_xlabel("t")
axes[0].legend(fontsize=8)
axes[1].semilogx(ts, dist_free[1:])
axes[1].set_xlabel("t")
axes[1].set_ylabel("ETF distance of HᵀH")
fig.tight_layout()
plt.show()

for t_show in (1e2, 1e4, 1e6, 1e8):
    i = int(np.argmin(np.abs(traj_free.ts - t_show)))
    ti = traj_free.ts[i]
    print(f"t = {ti:8.2g}   scale = {u_free[i]:6.2f}   ln t = {np.log(ti):6.2f}   ETF distance = {dist_free[i]:.3f}")

# %% [markdown]
# The scale tracks the exact ETF-mode curve ($\approx \ln t$ plus a slowly growing correction), while the
# ETF distance decays only slowly (in this run roughly like $1/\sqrt{\ln t}$: the part of $H$ that is off the
# ETF direction stops growing while the ETF part grows like $\sqrt{\ln t}$). This is why unregularised runs are
# integrated over many decades, on log-spaced grids.
