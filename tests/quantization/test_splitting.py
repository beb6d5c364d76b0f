import itertools
import random

import pytest
import torch

from lightning_compress.quantization import (
    adaptive_split_plan,
    bwn_quantize,
    knapsack_select,
    split_sensitivity,
    ternary_weight_split,
    twn_quantize,
)
from lightning_compress.quantization.splitting import group_sensitivity, measure_split_gains, split_groups, split_probes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim", [None, 0])
@pytest.mark.parametrize("shape", [(5000,), (64, 80), (30, 7)])
def test_split_keeps_latent_and_quantized_equivalence(dtype, dim, shape):
    """docs/methods.md#split-identities: w1 + w2 = w and BWN(w1) + BWN(w2) = TWN(w), layer-wise and row-wise."""
    if dim is not None and len(shape) == 1:
        pytest.skip("row-wise needs a matrix")
    torch.manual_seed(0)
    w = torch.randn(*shape, dtype=dtype)
    w1, w2 = ternary_weight_split(w, dim)
    scale = w.abs().max()
    assert ((w1 + w2 - w).abs().max() / scale) <= 1e-6
    difference = bwn_quantize(w1, dim) + bwn_quantize(w2, dim) - twn_quantize(w, dim)
    assert (difference.abs().max() / scale) <= 1e-6


def test_split_on_a_hand_checked_vector():
    w = torch.tensor([0.9, -0.05, 0.1, -1.2], dtype=torch.float64)
    # Δ = 0.7 · 0.5625 = 0.39375: I = {0.9, -1.2}, J = {0.1}, K = {-0.05}; S_I = 2.1, S_J = 0.1, S_K = 0.05
    a = (2.1 + 0.05 - 0.1) / (2 * 2.1)
    b = (4 / 2 * 2.1 - 2.25) / (2 * 2)
    w1, w2 = ternary_weight_split(w)
    assert torch.allclose(w1, torch.tensor([a * 0.9, b, b + 0.1, a * -1.2], dtype=torch.float64))
    assert torch.allclose(w2, torch.tensor([(1 - a) * 0.9, -b - 0.05, -b, (1 - a) * -1.2], dtype=torch.float64))


def test_printed_eq_5_8_would_break_the_equivalence():
    """Erratum docs/methods.md#swapped-sets-in-the-split-coefficient: with J and K swapped in a the quantized
    equivalence fails when S_J != S_K."""
    torch.manual_seed(0)
    w = torch.randn(5000, dtype=torch.float64)
    w1, w2 = ternary_weight_split(w)
    assert torch.allclose(bwn_quantize(w1) + bwn_quantize(w2), twn_quantize(w), atol=1e-12)


def test_all_zero_rows_split_to_zero_without_warning(recwarn):
    w = torch.randn(3, 8)
    w[1] = 0
    w1, w2 = ternary_weight_split(w, 0)
    assert not w1[1].any() and not w2[1].any()
    assert not [x for x in recwarn if "ternary_weight_split" in str(x.message)]


def _brute_force(values, costs, budget):
    best_value = -1.0
    for choice in itertools.product([False, True], repeat=len(values)):
        cost = sum(c for c, take in zip(costs, choice) if take)
        value = sum(v for v, take in zip(values, choice) if take)
        if cost <= budget and value > best_value + 1e-12:
            best_value = value
    return best_value


@pytest.mark.parametrize("seed", range(30))
def test_knapsack_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    values = [rng.uniform(-0.2, 3.0) for _ in range(n)]
    costs = [rng.choice([1, 2, 3, 4, 6, 8]) * 768 for _ in range(n)]
    budget = rng.randint(0, sum(costs))
    chosen = knapsack_select(values, costs, budget)
    assert sum(c for c, take in zip(costs, chosen) if take) <= budget
    value = sum(v for v, take in zip(values, chosen) if take)
    assert value == pytest.approx(_brute_force(values, costs, budget), abs=1e-9)


def test_knapsack_errors():
    with pytest.raises(ValueError, match="costs must be ints >= 0"):
        knapsack_select([1.0], [-1], 3)
    with pytest.raises(ValueError, match=r"budget=-1\) is invalid"):
        knapsack_select([1.0], [1], -1)


def test_sensitivity_and_plan():
    u = split_sensitivity({"qk": 2.0, "ffn": 8.0}, {"qk": 4, "ffn": 8}, [1.0, 3.0], [6, 6])
    assert u[(0, "qk")] == pytest.approx(0.5 + 1 / 6) and u[(1, "ffn")] == pytest.approx(1.0 + 0.5)
    assert adaptive_split_plan({"a": 1.0, "b": 0.5, "c": 0.6}, {"a": 2, "b": 1, "c": 1}, 2) == ["b", "c"]


def test_split_groups_probes_and_group_sensitivity_on_hand_numbers():
    names = ["m.embeddings.word_embeddings", "m.encoder.layer.0.attention.self.query"]
    names += ["m.encoder.layer.0.attention.self.key", "m.encoder.layer.0.output.dense", "m.pooler.dense"]
    split = split_groups(names)
    assert list(split.groups) == ["m.embeddings.word_embeddings", "layer0/mha_qk", "layer0/ffn_out", "m.pooler.dense"]
    assert split.parts == {"mha_qk": names[1:3], "ffn_out": [names[3]]} and split.layers == {"0": names[1:4]}
    probes = split_probes(split)
    items = ["item:m.embeddings.word_embeddings", "item:m.pooler.dense"]
    assert list(probes) == ["part:mha_qk", "part:ffn_out", "layer:0", *items]
    sizes = dict(zip(names, [10, 4, 4, 8, 2]))
    gains = {"part:mha_qk": 4.0, "part:ffn_out": 2.0, "layer:0": 8.0, items[0]: 5.0, items[1]: 1.0}
    u = group_sensitivity(split, sizes, gains)
    # u_ij = g_i/|θ_i| + g_j/|θ_j| (4/8 + 8/16, 2/8 + 8/16), then the single modules g/|θ| (5/10, 1/2)
    assert list(u.items()) == [
        ("layer0/mha_qk", 1.0),
        ("layer0/ffn_out", 0.75),
        ("m.embeddings.word_embeddings", 0.5),
        ("m.pooler.dense", 0.5),
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_measure_split_gains_is_the_kl_to_the_full_precision_output(dtype):
    class Flagged(torch.nn.Linear):
        """Full precision shifts class 0 by +1 (a stand-in for a quantized module)."""

        quantize_weights = True

        def forward(self, x):
            return super().forward(x) + (0.0 if self.quantize_weights else torch.tensor([1.0, 0.0], dtype=x.dtype))

    torch.manual_seed(0)
    student = torch.nn.Sequential(Flagged(3, 2, dtype=dtype)).train()
    x = torch.randn(4, 3, dtype=dtype)
    (gain,) = measure_split_gains(student, {"0": student[0]}, [((x,), {})], {"item:0": ["0"]}, teacher=None)
    with torch.no_grad():
        quantized = student(x)
    p = torch.softmax(quantized + torch.tensor([1.0, 0.0], dtype=dtype), -1)
    kl = (p * (p.log() - torch.log_softmax(quantized, -1))).sum(-1).mean()
    assert gain == pytest.approx(float(kl), rel=1e-5) and gain > 0
    assert student.training and student[0].quantize_weights  # modes and flags restored
