import json
import subprocess
import sys

import pytest
import torch

from lightning_compress.callbacks import QuantizationAwareTraining
from lightning_compress.quantization import quantize_model_, save_quantized_hf
from lightning_compress.quantization.qat import qat_convert_, qat_prepare_
from tests.quantization.test_qat import ENCODER, IDS, logits, tiny_model
from tests.tiny import UserModule, loader, make_trainer

pytest.importorskip("torchao.quantization.qat")

#: Loads a folder in a fresh process that never imports lightning_compress, and saves the logits of IDS.
LOAD_SCRIPT = """
import sys, torch
from transformers import AutoModelForSequenceClassification
folder, ids, out = sys.argv[1], torch.load(sys.argv[2]), sys.argv[3]
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
with torch.no_grad():
    logits = model(input_ids=ids).logits
assert "lightning_compress" not in sys.modules, "the folder must load without lightning_compress"
weight = model.bert.encoder.layer[0].attention.self.query.weight
torch.save({"logits": logits, "weight_type": type(weight).__name__}, out)
"""


def load_without_library(folder, tmp_path):
    torch.save(IDS, tmp_path / "ids.pt")
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(folder), str(tmp_path / "ids.pt"), str(tmp_path / "out.pt")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(tmp_path / "out.pt")


@pytest.mark.parametrize("quantize, activations", [("int8", "int8"), ("int4", None)])
def test_qat_model_loads_with_plain_transformers_and_gives_the_same_logits(tmp_path, quantize, activations):
    model = tiny_model()
    qat_prepare_(model, ENCODER, quantize, activations)
    summary = save_quantized_hf(model, tmp_path / "out", quantize, activations=activations)
    qat_convert_(model)  # the export converted a copy; the model itself is still fake-quantized until here
    loaded = load_without_library(tmp_path / "out", tmp_path)
    assert loaded["weight_type"] == "IntxUnpackedToInt8Tensor"
    assert (loaded["logits"] - logits(model)).abs().max() <= 1e-4  # measured: 0.0
    config = json.loads((tmp_path / "out" / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "torchao" and "classifier" in config["modules_to_not_convert"]
    assert summary.quantized_bytes < summary.quantized_reference_bytes / 3


def test_plain_model_gets_post_training_int8_and_a_smaller_folder(tmp_path):
    model = tiny_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    summary = save_quantized_hf(model, tmp_path / "out", "int8")
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())  # model unchanged
    assert summary.path.stat().st_size == summary.compressed_bytes < summary.dense_bytes
    # every encoder Linear (12 of them) stored as int8 codes + one fp32 scale and int8 zero point per row
    assert summary.quantized_reference_bytes / summary.quantized_bytes > 3.5


def test_callback_converted_model_exports(tmp_path):
    module = UserModule()
    make_trainer([QuantizationAwareTraining(start=0)], max_epochs=1).fit(module, loader(16))
    module.model.eval()
    save_quantized_hf(module.model, tmp_path / "out", "int8")
    loaded = load_without_library(tmp_path / "out", tmp_path)
    assert (loaded["logits"] - logits(module.model)).abs().max() <= 1e-4


def test_bad_exports_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"`save_quantized_hf\(weights='int3'\)` is invalid: expected one of"):
        save_quantized_hf(tiny_model(), tmp_path / "a", "int3")
    ternary = tiny_model()
    quantize_model_(ternary, "ternary", act_bits=None)
    with pytest.raises(
        ValueError,
        match=r"are already quantized to \['ternary'\] weights .* HINT: export it with "
        "`save_compressed`",
    ):
        save_quantized_hf(ternary, tmp_path / "b", "int8")
    trained = tiny_model()
    qat_prepare_(trained, ENCODER, "int4", None)
    with pytest.raises(ValueError, match=r"it was trained with fake quantization \(weights='int4', activations=None"):
        save_quantized_hf(trained, tmp_path / "c", "int8")
    nothing = tiny_model()
    nothing.bert.encoder = torch.nn.Identity()
    with pytest.raises(ValueError, match=r"found nothing to quantize in BertForSequenceClassification"):
        save_quantized_hf(nothing, tmp_path / "d", "int8")
    assert not any(tmp_path.iterdir())
