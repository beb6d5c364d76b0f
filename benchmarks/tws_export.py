"""Export sizes of BinaryBERT-style models: bit-packed binary/ternary weights vs fp32.

Builds the TWS model (half-width ternary, split into binary pairs), the BWN model (full-width binary) and the
half-width ternary model, exports each with ``save_compressed`` and prints the whole-model and quantized-module sizes
against the full-precision model (MB = 2^20 bytes). ``--model minilm`` (default) starts from the packaged MiniLM-L6
checkpoint; ``--model bert-base`` builds ``BertForSequenceClassification(BertConfig())`` (the BERT-base shape of
BinaryBERT's 24.6x, randomly initialised: the sizes do not depend on the values; nothing is downloaded) and checks the
full-precision size against 417.6 MB (docs/methods.md#exported-binarybert-size). With ``--check`` the export is loaded
back and its logits
compared on a few token sequences.

    python benchmarks/tws_export.py [--model {minilm,bert-base}] [--check]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from lightning_compress.export import load_compressed, save_compressed
from lightning_compress.hub import resolve_pretrained
from lightning_compress.quantization import half_width_, quantize_model_, split_model_

#: Full-precision BERT-base in Bai Table 5.2 (109.48 M parameters x 4 bytes, MB = 2^20 bytes).
BERT_BASE_MB = 417.6


def build(variant: str, model_name: str = "minilm") -> torch.nn.Module:
    torch.manual_seed(0)
    if model_name == "bert-base":
        model = BertForSequenceClassification(BertConfig(num_labels=2)).eval()
    else:
        folder = resolve_pretrained("sentence-transformers/all-MiniLM-L6-v2")
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    if variant in ("tws", "ternary_half"):
        half_width_(model)
    quantize_model_(model, "binary" if variant == "bwn" else "ternary", act_bits=8)
    if variant == "tws":
        split_model_(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("minilm", "bert-base"), default="minilm")
    parser.add_argument("--check", action="store_true", help="reload each export and compare logits")
    args = parser.parse_args()
    for variant in ("tws", "bwn", "ternary_half"):
        model = build(variant, args.model)
        with tempfile.TemporaryDirectory() as outdir:
            summary = save_compressed(model, outdir)
            print(f"[{args.model} {variant}]\n{summary.describe()}")
            if args.model == "bert-base":
                dense_mb = summary.dense_bytes / 2**20
                verdict = "matches" if abs(dense_mb - BERT_BASE_MB) <= 0.1 else "DOES NOT match"
                print(
                    f"fp32 BERT-base: {dense_mb:.2f} MB, {verdict} {BERT_BASE_MB} MB "
                    "(docs/methods.md#exported-binarybert-size, +-0.1 MB)"
                )
            if args.check:
                x = torch.randint(0, model.config.vocab_size, (4, 32), generator=torch.Generator().manual_seed(0))
                with torch.no_grad():
                    difference = (model(input_ids=x).logits - load_compressed(outdir)(input_ids=x).logits).abs().max()
                print(f"reloaded logits max |difference|: {difference.item():.2e}")


if __name__ == "__main__":
    main()
