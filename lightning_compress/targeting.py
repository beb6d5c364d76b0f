"""Which parameters a compression method touches.

Parameters are named by their fully qualified name (FQN) inside the module the callback sees
(``pl_module.named_parameters()``), e.g. ``model.bert.encoder.layer.0.attention.self.query.weight``.
Patterns are regular expressions matched with :func:`re.search` against those names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

#: Default targets (docs/methods.md#which-parameters-each-method-touches): the weights of every ``nn.Linear`` inside
#: the transformer encoder
#: stack (BERT/XLM-R/MiniLM ``encoder.layer.N``, also ``encoder.layers.N``); embeddings, LayerNorm,
#: biases, pooler and task head are left alone.
DEFAULT_ENCODER_PATTERN = r"(^|\.)encoder\.layers?\.\d+\..*\.weight$"

#: Default parameters of the gradient-dropout family (docs/methods.md#which-parameters-each-method-touches, O'Neill
#: §10.3.4: "every layer apart from the
#: input embedding layers and the task-specific classification layer"): every parameter of the encoder stack
#: (Linear weights and biases, LayerNorm) and of the pooler; :data:`EMBEDDINGS_PATTERN` names are left out.
ENCODER_PARAMETERS_PATTERN = r"(^|\.)(encoder|pooler)\."

#: The attention projections of every block (query, key, value and attention output, weights and biases): the
#: narrower reading of O'Neill §10.3.1 (docs/methods.md#graddrop, ``scope="attention"``).
ATTENTION_PROJECTIONS_PATTERN = r"(^|\.)encoder\.layers?\.\d+\.attention\.(self\.(query|key|value)|output\.dense)\."

#: Input embeddings (word, position, token type and their LayerNorm).
EMBEDDINGS_PATTERN = r"(^|\.)embeddings\."

#: One transformer block; group 2 is its index (``bert.encoder.layer.3.`` -> 3).
ENCODER_LAYER_PATTERN = r"(^|\.)encoder\.layers?\.(\d+)\."


def _as_pattern_list(patterns: str | Sequence[str] | None) -> list[str]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        return [patterns]
    return list(patterns)


def validate_patterns(argument: str, patterns: str | Sequence[str] | None) -> list[str]:
    """Check that ``patterns`` is ``None``, a regex or a list of regexes that compile; return the list."""
    pattern_list = _as_pattern_list(patterns)
    for pattern in pattern_list:
        if not isinstance(pattern, str):
            raise TypeError(f"`{argument}={patterns!r}` is invalid: expected a regex string or a list of them.")
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"`{argument}={pattern!r}` is not a valid regular expression: {error}.") from error
    return pattern_list


def linear_weight_names(module: nn.Module) -> list[str]:
    """FQNs of the ``weight`` of every ``nn.Linear`` in ``module``, in registration order."""
    return [
        f"{name}.weight" if name else "weight" for name, sub in module.named_modules() if isinstance(sub, nn.Linear)
    ]


def resolve_targets(
    module: nn.Module,
    targets: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> list[str]:
    """Return the FQNs of the parameters a method should touch, in registration order.

    Args:
        module: The module whose ``named_parameters()`` are searched (usually the LightningModule).
        targets: Regexes over parameter names. ``None`` selects the default: every ``nn.Linear`` weight
            inside the transformer encoder (:data:`DEFAULT_ENCODER_PATTERN`).
        exclude: Regexes removing names from the selection.

    Raises:
        ValueError: A ``targets`` or ``exclude`` pattern matches no parameter, or nothing is left.

    Example:
        >>> resolve_targets(hf_classifier)[:1]  # doctest: +SKIP
        ['bert.encoder.layer.0.attention.self.query.weight']
    """
    names = [name for name, _ in module.named_parameters()]
    if targets is None:
        linear = set(linear_weight_names(module))
        selected = [name for name in names if name in linear and re.search(DEFAULT_ENCODER_PATTERN, name)]
        _require_default(selected, names, "every nn.Linear weight inside `encoder.layer.N`", "the weights to compress")
    else:
        selected = _select(names, validate_patterns("targets", targets), "targets")
    return _exclude(selected, names, exclude)


def resolve_encoder_parameters(
    module: nn.Module,
    targets: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> list[str]:
    """Like :func:`resolve_targets`, with every encoder and pooler parameter as the default (gradient dropout).

    ``targets=None`` selects :data:`ENCODER_PARAMETERS_PATTERN` minus :data:`EMBEDDINGS_PATTERN`: all parameters
    apart from the input embeddings and the task head, biases and LayerNorm included
    (docs/methods.md#which-parameters-each-method-touches).

    Example:
        >>> resolve_encoder_parameters(hf_classifier)[:2]  # doctest: +SKIP
        ['bert.encoder.layer.0.attention.self.query.weight', 'bert.encoder.layer.0.attention.self.query.bias']
    """
    names = [name for name, _ in module.named_parameters()]
    if targets is None:
        selected = [
            name
            for name in names
            if re.search(ENCODER_PARAMETERS_PATTERN, name) and not re.search(EMBEDDINGS_PATTERN, name)
        ]
        _require_default(selected, names, "every parameter of `encoder.` and `pooler.`", "the parameters to mask")
    else:
        selected = _select(names, validate_patterns("targets", targets), "targets")
    return _exclude(selected, names, exclude)


def encoder_layer_index(name: str) -> int | None:
    """Index of the transformer block holding parameter ``name``, or ``None`` outside the block stack.

    Example:
        >>> encoder_layer_index("model.bert.encoder.layer.11.output.dense.weight")
        11
    """
    match = re.search(ENCODER_LAYER_PATTERN, name)
    return None if match is None else int(match.group(2))


def _require_default(selected: list[str], names: list[str], description: str, what: str) -> None:
    if not selected:
        raise ValueError(
            f"The default targets ({description}) matched no parameter; first parameter names are {names[:8]}. "
            f"HINT: pass `targets=[...]` regexes naming {what}."
        )


def _exclude(selected: list[str], names: list[str], exclude: str | Sequence[str] | None) -> list[str]:
    exclude_list = validate_patterns("exclude", exclude)
    if exclude_list:
        excluded = set(_select(selected, exclude_list, "exclude", universe=names))
        selected = [name for name in selected if name not in excluded]
        if not selected:
            raise ValueError(f"`exclude={exclude_list}` removed every target; nothing is left to compress.")
    return selected


def _select(candidates: list[str], patterns: list[str], argument: str, universe: list[str] | None = None) -> list[str]:
    """Names in ``candidates`` matching any pattern; every pattern must match a name in ``universe``."""
    universe = candidates if universe is None else universe
    for pattern in patterns:
        if not any(re.search(pattern, name) for name in universe):
            raise ValueError(
                f"`{argument}` pattern {pattern!r} matched no parameter; first parameter names are {universe[:8]}."
            )
    return [name for name in candidates if any(re.search(pattern, name) for pattern in patterns)]
