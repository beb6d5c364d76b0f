"""Rebuilding a running fit's optimizers after a callback replaced the module's parameters (used by the TWS split)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_warn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR


def rebuild_optimizers(trainer: Trainer, pl_module: LightningModule) -> None:
    """Rebuild the optimizers and LR schedulers from the module's ``configure_optimizers``.

    Under DDP the module is wrapped again first, since the old wrapper registered the replaced parameters (its
    buckets and hooks hold them). This is the only place that goes through ``Strategy`` internals
    (``strategy.model``, ``configure_ddp``, ``setup_optimizers``); Lightning has no public API for it.
    """
    strategy = trainer.strategy
    if isinstance(strategy.model, DistributedDataParallel):
        strategy.model = pl_module
        strategy.configure_ddp()
    strategy.setup_optimizers(trainer)


def time_compress_schedules(trainer: Trainer, factor: float, owner: str) -> None:
    """Run every step-wise ``LambdaLR`` schedule ``factor`` times faster: ``λ'(step) = λ(step · factor)``.

    Hugging Face's linear and cosine warm-up schedules are ``LambdaLR``; with ``factor = total / phase_steps`` the
    whole schedule (warm-up and decay) fits into a phase. Other schedulers run unchanged, with a warning naming
    ``owner``.
    """
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if isinstance(scheduler, LambdaLR) and config.interval == "step":
            scheduler.lr_lambdas = [_time_compressed(fn, factor) for fn in scheduler.lr_lambdas]
        else:
            rank_zero_warn(
                f"{owner} fits only step-wise LambdaLR schedules into each "
                f"phase; {type(scheduler).__name__} (interval={config.interval!r}) runs unchanged."
            )


def _time_compressed(fn: Callable[[Any], float], factor: float) -> Callable[[int], float]:
    def compressed(step: int) -> float:
        return fn(step * factor)

    return compressed
