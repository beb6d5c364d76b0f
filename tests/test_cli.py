"""End-to-end: `lightning-compress fit` with the quickstart config on a tiny local model and corpus, then `export`."""

from pathlib import Path

import pytest
import torch
from pytorch_lightning import LightningModule

from lightning_compress.cli import main
from lightning_compress.export import load_compressed

ROOT = Path(__file__).resolve().parents[1]
WORDS = {
    "sport": "match goal team player win league coach season score cup",
    "money": "bank market shares price profit economy trade company growth tax",
    "music": "album song band concert singer chart music stage tour record",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("corpus")
    generator = torch.Generator().manual_seed(0)
    for label, words in WORDS.items():
        (root / label).mkdir()
        vocabulary = words.split()
        for i in range(20):
            picks = torch.randint(0, len(vocabulary), (12,), generator=generator).tolist()
            (root / label / f"{i:03d}.txt").write_text(" ".join(vocabulary[p] for p in picks))
    return str(root)


def test_fit_with_the_quickstart_config_prunes_exports_and_prints_the_summary(tiny_minilm, corpus, tmp_path, capsys):
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/quickstart.yaml"),
            f"--model.init_args.pretrained={tiny_minilm}",
            f"--data.init_args.root={corpus}",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_epochs=3",
            "--trainer.enable_progress_bar=false",
            "--model.init_args.lr=0.001",
            "--data.init_args.batch_size=8",
        ]
    )
    output = capsys.readouterr().out
    assert "pruning summary" in output and "dense val/accuracy (before pruning)" in output
    assert "sparsity of prunable weights" in output and "0.5000" in output
    log_dir = tmp_path / "lightning_logs" / "version_0"
    model = load_compressed(log_dir / "compressed")
    assert (log_dir / "compressed" / "tokenizer.json").is_file()

    checkpoint = next((log_dir / "checkpoints").glob("*.ckpt"))
    module = LightningModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    x = torch.randint(1000, 3000, (2, 9))
    assert torch.equal(module.model(input_ids=x).logits, model(input_ids=x).logits)
    layer = module.model.bert.encoder.layer[0].intermediate.dense.weight
    assert float((layer == 0).float().mean()) == pytest.approx(0.5, abs=1e-3)
    assert float((module.model.bert.embeddings.word_embeddings.weight == 0).float().mean()) < 0.01

    main(["export", str(checkpoint), str(tmp_path / "exported"), "--dtype", "float16"])
    assert "wrote" in capsys.readouterr().out
    exported = load_compressed(tmp_path / "exported")
    assert torch.allclose(exported(input_ids=x).logits, model(input_ids=x).logits, atol=1e-2)


@pytest.mark.slow
def test_quickstart_on_bbc_news(tmp_path, capsys):
    """The real quickstart (MiniLM-L6, BBC News, ~4 minutes on 2 CPU cores): dense > 90 %, 50 % sparsity."""
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/quickstart.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    output = capsys.readouterr().out
    dense = float(output.split("dense val/accuracy (before pruning)")[1].split()[1])
    pruned = float(output.split("pruned val/accuracy (end of run)")[1].split()[1])
    assert dense > 0.9 and pruned > 0.9
    assert "0.5000" in output.split("sparsity of prunable weights")[1].split("\n")[0]


def test_fit_without_a_logger_writes_no_config_into_the_current_folder(tiny_minilm, corpus, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/quickstart.yaml"),
            f"--model.init_args.pretrained={tiny_minilm}",
            f"--data.init_args.root={corpus}",
            f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            "--trainer.logger=false",
            "--trainer.default_root_dir=null",
            "--trainer.enable_checkpointing=false",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks=[]",
            "--export_dir=none",
        ]
    )
    assert list(work.iterdir()) == []
