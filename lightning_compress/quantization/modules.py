"""Quantized modules and the conversions between them (docs/methods.md#ternary-weight-splitting).

* :class:`QuantLinear` / :class:`QuantEmbedding`: latent full-precision weights, quantized (ternary or binary) in
  the forward with an identity STE; a Linear also quantizes its input (and, for the attention projections, its
  output, i.e. both operands of ``Q·Kᵀ`` and the ``V`` operand of ``P·V``).
* :class:`SplitBinaryLinear` / :class:`SplitBinaryEmbedding`: two binary branches ``BWN(w₁) + BWN(w₂)`` made by
  :func:`split_model_` from a ternary module, with the same forward function.

:func:`quantize_model_` swaps the modules of a Hugging Face encoder (BERT, XLM-R, MiniLM, ...) in place,
:func:`split_model_` turns its ternary modules into split binary ones. Parameter names of the user's model are kept
(``...query.weight``, ``...word_embeddings.weight``); a split module holds ``weight1`` and ``weight2`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_compress.deprecation import deprecated_alias
from lightning_compress.quantization.quantizers import (
    ACT_QUANTIZERS,
    TWN_THRESHOLD_FACTOR,
    bwn_quantize,
    bwn_scales,
    split_binary_quantize,
    twn_quantize,
    twn_scales,
)
from lightning_compress.quantization.splitting import ternary_weight_split

#: Linear modules quantized by default (docs/methods.md#which-parameters-each-method-touches): every Linear of the
#: encoder blocks, and the pooler.
DEFAULT_LINEAR_PATTERN = r"(^|\.)(encoder\.layers?\.\d+|pooler)\."
#: Embedding quantized by default: the word embedding (row-wise); position and token-type stay full precision.
DEFAULT_EMBEDDING_PATTERN = r"(^|\.)word_embeddings$"
#: Linear modules whose output is a matmul operand too: the attention projections Q, K (Q·Kᵀ) and V (P·V).
ATTENTION_OPERAND_PATTERN = r"(^|\.)self\.(query|key|value)$"
#: Activation bit-widths accepted (``None``: full-precision activations).
ACT_BITS = (2, 3, 4, 5, 6, 7, 8)
WEIGHT_KINDS = ("ternary", "binary")

WeightKind = Literal["ternary", "binary"]


def _quantize_weight(weight: Tensor, kind: str, dim: int | None, threshold_factor: float) -> Tensor:
    if kind == "ternary":
        return twn_quantize(weight, dim, threshold_factor)
    return bwn_quantize(weight, dim)


def _quantize_rows(rows: Tensor, kind: str, threshold_factor: float) -> Tensor:
    """Row-wise quantization of gathered embedding rows ``... x hidden`` (one scale per row)."""
    flat = rows.reshape(-1, rows.shape[-1])
    return _quantize_weight(flat, kind, 0, threshold_factor).reshape(rows.shape)


def _init_quantized(module: nn.Module, owner: str, weights: WeightKind, threshold_factor: float) -> None:
    """Set the quantization state of a new ``QuantLinear``/``QuantEmbedding`` (``owner``: its class, for errors)."""
    _check_weights(owner, weights)
    module.weights = weights
    module.threshold_factor = threshold_factor
    # ``False`` runs the full-precision latent weights (used to measure the sensitivity of a module).
    module.quantize_weights = True
    # ``True`` once ``freeze_`` replaced the latent weight by its quantized values.
    module.frozen = False


def _quantized_linear(module: nn.Module, x: Tensor, weight: Tensor) -> Tensor:
    """``Q_out(weight · Q_a(x) + b)`` with the ``act_quantizer`` and ``output_quantizer`` of ``module`` (each may be
    ``None``: no quantization there) and its ``bias``."""
    if module.act_quantizer is not None:
        x = module.act_quantizer(x)
    out = F.linear(x, weight, module.bias)
    if module.output_quantizer is not None:
        out = module.output_quantizer(out)
    return out


class QuantLinear(nn.Linear):
    r"""``y = Q_out(Q_w(W) · Q_a(x) + b)``: a Linear with quantized weights and activations
    (docs/methods.md#weight-quantizers, §4.3).

    ``Q_w`` is TWN (``weights="ternary"``) or BWN (``"binary"``) with one scale per matrix; ``Q_a`` quantizes the
    input (``None``: full precision); ``Q_out`` the output (only the attention projections, else ``None``). The
    latent ``weight`` and the ``bias`` stay full precision and are trained through the STE.

    Example:
        >>> from lightning_compress.quantization.quantizers import UniformActQuantizer
        >>> layer = QuantLinear.from_linear(nn.Linear(4, 2), "ternary", UniformActQuantizer(8))
        >>> layer(torch.randn(3, 4)).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        weights: WeightKind = "ternary",
        act_quantizer: nn.Module | None = None,
        output_quantizer: nn.Module | None = None,
        threshold_factor: float = TWN_THRESHOLD_FACTOR,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        _init_quantized(self, "QuantLinear", weights, threshold_factor)
        self.act_quantizer = act_quantizer
        self.output_quantizer = output_quantizer

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        weights: WeightKind = "ternary",
        act_quantizer: nn.Module | None = None,
        output_quantizer: nn.Module | None = None,
        threshold_factor: float = TWN_THRESHOLD_FACTOR,
    ) -> QuantLinear:
        """Wrap ``linear``'s own ``weight``/``bias`` parameters (shared, not copied)."""
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.in_features, module.out_features = linear.in_features, linear.out_features
        module.weight = linear.weight
        module.bias = linear.bias
        _init_quantized(module, "QuantLinear", weights, threshold_factor)
        module.act_quantizer = act_quantizer
        module.output_quantizer = output_quantizer
        module.train(linear.training)
        return module

    def quantized_weight(self) -> Tensor:
        """``Q_w(W)`` (an ``out x in`` tensor), with an STE to the latent weight; the stored weight once frozen."""
        if getattr(self, "frozen", False):
            return self.weight
        return _quantize_weight(self.weight, self.weights, None, self.threshold_factor)

    @torch.no_grad()
    def freeze_(self) -> QuantLinear:
        """Replace the latent weight by ``Q_w(W)`` once, for inference: no quantizer runs on the weight any more.

        The weight keeps its name and fp32 storage (the same bytes as a dense Linear) and no longer takes gradients;
        its values are ``{-α, 0, α}`` (ternary) or ``±α`` (binary), which quantize to themselves, so the bit-packed
        export of a frozen module is that of the module before freezing.
        """
        if not self.frozen:
            self.weight = nn.Parameter(self.quantized_weight().detach().clone(), requires_grad=False)
            self.frozen = True
        return self

    def forward(self, x: Tensor) -> Tensor:
        weight = self.quantized_weight() if self.quantize_weights or getattr(self, "frozen", False) else self.weight
        return _quantized_linear(self, x, weight)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weights={self.weights}"


class _SplitBranches(nn.Module):
    """Two latent binary branches ``weight1`` / ``weight2`` with float64 scale offsets ``scale_offset1`` /
    ``scale_offset2`` (the state shared by :class:`SplitBinaryLinear` and :class:`SplitBinaryEmbedding`)."""

    #: The BWN scale groups: ``None``, one per matrix (Linear); ``0``, one per row (Embedding).
    _scale_dim: int | None = None

    def _init_branches(self, weight1: Tensor, weight2: Tensor, offsets: int) -> None:
        self.weight1 = nn.Parameter(weight1.detach().clone())
        self.weight2 = nn.Parameter(weight2.detach().clone())
        self.quantize_weights = True
        self.frozen = False
        self.register_buffer("scale_offset1", torch.zeros(offsets, dtype=torch.float64, device=weight1.device))
        self.register_buffer("scale_offset2", torch.zeros(offsets, dtype=torch.float64, device=weight1.device))

    @property
    def weights(self) -> str:
        return "split"

    def branch_scales(self) -> tuple[Tensor, Tensor]:
        """The scales ``mean|W_k| + c_k`` of the two binary branches (float64: one per matrix, or one per row)."""
        _require_unfrozen(self, "branch_scales")
        return (
            bwn_scales(self.weight1, self._scale_dim) + self.scale_offset1,
            bwn_scales(self.weight2, self._scale_dim) + self.scale_offset2,
        )

    def quantized_weight(self) -> Tensor:
        """``BWN(W₁) + BWN(W₂)`` (the whole matrix or table) with the scale offsets, with STEs to both latent
        weights; the stored sum once frozen."""
        if getattr(self, "frozen", False):
            return self.weight
        offsets = (self.scale_offset1, self.scale_offset2)
        return split_binary_quantize(self.weight1, self.weight2, self._scale_dim, offsets)

    @torch.no_grad()
    def freeze_(self) -> _SplitBranches:
        """Replace the two latent branches by their quantized sum ``BWN(W₁) + BWN(W₂)``, computed once (inference).

        The module then holds one fp32 ``weight`` (no gradient; for a Linear, and its bias): the bytes of a dense
        module, half those of the two latent branches; the scale offsets, folded into that sum, are dropped. Its
        outputs are those before freezing, bit for bit. A frozen split module cannot be bit-packed again (the sum
        does not keep the two sign bits apart): export before freezing.
        """
        if self.frozen:
            return self
        weight = self.quantized_weight().detach().clone()
        for name in ("weight1", "weight2", "scale_offset1", "scale_offset2"):
            delattr(self, name)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.frozen = True
        return self


class SplitBinaryLinear(_SplitBranches):
    r"""``y = Q_out((BWN(W₁) + BWN(W₂)) · Q_a(x) + b)``: two binary branches with one bias
    (docs/methods.md#the-splitting-operator).

    Equivalent to applying the binary matrix ``[W₁ W₂]`` to ``[x; x]``: the cost of one full-width binary layer.
    The bias is added once (docs/methods.md#bias-of-a-split-layer). Built by :func:`split_model_` from a ternary
    :class:`QuantLinear`, whose
    activation quantizers it keeps, so its forward equals the ternary layer's at the split.

    The buffers ``scale_offset1`` / ``scale_offset2`` (float64, one entry: the matrix is one group) are added to
    the BWN scales ``mean|W_k|``. :func:`split_module` sets them to ``α_t/2 - mean|W_k|`` (~1e-7·α: the rounding of
    the split latents to fp32), so that the quantized weight equals ``TWN(W)`` bit for bit; they are kept, unchanged,
    during binary fine-tuning, saved in the state dict, and folded into the exported scales.
    """

    def __init__(
        self,
        weight1: Tensor,
        weight2: Tensor,
        bias: nn.Parameter | None,
        act_quantizer: nn.Module | None = None,
        output_quantizer: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if weight1.shape != weight2.shape or weight1.dim() != 2:
            raise ValueError(f"SplitBinaryLinear needs two `out x in` weights, got {weight1.shape}, {weight2.shape}.")
        self.out_features, self.in_features = weight1.shape
        self._init_branches(weight1, weight2, 1)
        self.bias = bias
        self.act_quantizer = act_quantizer
        self.output_quantizer = output_quantizer

    def forward(self, x: Tensor) -> Tensor:
        if getattr(self, "frozen", False):
            weight = self.weight
        else:
            weight = self.quantized_weight() if self.quantize_weights else self.weight1 + self.weight2
        return _quantized_linear(self, x, weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class QuantEmbedding(nn.Embedding):
    """An embedding whose rows are ternarized or binarized row-wise (one scale per row, Bai §5.3.1).

    Only the looked-up rows are quantized (row-wise scales depend on their own row only), so a step costs
    ``batch x length`` rows, not the whole table.
    """

    @classmethod
    def from_embedding(
        cls, embedding: nn.Embedding, weights: WeightKind = "ternary", threshold_factor: float = TWN_THRESHOLD_FACTOR
    ) -> QuantEmbedding:
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        for attribute in ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type"):
            setattr(module, attribute, getattr(embedding, attribute))
        module.scale_grad_by_freq, module.sparse = embedding.scale_grad_by_freq, embedding.sparse
        module.weight = embedding.weight
        _init_quantized(module, "QuantEmbedding", weights, threshold_factor)
        module.train(embedding.training)
        return module

    def quantized_weight(self) -> Tensor:
        """The whole quantized table (``vocab x hidden``), for export and tests; the stored table once frozen."""
        if getattr(self, "frozen", False):
            return self.weight
        return _quantize_weight(self.weight, self.weights, 0, self.threshold_factor)

    @torch.no_grad()
    def freeze_(self) -> QuantEmbedding:
        """Replace the latent table by its row-wise quantized values once (see :meth:`QuantLinear.freeze_`)."""
        if not self.frozen:
            self.weight = nn.Parameter(self.quantized_weight().detach().clone(), requires_grad=False)
            self.frozen = True
        return self

    def forward(self, input_ids: Tensor) -> Tensor:
        rows = F.embedding(input_ids, self.weight, self.padding_idx)
        if not self.quantize_weights or getattr(self, "frozen", False):
            return rows
        return _quantize_rows(rows, self.weights, self.threshold_factor)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weights={self.weights}"


class SplitBinaryEmbedding(_SplitBranches):
    """Two row-wise binary tables summed, ``BWN_row(E₁)[ids] + BWN_row(E₂)[ids]``, split from a ternary embedding.

    Like :class:`SplitBinaryLinear`, it holds per-row float64 scale offsets ``scale_offset1`` / ``scale_offset2``
    (``α_t/2 - mean|E_k[row]|`` from the split), gathered with the looked-up rows.
    """

    _scale_dim = 0

    def __init__(self, weight1: Tensor, weight2: Tensor, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight1.shape
        self.padding_idx = padding_idx
        self._init_branches(weight1, weight2, self.num_embeddings)

    def forward(self, input_ids: Tensor) -> Tensor:
        if getattr(self, "frozen", False):
            return F.embedding(input_ids, self.weight, self.padding_idx)
        rows1 = F.embedding(input_ids, self.weight1, self.padding_idx)
        rows2 = F.embedding(input_ids, self.weight2, self.padding_idx)
        if not self.quantize_weights:
            return rows1 + rows2
        flat1, flat2 = rows1.reshape(-1, rows1.shape[-1]), rows2.reshape(-1, rows2.shape[-1])
        ids = input_ids.reshape(-1)
        offsets = (self.scale_offset1[ids], self.scale_offset2[ids])
        return split_binary_quantize(flat1, flat2, 0, offsets).reshape(rows1.shape)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


QUANT_MODULES = (QuantLinear, QuantEmbedding, SplitBinaryLinear, SplitBinaryEmbedding)


def _require_unfrozen(module: nn.Module, what: str) -> None:
    if getattr(module, "frozen", False):
        raise ValueError(
            f"`{type(module).__name__}.{what}()` needs the two latent branches, but the module is frozen "
            "(`freeze_()` summed them). HINT: export or fine-tune the model before freezing it; "
            "`load_compressed(..., freeze=False)` gives unfrozen modules."
        )


def freeze_quantized_(model: nn.Module) -> list[str]:
    """Freeze every ternary/binary/split module of ``model`` for inference (``freeze_()``), in place.

    Each module's weight becomes its quantized values, computed once: the forward no longer re-quantizes (a frozen
    model runs the dense model's matmuls plus its activation quantizers), the latent fp32 weights are freed (a split
    module keeps one matrix instead of two) and the outputs are unchanged, bit for bit.

    Returns:
        The names of the frozen modules.

    Raises:
        ValueError: ``model`` holds no ternary/binary module.

    Example:
        >>> quantize_model_(bert_classifier, "ternary"); freeze_quantized_(bert_classifier)[:1]  # doctest: +SKIP
        ['bert.embeddings.word_embeddings']
    """
    modules = quantized_modules(model)
    if not modules:
        raise ValueError(
            f"freeze_quantized_ found no ternary/binary module in {type(model).__name__}: it freezes models quantized "
            "by `quantize_model_` / `TernaryWeightSplitting` (or loaded by `load_compressed`)."
        )
    for module in modules.values():
        module.freeze_()
    return list(modules)


def _check_weights(owner: str, weights: object) -> None:
    if weights not in WEIGHT_KINDS:
        hint = " HINT: 2-bit weights are `'ternary'`, 1-bit weights `'binary'`." if isinstance(weights, int) else ""
        raise ValueError(f"`{owner}(weights={weights!r})` is unsupported: expected one of {list(WEIGHT_KINDS)}.{hint}")


def check_act_arguments(owner: str, act_bits: object, act_quantizer: object) -> None:
    """Validate an activation bit-width and quantizer name (shared by the functions and the callback)."""
    if act_bits is not None:
        if isinstance(act_bits, bool) or not isinstance(act_bits, int):
            raise TypeError(
                f"`{owner}(act_bits={act_bits!r})` is invalid: expected an int in {list(ACT_BITS)} or None."
            )
        if act_bits not in ACT_BITS:
            raise ValueError(
                f"`{owner}(act_bits={act_bits!r})` is unsupported: expected an int in {list(ACT_BITS)} "
                "(8 or 4 in BinaryBERT), or None for full-precision activations."
            )
    if act_quantizer not in ACT_QUANTIZERS:
        raise ValueError(
            f"`{owner}(act_quantizer={act_quantizer!r})` is invalid: expected one of {list(ACT_QUANTIZERS)}."
        )


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    owner, _, attribute = name.rpartition(".")
    setattr(root.get_submodule(owner) if owner else root, attribute, module)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(re.search(pattern, name) for pattern in patterns)


def quantize_model_(
    model: nn.Module,
    weights: WeightKind = "ternary",
    act_bits: int | None = 8,
    act_quantizer: Literal["uniform", "lsq"] = "uniform",
    *,
    linear_targets: str | Sequence[str] = DEFAULT_LINEAR_PATTERN,
    embedding_targets: str | Sequence[str] | None = DEFAULT_EMBEDDING_PATTERN,
    attention_operands: bool = True,
    threshold_factor: float = TWN_THRESHOLD_FACTOR,
) -> list[str]:
    """Swap the Linear and word-embedding modules of ``model`` for quantized ones, in place
    (docs/methods.md#ternary-weight-splitting).

    Defaults follow Bai §5.3.1 (docs/methods.md#which-parameters-each-method-touches): every Linear of the encoder
    blocks and the pooler is quantized
    layer-wise and its input quantized to ``act_bits``; the Q/K/V projection outputs too (operands of the attention
    products); the word embedding is quantized row-wise; position/token-type embeddings, LayerNorm, biases and
    the task head stay full precision. Parameters are shared with the original modules (no copy), so names and
    values are unchanged.

    Args:
        model: Any module holding a Hugging Face encoder (a ``*ForSequenceClassification``, a LightningModule...).
        weights: ``"ternary"`` (TWN, 2 bits) or ``"binary"`` (BWN, 1 bit).
        act_bits: Bits of the activation quantizers, or ``None`` for full-precision activations.
        act_quantizer: ``"uniform"`` (absmax scale per tensor; BinaryBERT's 8-bit) or ``"lsq"`` (learned step
            size; BinaryBERT's 4-bit).
        linear_targets: Regexes over module names selecting the Linear modules.
        embedding_targets: Regexes selecting the embeddings quantized row-wise (``None``: none).
        attention_operands: Quantize the outputs of the ``self.query/key/value`` projections too.
        threshold_factor: The TWN ``0.7``.

    Returns:
        The names of the swapped modules.

    Raises:
        ValueError: Unsupported bits or quantizer, or no Linear module matched.

    Example:
        >>> quantize_model_(bert_classifier, weights="ternary", act_bits=8)[:1]  # doctest: +SKIP
        ['bert.encoder.layer.0.attention.self.query']
    """
    _check_weights("quantize_model_", weights)
    check_act_arguments("quantize_model_", act_bits, act_quantizer)
    linear_patterns = [linear_targets] if isinstance(linear_targets, str) else list(linear_targets)
    embedding_patterns = (
        []
        if embedding_targets is None
        else [embedding_targets]
        if isinstance(embedding_targets, str)
        else list(embedding_targets)
    )

    def act() -> nn.Module | None:
        return None if act_bits is None else ACT_QUANTIZERS[act_quantizer](act_bits)

    linears = require_linear(model)
    chosen = [(n, m) for n, m in linears if _matches(n, linear_patterns)]
    if not chosen:
        raise ValueError(
            f"quantize_model_: no Linear module matched {linear_patterns}; first Linear names are "
            f"{[n for n, _ in linears[:6]]}. HINT: pass `linear_targets=` regexes naming the encoder Linears."
        )
    swapped = []
    for name, linear in chosen:
        output = act() if attention_operands and re.search(ATTENTION_OPERAND_PATTERN, name) else None
        _set_submodule(model, name, QuantLinear.from_linear(linear, weights, act(), output, threshold_factor))
        swapped.append(name)
    for name, embedding in [(n, m) for n, m in model.named_modules() if type(m) is nn.Embedding]:
        if _matches(name, embedding_patterns):
            _set_submodule(model, name, QuantEmbedding.from_embedding(embedding, weights, threshold_factor))
            swapped.append(name)
    return swapped


def require_linear(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The ``(name, module)`` of every ``nn.Linear`` of ``model``; a ``ValueError`` when there is none."""
    linears = [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear]
    if not linears:
        raise ValueError(
            f"quantize_model_ found no nn.Linear module in {type(model).__name__}; it quantizes the Linear layers of a "
            "transformer encoder (BERT, XLM-R, MiniLM)."
        )
    return linears


@torch.no_grad()
def split_module(module: QuantLinear | QuantEmbedding) -> SplitBinaryLinear | SplitBinaryEmbedding:
    """The split binary equivalent of one ternary module (docs/methods.md#the-splitting-operator); activation
    quantizers are shared."""
    if not isinstance(module, (QuantLinear, QuantEmbedding)) or module.weights != "ternary":
        raise ValueError(f"Only ternary QuantLinear/QuantEmbedding modules can be split, got {module!r}.")
    dim = None if isinstance(module, QuantLinear) else 0
    w1, w2 = ternary_weight_split(module.weight, dim, module.threshold_factor)
    if isinstance(module, QuantLinear):
        split = SplitBinaryLinear(w1, w2, module.bias, module.act_quantizer, module.output_quantizer)
    else:
        split = SplitBinaryEmbedding(w1, w2, module.padding_idx)
    # c_k = α_t/2 - α_k with the very scales the forward computes: α_k + c_k = α_t/2 exactly in float64 (Sterbenz,
    # α_k is within ~1 ulp of α_t/2), so BWN(w1) + BWN(w2) = TWN(w) bit for bit despite the fp32 latents
    _, alpha = twn_scales(module.weight, dim, module.threshold_factor)
    split.scale_offset1.copy_(alpha / 2 - bwn_scales(split.weight1, dim))
    split.scale_offset2.copy_(alpha / 2 - bwn_scales(split.weight2, dim))
    return split.train(module.training)


def split_model_(model: nn.Module, plan: Sequence[str] | None = None) -> list[str]:
    """Split ternary modules of ``model`` into two binary branches each, in place (Bai §5.3,
    docs/methods.md#the-splitting-operator).

    The forward function is unchanged at the moment of splitting
    (docs/methods.md#split-model-reproduces-the-ternary-logits); the split model then trains
    as a binary model. Binary modules (mixed precision of adaptive splitting) are left as they are.

    Args:
        model: A model converted by :func:`quantize_model_` with ``weights="ternary"``.
        plan: Names of the modules to split; ``None`` splits every ternary module.

    Returns:
        The names of the split modules.

    Raises:
        ValueError: ``model`` has no ternary module (e.g. it was never quantized), or ``plan`` names one it lacks.
    """
    ternary = ternary_modules(model)
    if not ternary:
        raise ValueError(
            f"split_model_ found no ternary QuantLinear/QuantEmbedding in {type(model).__name__}: splitting needs a "
            "trained ternary model. HINT: call `quantize_model_(model, weights='ternary')` and train it first."
        )
    names = list(ternary) if plan is None else list(plan)
    missing = [name for name in names if name not in ternary]
    if missing:
        raise ValueError(f"split_model_: plan names modules that are not ternary modules of the model: {missing[:5]}.")
    for name in names:
        _set_submodule(model, name, split_module(ternary[name]))
    return names


def ternary_modules(model: nn.Module) -> dict[str, QuantLinear | QuantEmbedding]:
    """Name -> module of every ternary (not yet split) ``QuantLinear``/``QuantEmbedding`` of ``model``."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, (QuantLinear, QuantEmbedding)) and module.weights == "ternary"
    }


def quantized_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> module of every quantized module of ``model``."""
    return {name: module for name, module in model.named_modules() if isinstance(module, QUANT_MODULES)}


def split_to_match_state_dict_(model: nn.Module, state_dict: dict[str, Tensor], prefix: str = "") -> list[str]:
    """Split the ternary modules whose ``weight1`` the ``state_dict`` holds, so that it loads (resume after a split)."""
    plan = [name for name in ternary_modules(model) if f"{prefix}{name}.weight1" in state_dict]
    if plan:
        split_model_(model, plan)
    return plan


def split_on_load_(root: nn.Module, model: nn.Module, prefix: str = "") -> RemovableHandle:
    """Make ``root.load_state_dict`` first split the ternary modules of ``model`` (the submodule of ``root`` at FQN
    ``prefix``) that the loaded state holds split (:func:`split_to_match_state_dict_`), so that a checkpoint written
    after the split loads into a model that has not split yet. Returns the hook's handle."""
    start = f"{prefix}." if prefix else ""

    def conform(module: nn.Module, state_dict: dict, load_prefix: str, *args: Any) -> None:
        split_to_match_state_dict_(model, state_dict, load_prefix + start)

    return root.register_load_state_dict_pre_hook(conform)


# Deprecated names (removed in 0.2.0): the trailing `_` marks functions that change their argument in place.
quantize_model = deprecated_alias(quantize_model_, "quantize_model")
split_model = deprecated_alias(split_model_, "split_model")
