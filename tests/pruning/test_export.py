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


def sparse_model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config()).eval()
    params = dict(model.named_parameters())
    names = resolve_targets(model)
    apply_masks_(params, layerwise_masks({n: magnitude_score(params[n]) for n in names}, 0.9))
    return model


def rewrite(file, change) -> None:
    """Rewrite the safetensors ``file`` with ``change(tensors)`` applied, keeping its metadata."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(file), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    change(tensors)
    save_file(tensors, str(file), metadata=metadata)


def test_export_refuses_a_foreign_folder_unless_overwrite_and_then_replaces_it_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"`save_compressed\(outdir='.*out'\)` is invalid: the folder is not empty"):
        save_compressed(sparse_model(), out)
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1
    save_compressed(sparse_model(), out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "lightning_compress_export.json",
        "model.compressed.safetensors",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left


def test_reexport_replaces_a_previous_export_whole(tmp_path):
    save_compressed(sparse_model(), tmp_path / "out")
    (tmp_path / "out" / "pytorch_model.bin").write_bytes(b"stale weights of an earlier export")
    (tmp_path / "out" / "tokenizer.json").write_text("{}")
    save_compressed(sparse_model(), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json",
        "lightning_compress_export.json",
        "model.compressed.safetensors",
    ]
    load_compressed(tmp_path / "out")


def test_export_refuses_a_non_finite_model_and_keeps_the_previous_export(tmp_path):
    model = sparse_model()
    save_compressed(model, tmp_path / "out")
    before = (tmp_path / "out" / "model.compressed.safetensors").read_bytes()
    with torch.no_grad():
        model.bert.encoder.layer[1].output.dense.bias[3] = float("nan")
        model.classifier.weight[0, 0] = float("inf")
    first = r"'bert\.encoder\.layer\.1\.output\.dense\.bias' holds 1 NaN and 0 infinite values of 32"
    with pytest.raises(FloatingPointError, match=first):
        save_compressed(model, tmp_path / "out")
    assert (tmp_path / "out" / "model.compressed.safetensors").read_bytes() == before
    with pytest.raises(FloatingPointError, match="`save_compressed` refuses a non-finite model"):
        save_compressed(model, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_load_compressed_checks_values_and_bitmask_against_the_declared_shape(tmp_path):
    save_compressed(sparse_model(), tmp_path / "out")
    file = tmp_path / "out" / "model.compressed.safetensors"
    key = "bert.encoder.layer.0.intermediate.dense.weight"
    original = file.read_bytes()

    rewrite(file, lambda tensors: tensors.update({f"{key}::values": tensors[f"{key}::values"][:1].clone()}))
    truncated = rf"model\.compressed\.safetensors: tensor '{key}' stores 1 values .* its bitmask marks 205 non-zeros"
    with pytest.raises(ValueError, match=truncated):
        load_compressed(tmp_path / "out")

    file.write_bytes(original)
    rewrite(file, lambda tensors: tensors.update({f"{key}::bitmask": tensors[f"{key}::bitmask"][:-1].clone()}))
    with pytest.raises(ValueError, match=rf"the bitmask of tensor '{key}' has 255 .* needs 256 uint8 bytes"):
        load_compressed(tmp_path / "out")

    file.write_bytes(original)
    rewrite(file, lambda tensors: tensors.pop(f"{key}::values"))
    with pytest.raises(ValueError, match=rf"lacks the tensor '{key}::values'"):
        load_compressed(tmp_path / "out")


def test_load_compressed_checks_bit_packed_parts(tmp_path):
    from lightning_compress.quantization import quantize_model_

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config()).eval()
    quantize_model_(model, "ternary", None)
    save_compressed(model, tmp_path / "out")
    load_compressed(tmp_path / "out")
    key = "bert.embeddings.word_embeddings.weight::scale"
    rewrite(tmp_path / "out" / "model.compressed.safetensors", lambda t: t.update({key: t[key][:1].clone()}))
    with pytest.raises(ValueError, match=rf"tensor '{key}' has 1 entries but the declared shape .* needs 64"):
        load_compressed(tmp_path / "out")


def test_load_compressed_names_an_empty_tensor_file(tmp_path):
    save_compressed(sparse_model(), tmp_path / "out")
    (tmp_path / "out" / "model.compressed.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"model\.compressed\.safetensors is empty \(0 bytes\)"):
        load_compressed(tmp_path / "out")
