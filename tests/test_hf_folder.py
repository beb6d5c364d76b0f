"""``save_compressed(format="hf")``: plain transformers folders, opened in a process that never imports this library."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback
from transformers import (
    BertForSequenceClassification,
    BertForTokenClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from lightning_compress.callbacks import GradualMagnitudePruning, StructuredPruning
from lightning_compress.cli import main
from lightning_compress.export import save_compressed
from lightning_compress.pruning.structured import encoder_blocks, mask_neurons_
from tests.tiny import UserModule, loader, make_trainer, tiny_bert_config

PLAIN_LOADER = textwrap.dedent(
    """
    import sys, torch, transformers
    folder, task, inputs, out = sys.argv[1:5]
    auto = {"sequence": transformers.AutoModelForSequenceClassification,
            "token": transformers.AutoModelForTokenClassification}[task]
    model = auto.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.load(inputs)).logits
    assert "lightning_compress" not in sys.modules, "the export needed lightning_compress"
    torch.save({"logits": logits, "n_layers": len(model.base_model.encoder.layer),
                "width": model.base_model.encoder.layer[0].intermediate.dense.out_features}, out)
    """
)


def load_in_plain_transformers(folder: Path, ids: torch.Tensor, tmp_path: Path, task: str = "sequence") -> dict:
    """Logits of ``folder`` loaded by plain transformers in a fresh process (from outside the repository)."""
    script, inputs, out = tmp_path / "plain_load.py", tmp_path / "ids.pt", tmp_path / "out.pt"
    script.write_text(PLAIN_LOADER)
    torch.save(ids, inputs)
    result = subprocess.run(
        [sys.executable, str(script), str(folder), task, str(inputs), str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out)


def _masked_half(model):
    """Remove every other feed-forward neuron exactly (row, bias entry, column zeroed)."""
    for block in encoder_blocks(model):
        keep = torch.zeros(block.intermediate.dense.out_features, dtype=torch.bool)
        keep[::2] = True
        mask_neurons_(
            block.intermediate.dense.weight.data,
            block.intermediate.dense.bias.data,
            block.output.dense.weight.data,
            keep,
        )
    return model


def _ids(n=3, length=10):
    return torch.randint(0, 64, (n, length), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def _logits(model, ids):
    return model.eval()(input_ids=ids).logits


def test_hf_folder_loads_without_the_library_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config())
    summary = save_compressed(model, tmp_path / "hf", format="hf")
    loaded = load_in_plain_transformers(tmp_path / "hf", _ids(), tmp_path)
    assert (loaded["logits"] - _logits(model, _ids())).abs().max() <= 1e-5
    assert summary.format == "hf" and summary.path.name == "model.safetensors"
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["intermediate_size"] == 64


def test_slim_removes_zero_neurons_with_the_same_logits_and_less_memory(tmp_path):
    torch.manual_seed(0)
    model = _masked_half(BertForSequenceClassification(tiny_bert_config()))
    summary = save_compressed(model, tmp_path / "slim", format="hf", slim=True)
    loaded = load_in_plain_transformers(tmp_path / "slim", _ids(), tmp_path)
    assert loaded["width"] == 32 and loaded["n_layers"] == 2
    assert (loaded["logits"] - _logits(model, _ids())).abs().max() <= 1e-5
    assert model.config.intermediate_size == 64  # the in-memory model is left as it was
    assert summary.memory_bytes < summary.dense_memory_bytes
    assert summary.compressed_bytes < summary.dense_bytes


def test_slim_keeps_the_same_width_in_every_layer_when_zeros_differ(tmp_path):
    torch.manual_seed(0)
    model = _masked_half(BertForSequenceClassification(tiny_bert_config()))
    first = encoder_blocks(model)[0]
    keep = torch.ones(64, dtype=torch.bool)
    keep[:40] = False  # layer 0: 40 zero neurons, layer 1: 32
    mask_neurons_(
        first.intermediate.dense.weight.data, first.intermediate.dense.bias.data, first.output.dense.weight.data, keep
    )
    save_compressed(model, tmp_path / "slim", format="hf", slim=True)
    loaded = load_in_plain_transformers(tmp_path / "slim", _ids(), tmp_path)
    assert loaded["width"] == 32
    assert (loaded["logits"] - _logits(model, _ids())).abs().max() <= 1e-5


def test_structured_fit_then_slim_export_removes_neurons_and_layers(tmp_path):
    torch.manual_seed(0)
    module = UserModule(dropout=0.0)
    module.model = BertForSequenceClassification(tiny_bert_config(num_hidden_layers=3, hidden_dropout_prob=0.0))
    callbacks = [
        StructuredPruning(final_sparsity=0.5, unit="ffn_neurons", schedule="one_shot", start=2),
        StructuredPruning(final_sparsity=0.34, unit="layers", schedule="one_shot", start=3),
    ]
    make_trainer(callbacks, max_epochs=1).fit(module, loader())
    model = module.model
    assert model.config.num_hidden_layers == 2  # the removed layer is sliced out at the end of fit
    save_compressed(model, tmp_path / "slim", format="hf", slim=True)
    loaded = load_in_plain_transformers(tmp_path / "slim", _ids(), tmp_path)
    assert loaded["n_layers"] == 2 and loaded["width"] == 32
    assert (loaded["logits"] - _logits(model, _ids())).abs().max() <= 1e-5


def test_token_classification_and_half_precision_exports(tmp_path):
    torch.manual_seed(0)
    model = BertForTokenClassification(tiny_bert_config(num_labels=5))
    save_compressed(model, tmp_path / "tok", format="hf")
    loaded = load_in_plain_transformers(tmp_path / "tok", _ids(), tmp_path, task="token")
    assert (loaded["logits"] - _logits(model, _ids())).abs().max() <= 1e-5
    summary = save_compressed(model, tmp_path / "bf16", format="hf", dtype="bfloat16")
    assert summary.compressed_bytes < 0.6 * summary.dense_bytes
    assert summary.memory_bytes < 0.6 * summary.dense_memory_bytes


def test_unstructured_sparsity_is_dense_with_zeros_in_hf_and_slim_explains_itself(tmp_path):
    torch.manual_seed(0)
    module = UserModule()
    make_trainer([GradualMagnitudePruning(final_sparsity=0.9, schedule="one_shot", start=1)], max_epochs=1).fit(
        module, loader()
    )
    summary = save_compressed(module.model, tmp_path / "hf", format="hf")
    assert summary.compressed_bytes >= 0.95 * summary.dense_bytes  # portable, not smaller
    with pytest.raises(ValueError, match="slim physically removes whole feed-forward neurons.*unstructured sparsity"):
        save_compressed(module.model, tmp_path / "slim", format="hf", slim=True)
    assert not (tmp_path / "slim").exists()


def test_bad_format_arguments_are_named(tmp_path):
    model = BertForSequenceClassification(tiny_bert_config())
    with pytest.raises(ValueError, match=r"format='onnx'.*expected one of \['compact', 'hf'\]"):
        save_compressed(model, tmp_path / "x", format="onnx")
    with pytest.raises(ValueError, match="slim=True.*format='compact'.*pass format='hf'"):
        save_compressed(model, tmp_path / "x", format="compact", slim=True)
    with pytest.raises(ValueError, match="dtype='bfloat16'.*compact"):
        save_compressed(model, tmp_path / "x", dtype="bfloat16")
    distil = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=32)
    )
    with pytest.raises(ValueError, match="DistilBertForSequenceClassification does not have that layout"):
        save_compressed(distil, tmp_path / "x", format="hf", slim=True)
    assert not (tmp_path / "x").exists()


def test_cli_export_hf_slim_slices_the_layers_a_checkpoint_removed(tiny_minilm, tmp_path):
    from lightning_compress.models import SequenceClassificationModule
    from lightning_compress.tasks import TaskSpec

    spec = TaskSpec(name="sst2", num_labels=2, kind="classification", metrics=("accuracy",))
    module = SequenceClassificationModule(pretrained=tiny_minilm, task_spec=spec)
    callback = StructuredPruning(final_sparsity=0.5, unit="layers", schedule="one_shot", start=1)

    class SaveMidFit(Callback):  # during fit the removed layer is still in the weights, skipped by a hook
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 2:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                self.logits = _logits(pl_module.model, ids)
                pl_module.train()

    ids = torch.randint(1000, 3000, (2, 9))
    probe = SaveMidFit()
    trainer = make_trainer([callback, probe], max_epochs=1, limit_val_batches=0)
    trainer.fit(module, _token_loader())
    trainer.save_checkpoint(tmp_path / "end.ckpt")  # after fit: the layer is sliced out of the weights too
    main(["export", str(tmp_path / "mid.ckpt"), str(tmp_path / "mid"), "--format", "hf", "--slim"])
    loaded = load_in_plain_transformers(tmp_path / "mid", ids, tmp_path)
    assert loaded["n_layers"] == 1
    assert (loaded["logits"] - probe.logits).abs().max() <= 1e-5
    assert (tmp_path / "mid" / "tokenizer.json").is_file()
    main(["export", str(tmp_path / "end.ckpt"), str(tmp_path / "end"), "--format", "hf"])
    loaded = load_in_plain_transformers(tmp_path / "end", ids, tmp_path)
    assert loaded["n_layers"] == 1
    assert (loaded["logits"] - _logits(module.model, ids)).abs().max() <= 1e-5
    main(["export", str(tmp_path / "end.ckpt"), str(tmp_path / "int8"), "--quantize", "int8"])
    loaded = load_in_plain_transformers(tmp_path / "int8", ids, tmp_path)
    assert loaded["n_layers"] == 1
    assert (
        json.loads((tmp_path / "int8" / "config.json").read_text())["quantization_config"]["quant_method"] == "torchao"
    )


def _token_loader():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 3000, (16, 9), generator=generator)
    rows = [
        {
            "input_ids": ids[i],
            "attention_mask": torch.ones(9, dtype=torch.long),
            "labels": ids[i, 0] % 2,
            "idx": torch.tensor(i),
        }
        for i in range(16)
    ]
    return torch.utils.data.DataLoader(rows, batch_size=4)


def test_slim_and_int8_compose_in_a_folder_that_loads_with_transformers_and_torchao(tmp_path):
    torch.manual_seed(0)
    model = _masked_half(BertForSequenceClassification(tiny_bert_config()))
    fp32 = save_compressed(model, tmp_path / "fp32", format="hf", slim=True)
    summary = save_compressed(model, tmp_path / "int8", slim=True, quantize="int8")
    loaded = load_in_plain_transformers(tmp_path / "int8", _ids(), tmp_path)
    assert loaded["width"] == 32
    expected = _logits(model, _ids())
    assert (loaded["logits"] - expected).abs().max() <= 0.05 * expected.abs().max() + 1e-3
    assert summary.compressed_bytes < fp32.compressed_bytes
    config = json.loads((tmp_path / "int8" / "config.json").read_text())
    assert config["intermediate_size"] == 32 and config["quantization_config"]["quant_method"] == "torchao"


def test_quantize_arguments_are_checked(tmp_path):
    model = BertForSequenceClassification(tiny_bert_config())
    with pytest.raises(ValueError, match=r"quantize='int3'.*expected one of \['int8', 'int4', None\]"):
        save_compressed(model, tmp_path / "x", quantize="int3")
    with pytest.raises(ValueError, match="quantize='int8'.*format='compact'.*Hugging Face folders"):
        save_compressed(model, tmp_path / "x", format="compact", quantize="int8")
    assert not (tmp_path / "x").exists()


def test_a_converted_int8_model_exports_slim_with_its_codes_sliced_not_requantized(tmp_path):
    from lightning_compress.quantization.qat import qat_convert_, qat_prepare_
    from lightning_compress.targeting import resolve_targets

    torch.manual_seed(0)
    model = _masked_half(BertForSequenceClassification(tiny_bert_config())).eval()
    names = [name.removesuffix(".weight") for name in resolve_targets(model)]
    qat_prepare_(model, names, "int8", "int8")
    qat_convert_(model)
    up = encoder_blocks(model)[0].intermediate.dense.weight
    kept = (up.qdata != 0).any(dim=1).nonzero().flatten()
    summary = save_compressed(model, tmp_path / "int8", slim=True, quantize="int8")
    assert summary.format == "hf-int8"
    loaded = load_in_plain_transformers(tmp_path / "int8", _ids(), tmp_path)
    assert loaded["width"] == 32
    expected = _logits(model, _ids())
    assert (loaded["logits"] - expected).abs().max() <= 1e-4  # same int8 codes and scales, only zero neurons gone

    from lightning_compress.hf_folder import slim_copy

    sliced = encoder_blocks(slim_copy(model))[0]
    assert torch.equal(sliced.intermediate.dense.weight.qdata, up.qdata[kept])
    assert torch.equal(sliced.intermediate.dense.weight.scale, up.scale[kept])
    down = encoder_blocks(model)[0].output.dense.weight
    assert torch.equal(sliced.output.dense.weight.qdata, down.qdata[:, kept])


def test_a_converted_int4_model_cannot_be_sliced_exactly(tmp_path):
    from lightning_compress.quantization.qat import qat_convert_, qat_prepare_

    torch.manual_seed(0)
    model = _masked_half(BertForSequenceClassification(tiny_bert_config())).eval()
    block = encoder_blocks(model)[0]
    qat_prepare_(model, ["bert.encoder.layer.0.output.dense"], "int4", None, group_size=16)
    qat_convert_(model)
    with pytest.raises(ValueError, match=r"only int8 weights with one scale per output row can be sliced exactly"):
        save_compressed(model, tmp_path / "int4", slim=True, quantize="int4")
    assert block is encoder_blocks(model)[0] and not (tmp_path / "int4").exists()
