"""Fuzz: generated, often hostile, input to the public entry points; every call keeps the contract.

The contract (issue 10): a call returns a valid result or raises ``ValueError`` / ``TypeError`` with a
message; no other exception, no hang (pytest-timeout, and each solver's evaluation cap), no non-finite
number in a result whose status is ``"ok"``, no partial file after a refused write; the CLI answers a bad
config with one line on stderr and exit status 2, and exit status 1 only for a written result with a status
other than ok (an unexpected exception propagates: ``UFM_TRACEBACK=1``).

Each argument is drawn from a mix of sensible values and hostile ones (0, negatives, 1e-300, 1e300, NaN,
±inf, huge integers, strings, None, booleans). Budget: ``helpers.budget(n)`` examples per entry, so ``make
test`` (``ci`` profile, derandomized) runs a few and ``make fuzz`` (``many`` profile) twenty times more.
Calls run under an address-space limit, so an allocation the validation should have refused fails as a
``MemoryError`` (a contract failure) instead of taking the shared machine's memory.

``python tests/test_fuzz.py [N [ENTRY ...]]`` prints the table (entry, cases, clean, failures) for N cases
per entry.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import resource
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ufmtheory as ut
from ufmtheory import metrics as M
from ufmtheory.algebra.structured import StructuredGrams

from helpers import budget

pytestmark = pytest.mark.fuzz

MEMORY_HEADROOM = 4 * 2**30  # address space a fuzzed call may add (bytes)

# -- values --------------------------------------------------------------------------------------------
HOSTILE_FLOATS = [0.0, -0.0, -1.0, 1e-300, 5e-324, 1e300, -1e300, math.nan, math.inf, -math.inf]
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_FLOATS),
    st.sampled_from([0, -1, -(2**63), 2**63, 10**30, True, None, "x", "1e-3", [1.0], {}]),
)


def num(lo: float, hi: float) -> st.SearchStrategy[Any]:
    """A sensible float in [lo, hi] or a hostile value."""
    return st.one_of(st.floats(lo, hi), HOSTILE)


def count(lo: int, hi: int) -> st.SearchStrategy[Any]:
    """A sensible integer in [lo, hi] or a hostile value."""
    return st.one_of(st.integers(lo, hi), HOSTILE)


def small_design() -> st.SearchStrategy[ut.Design]:
    return st.sampled_from(
        [
            ut.designs.factorial((2, 2)),
            ut.designs.factorial((2, 3)),
            ut.designs.factorial((3, 3)),
            ut.designs.hierarchical(2, 2),
            ut.designs.from_distributions([[0.7, 0.3, 0.0], [0.1, 0.2, 0.7]]),
        ]
    )


class Build:
    """A deferred constructor call with a readable repr (for failure reports)."""

    def __init__(self, cls: Any, *args: Any, **kw: Any) -> None:
        self.cls, self.args, self.kw = cls, args, kw

    def __call__(self) -> Any:
        return self.cls(*self.args, **self.kw)

    def __repr__(self) -> str:
        design, *rest = self.args
        parts = [f"<{design.kind} K={design.m}>", *map(repr, rest)]
        parts += [f"{k}={v!r}" for k, v in self.kw.items()]
        return f"{self.cls.__name__}({', '.join(parts)})"


@st.composite
def problems(draw: st.DrawFn, hostile: bool = True) -> Callable[[], Any]:
    """A builder of a small UFM or modified UFM (called inside the checked call: the constructor may refuse
    the numbers); with ``hostile`` its numbers may be extreme."""
    design = draw(small_design())
    lam = st.sampled_from([0.0, 1e-3, 1e-300, 1e300]) if hostile else st.sampled_from([0.0, 1e-3])
    if draw(st.booleans()) or design.kind not in ("factorial", "hierarchical"):
        lam_W, lam_H = draw(lam), draw(lam)
        return Build(ut.UFM, design, design.m, lam_W=lam_W, lam_H=lam_H)
    scale = st.sampled_from([0.5, 1.0, 1e-200, 1e200]) if hostile else st.just(1.0)
    ridge = draw(st.sampled_from(["H", "E"]))
    kw = {"lam_H": draw(lam)} if ridge == "H" else {"lam_E": draw(lam)}
    normalize = draw(st.sampled_from([None, None, 1.0, 1e300] if hostile else [None]))
    alpha, beta, lam_W = draw(scale), draw(scale), draw(lam)
    kw.update(alpha=alpha, beta=beta, ridge=ridge, lam_W=lam_W, normalize=normalize)
    return Build(ut.ModifiedUFM, design, design.m, **kw)


def saveats() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        count(1, 50),
        st.lists(st.one_of(st.floats(0, 10), st.sampled_from(HOSTILE_FLOATS)), min_size=0, max_size=5),
    )


# -- the contract --------------------------------------------------------------------------------------
@contextmanager
def memory_limit(extra: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Cap the address space at what the process maps now plus ``extra`` bytes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    new = mapped + extra if hard == resource.RLIM_INFINITY else min(mapped + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (new, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _float_arrays(out: Any) -> Iterator[tuple[str, np.ndarray]]:
    """The numeric arrays and floats a result holds at its top level (dataclass fields, dict values)."""
    items = (
        ((f.name, getattr(out, f.name)) for f in dataclasses.fields(out))
        if dataclasses.is_dataclass(out)
        else out.items()
        if isinstance(out, dict)
        else [("value", out)]
    )
    for name, value in items:
        if isinstance(value, StructuredGrams):
            value = value.coefficients
        if isinstance(value, (float, np.floating)) or (
            isinstance(value, np.ndarray) and value.dtype.kind == "f"
        ):
            yield name, np.asarray(value)


def check_result(out: Any, finite_always: bool = False) -> None:
    """No non-finite number in a result whose status is ok (or in any output, with ``finite_always``)."""
    status = getattr(out, "status", None)
    if status is not None:
        assert isinstance(status, str) and status, f"status {status!r}"
    if finite_always or status == "ok":
        for name, arr in _float_arrays(out):
            assert np.all(np.isfinite(arr)), f"{name} holds non-finite values under status {status!r}"


def keeps_contract(call: Callable[[], Any], finite_always: bool = False) -> Any:
    """Run ``call`` under the memory limit: its result must pass :func:`check_result`; a ValueError or
    TypeError must carry a message. Any other exception propagates (a contract failure)."""
    try:
        with memory_limit():
            out = call()
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return None
    check_result(out, finite_always)
    return out


# The fuzz tests' own settings on top of the active profile (budgets: see test_fuzz_entry).
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)


# -- designs and models --------------------------------------------------------------------------------
ENTRIES: dict[str, tuple[st.SearchStrategy[Any], Callable[..., Any], bool]] = {}


def entry(name: str, strategy: st.SearchStrategy[Any], finite_always: bool = False):
    """Register ``fn(drawn)`` as a fuzz entry (a test below and a row of the table)."""

    def register(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        ENTRIES[name] = (strategy, fn, finite_always)
        return fn

    return register


@entry(
    "designs.factorial",
    st.lists(count(1, 6), min_size=0, max_size=4)
    | st.sampled_from([(1000, 1000), (10**6, 10**6), (2,) * 40]),
)
def _factorial(sizes: Any) -> Any:
    return ut.designs.factorial(sizes)


@entry("designs.hierarchical", st.tuples(count(1, 4), count(1, 4)))
def _hierarchical(args: Any) -> Any:
    return ut.designs.hierarchical(*args)


@entry("designs.random_attributes", st.tuples(count(1, 12), count(1, 6), count(0, 6), count(0, 100)))
def _random_attributes(args: Any) -> Any:
    return ut.designs.random_attributes(*args)


@entry(
    "designs.from_counts",
    st.lists(
        st.lists(st.one_of(st.integers(0, 5), st.sampled_from(HOSTILE_FLOATS)), min_size=1, max_size=4),
        min_size=1,
        max_size=4,
    ),
)
def _from_counts(C: Any) -> Any:
    return ut.designs.from_counts(C)


@entry(
    "designs.from_distributions",
    st.tuples(
        st.lists(
            st.lists(st.one_of(st.floats(0, 1), st.sampled_from(HOSTILE_FLOATS)), min_size=2, max_size=3),
            min_size=1,
            max_size=3,
        ),
        st.one_of(
            st.none(),
            st.lists(st.one_of(st.floats(0, 1), st.sampled_from(HOSTILE_FLOATS)), min_size=1, max_size=3),
        ),
    ),
)
def _from_distributions(args: Any) -> Any:
    P, pi = args
    return ut.designs.from_distributions(P, pi=pi)


@entry("UFM", st.tuples(small_design(), count(1, 12), num(0, 1), num(0, 1)))
def _ufm(args: Any) -> Any:
    design, dim, lam_W, lam_H = args
    return ut.UFM(design, dim, lam_W=lam_W, lam_H=lam_H)


@entry(
    "ModifiedUFM",
    st.tuples(
        small_design(),
        count(1, 12),
        num(0, 3),
        num(0, 3),
        st.sampled_from(["H", "E", "x", None]),
        num(0, 1),
        num(0, 1),
        st.one_of(st.none(), num(0.1, 10)),
    ),
)
def _modified(args: Any) -> Any:
    design, dim, alpha, beta, ridge, lam_W, lam_X, normalize = args
    kw = {"lam_E": lam_X} if ridge == "E" else {"lam_H": lam_X}
    return ut.ModifiedUFM(
        design, dim, alpha=alpha, beta=beta, ridge=ridge, lam_W=lam_W, normalize=normalize, **kw
    )


# -- solvers ---------------------------------------------------------------------------------------------
@entry(
    "gradient_flow",
    st.tuples(
        problems(),
        num(1e-3, 1e4),
        saveats(),
        num(1e-10, 1e-3),
        num(1e-12, 1e-6),
        st.one_of(st.none(), count(1, 2000)),
        st.one_of(st.none(), num(1e-6, 1.0)),
    ),
)
def _gradient_flow(args: Any) -> Any:
    make, t1, saveat, rtol, atol, max_evals, scale = args
    kw = {} if max_evals is None else {"max_evals": max_evals}
    return ut.gradient_flow(make(), t1, saveat=saveat, rtol=rtol, atol=atol, scale=scale, **kw)


@entry("gradient_descent", st.tuples(problems(), num(1e-3, 2.0), count(0, 200), saveats()))
def _gradient_descent(args: Any) -> Any:
    make, lr, steps, saveat = args
    return ut.gradient_descent(make(), lr, steps, saveat=saveat)


@entry(
    "reduced_solve",
    st.tuples(
        problems(),
        num(1e-3, 1e8),
        num(1e-9, 1.0),
        saveats(),
        st.sampled_from(["balanced", "equal", "x"]),
        st.one_of(st.none(), count(1, 5000)),
    ),
)
def _reduced_solve(args: Any) -> Any:
    make, t1, scale, saveat, ratio, max_evals = args
    kw = {} if max_evals is None else {"max_evals": max_evals}
    return ut.reduced_solve(make(), t1, scale=scale, saveat=saveat, init_ratio=ratio, **kw)


@entry(
    "predict_phases",
    st.tuples(
        problems(),
        st.one_of(st.none(), num(1.0, 1e8)),
        num(1e-9, 1e-2),
        st.sampled_from(["H", "W", "x"]),
        count(1, 40),
        num(1e3, 1e12),
    ),
)
def _predict_phases(args: Any) -> Any:
    make, t1, scale, which, ppd, t1_max = args
    return ut.predict_phases(make(), t1=t1, scale=scale, which=which, points_per_decade=ppd, t1_max=t1_max)


@entry(
    "init.small / init.aligned",
    st.tuples(problems(hostile=False), num(1e-6, 1.0), count(0, 5)),
    finite_always=True,
)
def _init(args: Any) -> Any:
    make, scale, seed = args
    prob = make()
    return {
        **ut.init.small(prob, scale, seed=seed),
        **{f"aligned_{k}": v for k, v in ut.init.aligned(prob, scale).items()},
    }


# -- closed forms and programmes -------------------------------------------------------------------------
@entry("zhu / end_state / semantic_saddle", problems())
def _equilibria(make: Any) -> Any:
    prob = make()
    out = keeps_contract(lambda: ut.zhu(prob))
    keeps_contract(lambda: ut.end_state(prob))
    if isinstance(prob, ut.ModifiedUFM):
        keeps_contract(lambda: ut.semantic_saddle(prob))
    return out


@entry(
    "etf_mode_u / etf_mode_time", st.tuples(num(0, 1e12), count(2, 50), num(1e-6, 10.0)), finite_always=True
)
def _etf_mode(args: Any) -> Any:
    t, K, u0 = args
    u = ut.etf_mode_u(t, K, u0)
    return {"u": u, "t": ut.etf_mode_time(u, K, u0)}


# -- metrics ---------------------------------------------------------------------------------------------
@st.composite
def grams(draw: st.DrawFn) -> tuple[Any, Any]:
    """A Gram (PSD, or broken: non-symmetric, negative, non-finite, wrong shape, huge offset) and X."""
    design = draw(small_design())
    K = design.m
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.standard_normal((K + 2, K)) * draw(st.sampled_from([1.0, 1e-150, 1e150]))
    A += draw(st.sampled_from([0.0, 100.0, 1e8]))  # a common offset of the features
    G = A.T @ A
    kind = draw(st.sampled_from(["psd", "psd", "nonsym", "negative", "nan", "inf", "shape", "zero", "list"]))
    if kind == "nonsym":
        G[0, -1] += 1.0
    elif kind == "negative":
        G = -G
    elif kind == "nan":
        G[0, 0] = math.nan
    elif kind == "inf":
        G[-1, -1] = math.inf
    elif kind == "shape":
        G = G[:, :-1]
    elif kind == "zero":
        G = np.zeros_like(G)
    elif kind == "list":
        G = G.tolist()
    return G, design.X


@entry("metrics (Grams)", grams())
def _metrics(args: Any) -> Any:
    G, X = args
    for fn in (M.etf_distance, M.effective_rank, M.equinorm, M.equiangularity, M.cosine):
        keeps_contract(lambda fn=fn: fn(G))
    for fn in (M.semantic_strength, M.cka, M.shared_attribute_gap):
        keeps_contract(lambda fn=fn: fn(G, X))
    return M.gram_metrics(G, X)


@st.composite
def features(draw: st.DrawFn) -> tuple[np.ndarray, Any]:
    """Features (d, n) with labels: offsets up to 1e8, degenerate classes, bad labels."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    K, d, per = draw(st.integers(1, 5)), draw(st.integers(1, 16)), draw(st.integers(1, 4))
    H = rng.standard_normal((d, K * per)) + draw(st.sampled_from([0.0, 100.0, 1e8]))
    labels: Any = np.repeat(np.arange(K), per)
    bad = draw(st.sampled_from(["none", "none", "nan", "labels_short", "labels_float", "one_class"]))
    if bad == "nan":
        H[0, 0] = math.nan
    elif bad == "labels_short":
        labels = labels[:-1]
    elif bad == "labels_float":
        labels = labels + 0.5
    elif bad == "one_class":
        labels = np.zeros_like(labels)
    return H, labels


@entry("metrics.nc1", features())
def _nc1(args: Any) -> Any:
    H, labels = args
    return M.nc1(H, labels)


# -- files -----------------------------------------------------------------------------------------------
def _saved(tmp: Path) -> Path:
    traj = ut.gradient_flow(
        ut.UFM(ut.designs.factorial((2, 2)), dim=4, lam_W=1e-3, lam_H=1e-3), 1.0, saveat=3
    )
    traj.save(tmp / "run")
    return tmp / "run"


@entry(
    "Trajectory.load (corrupted)",
    st.tuples(
        st.sampled_from([".npz", ".json"]),
        st.sampled_from(["truncate", "flip", "empty", "json_field"]),
        st.integers(0, 10**6),
        st.binary(max_size=8),
    ),
)
def _load_corrupted(args: Any) -> Any:
    suffix, how, where, junk = args
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        base = _saved(Path(d))
        f = base.with_suffix(suffix)
        data = bytearray(f.read_bytes())
        i = where % max(len(data), 1)
        if how == "truncate":
            data = data[:i]
        elif how == "flip":
            data[i : i + len(junk)] = junk
        elif how == "empty":
            data = bytearray()
        else:
            meta = json.loads(f.with_suffix(".json").read_text())
            key = sorted(meta)[i % len(meta)]
            meta[key] = [None, "x", 1e308, {"kind": "factorial", "sizes": [2] * 40}, -1][where % 5]
            f, data = f.with_suffix(".json"), bytearray(json.dumps(meta).encode())
        f.write_bytes(bytes(data))
        return ut.Trajectory.load(base)


@entry("Trajectory.save (bad target)", st.sampled_from(["parent_is_file", "is_dir", "fifo", "ok"]))
def _save_bad(how: str) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        traj = ut.gradient_flow(ut.UFM(ut.designs.factorial((2, 2)), dim=4), 1.0, saveat=2)
        # Never a real device here: as root, a save that does not refuse would replace it.
        targets = {"parent_is_file": tmp / "file" / "run", "is_dir": tmp / "dir", "fifo": tmp / "fifo"}
        target = targets.get(how, tmp / "run")
        (tmp / "file").write_text("x")
        (tmp / "dir.npz").mkdir()
        os.mkfifo(tmp / "fifo.npz")
        before = sorted(p.name for p in tmp.rglob("*"))
        try:
            traj.save(target)
        except (ValueError, TypeError):
            after = sorted(p.name for p in tmp.rglob("*"))
            assert after == before, f"a refused save left files: {set(after) - set(before)}"
            if how == "ok":
                raise
            raise ValueError("refused") from None
        return None


# -- CLI configs ------------------------------------------------------------------------------------------
@st.composite
def predict_configs(draw: st.DrawFn) -> dict[str, Any]:
    design = draw(
        st.one_of(
            st.fixed_dictionaries(
                {"kind": st.just("factorial"), "sizes": st.lists(count(2, 4), min_size=1, max_size=3)}
            ),
            st.fixed_dictionaries(
                {"kind": st.just("hierarchical"), "depth": count(1, 3), "branching": count(1, 3)}
            ),
            st.fixed_dictionaries({"kind": st.sampled_from(["x", None, 3])}),
        )
    )
    model = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "alpha": num(0, 2),
                "beta": num(0.1, 2),
                "ridge": st.sampled_from(["H", "E", "x"]),
                "lam_W": num(0, 1e-2),
                "lam_H": num(0, 1e-2),
                "normalize": st.one_of(st.none(), num(0.5, 2)),
                "dim": count(1, 20),
                "unknown": st.just(1),
            },
        )
    )
    options = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "which": st.sampled_from(["H", "W", "both", "x"]),
                "t1": st.one_of(st.none(), num(1.0, 1e6)),
                "scale": num(1e-9, 1e-3),
                "etf_tol": num(1e-3, 0.5),
                "points_per_decade": count(1, 30),
                "t1_max": num(1e3, 1e12),
            },
        )
    )
    return {"design": design, "model": model, **options}


@entry("ufm predict CONFIG", predict_configs())
def _cli_predict(cfg: dict[str, Any]) -> Any:
    import tempfile

    from ufmtheory.cli import main

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cfg.json"
        path.write_text(json.dumps(cfg))
        old = os.environ.get("UFM_TRACEBACK")
        os.environ["UFM_TRACEBACK"] = "1"  # an unexpected exception propagates instead of exit status 1
        try:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
                code = main(["predict", str(path), "--out", str(Path(d) / "out.json")])
        finally:
            if old is None:
                os.environ.pop("UFM_TRACEBACK")
            else:
                os.environ["UFM_TRACEBACK"] = old
        # 0: every phase ok; 1: written, but a phase ended with another status (e.g. "failed": no collapse
        # up to t1_max without ridges; documented in ufmtheory.cli); 2: refused.
        assert code in (0, 1, 2), f"exit status {code}"
        if code == 2:
            assert len(err.getvalue().strip().splitlines()) == 1, f"not one line: {err.getvalue()!r}"
            assert not (Path(d) / "out.json").exists(), "a refused config left an output file"
            raise ValueError("refused with exit status 2")
        out = json.loads((Path(d) / "out.json").read_text())
        statuses = [phase["status"] for phase in out["phases"].values()]
        assert (code == 1) == any(s != "ok" for s in statuses), f"exit status {code} with statuses {statuses}"
        return out


# -- tests -------------------------------------------------------------------------------------------------
# Budgets: examples per entry under `make test` (ci profile); `make fuzz` runs 20x as many.
_BUDGET = {"ufm predict CONFIG": 5, "predict_phases": 5, "gradient_flow": 8, "reduced_solve": 8}


@pytest.mark.parametrize("name", list(ENTRIES))
def test_fuzz_entry(name: str) -> None:
    strategy, fn, finite_always = ENTRIES[name]

    @settings(FUZZ, max_examples=budget(_BUDGET.get(name, 10)))
    @given(drawn=strategy)
    def run(drawn: Any) -> None:
        keeps_contract(lambda: fn(drawn), finite_always)

    run()


# -- the table ---------------------------------------------------------------------------------------------
CASE_LIMIT_S = 20


def _hang(signum: int, frame: Any) -> None:
    raise TimeoutError(f"no answer within {CASE_LIMIT_S} s")


def _counting(strategy: Any, fn: Callable[[Any], Any], finite_always: bool, n: int) -> tuple[int, list[str]]:
    """Run ``n`` drawn cases of one entry, counting contract failures instead of stopping at the first."""
    failures: list[str] = []
    cases = 0

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(drawn=strategy)
    def run(drawn: Any) -> None:
        nonlocal cases
        cases += 1
        signal.alarm(CASE_LIMIT_S)  # a hang is a failure, and the table goes on
        try:
            keeps_contract(lambda: fn(drawn), finite_always)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(f"{type(exc).__name__}: {str(exc)[:160]} <- {drawn!r:.200}")
        finally:
            signal.alarm(0)

    run()
    return cases, failures


def table(n: int, only: list[str] | None = None) -> list[tuple[str, int, int, list[str]]]:
    """Rows (entry, cases, clean, failure messages) for ``n`` cases per entry (those named in ``only``)."""
    rows = []
    signal.signal(signal.SIGALRM, _hang)
    for name, (strategy, fn, finite_always) in ENTRIES.items():
        if only and name not in only:
            continue
        cases, failures = _counting(strategy, fn, finite_always, n)
        rows.append((name, cases, cases - len(failures), failures))
        print(f"{name:<36} {cases:>6} {cases - len(failures):>6} {len(failures):>6}", flush=True)
    return rows


if __name__ == "__main__":
    rows = table(int(sys.argv[1]) if len(sys.argv) > 1 else 50, sys.argv[2:])
    print("\n| entry | cases | clean | failures |\n| --- | --- | --- | --- |")
    for name, cases, clean, failures in rows:
        print(f"| {name} | {cases} | {clean} | {len(failures)} |")
    for name, _, _, failures in rows:
        for f in sorted(set(failures))[:5]:
            print(f"{name}: {f}")
