"""N:M semi-structured sparsity: at most ``n`` non-zeros in every group of ``m`` consecutive input weights.

Groups run along the input dimension (the last one) of an ``out x in`` ``nn.Linear`` weight, the layout of
NVIDIA's sparse tensor cores; 2:4 is what :func:`torch.sparse.to_sparse_semi_structured` accelerates.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from lightning_compress.validation import check_choice, check_int

#: The sparsity patterns of the pruning callback: free, or N:M.
PATTERNS = ("unstructured", "n:m")


class SemiStructuredUnsupportedError(RuntimeError):
    """The device, dtype, shape or sparsity pattern cannot use ``torch.sparse.to_sparse_semi_structured``."""


#: dtypes whose 2:4 kernels :func:`torch.sparse.to_sparse_semi_structured` provides (CUTLASS and cuSPARSELt)
SEMI_STRUCTURED_DTYPES = (torch.float16, torch.bfloat16)
#: the strictest (rows, columns) multiples over both backends for fp16/bf16
SEMI_STRUCTURED_MIN_SHAPE = (32, 64)


def check_nm_arguments(owner: str, pattern: Any, n: Any, m: Any, final_sparsity: float) -> None:
    """Check the ``pattern``, ``n`` and ``m`` arguments of ``owner``: ``1 <= n < m``, and with ``pattern="n:m"`` a
    ``final_sparsity`` of exactly ``1 - n/m`` (the last event reaches the pattern).

    Example:
        >>> check_nm_arguments("GradualMagnitudePruning", "n:m", 4, 2, 0.5)
        Traceback (most recent call last):
        ValueError: `GradualMagnitudePruning(n=4, m=2)` is invalid: expected 1 <= n < m (keep n of every m weights).
    """
    check_choice(owner, "pattern", pattern, PATTERNS)
    check_int(owner, "n", n)
    check_int(owner, "m", m)
    if not 1 <= n < m:
        raise ValueError(f"`{owner}(n={n}, m={m})` is invalid: expected 1 <= n < m (keep n of every m weights).")
    if pattern == "n:m" and abs(final_sparsity - (1 - n / m)) > 1e-6:
        raise ValueError(
            f"`{owner}(pattern='n:m', n={n}, m={m}, final_sparsity={final_sparsity})` is invalid: the last event "
            f"reaches exactly {n}:{m}, so final_sparsity must be 1 - n/m = {1 - n / m:g}."
        )


def check_nm_shape(name: str, shape: torch.Size | tuple[int, ...], m: int) -> None:
    """Raise ``ValueError`` unless ``shape`` is 2-d with an input dimension divisible by ``m``."""
    if len(shape) != 2:
        raise ValueError(f"pattern='n:m' needs 2-d (nn.Linear) weights: `{name}` has shape {tuple(shape)}.")
    if shape[1] % m:
        raise ValueError(
            f"pattern='n:m' groups m={m} consecutive input weights: `{name}` has shape {tuple(shape)} and its input "
            f"dimension {shape[1]} is not divisible by m={m}. HINT: exclude it with `exclude=[...]`."
        )


def nm_eligible_scores(score: Tensor, n: int, m: int, previous: Tensor | None = None) -> Tensor:
    """Scores restricted so that any selection of lowest scores keeps at least ``n`` entries per group of ``m``.

    In every group of ``m`` consecutive entries of a row, the ``m − n`` lowest scores (already-pruned entries,
    scored ``−inf``, first; ties by index) stay eligible; the ``n`` others get ``+inf`` and are never selected
    while a finite score is left. Pruning ``k`` entries from the result therefore never breaks the N:M
    constraint, and pruning ``numel · (m − n)/m`` of them gives exactly N:M. Already-pruned entries are among the
    eligible ones, so masks stay monotone.

    Args:
        score: An ``out x in`` score tensor, ``in`` divisible by ``m``.
        n, m: Keep at least ``n`` of every ``m``.
        previous: The current ``bool`` mask (``True`` = kept), or ``None``.

    Returns:
        A float32 ``out x in`` tensor: ``−inf`` (pruned), the score (eligible) or ``+inf`` (protected).

    Example:
        >>> nm_eligible_scores(torch.tensor([[4.0, 1.0, 3.0, 2.0]]), 2, 4)
        tensor([[inf, 1., inf, 2.]])
    """
    groups = score.detach().float().reshape(-1, m)
    if previous is not None:
        groups = groups.masked_fill(~previous.reshape(-1, m).to(groups.device), float("-inf"))
    order = torch.sort(groups, dim=1, stable=True).indices
    protected = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, order[:, m - n :], True)
    return groups.masked_fill(protected, float("inf")).view_as(score)


def is_nm_sparse(tensor: Tensor, n: int, m: int) -> bool:
    """Whether every group of ``m`` consecutive entries along the last dimension has at most ``n`` non-zeros.

    Example:
        >>> is_nm_sparse(torch.tensor([[1.0, 0.0, 2.0, 0.0]]), 2, 4), is_nm_sparse(torch.ones(1, 4), 2, 4)
        (True, False)
    """
    if tensor.shape[-1] % m:
        return False
    return bool(((tensor != 0).reshape(-1, m).sum(dim=1) <= n).all())


def semi_structured_support(weight: Tensor) -> str | None:
    """Why ``weight`` cannot become a 2:4 semi-structured tensor, or ``None`` if it can."""
    if not weight.is_cuda:
        return (
            f"semi-structured sparse kernels need a CUDA device; the weight is on {weight.device} "
            "(PyTorch has no CPU kernels for torch.sparse.to_sparse_semi_structured)"
        )
    capability = torch.cuda.get_device_capability(weight.device)
    if capability < (8, 0):
        major, minor = capability
        return f"semi-structured sparsity needs compute capability >= 8.0; {weight.device} has {major}.{minor}"
    if weight.dtype not in SEMI_STRUCTURED_DTYPES:
        return f"dtype {weight.dtype} is not supported: cast the model to one of {list(SEMI_STRUCTURED_DTYPES)} first"
    rows, cols = SEMI_STRUCTURED_MIN_SHAPE
    if weight.dim() != 2 or weight.shape[0] % rows or weight.shape[1] % cols:
        return f"shape {tuple(weight.shape)} is not supported: both dimensions must be multiples of {(rows, cols)}"
    if not is_nm_sparse(weight, 2, 4):
        return "the weight is not 2:4 sparse (a group of 4 consecutive input weights has more than 2 non-zeros)"
    return None


@torch.no_grad()
def to_semi_structured_(module: nn.Module, names: Iterable[str] | None = None) -> list[str]:
    """Replace 2:4-sparse ``nn.Linear`` weights by ``torch.sparse.to_sparse_semi_structured`` tensors, in place.

    Args:
        module: A pruned model (e.g. after ``GradualMagnitudePruning(pattern="n:m", n=2, m=4)``), on a CUDA device
            of compute capability >= 8.0, in float16 or bfloat16.
        names: FQNs of the ``nn.Linear`` weights to convert; ``None`` converts every ``nn.Linear`` weight that is
            2:4 sparse (dense heads are left alone).

    Returns:
        The converted FQNs. The forward of every converted Linear gives the same outputs (up to the kernels'
        fp16/bf16 accumulation order); the weights become frozen (``requires_grad=False``).

    Raises:
        SemiStructuredUnsupportedError: A named weight (or, with ``names=None``, any candidate) cannot be converted
            on this device/dtype/shape, or no weight qualifies; the message says why.
        ValueError: A name is not the weight of an ``nn.Linear``.

    Example::

        model.half().cuda()
        to_semi_structured_(model)     # ['bert.encoder.layer.0.attention.self.query.weight', ...]
    """
    linears = {
        f"{prefix}.weight" if prefix else "weight": sub
        for prefix, sub in module.named_modules()
        if isinstance(sub, nn.Linear)
    }
    if names is None:
        selected = [name for name, linear in linears.items() if is_nm_sparse(linear.weight, 2, 4)]
        if not selected:
            raise SemiStructuredUnsupportedError("no nn.Linear weight of the model is 2:4 sparse; nothing to convert.")
    else:
        selected = list(names)
        unknown = [name for name in selected if name not in linears]
        if unknown:
            raise ValueError(f"{unknown[:5]} are not nn.Linear weights; first Linear weights are {list(linears)[:5]}.")
    for name in selected:
        reason = semi_structured_support(linears[name].weight)
        if reason is not None:
            raise SemiStructuredUnsupportedError(
                f"cannot convert `{name}` to a semi-structured sparse tensor: {reason}."
            )
    for name in selected:
        linear = linears[name]
        linear.weight = nn.Parameter(
            torch.sparse.to_sparse_semi_structured(linear.weight.detach().contiguous()), requires_grad=False
        )
    return selected


__all__ = [
    "SEMI_STRUCTURED_DTYPES",
    "PATTERNS",
    "SemiStructuredUnsupportedError",
    "check_nm_arguments",
    "check_nm_shape",
    "is_nm_sparse",
    "nm_eligible_scores",
    "semi_structured_support",
    "to_semi_structured_",
]
