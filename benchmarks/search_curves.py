"""Stage-1 search on synthetic accuracy-vs-sparsity curves: our level-set search vs Condensa's DR-UCB vs bisection.

Each curve ``A(s)`` falls with sparsity ``s``; the level is ``A(0) - eps`` (eps = 0.02) and the target is the true
threshold ``x* = max {s : A(s) >= level}``. Every method starts from the dense point ``(0, A(0))`` and gets
``--n-iter`` evaluations (10, as in Condensa). Reported per method: the error ``|best_x - x*|`` (worst case over
seeds, and the median for the noisy curve) and how many returned points are truly infeasible
(``A(best_x) < level``). The noisy curve adds Gaussian noise (sigma = 0.003) to every evaluation, over 20 seeds.

A second table runs the default search (``level_set``) on a held-out noisy curve (parameters no search setting was
tuned on) twice per seed: with the noise undeclared (``noise_std=None``: one replicate of the dense point, pooled
noise estimate with a floor of 0.1 eps) and declared (``noise_std=sigma``).

    python benchmarks/search_curves.py [--n-iter 10] [--seeds 20] [--noise 0.003] [--noise-only]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lightning_compress.tuner import level_set_search

EPS = 0.02
SEARCH_METHODS = ("level_set", "dr_ucb", "bisection")


def logistic(top: float, drop: float, center: float, width: float) -> Callable[[float], float]:
    """``A(s) = top - drop / (1 + exp(-(s - center) / width))``."""
    return lambda s: top - drop / (1.0 + math.exp(-(s - center) / width))


def cliff(s: float) -> float:
    """Slow decline, then a jump down by 0.35 at s = 0.73 (a discontinuity)."""
    return 0.91 - 0.012 * s if s <= 0.73 else 0.55 - 0.05 * s


def plateau(s: float) -> float:
    """Drops 0.015 by s = 0.3, stays just above the level until a steep drop around s = 0.8."""
    return 0.90 - 0.015 * min(s / 0.3, 1.0) - 0.4 / (1.0 + math.exp(-(s - 0.82) / 0.015))


@dataclass
class Curve:
    name: str
    accuracy: Callable[[float], float]
    noise: float = 0.0


def curves(noise: float) -> list[Curve]:
    return [
        Curve("early gentle", logistic(0.90, 0.40, 0.45, 0.08)),
        Curve("early steep", logistic(0.90, 0.40, 0.40, 0.015)),
        Curve("late gentle", logistic(0.92, 0.45, 0.85, 0.05)),
        Curve("late steep", logistic(0.92, 0.45, 0.93, 0.008)),
        Curve("cliff", cliff),
        Curve("plateau", plateau),
        Curve(f"noisy (sigma={noise})", logistic(0.90, 0.40, 0.70, 0.03), noise),
    ]


def true_threshold(accuracy: Callable[[float], float], level: float) -> float:
    grid = np.linspace(0.0, 1.0, 1_000_001)
    values = np.array([accuracy(s) for s in grid[::100]])
    coarse = int(np.nonzero(values >= level)[0].max()) * 100
    fine = grid[coarse : coarse + 101]
    return float(fine[np.nonzero(np.array([accuracy(s) for s in fine]) >= level)[0].max()])


def run(curve: Curve, method: str, seed: int, n_iter: int, noise_std: float | None = None) -> tuple[float, bool]:
    rng = np.random.default_rng(seed)
    level = curve.accuracy(0.0) - EPS

    def evaluate(s: float) -> float:
        return curve.accuracy(s) + (rng.normal(0.0, curve.noise) if curve.noise else 0.0)

    initial = [(0.0, evaluate(0.0))]
    result = level_set_search(
        evaluate, level, n_iter=n_iter, seed=seed, initial=initial, acquisition=method, noise_std=noise_std
    )
    return result.best_x, curve.accuracy(result.best_x) >= level


def noise_table(noise: float, seeds: int, n_iter: int) -> None:
    """Default search on the held-out noisy curve, noise undeclared vs declared, side by side."""
    curve = Curve(f"held-out noisy (sigma={noise})", logistic(0.88, 0.50, 0.55, 0.04), noise)
    level = curve.accuracy(0.0) - EPS
    x_star = true_threshold(curve.accuracy, level)
    print(f"\nlevel_set on {curve.name}, A(s) = 0.88 - 0.5 / (1 + exp(-(s - 0.55) / 0.04)), x* = {x_star:.4f}, "
          f"{seeds} seeds")  # fmt: skip
    print(f"{'noise':<22} {'infeas':>6} {'median err':>10} {'max err':>8}")
    for name, noise_std in (("undeclared (default)", None), (f"declared {noise}", noise)):
        runs = [run(curve, "level_set", seed, n_iter, noise_std) for seed in range(seeds)]
        errors = [abs(x - x_star) for x, _ in runs]
        infeasible = sum(not ok for _, ok in runs)
        print(
            f"{name:<22} {f'{infeasible}/{seeds}':>6} {statistics.median(errors):>10.4f} {max(errors):>8.4f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=20, help="seeds of the noisy curve")
    parser.add_argument("--noise", type=float, default=0.003)
    parser.add_argument("--noise-only", action="store_true", help="only the undeclared vs declared noise table")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.noise_only:
        noise_table(args.noise, args.seeds, args.n_iter)
        print(f"({time.perf_counter() - started:.0f} s)")
        return
    header = f"{'curve':<22} {'x*':>7} " + " ".join(f"{m + ' err':>15} {'infeas':>6}" for m in SEARCH_METHODS)
    print(f"{args.n_iter} evaluations after the dense point, eps = {EPS}; err = |best_x - x*| (noisy: median / max)")
    print(header)
    print("-" * len(header))
    for curve in curves(args.noise):
        level = curve.accuracy(0.0) - EPS
        x_star = true_threshold(curve.accuracy, level)
        seeds = range(args.seeds) if curve.noise else range(1)
        cells = []
        for method in SEARCH_METHODS:
            runs = [run(curve, method, seed, args.n_iter) for seed in seeds]
            errors = [abs(x - x_star) for x, _ in runs]
            infeasible = sum(not ok for _, ok in runs)
            error = f"{statistics.median(errors):.4f}/{max(errors):.4f}" if curve.noise else f"{max(errors):.4f}"
            cells.append(f"{error:>15} {f'{infeasible}/{len(runs)}':>6}")
        print(f"{curve.name:<22} {x_star:>7.4f} " + " ".join(cells), flush=True)
    noise_table(args.noise, args.seeds, args.n_iter)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
