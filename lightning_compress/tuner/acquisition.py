"""Acquisition functions of the sparsity tuner (Joseph et al., Condensa, 2020), one small BoTorch class each.

Each class takes a fitted single-outcome model and evaluates a ``b x 1 x d`` batch of candidates to a
``b``-dim tensor, like BoTorch's analytic acquisition functions; the maths is in the class docstring.
"""

from __future__ import annotations

import torch
from botorch.acquisition.analytic import AnalyticAcquisitionFunction
from botorch.models.model import Model
from botorch.utils.transforms import t_batch_mode_transform
from torch import Tensor

__all__ = ["DomainRestrictedUCB", "ProbabilityAboveLevel"]


class DomainRestrictedUCB(AnalyticAcquisitionFunction):
    r"""Condensa's level-set acquisition (Joseph et al., Condensa, 2020, Eq. 1).

    ``DR-UCB(x) = (1 - gamma) * sigma(x) - gamma * |mu(x) - level|``

    where ``mu`` and ``sigma`` are the posterior mean and standard deviation of the metric. It is large
    where the model is uncertain or believes the metric crosses ``level``; ``gamma`` (0.95 in Condensa)
    biases it toward the level set, and with ``gamma = 1`` it is ``-|mu - level|``. The
    "domain restriction" (only candidates right of the last feasible sample) is applied by the caller,
    which chooses the candidate set.

    Example:
        >>> from botorch.models import SingleTaskGP
        >>> train_X = torch.linspace(0, 1, 6, dtype=torch.double).view(-1, 1)
        >>> model = SingleTaskGP(train_X, 0.9 - 0.2 * train_X**2)
        >>> acq = DomainRestrictedUCB(model, level=0.88, gamma=0.95)
        >>> acq(torch.linspace(0.3, 1, 100, dtype=torch.double).view(-1, 1, 1)).shape
        torch.Size([100])
    """

    def __init__(self, model: Model, level: float, gamma: float = 0.95) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"`DomainRestrictedUCB(gamma={gamma!r})` is invalid: expected a float in [0, 1].")
        super().__init__(model=model)
        self.register_buffer("level", torch.as_tensor(level, dtype=torch.double))
        self.gamma = gamma

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: Tensor) -> Tensor:
        r"""Evaluate on ``X``, a ``b x 1 x d``-dim tensor; returns a ``b``-dim tensor."""
        mean, sigma = (t.squeeze(-1) for t in self._mean_and_sigma(X))
        return (1.0 - self.gamma) * sigma - self.gamma * (mean - self.level.to(mean)).abs()


class ProbabilityAboveLevel(AnalyticAcquisitionFunction):
    r"""Posterior probability that the noise-free metric is at or above ``level``.

    ``P(x) = P(f(x) >= level) = Phi((mu(x) - level) / sigma(x))``

    with ``mu``, ``sigma`` the posterior of the latent (noise-free) metric and ``Phi`` the standard normal
    CDF. The level-set search counts an evaluated point as feasible only when ``P >= 1 - delta``, which is
    ``mu - z sigma >= level`` with ``z = Phi^-1(1 - delta)``: a margin that is wide where the
    observations are noisy or sparse and shrinks where they agree.

    Example:
        >>> from botorch.models import SingleTaskGP
        >>> train_X = torch.linspace(0, 1, 6, dtype=torch.double).view(-1, 1)
        >>> model = SingleTaskGP(train_X, 0.9 - 0.2 * train_X**2)
        >>> acq = ProbabilityAboveLevel(model, level=0.88)
        >>> (acq(train_X.view(-1, 1, 1)) >= 0.975).tolist()
        [True, False, False, False, False, False]
    """

    def __init__(self, model: Model, level: float) -> None:
        super().__init__(model=model)
        self.register_buffer("level", torch.as_tensor(level, dtype=torch.double))

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: Tensor) -> Tensor:
        r"""Evaluate on ``X``, a ``b x 1 x d``-dim tensor; returns a ``b``-dim tensor of probabilities."""
        mean, sigma = (t.squeeze(-1) for t in self._mean_and_sigma(X))
        normal = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
        return normal.cdf((mean - self.level.to(mean)) / sigma.clamp_min(1e-12))
