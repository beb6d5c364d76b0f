"""Argument checks of the DataModules: the names of :mod:`lightning_compress.validation`, importable from here too.

Messages read ``"`GlueDataModule(task='foo')` is invalid: expected one of [...]."``: the call as the user wrote it,
then what was expected. Wrong types raise ``TypeError``, wrong values ``ValueError``.
"""

from lightning_compress.validation import check_choice, check_fraction, check_int, check_path, check_str, invalid

__all__ = ["check_choice", "check_fraction", "check_int", "check_path", "check_str", "invalid"]
