"""Theory variants for :func:`ufmtheory.analysis.comparison.compare`: a grid of modified-UFM problems and
their names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ufmtheory.models import UFM, ModifiedUFM

__all__ = [
    "variant_grid",
]


def _variant_items(variants: Any) -> list[tuple[str, Any]]:
    if isinstance(variants, Mapping):
        items = [(str(k), v) for k, v in variants.items()]
    elif isinstance(variants, Sequence) and not isinstance(variants, str):
        items = [(_variant_name(v, i), v) for i, v in enumerate(variants)]
    else:
        raise ValueError(
            f"variants must be a list or a dict of problems/trajectories, got {type(variants).__name__}"
        )
    if not items:
        raise ValueError("variants must not be empty")
    return items


def _variant_name(item: Any, i: int) -> str:
    if isinstance(item, UFM):
        return _problem_name(item)
    return f"variant {i}"


def _problem_name(p: Any) -> str:
    alpha = getattr(p, "alpha", 0.0)
    beta = getattr(p, "beta", 1.0)
    ridge = getattr(p, "ridge", "H")
    lam = p.lam_H if ridge == "H" else getattr(p, "lam_E", 0.0)
    parts = [f"α={alpha:g} β={beta:g}"]
    parts.append(f"ridge {ridge} λ={lam:g}" if (lam or p.lam_W) else "no ridge")
    if getattr(p, "normalize", None) is not None:
        parts.append(f"norm r={p.normalize:g}")
    return ", ".join(parts)


def variant_grid(
    design: Any,
    *,
    alphas: Sequence[float] = (0.5, 1.0, 2.0),
    betas: Sequence[float] = (1.0,),
    ridges: Sequence[str] = ("H", "E"),
    normalize: Sequence[float | None] = (None, 1.0),
    lam: float = 1e-3,
    dim: int | None = None,
) -> dict[str, Any]:
    """A small grid of modified-UFM problems over α, β, ridge placement and normalisation.

    Unnormalised variants carry the ridge ``lam`` on W and on H (``ridge="H"``) or on E (``ridge="E"``);
    normalised variants (radius ``r``) carry no ridge at all (as in docs: Theory §12: normalised
    features, no ridge), once per ``(α, β)``.

    Returns:
        ``{name: ModifiedUFM}`` (names as in
        :attr:`~ufmtheory.analysis.comparison_result.Comparison.variants`).
    """

    K = design.m
    d = dim or K
    out: dict[str, Any] = {}
    for alpha in alphas:
        for beta in betas:
            for r in normalize:
                if r is None:
                    for ridge in ridges:
                        lam_kw = {"lam_H": lam} if ridge == "H" else {"lam_E": lam}
                        p = ModifiedUFM(
                            design, dim=d, alpha=alpha, beta=beta, ridge=ridge, lam_W=lam, **lam_kw
                        )
                        out[_problem_name(p)] = p
                else:
                    p = ModifiedUFM(design, dim=d, alpha=alpha, beta=beta, ridge="E", normalize=r)
                    out[_problem_name(p)] = p
    return out
