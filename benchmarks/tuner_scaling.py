"""Throughput of the local executor: trials that sleep a fixed time, run with 1, 2 and 4 workers.

Each trial is a process that sleeps ``--seconds`` and writes a result file (what the tuner reads from a real
trial), so the ratio measures the executor's scheduling and process overhead, not the machine's cores.

    python benchmarks/tuner_scaling.py [--trials 8] [--seconds 2] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from lightning_compress.tuner.executors import LocalExecutor, TrialSpec


def run(workers: int, trials: int, seconds: float, root: Path) -> float:
    executor = LocalExecutor(devices="cpu", workers=workers)
    started = time.perf_counter()
    for i in range(trials):
        run_dir = root / f"w{workers}" / f"trial_{i}"
        out = run_dir / "result.json"
        code = f"import json, time; time.sleep({seconds}); json.dump({{'val/accuracy': 1.0}}, open({str(out)!r}, 'w'))"
        executor.submit(TrialSpec(i, [sys.executable, "-c", code], str(run_dir), str(out)))
    outcomes = []
    while executor.pending:
        outcomes += executor.wait()
    elapsed = time.perf_counter() - started
    executor.shutdown()
    if any(o.status != "done" for o in outcomes):
        raise RuntimeError(f"failed trials: {[o.error for o in outcomes if o.status != 'done']}")
    return trials / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        rates = {n: run(n, args.trials, args.seconds, Path(root)) for n in args.workers}
    base = rates[args.workers[0]]
    print(f"{args.trials} trials of {args.seconds:g} s each (sleep), LocalExecutor(devices='cpu')")
    print(f"{'workers':>8} {'trials/min':>11} {'ratio':>7} {'ratio / N':>10}")
    for n, rate in rates.items():
        print(f"{n:>8} {rate * 60:>11.2f} {rate / base:>7.2f} {rate / base / n * args.workers[0]:>10.2f}")


if __name__ == "__main__":
    main()
