"""Quantization-aware training of ``nn.Linear`` layers on torchao's QAT API: configs, prepare and convert.

Integer weights are symmetric (``ŵ = s · clamp(round(w / s), -2^{b-1}, 2^{b-1} - 1)``, ``s = max|w| / ((2^b - 1) / 2)``
per output row for ``"int8"``, per group of ``group_size`` input weights for ``"int4"``); activations, when quantized,
are asymmetric int8 with one scale and zero point per token, computed on the fly (dynamic). Gradients pass the
rounding unchanged (straight-through estimator, Jacob et al. 2018 §3; Esser et al. 2020 for the learned-step variant,
which is not used here: scales follow the latent weights).

:func:`qat_prepare_` swaps the chosen Linear modules for torchao ``FakeQuantizedLinear`` modules that hold the *same*
``weight``/``bias`` Parameter objects (an optimizer built before the swap keeps updating them, and state-dict keys stay
``<module>.weight`` / ``<module>.bias``). :func:`qat_convert_` turns them into plain ``nn.Linear`` modules whose weight
is a torchao ``IntxUnpackedToInt8Tensor`` (int8 codes plus scales), with the post-training config that matches the fake
quantization (``Int8DynamicActivationIntxWeightConfig`` or ``IntxWeightOnlyConfig``, torchao docs "Quantization-Aware
Training"), so the converted model computes what the fake-quantized one did. torchao is imported on first use.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

WeightFormat = Literal["int8", "int4"]
ActivationFormat = Literal["int8"] | None

#: Weight formats: name -> bit width. ``"int8"`` has one scale per output row, ``"int4"`` one per group.
WEIGHT_BITS: dict[str, int] = {"int8": 8, "int4": 4}
#: Activation formats: ``"int8"`` (dynamic, asymmetric, per token) or ``None`` (full precision).
ACTIVATION_BITS: dict[str | None, int | None] = {"int8": 8, None: None}
#: Default ``group_size`` of ``"int4"`` weights (input weights sharing one scale).
DEFAULT_GROUP_SIZE = 32
#: Weight dtypes torchao's integer quantizers accept.
_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check_qat_arguments(owner: str, weights: object, activations: object, group_size: object) -> None:
    """Raise ``TypeError``/``ValueError`` naming ``owner`` for a bad weight format, activation format or group size.

    Example:
        >>> check_qat_arguments("QuantizationAwareTraining", "int3", "int8", 32)
        Traceback (most recent call last):
        ValueError: `QuantizationAwareTraining(weights='int3')` is invalid: expected one of ['int8', 'int4'].
    """
    if weights not in WEIGHT_BITS:
        hint = " HINT: give the format as a string, e.g. weights='int4'." if isinstance(weights, int) else ""
        raise ValueError(f"`{owner}(weights={weights!r})` is invalid: expected one of {list(WEIGHT_BITS)}.{hint}")
    if activations not in ACTIVATION_BITS:
        raise ValueError(f"`{owner}(activations={activations!r})` is invalid: expected one of {list(ACTIVATION_BITS)}.")
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise TypeError(f"`{owner}(group_size={group_size!r})` is invalid: expected an int > 0.")
    if group_size <= 0:
        raise ValueError(f"`{owner}(group_size={group_size!r})` is invalid: expected an int > 0.")


def qat_base_config(
    weights: WeightFormat = "int8", activations: ActivationFormat = "int8", group_size: int = DEFAULT_GROUP_SIZE
) -> Any:
    """The torchao post-training config whose numerics the fake quantization simulates (prepare and convert).

    Args:
        weights: ``"int8"`` (per output row) or ``"int4"`` (per group of ``group_size`` input weights), symmetric.
        activations: ``"int8"`` (dynamic, asymmetric, per token) or ``None``.
        group_size: Input weights per scale of ``"int4"`` (ignored for ``"int8"``).

    Returns:
        ``Int8DynamicActivationIntxWeightConfig`` (``activations="int8"``) or ``IntxWeightOnlyConfig``, both with
        the ``"unpacked_to_int8"`` layout, which runs on CPU and saves to safetensors.

    Example:
        >>> type(qat_base_config("int4", None)).__name__
        'IntxWeightOnlyConfig'
    """
    check_qat_arguments("qat_base_config", weights, activations, group_size)
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerAxis, PerGroup

    dtype = {8: torch.int8, 4: torch.int4}[WEIGHT_BITS[weights]]
    granularity = PerAxis(0) if weights == "int8" else PerGroup(group_size)
    if activations is None:
        return IntxWeightOnlyConfig(weight_dtype=dtype, granularity=granularity)
    return Int8DynamicActivationIntxWeightConfig(weight_dtype=dtype, weight_granularity=granularity)


def check_linear_modules(model: nn.Module, names: Sequence[str], owner: str, group_size: int | None) -> None:
    """Raise a ``ValueError`` unless every name is a plain (or already fake-quantized) ``nn.Linear`` of ``model``, with
    ``in_features`` divisible by ``group_size`` when given (ternary/binary ``QuantLinear`` modules are refused)."""
    from torchao.quantization.qat import FakeQuantizedLinear

    modules = dict(model.named_modules())
    for name in names:
        module = modules.get(name)
        if type(module) is not nn.Linear and not isinstance(module, FakeQuantizedLinear):
            found = "no module" if module is None else f"a {type(module).__name__}"
            raise ValueError(
                f"`{owner}` quantizes nn.Linear weights, but the target `{name}.weight` belongs to {found}. "
                "HINT: restrict `targets` to the weights of nn.Linear modules."
            )
        if module.weight.dtype not in _FLOAT_DTYPES:
            raise ValueError(
                f"`{owner}` cannot quantize `{name}`: its weight is {module.weight.dtype}; torchao's quantizers take "
                f"{[str(dtype) for dtype in _FLOAT_DTYPES]}. HINT: train in float32 (or bfloat16)."
            )
        if group_size is not None and module.in_features % group_size:
            raise ValueError(
                f"`{owner}(group_size={group_size})` is invalid for `{name}`: its {module.in_features} input features "
                "are not a multiple of the group size. HINT: choose a group size dividing every targeted in_features, "
                "or exclude that module."
            )


def qat_prepare_(
    model: nn.Module,
    names: Sequence[str],
    weights: WeightFormat = "int8",
    activations: ActivationFormat = "int8",
    group_size: int = DEFAULT_GROUP_SIZE,
) -> list[str]:
    """Swap the ``nn.Linear`` modules ``names`` of ``model`` for fake-quantized ones, in place.

    The new modules hold the original ``weight``/``bias`` Parameter objects (checked, re-attached if torchao ever
    made new ones), so an existing optimizer keeps training them and the state-dict keys are unchanged.

    Args:
        model: Any module; ``names`` are FQNs of its ``nn.Linear`` submodules (not ``model`` itself).
        names: Module FQNs, e.g. ``["bert.encoder.layer.0.attention.self.query"]``.
        weights, activations, group_size: See :func:`qat_base_config`.

    Returns:
        The swapped names, in ``model.named_modules()`` order.

    Example:
        >>> model = nn.Sequential(nn.Linear(32, 4)); qat_prepare_(model, ["0"])
        ['0']
    """
    check_qat_arguments("qat_prepare_", weights, activations, group_size)
    check_linear_modules(model, names, "qat_prepare_", group_size if weights == "int4" else None)
    from torchao.quantization import quantize_
    from torchao.quantization.qat import FakeQuantizedLinear, QATConfig

    wanted = set(names)
    originals = {name: (module.weight, module.bias) for name, module in model.named_modules() if name in wanted}
    config = QATConfig(qat_base_config(weights, activations, group_size), step="prepare")
    quantize_(model, config, filter_fn=lambda module, fqn: fqn in wanted and type(module) is nn.Linear)
    swapped = []
    for name, module in model.named_modules():
        if name in originals and isinstance(module, FakeQuantizedLinear):
            weight, bias = originals[name]
            if module.weight is not weight:
                module.weight = weight
            if module.bias is not bias:
                module.bias = bias
            swapped.append(name)
    return swapped


def fake_quantized_formats(model: nn.Module) -> dict[str, tuple[str, str | None, int]]:
    """``name -> (weights, activations, group_size)`` of every torchao ``FakeQuantizedLinear`` in ``model``.

    Raises:
        ValueError: A module's fake quantization is none that :func:`qat_base_config` makes.
    """
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.qat import FakeQuantizedLinear, IntxFakeQuantizeConfig

    formats = {}
    for name, module in model.named_modules():
        if not isinstance(module, FakeQuantizedLinear):
            continue
        weight_quantizer = getattr(module, "weight_fake_quantizer", None)
        config = getattr(weight_quantizer, "config", None)
        if not isinstance(config, IntxFakeQuantizeConfig) or config.dtype not in (torch.int8, torch.int4):
            raise ValueError(f"`{name}` is fake-quantized with {config!r}; expected int8 or int4 integer weights.")
        if config.dtype == torch.int8 and isinstance(config.granularity, PerAxis):
            weights, group_size = "int8", DEFAULT_GROUP_SIZE
        elif config.dtype == torch.int4 and isinstance(config.granularity, PerGroup):
            weights, group_size = "int4", config.granularity.group_size
        else:
            raise ValueError(f"`{name}` is fake-quantized with {config!r}; expected int8 per row or int4 per group.")
        activations = None if module.activation_fake_quantizer is None else "int8"
        formats[name] = (weights, activations, group_size)
    return formats


def qat_convert_(model: nn.Module) -> list[str]:
    """Convert every fake-quantized Linear of ``model`` into an ``nn.Linear`` with a torchao int8/int4 weight, in place.

    Each module is converted with the post-training config matching its own fake quantization, so the outputs are
    those of the fake-quantized model (measured equal to the last bit on CPU for both formats).

    Returns:
        The converted names.

    Example:
        >>> model = nn.Sequential(nn.Linear(32, 4))
        >>> qat_prepare_(model, ["0"])
        ['0']
        >>> qat_convert_(model)
        ['0']
    """
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    formats = fake_quantized_formats(model)
    for settings in set(formats.values()):
        names = {name for name, value in formats.items() if value == settings}
        config = QATConfig(qat_base_config(*settings), step="convert")
        quantize_(model, config, filter_fn=lambda module, fqn, names=names: fqn in names)
    return list(formats)


def ptq_quantize_(
    model: nn.Module,
    names: Sequence[str],
    weights: WeightFormat = "int8",
    activations: ActivationFormat = "int8",
    group_size: int = DEFAULT_GROUP_SIZE,
) -> list[str]:
    """Post-training quantization of the ``nn.Linear`` modules ``names`` with the same formats, in place."""
    check_qat_arguments("ptq_quantize_", weights, activations, group_size)
    check_linear_modules(model, names, "ptq_quantize_", group_size if weights == "int4" else None)
    from torchao.quantization import quantize_

    wanted = set(names)
    quantize_(model, qat_base_config(weights, activations, group_size), filter_fn=lambda m, fqn: fqn in wanted)
    return [name for name, _ in model.named_modules() if name in wanted]


def torchao_quantized_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """``name -> module`` of every ``nn.Linear`` whose weight is a torchao quantized tensor (none, without importing
    torchao, when nothing has imported it yet)."""
    if "torchao" not in sys.modules:
        return {}
    from torchao.utils import TorchAOBaseTensor

    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and isinstance(module.weight, TorchAOBaseTensor)
    }
