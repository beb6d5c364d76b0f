import math

import numpy as np
import pytest
import torch

from lightning_compress.tuner import DomainRestrictedUCB, ProbabilityAboveLevel, dr_ucb_search, level_set_search
from lightning_compress.tuner.search import (
    PopulationStandardize,
    antitonic_fit,
    fit_gp,
    monotone_noise_std,
    objective_search,
    propose_constrained,
    propose_level_set,
)


def curve(s: float) -> float:
    return 0.9 - 0.4 / (1.0 + math.exp(-(s - 0.7) / 0.03))


@pytest.fixture
def model():
    x = torch.tensor([[0.0], [0.5], [1.0]], dtype=torch.double)
    y = torch.tensor([[0.9], [0.8], [0.5]], dtype=torch.double)
    return fit_gp(x, y, fixed_hypers=True)


def test_dr_ucb_with_gamma_one_is_minus_distance_to_level(model):
    X = torch.linspace(0, 1, 7, dtype=torch.double).view(-1, 1, 1)
    mean = model.posterior(X.view(-1, 1)).mean.view(-1)
    assert torch.allclose(DomainRestrictedUCB(model, 0.85, gamma=1.0)(X), -(mean - 0.85).abs())
    sigma = model.posterior(X.view(-1, 1)).variance.sqrt().view(-1)
    expected = 0.05 * sigma - 0.95 * (mean - 0.85).abs()
    assert torch.allclose(DomainRestrictedUCB(model, 0.85)(X), expected)


def test_probability_above_level_is_normal_cdf(model):
    X = torch.tensor([[[0.25]]], dtype=torch.double)
    posterior = model.posterior(X.view(-1, 1))
    z = (posterior.mean.view(-1) - 0.8) / posterior.variance.sqrt().view(-1)
    assert torch.allclose(ProbabilityAboveLevel(model, 0.8)(X), 0.5 * (1 + torch.erf(z / math.sqrt(2))))


def test_gamma_out_of_range_raises(model):
    with pytest.raises(ValueError, match="gamma"):
        DomainRestrictedUCB(model, 0.8, gamma=1.5)


def test_antitonic_fit_and_noise_estimate():
    assert antitonic_fit([0.9, 0.8, 0.85, 0.5]) == pytest.approx([0.9, 0.825, 0.825, 0.5])
    assert antitonic_fit([0.8, 0.85], [3.0, 1.0]) == pytest.approx([0.8125, 0.8125])
    assert monotone_noise_std([0.0, 0.5, 1.0], [0.9, 0.8, 0.5]) == 0.0
    assert monotone_noise_std([0.0, 0.5, 0.6, 1.0], [0.9, 0.8, 0.85, 0.5]) > 0.0
    # a replicate: (0.90 - 0.905)^2 + (0.91 - 0.905)^2 over 3 points - 2 blocks
    assert monotone_noise_std([0.0, 0.0, 0.5], [0.90, 0.91, 0.8]) == pytest.approx(math.sqrt(5e-5))
    assert monotone_noise_std([0.0, 0.0, 0.5], [0.9, 0.9, 0.8]) == 0.0  # noise-free replicate


def test_unknown_noise_spends_one_evaluation_on_a_replicate_of_the_dense_point():
    assert propose_level_set([0.0], [0.9], 0.88)[0] == [0.0]
    assert propose_level_set([0.0], [0.9], 0.88, q=3)[0] == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert propose_level_set([0.0, 0.0], [0.9, 0.9], 0.88)[0] == [0.5]  # replicated: bisect
    assert propose_level_set([0.0], [0.9], 0.88, noise_std=0.003)[0] == [0.5]  # declared: no replicate
    assert propose_level_set([0.0], [0.9], 0.88, replicate=False)[0] == [0.5]


def test_condensa_gp_posterior_matches_the_population_normalised_gp_by_hand():
    x = [0.0, 0.3, 0.7, 1.0]
    y = [0.90, 0.87, 0.80, 0.55]
    test_x = [0.15, 0.5, 0.85]

    def matern52(a, b):
        r = abs(a - b)  # lengthscale 1.0, output scale 1
        return (1 + math.sqrt(5) * r + 5 * r * r / 3) * math.exp(-math.sqrt(5) * r)

    mean_y = sum(y) / 4
    std_y = math.sqrt(sum((v - mean_y) ** 2 for v in y) / 4)  # population deviation (n, not n - 1)
    K = torch.tensor([[matern52(a, b) for b in x] for a in x], dtype=torch.double) + 0.1 * torch.eye(4)
    k = torch.tensor([[matern52(a, b) for b in x] for a in test_x], dtype=torch.double)
    z = torch.tensor([(v - mean_y) / std_y for v in y], dtype=torch.double)
    expected_mean = mean_y + std_y * (k @ torch.linalg.solve(K, z))
    expected_std = std_y * (1.0 - (k * torch.linalg.solve(K, k.T).T).sum(-1)).sqrt()

    model = fit_gp(
        torch.tensor(x, dtype=torch.double).view(-1, 1),
        torch.tensor(y, dtype=torch.double).view(-1, 1),
        fixed_hypers=True,
    )
    posterior = model.posterior(torch.tensor(test_x, dtype=torch.double).view(-1, 1))
    assert torch.allclose(posterior.mean.view(-1), expected_mean, atol=1e-10)
    assert torch.allclose(posterior.variance.sqrt().view(-1), expected_std, atol=1e-10)
    transformed, _ = PopulationStandardize(m=1)(torch.tensor([[1.0], [3.0]], dtype=torch.double))
    assert transformed.view(-1).tolist() == [-1.0, 1.0]


def test_level_set_search_finds_the_threshold_of_a_clean_curve():
    level = curve(0.0) - 0.02
    x_star = 0.7 - 0.03 * math.log(0.4 / 0.02 - 1)  # curve(x*) = level
    result = level_set_search(curve, level, n_iter=10, initial=[(0.0, curve(0.0))], seed=0)
    assert result.feasible and curve(result.best_x) >= level
    assert abs(result.best_x - x_star) <= 0.005
    assert result.best_x in result.xs  # an evaluated point, never an extrapolation


def test_noisy_search_returns_a_truly_feasible_point():
    level = curve(0.0) - 0.02
    generator = torch.Generator().manual_seed(3)

    def noisy(s: float) -> float:
        return curve(s) + 0.003 * float(torch.randn((), generator=generator))

    result = level_set_search(noisy, level, n_iter=10, initial=[(0.0, curve(0.0))], seed=0)
    assert curve(result.best_x) >= level


def held_out_curve(s: float) -> float:
    """A logistic curve no search setting was tuned on (top 0.88, drop 0.5, centre 0.55, width 0.04)."""
    return 0.88 - 0.5 / (1.0 + math.exp(-(s - 0.55) / 0.04))


def noisy_held_out_runs(seeds) -> tuple[int, float]:
    """Undeclared sigma = 0.003 noise, 10 evaluations, eps = 0.02: (truly infeasible returns, median error)."""
    level = held_out_curve(0.0) - 0.02
    x_star = 0.55 - 0.04 * math.log(0.5 / (0.88 - level) - 1)  # held_out_curve(x_star) == level
    infeasible, errors = 0, []
    for seed in seeds:
        rng = np.random.default_rng(seed)

        def noisy(s: float, rng: np.random.Generator = rng) -> float:
            return held_out_curve(s) + float(rng.normal(0.0, 0.003))

        result = level_set_search(noisy, level, n_iter=10, initial=[(0.0, noisy(0.0))], seed=seed)
        infeasible += held_out_curve(result.best_x) < level
        errors.append(abs(result.best_x - x_star))
    errors.sort()
    return infeasible, (errors[(len(errors) - 1) // 2] + errors[len(errors) // 2]) / 2


def test_undeclared_noise_never_returns_an_infeasible_point_in_20_runs():
    infeasible, median = noisy_held_out_runs(range(20))
    assert infeasible == 0 and median <= 0.01


def test_dr_ucb_samples_right_of_the_last_feasible_sample():
    level = curve(0.0) - 0.02
    result = dr_ucb_search(curve, level, n_iter=6, acquisition="dr_ucb", initial=[(0.0, curve(0.0))])
    xs, ys = [0.0, *result.xs], [curve(0.0), *result.ys]
    domain, previous = 0.0, None
    for x, y in zip(xs, ys, strict=True):
        assert x > domain or previous is None
        if previous is not None and x > previous and y >= level:
            domain = x
        previous = x


def test_failed_evaluations_are_infeasible_and_batch_splits_the_bracket():
    points, width = propose_level_set([0.0, 0.5], [0.9, float("nan")], 0.88, q=3, replicate=False)
    assert width == 0.5 and points == pytest.approx([0.125, 0.25, 0.375])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="n_iter"):
        level_set_search(curve, 0.8, n_iter=0)
    with pytest.raises(ValueError, match="n_iter"):
        dr_ucb_search(curve, 0.8, n_iter=0, acquisition="dr_ucb")
    with pytest.raises(ValueError, match="method"):
        propose_level_set([0.0], [0.9], 0.8, method="ucb")


def test_objective_search_minimises_inside_the_bounds():
    result = objective_search(lambda s: (s - 0.3) ** 2, bounds=(0.0, 0.6), n_iter=8, maximize=False, seed=0)
    assert 0.0 <= min(result.xs) and max(result.xs) <= 0.6
    assert abs(result.best_x - 0.3) < 0.1


def test_constrained_proposal_copes_with_no_feasible_point():
    torch.manual_seed(0)
    X = torch.tensor([[0.9, 0.9], [0.8, 0.95], [0.95, 0.7]], dtype=torch.double)
    metric = torch.tensor([0.5, 0.55, 0.45], dtype=torch.double)  # all below the level 0.8
    candidates = propose_constrained(
        X, X[:, 0], metric, 0.8, torch.tensor([[0.0, 0.0], [1.0, 1.0]]), q=2, num_restarts=2, raw_samples=32
    )
    assert candidates.shape == (2, 2) and bool(((candidates >= 0) & (candidates <= 1)).all())
