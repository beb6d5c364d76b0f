"""Repository-root pytest configuration: doctest collection of the package (``--doctest-modules`` in pyproject.toml).

A module that needs an optional extra at import time by design is left out of the collection when the extra is
missing, so the core install runs every other example.
"""

import importlib.util

#: package module -> the optional top-level package it imports when imported (its extra, see lightning_compress.extras)
_NEEDS_AT_IMPORT = {"lightning_compress/reporting/plots.py": "matplotlib"}

collect_ignore = [path for path, package in _NEEDS_AT_IMPORT.items() if importlib.util.find_spec(package) is None]
