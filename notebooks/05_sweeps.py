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
# # Sweeps and phase diagrams
#
# `ut.sweep` runs a function over a grid of named parameters on a process pool (or a Dask cluster) into a
# labelled xarray `Dataset`, written point by point to a resumable zarr store (docs page *Sweeps and phase
# diagrams*). This notebook
#
# 1. runs a toy sweep and shows a failing point being recorded, not fatal;
# 2. draws an $(\alpha, \beta)$ phase diagram of a $3\times3$ grid with ridge on $E$: collapse time, the
#    computed end-state boundary and the closed-form one, $\beta = \alpha$;
# 3. resumes it from its store (nothing is recomputed);
# 4. fits how the collapse and ETF times scale with $K$, up to $100\times100$.
#
# Grids are small so that it runs in well under a minute on two cores; the docs page shows the full-size
# calls and how to run them on a cluster.

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ufmtheory as ut
from ufmtheory.experiments.phase_diagram import etf_boundary_ratio
from ufmtheory.experiments.sweep_plots import plot_phase_diagram, plot_scaling

# %% [markdown]
# ## 1. A toy sweep
#
# `fn(**point)` returns a mapping of outputs. A point that raises is recorded with its error.

# %%
def toy(x, y):
    if x == 0:
        raise ZeroDivisionError("x = 0")
    return {"ratio": y / x, "pair": np.array([x, y])}


toy_ds = ut.sweep(toy, {"x": [0, 1, 2], "y": [1.0, 10.0]}, executor="serial", progress=False)
print(toy_ds["ratio"].values)
print(toy_ds["status"].values[:, 0], "|", toy_ds["error"].values[0, 0])

# %% [markdown]
# ## 2. A phase diagram: where the end state switches from semantic to ETF
#
# Ridge on $E$ with a small $\lambda$: on an $A\times B$ grid the flow ends in the ETF iff
# $1/\beta < 1/\sqrt{\alpha^2 B + \beta^2} + 1/\sqrt{\alpha^2 A + \beta^2}$, on $3\times3$ exactly when
# $\beta > \alpha$. Each point predicts the phases of the label Gram $WW^\top$ with the exact reduced ODE
# and computes the end state; two worker processes share the 16 points. Collapse times are missing (blank)
# where the end state is semantic: the structure never collapses (within the horizon `t1_max`).

# %%
store = Path(tempfile.mkdtemp()) / "phase_diagram.zarr"
alphas = [0.3, 0.7, 1.5, 3.0]
betas = [0.4, 0.9, 2.0, 4.0]  # off the diagonal: alpha = beta is exactly on the 3x3 boundary
design = ut.designs.factorial((3, 3))
settings = dict(
    which="W", ridge="E", lam_W=1e-4, lam_E=1e-4, points_per_decade=4, t1_max=1e5, store=store, progress=False
)
pd = ut.phase_diagram(design, {"alpha": alphas, "beta": betas}, executor=2, **settings)
print(pd["end_state"].values)
print("closed-form boundary slope:", etf_boundary_ratio(3, 3), "| stats:", pd.attrs["sweep_stats"])

# %%
fig, ax = plot_phase_diagram(pd, "collapse", x="alpha", y="beta")
plt.show()

# %% [markdown]
# ## 3. Resuming from the store
#
# The same call on the same store skips every finished point. Changing an axis (or the function) is
# refused, so a store never mixes two sweeps.

# %%
again = ut.phase_diagram(design, {"alpha": alphas, "beta": betas}, executor=2, **settings)
print(json.loads(again.attrs["sweep_stats"])["n_run"], "points run on resume")
try:
    ut.phase_diagram(design, {"alpha": alphas[:3], "beta": betas}, executor=2, **settings)
except ValueError as exc:
    print("refused:", str(exc)[:120], "...")

# %% [markdown]
# ## 4. Scaling with K
#
# Ridge on $H$ with $\lambda = 9\cdot10^{-3}/K$ (the $3\times3$ value $10^{-3}$ kept in units of $1/K$),
# reduced ODE on the association scheme: no $K\times K$ matrix is built, so $100\times100$ ($K = 10^4$)
# costs the same as $3\times3$.

# %%
sc = ut.scaling([(3, 3), (10, 10), (30, 30), (100, 100)], points_per_decade=4, executor=2, progress=False)
for name in ("collapse", "etf_time"):
    fit = json.loads(sc.attrs[f"fit_{name}"])
    print(f"{name:9s} ~ K^{fit['exponent']:.2f}  (R² {fit['r2']:.3f})")
fig, ax = plot_scaling(sc, ("collapse", "etf_time", "t_col"))
plt.show()
