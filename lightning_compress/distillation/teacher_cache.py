"""The teacher's outputs cached per training example, with fingerprints of the inputs they were computed from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["TeacherCache"]


class TeacherCache:
    """A frozen teacher's logits and features per training example, keyed by the example's ``idx``.

    Row ``i`` holds example ``idx = i``: its logits (``N x C``) and features (``N x D``) in float16, a ``cached`` flag
    and the :func:`~lightning_compress.distillation.fingerprints.input_fingerprints` of the inputs they were computed
    from (``0``: unknown, e.g. a cache saved before fingerprints were kept; such rows are served unchecked). Fresh
    and cached rows alike are served through float16, so every epoch (and a resumed run) sees the same targets. Rows
    added since the last :meth:`sync_` are shared between DDP ranks there, so every rank holds the whole cache.

    Args:
        owner: Named in the error raised when a cached row is served to an example with other input ids.

    Example:
        >>> cache = TeacherCache()
        >>> cache.reserve_(4, classes=2, features=3, device=torch.device("cpu"))
        >>> idx = torch.tensor([1, 3])
        >>> missing = cache.missing(idx, None)
        >>> cache.store_(idx, missing, torch.ones(2, 2), torch.zeros(2, 3), None)
        >>> int(cache.cached.sum()), cache.logits.dtype
        (2, torch.float16)
    """

    def __init__(self, owner: str = "TeacherCache") -> None:
        self.owner = owner
        self.cached: Tensor | None = None  # bool `N`
        self.logits: Tensor | None = None  # float16 `N x C`
        self.features: Tensor | None = None  # float16 `N x D`
        self.fingerprints: Tensor | None = None  # int64 `N`, 0 = unknown
        self._pending: list[Tensor] = []

    @property
    def size(self) -> int:
        """Number of rows (``0`` before the first :meth:`reserve_`)."""
        return 0 if self.cached is None else self.cached.numel()

    def count(self) -> int:
        """Number of cached rows."""
        return 0 if self.cached is None else int(self.cached.sum())

    def reserve_(self, size: int, classes: int, features: int, device: torch.device) -> None:
        """Grow to at least ``size`` rows (new rows are empty); the row widths are used for the first allocation."""
        if self.cached is None:
            self.cached = torch.zeros(size, dtype=torch.bool, device=device)
            self.logits = torch.zeros(size, classes, dtype=torch.float16, device=device)
            self.features = torch.zeros(size, features, dtype=torch.float16, device=device)
            self.fingerprints = torch.zeros(size, dtype=torch.long, device=device)
        elif size > self.cached.numel():
            grow = size - self.cached.numel()
            self.cached = torch.cat([self.cached, self.cached.new_zeros(grow)])
            self.logits = torch.cat([self.logits, self.logits.new_zeros(grow, self.logits.shape[1])])
            self.features = torch.cat([self.features, self.features.new_zeros(grow, self.features.shape[1])])
            self.fingerprints = torch.cat([self.fingerprints, self.fingerprints.new_zeros(grow)])

    def missing(self, idx: Tensor, fingerprints: Tensor | None) -> Tensor | None:
        """The rows of ``idx`` not cached yet, checking the cached ones against ``fingerprints``.

        Args:
            idx: A ``batch`` int64 tensor of example indices (all ``< size``).
            fingerprints: A ``batch`` int64 tensor of the examples' input fingerprints, or ``None`` (unchecked).

        Returns:
            A ``batch`` bool tensor (``True``: not cached), or ``None`` when every row is cached.

        Raises:
            RuntimeError: A cached row has a known fingerprint other than its example's.
        """
        missing = ~self.cached[idx]
        if fingerprints is None:  # no input ids: cached rows cannot be checked
            any_missing, any_changed = bool(missing.any()), False
        else:
            stored = self.fingerprints[idx]
            changed = ~missing & (stored != 0) & (stored != fingerprints)
            any_missing, any_changed = torch.stack([missing.any(), changed.any()]).tolist()  # one device sync
        if any_changed:
            position = int(changed.nonzero()[0, 0])
            raise RuntimeError(
                f"`{self.owner}`: the cached teacher output of training example "
                f"idx={int(idx[position])} was computed from other input ids (fingerprint "
                f"{int(stored[position]):#x}) than this example has now ({int(fingerprints[position]):#x}): the "
                "training data changed since the cache was filled (e.g. a run resumed on another data subset of the "
                "same size), so the model would be distilled towards other sentences' teacher outputs. HINT: resume "
                "only on the data the checkpoint was trained on, or start a new run (no `ckpt_path`, so the cache "
                "starts empty) for a different data subset."
            )
        return missing if any_missing else None

    def store_(
        self, idx: Tensor, missing: Tensor, logits: Tensor, features: Tensor, fingerprints: Tensor | None
    ) -> None:
        """Cache the ``missing`` rows of a batch (``batch x C`` logits, ``batch x D`` features) as float16."""
        rows = idx[missing]
        self.logits[rows] = logits[missing].half()
        self.features[rows] = features[missing].half()
        if fingerprints is not None:
            self.fingerprints[rows] = fingerprints[missing]
        self.cached[rows] = True
        self._pending.append(rows)

    def targets(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The cached ``(logits, features)`` of ``idx`` in float32 (``batch x C``, ``batch x D``)."""
        return self.logits[idx].float(), self.features[idx].float()

    def to(self, device: torch.device) -> TeacherCache:
        if self.cached is not None:
            self.cached = self.cached.to(device)
            self.logits = None if self.logits is None else self.logits.to(device)
            self.features = None if self.features is None else self.features.to(device)
            self.fingerprints = self.fingerprints.to(device)
        return self

    def sync_(self, all_gather: Callable[[Tensor], Tensor] | None) -> None:
        """Share the rows each rank cached since the last call (``all_gather``: the strategy's; ``None``: one rank)."""
        pending, self._pending = self._pending, []
        if all_gather is None or self.cached is None:
            return
        device = self.cached.device
        rows = torch.cat(pending) if pending else torch.zeros(0, dtype=torch.long, device=device)
        counts = all_gather(torch.tensor([rows.numel()], device=device)).reshape(-1)
        width = int(counts.max())
        if width == 0:
            return
        padded = torch.full((width,), -1, dtype=torch.long, device=device)
        padded[: rows.numel()] = rows
        safe = padded.clamp_min(0)
        # float16 -> float32 -> float16 is exact; gloo has no float16 all_gather
        payload = torch.cat([self.logits[safe].float(), self.features[safe].float()], dim=1)
        all_rows = all_gather(padded).reshape(-1)
        all_payload = all_gather(payload).reshape(-1, payload.shape[1])
        all_fingerprints = all_gather(self.fingerprints[safe]).reshape(-1)
        valid = all_rows >= 0
        all_rows, all_payload, all_fingerprints = all_rows[valid], all_payload[valid], all_fingerprints[valid]
        self.reserve_(int(all_rows.max()) + 1, self.logits.shape[1], self.features.shape[1], device)
        classes = self.logits.shape[1]
        self.logits[all_rows] = all_payload[:, :classes].half()
        self.features[all_rows] = all_payload[:, classes:].half()
        self.fingerprints[all_rows] = all_fingerprints
        self.cached[all_rows] = True

    def state_dict(self) -> dict[str, Tensor]:
        """CPU tensors under ``cached``, ``logits``, ``features``, ``fingerprints`` (empty before the first row)."""
        if self.cached is None:
            return {}
        return {
            "cached": self.cached.cpu(),
            "logits": self.logits.cpu(),
            "features": self.features.cpu(),
            "fingerprints": self.fingerprints.cpu(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state without ``fingerprints`` (older checkpoints) gets unknown ones."""
        self.cached, self.logits, self.features = state_dict["cached"], state_dict["logits"], state_dict["features"]
        self.fingerprints = state_dict.get("fingerprints", torch.zeros(self.cached.numel(), dtype=torch.long))
        self._pending = []
