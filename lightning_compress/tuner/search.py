r"""Search core of the tuner (Joseph et al., Condensa, 2020; docs/tuner.md): level-set search for the largest
feasible knob, objective search
inside it, and a batch constrained mode for several knobs.

Every proposal is a pure function of the evaluations so far (``propose_*``), so a resumed sweep that
replays its journal proposes the same next points; the ``*_search`` loops call ``evaluate`` in between.
Knob values are floats in ``bounds``; the GPs see them rescaled to the unit interval (BoTorch convention).

Stage 1 finds ``x_acc = max {x : A(x) >= level}`` with ``level = A(dense) - eps``
(:func:`level_set_search`, or :func:`dr_ucb_search` for Condensa's acquisition). Three methods (``acquisition=``):

* ``"level_set"`` (default of :func:`level_set_search` and of the tuner): GP-guided bisection. Accuracy falls
  with sparsity, so everything left of a feasible point is feasible and one crossing is bracketed by
  ``[lo, hi]``. An evaluated point counts as feasible only if the GP (Matérn-5/2, hyperparameters fitted by
  marginal likelihood) gives ``P(f(x) >= level) >= confidence`` (:class:`ProbabilityAboveLevel`); ``lo`` is the
  largest such point, ``hi`` the smallest evaluated point right of it, and the next point is the midpoint (``q`` points:
  ``q + 1`` equal parts). Clean curves: the bracket halves per evaluation (``2^-n`` after ``n``). Noisy
  curves: points whose feasibility the GP cannot confirm close the bracket from the right, so the search
  settles where the metric is above the level by a margin of about ``z * sigma_posterior``.
* ``"dr_ucb"`` (default of :func:`dr_ucb_search`): Condensa's DR-UCB as printed (Eq. 1, Algorithm 1, GP settings
  of §6.4), for reproducing it.
* ``"bisection"``: plain bisection on the observed values (``y >= level``), a baseline.

All three return the largest *evaluated* feasible point (by the same rule they searched with), never an
extrapolation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from botorch.acquisition.analytic import UpperConfidenceBound
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.objective import GenericMCObjective
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior
from torch import Tensor

from lightning_compress.deprecation import warn_deprecated
from lightning_compress.tuner.acquisition import DomainRestrictedUCB, ProbabilityAboveLevel

__all__ = [
    "LEVEL_SET_STRATEGIES",
    "PopulationStandardize",
    "SearchResult",
    "constrained_search",
    "dr_ucb_search",
    "feasible_points",
    "fit_gp",
    "level_set_search",
    "objective_search",
    "propose_constrained",
    "propose_level_set",
    "propose_objective",
]

Method = Literal["level_set", "dr_ucb", "bisection"]
#: Condensa (Joseph et al., 2020) §4 "Bayesian Optimizer Settings": Matérn lengthscale 1.0 and noise 0.1 on
#: standardised targets, not fitted.
_CONDENSA_LENGTHSCALE = 1.0
_CONDENSA_NOISE = 0.1
#: Condensa Algorithm 1 (docs/tuner.md): the acquisition is maximised over a dense grid of 1,000 points in the domain.
_GRID_POINTS = 1000


@dataclass
class SearchResult:
    """Outcome of a search: the best evaluated point and every evaluation in order.

    ``best_x``/``best_y``: the chosen evaluated point (stage 1: the largest feasible knob; stage 2: the best
    objective). ``feasible`` is False when no evaluated point met the level (then ``best_x`` is the
    smallest evaluated knob). ``trace``: one number per proposal (the maximised acquisition value for
    ``dr_ucb``/objective search, the bracket width for ``level_set``/``bisection``).
    """

    best_x: float
    best_y: float
    xs: list[float]
    ys: list[float]
    feasible: bool = True
    level: float | None = None
    trace: list[float] = field(default_factory=list)


def _validate_common(n_iter: int, bounds: tuple[float, float], q: int = 1) -> None:
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"`n_iter={n_iter!r}` is invalid: expected an int >= 1 (evaluations per search).")
    if len(bounds) != 2 or not bounds[0] < bounds[1]:
        raise ValueError(f"`bounds={bounds!r}` is invalid: expected (low, high) with low < high.")
    if isinstance(q, bool) or not isinstance(q, int) or q < 1:
        raise ValueError(f"`q={q!r}` is invalid: expected an int >= 1 (points proposed at once).")


def _unit(x: Sequence[float], bounds: tuple[float, float]) -> Tensor:
    """Knob values -> an ``n x 1`` double tensor in the unit interval."""
    lo, hi = bounds
    return ((torch.as_tensor(list(x), dtype=torch.double) - lo) / (hi - lo)).view(-1, 1)


class PopulationStandardize(Standardize):
    r"""``Standardize`` with the population deviation: ``y_std = (y - mean(y)) / sqrt(mean((y - mean(y))^2))``.

    BoTorch's ``Standardize`` divides by the ``n - 1`` deviation; Condensa's GP (scikit-learn's
    ``normalize_y=True``, Condensa §4 "Bayesian Optimizer Settings") divides by the ``n`` deviation, so its
    posterior standard deviation, ``y_std * sigma_standardised``, is ``sqrt((n - 1) / n)`` times BoTorch's. A
    constant outcome (deviation below ``min_stdv``) is divided by 1, as in both.

    Example:
        >>> transform = PopulationStandardize(m=1)
        >>> transform(torch.tensor([[0.9], [0.8], [0.5]], dtype=torch.double))[0].flatten().round(decimals=4)
        tensor([ 0.9806,  0.3922, -1.3728], dtype=torch.float64)
    """

    def forward(self, Y: Tensor, Yvar: Tensor | None = None, X: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if not self.training:
            return super().forward(Y, Yvar, X)
        super().forward(Y, Yvar, X)  # validates and sets the means, then replace the deviation
        stdvs = Y.std(dim=-2, keepdim=True, unbiased=False)
        stdvs = stdvs.where(stdvs >= self._min_stdv, torch.ones_like(stdvs))
        self.stdvs = stdvs
        self._stdvs_sq = stdvs.pow(2)
        return (Y - self.means) / stdvs, None if Yvar is None else Yvar / self._stdvs_sq


def fit_gp(
    train_x: Tensor,
    train_y: Tensor,
    *,
    fixed_hypers: bool = False,
    noise_std: float | None = None,
) -> SingleTaskGP:
    r"""A ``SingleTaskGP`` with a Matérn-5/2 kernel on standardised outcomes.

    Args:
        train_x: An ``n x d`` double tensor of inputs in the unit cube.
        train_y: An ``n x m`` double tensor of observations.
        fixed_hypers: Condensa's settings (Condensa §4): lengthscale 1.0, output scale 1, noise 0.1 on the
            targets standardised with the population deviation (:class:`PopulationStandardize`), nothing fitted.
            Otherwise the hyperparameters are fitted with
            ``fit_gpytorch_mll`` (lengthscale prior Gamma(3, 6)).
        noise_std: Known observation noise (standard deviation, outcome units); ``None`` learns it.

    Returns:
        The model in eval mode.

    Example:
        >>> gp = fit_gp(torch.rand(5, 1, dtype=torch.double), torch.rand(5, 1, dtype=torch.double))
        >>> gp.posterior(torch.rand(3, 1, dtype=torch.double)).mean.shape
        torch.Size([3, 1])
    """
    d, m = train_x.shape[-1], train_y.shape[-1]
    batch = torch.Size([m]) if m > 1 else torch.Size()
    kernel = ScaleKernel(
        MaternKernel(nu=2.5, ard_num_dims=d, batch_shape=batch, lengthscale_prior=GammaPrior(3.0, 6.0)),
        batch_shape=batch,
    )
    train_yvar = None
    if noise_std is not None and not fixed_hypers:
        train_yvar = torch.full_like(train_y, max(noise_std, 1e-6) ** 2)
    likelihood = None
    if train_yvar is None and not fixed_hypers:
        likelihood = GaussianLikelihood(
            noise_prior=GammaPrior(1.1, 0.05), noise_constraint=GreaterThan(1e-7), batch_shape=batch
        )
    model = SingleTaskGP(
        train_x,
        train_y,
        train_Yvar=train_yvar,
        likelihood=likelihood,
        covar_module=kernel,
        outcome_transform=PopulationStandardize(m=m) if fixed_hypers else Standardize(m=m),
    )
    if fixed_hypers:
        kernel.base_kernel.lengthscale = _CONDENSA_LENGTHSCALE
        kernel.outputscale = 1.0
        model.likelihood.noise = _CONDENSA_NOISE
    elif train_x.shape[0] > 1:
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        except Exception:  # noqa: BLE001 - a failed fit leaves the prior hyperparameters, still a valid model
            pass
    return model.eval()


def _latent_mean_std(model: SingleTaskGP, x: Tensor) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        posterior = model.posterior(x)
    return posterior.mean.view(-1), posterior.variance.clamp_min(1e-18).sqrt().view(-1)


def antitonic_fit(ys: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    r"""Weighted least-squares non-increasing fit of ``ys`` (pool-adjacent-violators).

    ``min_g sum_i w_i (y_i - g_i)^2  s.t.  g_1 >= g_2 >= ... >= g_n``; ``ys`` must be ordered by knob value,
    ``weights`` default to 1.

    Example:
        >>> antitonic_fit([0.9, 0.8, 0.85, 0.5])
        [0.9, 0.825, 0.825, 0.5]
    """
    weights = [1.0] * len(ys) if weights is None else [float(w) for w in weights]
    blocks: list[list[float]] = []  # [weighted sum, total weight, count]
    for y, w in zip(ys, weights, strict=True):
        blocks.append([w * float(y), w, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            total, weight, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += weight
            blocks[-1][2] += count
    return [total / weight for total, weight, count in blocks for _ in range(int(count))]


def monotone_noise_std(xs: Sequence[float], ys: Sequence[float]) -> float:
    r"""Noise estimate from repeated knob values and from the violations of "the metric falls with the knob".

    .. math::
        \hat\sigma^2 = \frac{\sum_g \sum_{i \in g} (y_i - \bar y_g)^2 + \sum_g n_g (\bar y_g - m_g)^2}{n - k}

    with ``g`` the groups of equal knob values (means ``\bar y_g``, sizes ``n_g``), ``m`` the weighted antitonic
    fit of the group means (:func:`antitonic_fit`) and ``k`` its number of constant blocks: the pooled
    within-replicate and monotonicity residuals. Noise-free evaluations give exactly 0.

    Example:
        >>> round(monotone_noise_std([0.0, 0.0, 0.5], [0.90, 0.91, 0.8]), 5)  # from the replicated 0.0
        0.00707
    """
    groups: dict[float, list[float]] = {}
    for x, y in zip(xs, ys, strict=True):
        groups.setdefault(float(x), []).append(float(y))
    order = sorted(groups)
    means = [sum(groups[x]) / len(groups[x]) for x in order]
    sizes = [len(groups[x]) for x in order]
    fit = antitonic_fit(means, sizes)
    blocks = len({round(v, 15) for v in fit})
    n = len(xs)
    if n <= blocks:
        return 0.0
    within = sum((y - mean) ** 2 for x, mean in zip(order, means, strict=True) for y in groups[x])
    between = sum(size * (mean - m) ** 2 for size, mean, m in zip(sizes, means, fit, strict=True))
    return math.sqrt((within + between) / (n - blocks))


def _replicate_needed(xs: Sequence[float], ys: Sequence[float]) -> bool:
    """No knob value has been evaluated twice (with a finite metric) yet."""
    seen = [float(x) for x, y in zip(xs, ys, strict=True) if not math.isnan(y)]
    return len(seen) >= 1 and len(set(seen)) == len(seen)


def feasible_points(
    xs: Sequence[float],
    ys: Sequence[float],
    level: float,
    *,
    method: Method = "level_set",
    bounds: tuple[float, float] = (0.0, 1.0),
    confidence: float = 0.975,
    noise_std: float | None = None,
    band: float = 0.03,
    noise_floor: float = 0.1,
) -> list[bool]:
    r"""Which evaluated points count as feasible under ``method``'s rule.

    ``dr_ucb``/``bisection``: ``y_i >= level``. ``level_set``: also ``P(f(x_i) >= level) >= confidence``
    (:class:`ProbabilityAboveLevel`) under a GP with observation noise ``noise_std``. With ``noise_std=None``
    the noise is estimated by :func:`monotone_noise_std`: exactly 0 for noise-free evaluations (then the rule is
    ``y_i >= level``), otherwise at least ``noise_floor * (y_dense - level)``, with ``y_dense`` the mean metric at
    the lowest evaluated knob (``= eps`` for the dense point): a safety margin for a few residuals that happen to
    agree, which would make the estimate, and with it the margin above the level, too small.
    The GP sees the metric clipped to ``level +- band``, so a plateau far above and the floor far below the
    level do not distort its fit near the crossing. NaN observations are infeasible.

    Args:
        xs: ``n`` knob values; ys: their ``n`` observed metrics (NaN = failed trial).

    Returns:
        ``n`` booleans.
    """
    finite = [not math.isnan(y) for y in ys]
    observed = [f and y >= level for f, y in zip(finite, ys, strict=True)]
    kept = [i for i, f in enumerate(finite) if f]
    if method != "level_set" or len(kept) < 2:
        return observed
    if noise_std is None:
        noise_std = monotone_noise_std([xs[i] for i in kept], [ys[i] for i in kept])
        if noise_std > 1e-9:
            low = min(xs[i] for i in kept)
            dense = [ys[i] for i in kept if xs[i] == low]
            noise_std = max(noise_std, noise_floor * max(sum(dense) / len(dense) - level, 0.0))
    if noise_std <= 1e-9:
        return observed
    train_x = _unit([xs[i] for i in kept], bounds)
    train_y = torch.as_tensor([ys[i] for i in kept], dtype=torch.double).view(-1, 1)
    train_y = train_y.clamp(level - max(band, 5 * noise_std), level + max(band, 5 * noise_std))
    model = fit_gp(train_x, train_y, noise_std=noise_std)
    probability = ProbabilityAboveLevel(model, level)(train_x.view(-1, 1, 1)).detach()
    result = list(observed)
    for j, i in enumerate(kept):
        result[i] = observed[i] and bool(probability[j] >= confidence)
    return result


def _bracket(xs: Sequence[float], feasible: Sequence[bool], bounds: tuple[float, float]) -> tuple[float, float]:
    """``lo`` = largest feasible x (or the lower bound); ``hi`` = smallest evaluated x right of it (or the upper)."""
    lo = max([x for x, f in zip(xs, feasible, strict=True) if f], default=bounds[0])
    hi = min([x for x in xs if x > lo], default=bounds[1])
    return lo, hi


def _condensa_domain(xs: Sequence[float], ys: Sequence[float], level: float, low: float) -> float:
    """Left end of Condensa's restricted domain: ``D <- (s_t, 1)`` when ``s_t > s_{t-1}`` and ``y_t >= level``."""
    domain, previous = low, None
    for x, y in zip(xs, ys, strict=True):
        if previous is not None and x > previous and not math.isnan(y) and y >= level:
            domain = x
        previous = x
    return domain


def propose_level_set(
    xs: Sequence[float],
    ys: Sequence[float],
    level: float,
    *,
    q: int = 1,
    method: Method = "level_set",
    bounds: tuple[float, float] = (0.0, 1.0),
    gamma: float = 0.95,
    confidence: float = 0.975,
    noise_std: float | None = None,
    replicate: bool = True,
    noise_floor: float = 0.1,
) -> tuple[list[float], float]:
    r"""Next ``q`` knob values of the stage-1 search, given the evaluations so far.

    Args:
        xs, ys: Evaluated knob values and metrics, in evaluation order (NaN = failed, infeasible).
        level: The metric must stay ``>= level``.
        q: Number of points to propose at once (``level_set``/``bisection``: ``q + 1`` equal parts of the
            bracket; ``dr_ucb``: Kriging believer, each point's posterior mean taken as its observation).
        method: ``"level_set"``, ``"dr_ucb"`` or ``"bisection"`` (module docstring).
        gamma: DR-UCB's level-set weight.
        confidence: ``level_set``: required posterior probability of feasibility.
        noise_std: Known observation noise; ``None`` estimates it (``level_set``, :func:`monotone_noise_std`).
        replicate: ``level_set`` with ``noise_std=None``: while no knob value has been evaluated twice, the
            first proposed point repeats the lowest evaluated one (the dense point), so that the noise estimate
            has a replicate and is never 0 for a noisy metric.
        noise_floor: ``level_set`` with ``noise_std=None``: smallest estimated noise as a fraction of
            ``y_dense - level`` (:func:`feasible_points`).

    Returns:
        ``(points, trace)``: ``q`` knob values and the bracket width / maximised DR-UCB value.
    """
    if method not in ("level_set", "dr_ucb", "bisection"):
        raise ValueError(f"`method={method!r}` is invalid: expected one of 'level_set', 'dr_ucb', 'bisection'.")
    if method == "dr_ucb":
        return _propose_dr_ucb(xs, ys, level, q=q, bounds=bounds, gamma=gamma)
    feasible = feasible_points(
        xs, ys, level, method=method, bounds=bounds, confidence=confidence, noise_std=noise_std, noise_floor=noise_floor
    )
    lo, hi = _bracket(xs, feasible, bounds)
    points: list[float] = []
    if method == "level_set" and noise_std is None and replicate and _replicate_needed(xs, ys):
        points.append(min(x for x, y in zip(xs, ys, strict=True) if not math.isnan(y)))
    parts = q - len(points) + 1
    return points + [lo + (hi - lo) * k / parts for k in range(1, parts)], hi - lo


def _propose_dr_ucb(
    xs: Sequence[float], ys: Sequence[float], level: float, *, q: int, bounds: tuple[float, float], gamma: float
) -> tuple[list[float], float]:
    low = _condensa_domain(xs, ys, level, bounds[0])
    grid_x = torch.linspace(low, bounds[1], _GRID_POINTS + 1, dtype=torch.double)[1:]
    grid = _unit(grid_x.tolist(), bounds).view(-1, 1, 1)
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if not math.isnan(y)]
    points: list[float] = []
    best_value = float("nan")
    for _ in range(q):
        if not pairs:
            points.append(float(grid_x[len(grid_x) // 2]))
            continue
        train_x = _unit([p[0] for p in pairs], bounds)
        train_y = torch.as_tensor([p[1] for p in pairs], dtype=torch.double).view(-1, 1)
        model = fit_gp(train_x, train_y, fixed_hypers=True)
        with torch.no_grad():
            values = DomainRestrictedUCB(model, level, gamma)(grid)
        index = int(values.argmax())
        if not points:
            best_value = float(values[index])
        x = float(grid_x[index])
        points.append(x)
        mean, _ = _latent_mean_std(model, grid[index].view(1, 1))
        pairs.append((x, float(mean[0])))  # Kriging believer
    return points, best_value


def _initial_pairs(initial: Sequence[tuple[float, float]] | None) -> tuple[list[float], list[float]]:
    pairs = list(initial or [])
    return [float(x) for x, _ in pairs], [float(y) for _, y in pairs]


def _check_y(x: float, y: float) -> float:
    y = float(y)
    return float("nan") if math.isinf(y) else y


def level_set_search(
    evaluate: Callable[[float], float],
    level: float,
    n_iter: int = 10,
    gamma: float = 0.95,
    bounds: tuple[float, float] = (0.0, 1.0),
    seed: int | None = None,
    initial: Sequence[tuple[float, float]] | None = None,
    acquisition: Method = "level_set",
    confidence: float = 0.975,
    noise_std: float | None = None,
    replicate: bool = True,
    noise_floor: float = 0.1,
) -> SearchResult:
    r"""Largest knob value whose metric stays at or above ``level`` (stage 1, Condensa §3.2, Algorithm 1).

    Args:
        evaluate: Knob value -> metric (NaN for a failed evaluation, which counts as infeasible).
        level: ``A(dense) - eps``.
        n_iter: Number of evaluations (Condensa: 10).
        gamma: DR-UCB's level-set weight (``acquisition="dr_ucb"``).
        bounds: Search interval of the knob.
        seed: Seed of the torch RNG while searching (the proposals are deterministic given the data).
        initial: Already evaluated ``(x, y)`` pairs, e.g. ``[(0.0, dense_accuracy)]`` (not counted in ``n_iter``).
        acquisition: ``"level_set"`` (default), ``"dr_ucb"`` (Condensa as printed) or ``"bisection"``.
        confidence: ``level_set``: posterior probability of feasibility a returned point must have.
        noise_std: Known evaluation noise (``0.0``: noise-free); ``None`` estimates it from a replicate of the
            lowest point and the monotonicity residuals, with a floor of ``noise_floor * eps``.
        replicate: ``level_set``, ``noise_std=None``: spend one evaluation re-running the lowest evaluated point
            (the dense one, if ``initial`` has it) to measure the noise (:func:`propose_level_set`).
        noise_floor: ``level_set``, ``noise_std=None``: smallest estimated noise, as a fraction of
            ``y_dense - level`` (:func:`feasible_points`).

    Returns:
        :class:`SearchResult`; ``best_x`` is the largest feasible *evaluated* point.

    Example:
        >>> curve = lambda s: 0.9 - 0.4 / (1 + math.exp(-(s - 0.7) / 0.03))
        >>> result = level_set_search(curve, level=curve(0) - 0.02, initial=[(0.0, curve(0))])
        >>> round(result.best_x, 3)  # the largest s with curve(s) >= level is 0.7 - 0.03 ln 19 = 0.6117
        0.611
    """
    _validate_common(n_iter, bounds)
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"`confidence={confidence!r}` is invalid: expected a float in [0.5, 1).")
    xs, ys = _initial_pairs(initial)
    n_initial = len(xs)
    trace: list[float] = []
    with torch.random.fork_rng():
        if seed is not None:
            torch.manual_seed(seed)
        for _ in range(n_iter):
            (x,), value = propose_level_set(
                xs,
                ys,
                level,
                method=acquisition,
                bounds=bounds,
                gamma=gamma,
                confidence=confidence,
                noise_std=noise_std,
                replicate=replicate,
                noise_floor=noise_floor,
            )
            trace.append(value)
            xs.append(x)
            ys.append(_check_y(x, evaluate(x)))
        feasible = feasible_points(
            xs,
            ys,
            level,
            method=acquisition,
            bounds=bounds,
            confidence=confidence,
            noise_std=noise_std,
            noise_floor=noise_floor,
        )
    return _level_set_result(xs, ys, feasible, level, trace, n_initial)


def dr_ucb_search(
    evaluate: Callable[[float], float],
    level: float,
    n_iter: int = 10,
    gamma: float = 0.95,
    bounds: tuple[float, float] = (0.0, 1.0),
    seed: int | None = None,
    initial: Sequence[tuple[float, float]] | None = None,
    acquisition: Method | None = None,
    confidence: float = 0.975,
    noise_std: float | None = None,
    replicate: bool = True,
    noise_floor: float = 0.1,
) -> SearchResult:
    r"""Condensa's DR-UCB search (Joseph et al. 2020, Eq. 1, Algorithm 1) for the largest knob meeting ``level``.

    :func:`level_set_search` with ``acquisition="dr_ucb"``; the arguments are the same. Until 0.2.0 a call without
    ``acquisition`` warns once (per call site), since this function ran the level-set search by default before
    0.1.0: pass ``acquisition="dr_ucb"`` for DR-UCB, or call :func:`level_set_search` for the level-set search.

    Example:
        >>> curve = lambda s: 0.9 - 0.4 / (1 + math.exp(-(s - 0.7) / 0.03))
        >>> result = dr_ucb_search(curve, curve(0) - 0.02, acquisition="dr_ucb")  # doctest: +SKIP
        >>> result.best_x <= 0.6117  # the largest evaluated feasible point  # doctest: +SKIP
        True
    """
    if acquisition is None:
        acquisition = "dr_ucb"
        # a LightningDeprecationWarning: Lightning's "default" filter shows it once per call site
        warn_deprecated(
            "`dr_ucb_search(...)` without `acquisition` (it ran the level-set search by default before 0.1.0 and "
            "runs DR-UCB now)",
            "`level_set_search(...)` for the level-set search, or `dr_ucb_search(..., acquisition='dr_ucb')`",
        )
    return level_set_search(
        evaluate,
        level,
        n_iter=n_iter,
        gamma=gamma,
        bounds=bounds,
        seed=seed,
        initial=initial,
        acquisition=acquisition,
        confidence=confidence,
        noise_std=noise_std,
        replicate=replicate,
        noise_floor=noise_floor,
    )


def _level_set_result(
    xs: list[float], ys: list[float], feasible: list[bool], level: float, trace: list[float], n_initial: int
) -> SearchResult:
    candidates = [i for i, f in enumerate(feasible) if f]
    if candidates:
        best = max(candidates, key=lambda i: xs[i])
        return SearchResult(xs[best], ys[best], xs[n_initial:], ys[n_initial:], True, level, trace)
    best = min(range(len(xs)), key=lambda i: xs[i])
    return SearchResult(xs[best], ys[best], xs[n_initial:], ys[n_initial:], False, level, trace)


def propose_objective(
    xs: Sequence[float],
    fs: Sequence[float],
    *,
    bounds: tuple[float, float],
    q: int = 1,
    maximize: bool = True,
    kappa: float = 2.576,
) -> tuple[list[float], float]:
    r"""Next ``q`` knob values of the stage-2 objective search (Condensa §3.2, UCB/LCB of Srinivas et al., 2010).

    ``UCB(x) = mu(x) + kappa sigma(x)`` when maximising, ``LCB(x) = mu(x) - kappa sigma(x)`` (minimised)
    otherwise, with BoTorch's ``UpperConfidenceBound(beta=kappa**2)``, maximised over a 1,000-point grid of
    ``bounds``; ``q > 1`` by Kriging believer. NaN objectives are left out of the GP.

    Returns:
        ``(points, trace)``: ``q`` knob values and the maximised acquisition value of the first.
    """
    grid_x = torch.linspace(bounds[0], bounds[1], _GRID_POINTS, dtype=torch.double)
    grid = _unit(grid_x.tolist(), bounds).view(-1, 1, 1)
    pairs = [(x, f) for x, f in zip(xs, fs, strict=True) if not math.isnan(f)]
    points: list[float] = []
    first_value = float("nan")
    for k in range(q):
        if len(pairs) < 2:
            # nothing to model yet: spread the points over the interval, right end first (most compressed)
            points.append(bounds[1] - (bounds[1] - bounds[0]) * (len(pairs) + k) / (q + len(pairs) + 1))
            continue
        train_x = _unit([p[0] for p in pairs], bounds)
        train_y = torch.as_tensor([p[1] for p in pairs], dtype=torch.double).view(-1, 1)
        model = fit_gp(train_x, train_y)
        with torch.no_grad():
            values = UpperConfidenceBound(model, beta=kappa**2, maximize=maximize)(grid)
        index = int(values.argmax())
        if k == 0:
            first_value = float(values[index])
        x = float(grid_x[index])
        points.append(x)
        mean, _ = _latent_mean_std(model, grid[index].view(1, 1))
        pairs.append((x, float(mean[0])))
    return points, first_value


def objective_search(
    evaluate: Callable[[float], float],
    bounds: tuple[float, float],
    n_iter: int = 10,
    maximize: bool = True,
    kappa: float = 2.576,
    seed: int | None = None,
    initial: Sequence[tuple[float, float]] | None = None,
) -> SearchResult:
    r"""Stage 2: optimise a user objective over ``bounds`` = ``(low, x_acc)`` from stage 1.

    Condensa §3.2 (Joseph et al., 2020), with UCB/LCB (Srinivas et al., 2010).

    Returns the best *evaluated* objective (``best_y``) and its knob (``best_x``).

    Example:
        >>> size_mb = lambda s: 40 * (1 - s)
        >>> result = objective_search(lambda s: -size_mb(s), bounds=(0.0, 0.61), n_iter=5, seed=0)
        >>> round(result.best_x, 2), round(result.best_y, 1)
        (0.61, -15.6)
    """
    _validate_common(n_iter, bounds)
    xs, fs = _initial_pairs(initial)
    n_initial = len(xs)
    trace: list[float] = []
    with torch.random.fork_rng():
        if seed is not None:
            torch.manual_seed(seed)
        for _ in range(n_iter):
            (x,), value = propose_objective(xs, fs, bounds=bounds, maximize=maximize, kappa=kappa)
            trace.append(value)
            xs.append(x)
            fs.append(_check_y(x, evaluate(x)))
    finite = [i for i, f in enumerate(fs) if not math.isnan(f)]
    if not finite:
        return SearchResult(xs[0], float("nan"), xs[n_initial:], fs[n_initial:], False, None, trace)
    best = (max if maximize else min)(finite, key=lambda i: fs[i])
    return SearchResult(xs[best], fs[best], xs[n_initial:], fs[n_initial:], True, None, trace)


def propose_constrained(
    X: Tensor,
    objective: Tensor,
    metric: Tensor,
    level: float,
    bounds: Tensor,
    *,
    q: int = 1,
    maximize: bool = True,
    num_restarts: int = 8,
    raw_samples: int = 256,
) -> Tensor:
    r"""Next ``q`` points for several knobs at once: best objective subject to ``metric >= level``.

    qLogNEI (BoTorch ``qLogNoisyExpectedImprovement``) on a two-output GP (objective, metric) with the outcome
    constraint ``level - metric <= 0``; its smoothed feasibility weighting means it also works before any
    point is feasible (it then favours points likely to be feasible). Failed evaluations (NaN) enter the
    metric GP at the lowest observed metric, so the search steers away from them.

    Args:
        X: An ``n x d`` tensor of evaluated knob values (in ``bounds``).
        objective: ``n`` objective values; metric: ``n`` metric values (NaN = failed).
        bounds: A ``2 x d`` tensor of lower and upper knob bounds.
        q: Points proposed jointly (``optimize_acqf`` sequential greedy).

    Returns:
        A ``q x d`` tensor of knob values.
    """
    bounds = bounds.to(torch.double)
    d = bounds.shape[-1]
    if X.shape[0] == 0:
        return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(q, d, dtype=torch.double)
    unit_x = (X.to(torch.double) - bounds[0]) / (bounds[1] - bounds[0])
    metric = metric.to(torch.double).clone()
    objective = objective.to(torch.double).clone()
    failed = metric.isnan() | objective.isnan()
    floor = metric[~failed].min() if (~failed).any() else torch.tensor(level - 1.0, dtype=torch.double)
    metric[failed] = floor - 0.1 * (1.0 + floor.abs())
    objective[failed] = objective[~failed].min() if (~failed).any() else 0.0
    sign = 1.0 if maximize else -1.0
    train_y = torch.stack([sign * objective, metric], dim=-1)
    model = fit_gp(unit_x, train_y)
    acquisition = qLogNoisyExpectedImprovement(
        model,
        X_baseline=unit_x,
        objective=GenericMCObjective(lambda Z, X=None: Z[..., 0]),
        constraints=[lambda Z: level - Z[..., 1]],
        prune_baseline=True,
    )
    unit_bounds = torch.stack([torch.zeros(d), torch.ones(d)]).to(torch.double)
    candidates, _ = optimize_acqf(
        acquisition, unit_bounds, q=q, num_restarts=num_restarts, raw_samples=raw_samples, sequential=True
    )
    return bounds[0] + (bounds[1] - bounds[0]) * candidates.detach()


def constrained_search(
    evaluate: Callable[[Tensor], tuple[float, float]],
    bounds: Tensor,
    level: float,
    n_iter: int = 10,
    q: int = 1,
    maximize: bool = True,
    seed: int | None = None,
    initial: tuple[Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Several knobs (e.g. sparsity and SDP alpha): best objective with ``metric >= level``, ``q`` at a time.

    Args:
        evaluate: A ``d``-dim knob tensor -> ``(objective, metric)``.
        bounds: A ``2 x d`` tensor; n_iter: rounds; q: points per round (one per worker).
        initial: Already evaluated ``(X, objective, metric)``.

    Returns:
        ``(X, objective, metric)`` of every evaluation (``n x d``, ``n``, ``n``).
    """
    _validate_common(n_iter, (0.0, 1.0), q)
    bounds = torch.as_tensor(bounds, dtype=torch.double)
    X, objective, metric = (
        initial
        if initial is not None
        else (
            torch.empty(0, bounds.shape[-1], dtype=torch.double),
            torch.empty(0, dtype=torch.double),
            torch.empty(0, dtype=torch.double),
        )
    )
    with torch.random.fork_rng():
        if seed is not None:
            torch.manual_seed(seed)
        for _ in range(n_iter):
            candidates = propose_constrained(X, objective, metric, level, bounds, q=q, maximize=maximize)
            results = [evaluate(c) for c in candidates]
            X = torch.cat([X, candidates])
            objective = torch.cat([objective, torch.tensor([r[0] for r in results], dtype=torch.double)])
            metric = torch.cat([metric, torch.tensor([r[1] for r in results], dtype=torch.double)])
    return X, objective, metric


#: Stage-1 methods by name (for validation and the CLI).
LEVEL_SET_STRATEGIES: tuple[str, ...] = ("level_set", "dr_ucb", "bisection")
