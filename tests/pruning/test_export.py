import pytest
import torch
from transformers import BertForSequenceClassification

from lightning_compress.bits import pack_bits, unpack_bits
from lightning_compress.export import decode_tensor, encode_tensor, load_compressed, save_compressed
from lightning_compress.pruning.criteria import magnitude_score
from lightning_compress.pruning.masks import apply_masks_, layerwise_masks
from lightning_compress.targeting import resolve_targets
from tests.tiny import tiny_bert_config


def test_bits_round_trip_and_known_bytes():
    mask = torch.tensor([True, False, True, True, False, False, False, False, True])
    assert pack_bits(mask).tolist() == [13, 1]
    assert torch.equal(unpack_bits(pack_bits(mask), 9), mask)
    random = torch.rand(5, 7) > 0.5
    assert torch.equal(unpack_bits(pack_bits(random), 35).view(5, 7), random)


def test_encode_picks_cheaper_encoding_and_decodes_exactly():
    dense = torch.randn(8, 8)
    assert list(encode_tensor(dense)) == [""]
    sparse = dense * (torch.rand(8, 8) > 0.8)
    encoded = encode_tensor(sparse)
    assert set(encoded) == {"bitmask", "values"} and encoded["bitmask"].numel() == 8
    assert torch.equal(decode_tensor(encoded["bitmask"], encoded["values"], [8, 8]), sparse)


@pytest.mark.parametrize("dtype, tolerance", [("float32", 0.0), ("float16", 1e-2)])
def test_export_round_trip_gives_same_outputs_and_is_smaller(tmp_path, dtype, tolerance):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(hidden_size=64, intermediate_size=256)).eval()
    params = dict(model.named_parameters())
    names = resolve_targets(model)
    apply_masks_(params, layerwise_masks({n: magnitude_score(params[n]) for n in names}, 0.9))
    summary = save_compressed(model, tmp_path, dtype=dtype)
    loaded = load_compressed(tmp_path)
    x = torch.randint(0, 64, (3, 10))
    difference = (model(input_ids=x).logits - loaded(input_ids=x).logits).abs().max().item()
    assert difference <= tolerance
    # 90 % sparse fp32: 1 bit + 10 % x 32 bits per entry = 0.13125 of dense (0.08125 in fp16)
    expected = {"float32": 1 / 32 + 0.1, "float16": 1 / 32 + 0.05}[dtype]
    assert summary.prunable_ratio == pytest.approx(expected, abs=2e-3)
    assert summary.compressed_bytes < summary.dense_bytes


def test_load_compressed_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a folder written by `save_compressed`"):
        load_compressed(tmp_path)
    with pytest.raises(TypeError, match="expects a Hugging Face PreTrainedModel"):
        save_compressed(torch.nn.Linear(2, 2), tmp_path)
