"""Examples from Hugging Face hub data sets (``datasets.load_dataset``), used when no local ``data_dir`` is given."""

from __future__ import annotations

from typing import Any

from lightning_compress.data.examples import Examples, fingerprint
from lightning_compress.extras import import_extra


def load_hub_split(path: str, name: str | None, split: str) -> Any:
    """``datasets.load_dataset(path, name)[split]``, with a clear error when the split does not exist.

    ``datasets`` (the ``data`` extra) is imported here, not at module import, because it is slow to import and only
    the hub path needs it; without it the ``ImportError`` names the extra and the local ``data_dir`` alternative.
    """
    datasets = import_extra("datasets", f"Reading the hub data set {path!r} (no local data_dir given)")
    dataset_dict = datasets.load_dataset(path, name)
    if split not in dataset_dict:
        raise ValueError(
            f"Hub data set {path!r} (config {name!r}) has no split {split!r}; found splits {sorted(dataset_dict)}"
        )
    return dataset_dict[split]


def examples_from_hub(
    dataset: Any,
    *,
    source: str,
    text: str,
    pair: str | None,
    label: str,
    num_labels: int | None,
) -> Examples:
    """Examples from a ``datasets.Dataset`` whose labels are already ids (``num_labels=None``: float scores).

    Raises ``ValueError`` naming ``source`` when a column is missing or a label is outside ``0..num_labels-1``
    (e.g. the ``-1`` of unlabelled GLUE test splits).
    """
    wanted = [text, label] if pair is None else [text, pair, label]
    missing = [c for c in wanted if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"Hub data set {source} lacks columns {missing}: expected columns {wanted}, found {dataset.column_names}"
        )
    raw = list(dataset[label])
    if num_labels is None:
        labels: list[int] | list[float] = [float(v) for v in raw]
    else:
        for row, value in enumerate(raw):
            if not isinstance(value, int) or not 0 <= value < num_labels:
                raise ValueError(
                    f"Hub data set {source}, row {row}: label {value!r} is not in 0..{num_labels - 1} "
                    "(unlabelled split?)"
                )
        labels = [int(v) for v in raw]
    texts = list(dataset[text])
    pairs = None if pair is None else list(dataset[pair])
    # `datasets` fingerprints every Dataset by content/provenance; hash the content when one is missing.
    stamp = getattr(dataset, "_fingerprint", None) or fingerprint(texts, pairs, labels)
    return Examples(
        texts=texts,
        pairs=pairs,
        labels=labels,
        fingerprint=fingerprint("hub", source, tuple(wanted), num_labels, stamp),
    )
