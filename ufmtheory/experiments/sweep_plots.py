"""Figures of sweep results: 2-D phase diagrams, K-scaling with fitted power laws, seed bands.

All take the ``xarray.Dataset`` of a sweep and return ``(fig, ax)``; matplotlib is imported on first use
(save with :func:`ufmtheory.plotting.save_figure`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ufmtheory.experiments.phase_diagram import fit_power_law

__all__ = ["plot_phase_diagram", "plot_scaling", "plot_seed_bands"]


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    return ax.figure, ax


def _edges(c: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around coordinate values (geometric midpoints on a log axis)."""
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        return np.array([c[0] / 2, c[0] * 2]) if log else np.array([c[0] - 0.5, c[0] + 0.5])
    if log:
        lc = np.log(c)
        mid = (lc[1:] + lc[:-1]) / 2
        return np.exp(np.concatenate([[2 * lc[0] - mid[0]], mid, [2 * lc[-1] - mid[-1]]]))
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def _is_log(c: np.ndarray) -> bool:
    c = np.asarray(c, dtype=np.float64)
    return bool(c.size >= 3 and np.all(c > 0) and c.max() / c.min() >= 10)


def plot_phase_diagram(
    ds: Any,
    var: str = "collapse",
    *,
    x: str | None = None,
    y: str | None = None,
    log: bool = True,
    boundary: bool = True,
    closed_form: bool = True,
    ax: Any = None,
) -> tuple[Any, Any]:
    """Heatmap of a phase time over two swept parameters, with the end-state boundary.

    Args:
        ds: a :func:`~ufmtheory.experiments.phase_diagram.phase_diagram` result with two dimensions (select
            the others first, e.g. ``ds.sel(lam_E=1e-4)``).
        var: the variable to colour (``"collapse"``, ``"etf_time"``, ``"peak_strength"``, ...). Missing values
            (no collapse within the horizon) are left blank.
        x, y: the dimensions on the axes (default: the dataset's two dimensions, in order).
        log: colour by ``log10(var)``.
        boundary: draw the contour where ``end_state`` switches between ``"etf"`` and anything else.
        closed_form: overlay the closed-form boundary ``β = r α`` (A×B grid, ridge E; the
            ``boundary_ratio`` attribute) when the axes are ``alpha`` and ``beta``.
        ax: axes to draw into (default: a new figure).

    Returns:
        ``(fig, ax)``.
    """
    dims = [d for d in ds[var].dims]
    if len(dims) != 2:
        raise ValueError(f"plot_phase_diagram needs a 2-D variable; {var!r} has dims {dims} (select first)")
    x = x or dims[0]
    y = y or ([d for d in dims if d != x][0])
    if {x, y} != set(dims):
        raise ValueError(f"x and y must be the variable's dims {dims}, got {x!r}, {y!r}")
    fig, ax = _axes(ax, (5.2, 4.2))
    z = ds[var].transpose(y, x).values.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        shown = np.log10(np.where(z > 0, z, np.nan)) if log else z
    xs, ys = ds[x].values.astype(np.float64), ds[y].values.astype(np.float64)
    xlog, ylog = _is_log(xs), _is_log(ys)
    mesh = ax.pcolormesh(_edges(xs, xlog), _edges(ys, ylog), np.ma.masked_invalid(shown), cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=f"log10 {var}" if log else var)
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    _coordinate_ticks(ax.xaxis, xs)
    _coordinate_ticks(ax.yaxis, ys)
    handles = []
    if boundary and "end_state" in ds:
        etf = (ds["end_state"].transpose(y, x).values == "etf").astype(float)
        if 0 < etf.sum() < etf.size and min(etf.shape) >= 2:
            cs = ax.contour(xs, ys, etf, levels=[0.5], colors="black", linewidths=2)
            handles.append(_line("black", "end state ETF | other (computed)", ls="-"))
            del cs
    ratio = ds.attrs.get("boundary_ratio")
    if closed_form and ratio is not None and {x, y} == {"alpha", "beta"}:
        a = np.linspace(min(xs.min(), ys.min()) * 0.5, max(xs.max(), ys.max()) * 2, 200)
        bx, by = (a, ratio * a) if x == "alpha" else (ratio * a, a)
        ax.plot(bx, by, "r--", lw=1.5)
        ax.set_xlim(_edges(xs, xlog)[[0, -1]])
        ax.set_ylim(_edges(ys, ylog)[[0, -1]])
        handles.append(_line("red", f"closed form β = {ratio:.3g} α", ls="--"))
    if handles:
        leg = ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.6)
        leg.get_frame().set_facecolor("0.85")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{var} ({ds.attrs.get('which', '?')} Gram)")
    return fig, ax


def _coordinate_ticks(axis: Any, values: np.ndarray, most: int = 8) -> None:
    """Ticks at (up to ``most`` of) the swept values, plainly labelled (log axes label minor ticks else)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    picked = values[:: max(1, math.ceil(values.size / most))]
    axis.set_major_locator(FixedLocator(picked.tolist()))
    axis.set_ticklabels([f"{v:.3g}" for v in picked])
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _line(color: str, label: str, ls: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, ls=ls, lw=2, label=label)


def plot_scaling(
    ds: Any, variables: Sequence[str] = ("collapse", "etf_time", "t_col"), *, ax: Any = None
) -> tuple[Any, Any]:
    """Phase times against K on log-log axes with their fitted power laws ``t = c K^b``.

    Args:
        ds: a :func:`~ufmtheory.experiments.phase_diagram.scaling` result.
        variables: the times to plot (missing ones are skipped).
        ax: axes to draw into.

    Returns:
        ``(fig, ax)``.
    """
    fig, ax = _axes(ax, (5.2, 4.0))
    K = ds["K"].values.astype(np.float64)
    order = np.argsort(K)
    for name in variables:
        if name not in ds:
            continue
        t = ds[name].values.astype(np.float64)
        fit = json.loads(ds.attrs[f"fit_{name}"]) if f"fit_{name}" in ds.attrs else fit_power_law(K, t)
        (pts,) = ax.loglog(K[order], t[order], "o", label=name)
        if math.isfinite(fit["exponent"]):
            kk = np.geomspace(K.min(), K.max(), 50)
            ax.loglog(kk, fit["prefactor"] * kk ** fit["exponent"], "-", color=pts.get_color(), lw=1,
                      label=f"  fit K^{fit['exponent']:.2f} (R² {fit['r2']:.3f})")  # fmt: skip
    ax.set_xlabel("K (contexts)")
    ax.set_ylabel("time (gradient flow)")
    ax.legend(fontsize=8)
    ax.set_title("phase times against K")
    return fig, ax


def plot_seed_bands(
    ds: Any,
    var: str = "strength",
    *,
    over: str = "seed",
    x: str | None = None,
    hue: str | None = None,
    ax: Any = None,
) -> tuple[Any, Any]:
    """Mean and min-max band over seeds, of a curve (``strength`` against ``steps``) or of a scalar.

    Args:
        ds: a :func:`~ufmtheory.experiments.training_sweep.training_sweep` result (or any sweep with an
            ``over`` dimension).
        var: a curve variable (with a ``<var>_dim0`` dimension; x axis ``steps``) or a scalar variable (x axis
            ``x``, another swept dimension).
        over: the dimension the band is taken over.
        x: for a scalar ``var``: the dimension on the x axis.
        hue: one band per value of this dimension (default: the remaining dimension, if exactly one).
        ax: axes to draw into.

    Returns:
        ``(fig, ax)``.
    """
    if over not in ds[var].dims:
        raise ValueError(f"{var!r} has no dimension {over!r} (dims {list(ds[var].dims)})")
    fig, ax = _axes(ax, (5.6, 4.0))
    curve = f"{var}_dim0" in ds[var].dims
    if not curve and (x is None or x not in ds[var].dims):
        raise ValueError(f"a scalar {var!r} needs x= one of its dims {list(ds[var].dims)}")
    rest = [d for d in ds[var].dims if d not in (over, f"{var}_dim0", x)]
    if hue is None and len(rest) == 1:
        hue = rest[0]
    groups = [(None, ds)] if hue is None else [(v, ds.sel({hue: v})) for v in ds[hue].values]
    for value, sub in groups:
        da = sub[var]
        extra = [d for d in da.dims if d not in (over, f"{var}_dim0", x)]
        if extra:
            raise ValueError(f"select {extra} first (or pass hue=)")
        mean, lo, hi = da.mean(over), da.min(over), da.max(over)
        if curve:
            steps = sub["steps"].isel({over: 0}).values if "steps" in sub else np.arange(da.shape[-1])
            xs = np.asarray(steps, dtype=np.float64).reshape(-1)
        else:
            xs = sub[x].values.astype(np.float64)
        label = None if hue is None else f"{hue} = {value}"
        (line,) = ax.plot(xs, mean.values.reshape(-1), label=label)
        ax.fill_between(xs, lo.values.reshape(-1), hi.values.reshape(-1), color=line.get_color(), alpha=0.25)
    if curve:
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("step")
    else:
        if _is_log(ds[x].values):
            ax.set_xscale("log")
        ax.set_xlabel(x)
    ax.set_ylabel(f"{var} (mean, min-max over {ds.sizes[over]} {over}s)")
    if hue is not None:
        ax.legend(fontsize=8)
    return fig, ax
