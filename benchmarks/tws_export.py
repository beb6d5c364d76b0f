"""Export sizes of BinaryBERT-style models of MiniLM-L6: bit-packed binary/ternary weights vs fp32.

Builds, from the packaged MiniLM-L6 checkpoint, the TWS model (half-width ternary, split into binary pairs), the BWN
model (full-width binary) and the half-width ternary model, exports each with ``save_compressed`` and prints the
whole-model and quantized-module sizes against the full-precision model (MB = 2^20 bytes). With ``--check`` the
export is loaded back and its logits compared on a few token sequences.

    python benchmarks/tws_export.py [--check]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import AutoModelForSequenceClassification

from lightning_compress.export import load_compressed, save_compressed
from lightning_compress.hub import resolve_pretrained
from lightning_compress.quantization import half_width, quantize_model, split_model


def build(variant: str) -> torch.nn.Module:
    torch.manual_seed(0)
    folder = resolve_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    if variant in ("tws", "ternary_half"):
        half_width(model)
    quantize_model(model, "binary" if variant == "bwn" else "ternary", act_bits=8)
    if variant == "tws":
        split_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="reload each export and compare logits")
    args = parser.parse_args()
    for variant in ("tws", "bwn", "ternary_half"):
        model = build(variant)
        with tempfile.TemporaryDirectory() as outdir:
            summary = save_compressed(model, outdir)
            print(f"[{variant}]\n{summary.describe()}")
            if args.check:
                x = torch.randint(0, model.config.vocab_size, (4, 32), generator=torch.Generator().manual_seed(0))
                with torch.no_grad():
                    difference = (model(input_ids=x).logits - load_compressed(outdir)(input_ids=x).logits).abs().max()
                print(f"reloaded logits max |difference|: {difference.item():.2e}")


if __name__ == "__main__":
    main()
