import copy

import pytest
import torch
from transformers import BertForSequenceClassification, DistilBertConfig, DistilBertForSequenceClassification

from lightning_compress.pruning.structured import (
    kept_layers_from_masks,
    kept_neurons_from_masks,
    layer_magnitude_scores,
    layer_taylor_contributions,
    mask_neurons_,
    neuron_magnitude_scores,
    neuron_taylor_contributions,
    random_unit_scores,
    select_units,
    skip_layer_,
    slice_ffn_neurons_,
    slice_layers_,
    slim_model_,
    units_to_remove,
)
from tests.tiny import tiny_bert_config

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_neuron_magnitude_is_the_l2_norm_of_row_bias_and_column(dtype):
    up = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=dtype)  # d_ff=3, d=2
    bias = torch.tensor([0.0, 1.0, 2.0], dtype=dtype)
    down = torch.tensor([[4.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=dtype)  # d=2, d_ff=3
    scores = neuron_magnitude_scores(up, bias, down)
    # neuron 0: sqrt(9 + 0 + 16) = 5; neuron 1: sqrt(1 + 1 + 1 + 1) = 2; neuron 2: sqrt(4) = 2
    assert scores.dtype == torch.float32
    assert torch.allclose(scores, torch.tensor([5.0, 2.0, 2.0]))
    assert torch.allclose(neuron_magnitude_scores(up, None, down), torch.tensor([5.0, 3**0.5, 0.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_neuron_taylor_is_the_signed_sum_of_weight_times_gradient_over_the_neuron(dtype):
    up = torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=dtype)
    up_grad = torch.tensor([[1.0, 1.0], [-1.0, 5.0]], dtype=dtype)
    bias, bias_grad = torch.tensor([2.0, 1.0], dtype=dtype), torch.tensor([0.5, -1.0], dtype=dtype)
    down, down_grad = torch.tensor([[1.0, 1.0]], dtype=dtype), torch.tensor([[2.0, 0.0]], dtype=dtype)
    z = neuron_taylor_contributions(up, up_grad, bias, bias_grad, down, down_grad)
    # neuron 0: 1 + 2 + 2·0.5 + 1·2 = 6; neuron 1: -3 + 0 - 1 + 0 = -4
    assert torch.equal(z, torch.tensor([6.0, -4.0]))
    assert torch.equal(neuron_taylor_contributions(up, None, None, None, down, None), torch.zeros(2))


def test_neuron_scores_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"Expected W₁ `d_ff x d` and W₂ `d x d_ff`; got \(3, 2\) and \(2, 4\)"):
        neuron_magnitude_scores(torch.ones(3, 2), None, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"Expected b₁ of shape \(3,\); got \(2,\)"):
        neuron_magnitude_scores(torch.ones(3, 2), torch.ones(2), torch.ones(2, 3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_magnitude_is_the_root_mean_square_of_the_layers_weights(dtype):
    layers = [[torch.full((2, 2), 2.0, dtype=dtype)], [torch.ones(1, 3, dtype=dtype), torch.zeros(1, 1, dtype=dtype)]]
    # layer 0: sqrt(16 / 4) = 2; layer 1: sqrt(3 / 4)
    assert torch.allclose(layer_magnitude_scores(layers), torch.tensor([2.0, 0.75**0.5]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_taylor_sums_weight_times_gradient_over_every_parameter(dtype):
    layers = [
        [(torch.tensor([1.0, 2.0], dtype=dtype), torch.tensor([3.0, -1.0], dtype=dtype))],
        [(torch.ones(2, dtype=dtype), None), (torch.tensor([2.0], dtype=dtype), torch.tensor([-4.0], dtype=dtype))],
    ]
    assert torch.equal(layer_taylor_contributions(layers), torch.tensor([1.0, -8.0]))


def test_random_scores_follow_the_generator_state():
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    first = random_unit_scores((2, 4), generator)
    assert first.shape == (2, 4) and bool(((first >= 0) & (first < 1)).all())
    generator.set_state(state)
    assert torch.equal(random_unit_scores((2, 4), generator), first)


@pytest.mark.parametrize(
    "sparsity, n, expected", [(0.5, 64, 32), (0.5, 3, 2), (0.49, 3, 1), (0.1, 3, 0), (0.3, 10, 3), (0.99, 2, 2)]
)
def test_units_to_remove_rounds_half_up_to_whole_units(sparsity, n, expected):
    assert units_to_remove(sparsity, n) == expected


def test_select_units_removes_the_lowest_per_row_and_never_restores():
    scores = torch.tensor([[3.0, 1.0, 2.0, 4.0], [0.0, 5.0, 4.0, 1.0]])
    keep = select_units(scores, 1)
    assert keep.tolist() == [[True, False, True, True], [False, True, True, True]]
    # new scores would now favour the removed units; they stay removed and one more goes per row
    keep = select_units(torch.tensor([[0.0, 9.0, 1.0, 2.0], [9.0, 0.0, 3.0, 2.0]]), 2, previous=keep)
    assert keep.tolist() == [[False, False, True, True], [False, False, True, True]]
    # ties: lowest index first
    assert select_units(torch.ones(4), 2).tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match=r"n_remove=5 is invalid: expected an int in \[0, 4\]"):
        select_units(torch.ones(4), 5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_neurons_zeroes_row_bias_and_column_even_when_not_finite(dtype):
    up = torch.tensor([[1.0, 2.0], [float("nan"), 3.0], [4.0, 5.0]], dtype=dtype)
    bias = torch.tensor([1.0, float("inf"), 2.0], dtype=dtype)
    down = torch.tensor([[1.0, 2.0, 3.0]], dtype=dtype)
    mask_neurons_(up, bias, down, torch.tensor([True, False, True]))
    assert up.tolist() == [[1.0, 2.0], [0.0, 0.0], [4.0, 5.0]]
    assert bias.tolist() == [1.0, 0.0, 2.0] and down.tolist() == [[1.0, 0.0, 3.0]]


def test_kept_units_from_masks_keyed_by_block_fqn():
    neurons = kept_neurons_from_masks(
        {
            "model.bert.encoder.layer.0": torch.tensor([True, False, True]),
            "model.bert.encoder.layer.1": torch.tensor([False, True, True]),
        }
    )
    assert {k: v.tolist() for k, v in neurons.items()} == {0: [0, 2], 1: [1, 2]}
    layers = {f"bert.encoder.layer.{i}": torch.tensor(kept) for i, kept in enumerate([True, False, True])}
    assert kept_layers_from_masks(layers) == [0, 2]
    with pytest.raises(ValueError, match="is not the FQN of an encoder block"):
        kept_neurons_from_masks({"classifier": torch.tensor([True])})


def _tiny_bert(layers=2):
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_bert_config(num_hidden_layers=layers)).eval()


def test_skip_layer_makes_a_block_the_identity_and_keeps_its_parameters_in_the_graph():
    model = _tiny_bert(3)
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))
    handle = skip_layer_(model.bert.encoder.layer[1])
    out = model(input_ids=ids, output_hidden_states=True)
    assert torch.equal(out.hidden_states[2], out.hidden_states[1])  # layer 1's output is its input
    assert not torch.equal(out.hidden_states[3], out.hidden_states[2])
    out.logits.sum().backward()
    grads = [p.grad for p in model.bert.encoder.layer[1].parameters()]
    assert all(g is not None and not g.any() for g in grads)  # used by autograd (DDP), gradient exactly 0
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    handle.remove()
    again = model(input_ids=ids, output_hidden_states=True)
    assert not torch.equal(again.hidden_states[2], again.hidden_states[1])


def test_sliced_model_gives_the_logits_of_the_masked_model():
    model = _tiny_bert(3)
    ids = torch.randint(0, 64, (4, 9), generator=torch.Generator().manual_seed(1))
    blocks = model.bert.encoder.layer
    keep = select_units(torch.rand(3, 64, generator=torch.Generator().manual_seed(2)), 40)
    for block, row in zip(blocks, keep):
        up, down = block.intermediate.dense, block.output.dense
        mask_neurons_(up.weight.data, up.bias.data, down.weight.data, row)
    handle = skip_layer_(blocks[1])
    with torch.no_grad():
        masked = model(input_ids=ids).logits
    handle.remove()
    kept_neurons = {i: row.nonzero().flatten() for i, row in enumerate(keep)}
    sliced = slim_model_(copy.deepcopy(model), kept_neurons=kept_neurons, kept_layers=[0, 2])
    with torch.no_grad():
        logits = sliced(input_ids=ids).logits
    assert torch.allclose(logits, masked, atol=1e-5, rtol=0)
    assert sliced.config.intermediate_size == 24 and sliced.config.num_hidden_layers == 2
    assert len(sliced.bert.encoder.layer) == 2
    assert sliced.bert.encoder.layer[1].intermediate.dense.weight.shape == (24, 32)
    assert sliced.bert.encoder.layer[1].output.dense.weight.shape == (32, 24)
    assert sliced.bert.encoder.layer[1].attention.self.layer_idx == 1  # renumbered from 2
    assert sum(p.numel() for p in sliced.parameters()) < sum(p.numel() for p in model.parameters())


def test_sliced_model_saves_and_reloads_as_an_ordinary_transformers_model(tmp_path):
    model = _tiny_bert(2)
    slim_model_(model, kept_neurons={0: torch.arange(8), 1: torch.arange(8, 16)}, kept_layers=[1])
    model.save_pretrained(tmp_path)
    reloaded = BertForSequenceClassification.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, model(input_ids=ids).logits)
    assert reloaded.config.intermediate_size == 8 and reloaded.config.num_hidden_layers == 1


def test_slicing_keeps_dtype():
    model = _tiny_bert(2).double()
    slice_ffn_neurons_(model, {0: torch.arange(4), 1: torch.arange(4)})
    assert model.bert.encoder.layer[0].intermediate.dense.weight.dtype == torch.float64


def test_slicing_rejects_uneven_widths_and_bad_layer_lists():
    model = _tiny_bert(2)
    with pytest.raises(ValueError, match=r"kept neurons for every one of the 2 layers; got sizes \[3, 4\]"):
        slice_ffn_neurons_(model, {0: torch.arange(4), 1: torch.arange(3)})
    with pytest.raises(ValueError, match=r"missing layers \[1\]"):
        slice_ffn_neurons_(model, {0: torch.arange(4)})
    with pytest.raises(ValueError, match=r"at least one kept layer index in \[0, 2\); got \[\]"):
        slice_layers_(model, [])
    with pytest.raises(ValueError, match=r"got \[0, 5\]"):
        slice_layers_(model, [0, 5])


def test_slicing_an_unsupported_layout_names_the_model_class_and_the_supported_layout():
    config = DistilBertConfig(vocab_size=64, dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=32)
    model = DistilBertForSequenceClassification(config)
    match = r"supports BERT-family models .*`base_model.encoder.layer\[i\]`.*; DistilBertForSequenceClassification does"
    with pytest.raises(ValueError, match=match):
        slim_model_(model, kept_layers=[0])
