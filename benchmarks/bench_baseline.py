"""Benchmark: throughput and peak memory of the transformer baseline (``ufmtheory.baseline.train``).

Configurations (each run in a fresh subprocess, so peak memory is per configuration):

* ``demo``: the demo setting: factorial 4×4 (16 contexts, ``<bos> a b``: 48 tokens per full-batch step),
  2 layers, width 64, loss on the label position;
* ``model_x10``: the same data with a ~10× larger model (4 layers, width 128: 8× the non-embedding
  parameters, ~10× the FLOPs per token);
* ``batch_x10``: 10× the tokens per step: factorial 16×10 (160 contexts, full batch of 160 rows), demo model;
* each at 1 torch thread (the library default, ``TrainConfig.num_threads=1``) and the demo/model_x10 also
  at 2 threads, so the thread choice is measured, not assumed.

Measured per configuration: steps/s and tokens/s of the training loop (forward, backward, AdamW; snapshots
excluded), the end-to-end wall time of ``train`` including its log-spaced Gram snapshots, a model GFLOP/s
estimate (6 × non-embedding parameters × tokens per step, attention and the head ignored) and peak memory:
CPU: the worker's peak RSS and its increase during ``train`` (``getrusage``); CUDA: the peak allocated by
torch. With a GPU present (``--device auto``, the default) the configurations run on CUDA with bf16 autocast.

Run: ``.venv/bin/python benchmarks/bench_baseline.py [--device cpu|cuda|auto] [--quick] [--out PATH]``
(~1-2 min on 2 idle cores; writes ``benchmarks/results/bench_baseline.json`` atomically and prints a table).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from _common import (
    emit,
    load_average,
    log,
    machine_info,
    maxrss_mib,
    output_path,
    parser,
    run_worker,
    timestamp,
    write_json,
)

CONFIGS: dict[str, dict[str, Any]] = {
    "demo": {"sizes": [4, 4], "n_layers": 2, "width": 64, "steps": 400},
    "model_x10": {"sizes": [4, 4], "n_layers": 4, "width": 128, "steps": 200},
    "batch_x10": {"sizes": [16, 10], "n_layers": 2, "width": 64, "steps": 200},
}
# (configuration, torch threads, steps override): 2-thread runs are short, because on a shared 2-core
# machine they can be ~100× slower (OpenMP threads waiting for a core another process holds).
RUNS = [
    ("demo", 1, None),
    ("demo", 2, 100),
    ("model_x10", 1, None),
    ("model_x10", 2, 50),
    ("batch_x10", 1, None),
]


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process and return its measurements."""
    import torch

    import ufmtheory as ut
    from ufmtheory.baseline import TrainConfig, build_sequences, train

    design = ut.designs.factorial(tuple(spec["sizes"]))
    cfg = TrainConfig(
        steps=spec["steps"],
        batch_size=256,
        n_layers=spec["n_layers"],
        width=spec["width"],
        n_heads=4,
        device=spec["device"],
        num_threads=spec["threads"],
        n_snapshots=30,
    )
    data = build_sequences(design)
    cuda = cfg.device != "cpu" and torch.cuda.is_available()
    train(design, cfg, steps=5, n_snapshots=2)  # warm-up (allocator, kernels, thread pools)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss0 = maxrss_mib()
    t0 = time.perf_counter()
    traj = train(design, cfg)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    st = traj.stats
    w, L = spec["width"], spec["n_layers"]
    non_emb = L * (12 * w * w + 13 * w)  # qkv + proj + 2 MLP matrices with biases (4× hidden)
    flops_step = 6.0 * non_emb * st["tokens_per_step"]
    return {
        **spec,
        "device_used": st["device"],
        "autocast": st["autocast"],
        "m": design.m,
        "rows": data.n_rows,
        "seq_len": data.seq_len,
        "tokens_per_step": st["tokens_per_step"],
        "n_params": st["n_params"],
        "non_embedding_params": non_emb,
        "steps_per_s": spec["steps"] / st["train_time_s"],
        "ms_per_step": 1e3 * st["train_time_s"] / spec["steps"],
        "tokens_per_s": st["tokens_per_s"],
        "model_gflops": flops_step * spec["steps"] / st["train_time_s"] / 1e9,
        "train_time_s": st["train_time_s"],
        "snapshot_time_s": st["snapshot_time_s"],
        "n_snapshots": len(traj),
        "wall_time_s": wall,
        "final_loss": float(traj.loss[-1]),
        "peak_rss_mib": maxrss_mib(),
        "rss_increase_mib": maxrss_mib() - rss0,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "torch_threads": st["threads"],
    }


def main() -> None:
    ap = parser(__doc__, "20 steps per configuration")
    ap.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        emit(worker(json.loads(args.worker)))
        return

    import torch  # for the device only; the workers import their own

    info = machine_info()
    info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    device = args.device if args.device != "auto" else ("cuda" if info["cuda"] else "cpu")
    runs = RUNS if device == "cpu" else [(name, 1, None) for name in CONFIGS]  # threads do not matter on GPUs
    out = output_path(args, "bench_baseline")
    results = []
    t_all = time.perf_counter()
    for name, threads, steps in runs:
        spec = {"name": name, **CONFIGS[name], "threads": threads, "device": device}
        if steps is not None:
            spec["steps"] = steps
        if args.quick:
            spec["steps"] = 20
        res = run_worker(__file__, ["--worker", json.dumps(spec)])
        results.append(res)
        log(f"  {name} @{threads} thread(s): {res['ms_per_step']:.2f} ms/step")
    info["load_average_end"] = load_average()
    report = {
        "benchmark": "bench_baseline",
        "date": timestamp(),
        "device": device,
        "quick": args.quick,
        "total_time_s": time.perf_counter() - t_all,
        "machine": info,
        "results": results,
    }
    demo = {r["threads"]: r for r in results if r["name"] == "demo"}
    for r in results:
        ref = demo.get(r["threads"]) or demo.get(1)
        r["tokens_per_s_vs_demo"] = r["tokens_per_s"] / ref["tokens_per_s"] if ref else None
    write_json(out, report)

    hdr = (
        f"{'config':<10} {'dev':<5} {'thr':>3} {'L×w':>7} {'tok/step':>8} {'params':>8} {'ms/step':>8} "
        f"{'tok/s':>9} {'GFLOP/s':>8} {'wall s':>7} {'peak MiB':>9} {'+MiB':>6}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        mem = r["cuda_peak_mib"] if r["cuda_peak_mib"] is not None else r["peak_rss_mib"]
        inc = r["rss_increase_mib"] if r["cuda_peak_mib"] is None else float("nan")
        print(
            f"{r['name']:<10} {r['device_used']:<5} {r['threads']:>3} {r['n_layers']}×{r['width']:<5} "
            f"{r['tokens_per_step']:>8} {r['n_params']:>8} {r['ms_per_step']:>8.2f} "
            f"{r['tokens_per_s']:>9.0f} "
            f"{r['model_gflops']:>8.3f} {r['wall_time_s']:>7.2f} {mem:>9.1f} {inc:>6.1f}"
        )
    print(f"load average start {info['load_average']}, end {info['load_average_end']}")
    print(f"total {report['total_time_s']:.0f} s")


if __name__ == "__main__":
    main()
