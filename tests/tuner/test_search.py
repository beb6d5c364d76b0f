import math

import pytest
import torch

from lightning_compress.tuner import DomainRestrictedUCB, ProbabilityAboveLevel, dr_ucb_search
from lightning_compress.tuner.search import (
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
    assert monotone_noise_std([0.0, 0.5, 1.0], [0.9, 0.8, 0.5]) == 0.0
    assert monotone_noise_std([0.0, 0.5, 0.6, 1.0], [0.9, 0.8, 0.85, 0.5]) > 0.0


def test_level_set_search_finds_the_threshold_of_a_clean_curve():
    level = curve(0.0) - 0.02
    x_star = 0.7 - 0.03 * math.log(0.4 / 0.02 - 1)  # curve(x*) = level
    result = dr_ucb_search(curve, level, n_iter=10, initial=[(0.0, curve(0.0))], seed=0)
    assert result.feasible and curve(result.best_x) >= level
    assert abs(result.best_x - x_star) <= 0.005
    assert result.best_x in result.xs  # an evaluated point, never an extrapolation


def test_noisy_search_returns_a_truly_feasible_point():
    level = curve(0.0) - 0.02
    generator = torch.Generator().manual_seed(3)

    def noisy(s: float) -> float:
        return curve(s) + 0.003 * float(torch.randn((), generator=generator))

    result = dr_ucb_search(noisy, level, n_iter=10, initial=[(0.0, curve(0.0))], seed=0)
    assert curve(result.best_x) >= level


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
    points, width = propose_level_set([0.0, 0.5], [0.9, float("nan")], 0.88, q=3)
    assert width == 0.5 and points == pytest.approx([0.125, 0.25, 0.375])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="n_iter"):
        dr_ucb_search(curve, 0.8, n_iter=0)
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
