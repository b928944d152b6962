"""The ``ufm`` command line.

``ufm demo [--out DIR]`` runs a 3×3 factorial design through the standard UFM: a regularised gradient
flow from a small random initialisation to Zhu et al.'s simplex ETF, checked against the closed form, and
an unregularised flow to ``t = 1e8`` checked against the exact ETF-mode time. It writes Gram heatmaps at
several times, ETF-distance/loss curves (PNG) and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "run_demo"]


def _save_figure(fig: Any, path: Path) -> None:
    import io

    from .trajectory import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    import matplotlib.pyplot as plt

    plt.close(fig)


def run_demo(out: Path, progress: bool = True, t1: float = 1e5, lam: float = 1e-3) -> dict[str, Any]:
    """Run the standard-UFM demo and write its figures and ``results.json`` into ``out``.

    Returns the results dictionary (also written to ``out/results.json``).
    """
    import ufmtheory as ut
    from ufmtheory import metrics, plotting
    from ufmtheory.trajectory import atomic_write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    design = ut.designs.factorial((3, 3))
    K = design.m
    results: dict[str, Any] = {"design": design.summary()}

    # 1. Regularised flow from small random init to Zhu's ETF.
    prob = ut.UFM(design, dim=K, lam_W=lam, lam_H=lam)
    init = ut.init.small(prob, scale=1e-2, seed=0)
    traj = ut.gradient_flow(prob, t1, init=init, progress=progress)
    eq = ut.zhu(prob)
    traj.save(out / "trajectory_regularised")
    mH = traj.metrics(design, which="H")
    phases = metrics.phase_times(traj.ts, mH["semantic_strength"], mH["etf_distance"], etf_tol=0.05)
    results["regularised"] = {
        "problem": prob.describe(),
        "status": traj.status,
        "stats": traj.stats,
        "final_etf_distance_H": float(mH["etf_distance"][-1]),
        "max_abs_error_vs_zhu_gram_H": float(np.abs(traj.gram_H[-1] - eq.gram_H).max()),
        "max_abs_error_vs_zhu_gram_W": float(np.abs(traj.gram_W[-1] - eq.gram_W).max()),
        "zhu": {k: v for k, v in eq.stats.items()},
        "zhu_loss": eq.loss,
        "final_loss": float(traj.loss[-1]),
        "etf_time": phases["etf_time"],
        "peak_semantic_strength_H": float(np.nanmax(mH["semantic_strength"])),
    }
    times = [t for t in (1.0, 30.0, 300.0, 1e3, 3e3, t1) if t <= t1]
    for which in ("H", "W"):
        names = design.context_names if which == "H" else design.label_names
        fig, _ = plotting.plot_gram_snapshots(traj, times, which=which, labels=names)
        _save_figure(fig, out / f"gram_{which}.png")
    fig, _ = plotting.plot_curves(traj, design)
    _save_figure(fig, out / "curves.png")

    # 2. Unregularised flow from the aligned init: the exact ETF mode, to t = 1e8.
    u0 = 1e-2
    free = ut.UFM(design, dim=K)
    start = time.perf_counter()
    exact = ut.gradient_flow(free, 1e8, init=ut.init.aligned(free, u0), progress=progress)
    u_flow = np.trace(exact.gram_H, axis1=1, axis2=2) / (K - 1)
    u_exact = ut.etf_mode_u(exact.ts, K, u0)
    results["etf_mode"] = {
        "status": exact.status,
        "t1": 1e8,
        "u0": u0,
        "max_relative_error_vs_closed_form": float(np.max(np.abs(u_flow / u_exact - 1))),
        "u_final": float(u_flow[-1]),
        "ln_t_final": float(np.log(1e8)),
        "evaluations": exact.stats["evaluations"],
        "wall_time": time.perf_counter() - start,
    }
    results["files"] = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    atomic_write_bytes(out / "results.json", json.dumps(results, indent=2, default=float).encode())
    return results


def _print_summary(results: dict[str, Any], out: Path) -> None:
    reg, mode = results["regularised"], results["etf_mode"]
    print(f"ufm demo: 3x3 factorial design, standard UFM (results in {out})")
    print(
        f"  regularised flow  status={reg['status']}  evaluations={reg['stats']['evaluations']}"
        f"  wall={reg['stats']['wall_time']:.2f}s"
    )
    print(
        f"  vs Zhu et al. closed form: max |ΔHᵀH| = {reg['max_abs_error_vs_zhu_gram_H']:.2e},"
        f" max |ΔWWᵀ| = {reg['max_abs_error_vs_zhu_gram_W']:.2e}, final ETF distance"
        f" {reg['final_etf_distance_H']:.2e}, ETF time {reg['etf_time']}"
    )
    print(
        f"  ETF mode to t=1e8: status={mode['status']}, max rel. error vs t(u) closed form"
        f" {mode['max_relative_error_vs_closed_form']:.2e}, u(1e8) = {mode['u_final']:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ufm`` console script."""
    from ufmtheory import __version__

    parser = argparse.ArgumentParser(prog="ufm", description="ufmtheory: unconstrained features model tools")
    parser.add_argument("--version", action="version", version=f"ufmtheory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the standard UFM on a 3x3 factorial design and write figures")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    if args.command == "demo":
        results = run_demo(args.out, progress=not args.no_progress)
        _print_summary(results, args.out)
        ok = results["regularised"]["status"] == "ok" and results["etf_mode"]["status"] == "ok"
        return 0 if ok else 1
    parser.error(f"unknown command {args.command}")  # pragma: no cover - argparse enforces choices
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
