"""Where local data lives: one documented data root, ``LIGHTNING_COMPRESS_DATA``.

Configs name data folders relative to the data root, ``data_dir: ${LIGHTNING_COMPRESS_DATA}/glue``, so they work on
any machine once the variable points at the folder holding ``glue/``, ``xnli/``, ``pawsx/``, ``snli/``, ``ud/`` and
``ner/``. ``$VAR`` / ``${VAR}`` and ``~`` are expanded in every ``data_dir``; an absolute or relative path without a
variable is used as given. A path naming an unset variable is an error that says what to set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Environment variable holding the data root.
DATA_ROOT_VARIABLE = "LIGHTNING_COMPRESS_DATA"
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def resolve_data_dir(data_dir: str | os.PathLike | None, owner: str) -> Path | None:
    """``data_dir`` with environment variables and ``~`` expanded (``None`` stays ``None``: the hub).

    Raises:
        ValueError: ``data_dir`` names an environment variable that is not set.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"LIGHTNING_COMPRESS_DATA": "/data"}):
        ...     resolve_data_dir("${LIGHTNING_COMPRESS_DATA}/glue", "GlueDataModule")
        PosixPath('/data/glue')
    """
    if data_dir is None:
        return None
    text = os.fspath(data_dir)
    unset = [a or b for a, b in _VARIABLE.findall(text) if (a or b) not in os.environ]
    if unset:
        raise ValueError(
            f"`{owner}(data_dir={text!r})` is invalid: the environment variable {unset[0]} is not set. HINT: "
            f"`export {DATA_ROOT_VARIABLE}=/path/to/data` (the folder holding glue/, xnli/, pawsx/, snli/, ud/, ner/), "
            "or pass the folder itself, e.g. `--data.init_args.data_dir=/path/to/data/glue`."
        )
    return Path(os.path.expandvars(text)).expanduser()
