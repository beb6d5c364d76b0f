"""A tiny trial: the quickstart config on a 2-layer, 32-wide BERT and a 60-document corpus, a few steps."""

from pathlib import Path

import pytest
import torch
import yaml

from tests.tiny import save_tiny_minilm

ROOT = Path(__file__).resolve().parents[2]
WORDS = {
    "sport": "match goal team player win league coach season score cup",
    "money": "bank market shares price profit economy trade company growth tax",
    "music": "album song band concert singer chart music stage tour record",
}


@pytest.fixture(scope="session")
def tiny_trial_config(tmp_path_factory) -> Path:
    """A LightningCLI trial config that fits in a few seconds on one core."""
    root = tmp_path_factory.mktemp("tiny_trial")
    model = save_tiny_minilm(root / "model")
    corpus = root / "corpus"
    generator = torch.Generator().manual_seed(0)
    for label, words in WORDS.items():
        (corpus / label).mkdir(parents=True)
        vocabulary = words.split()
        for i in range(20):
            picks = torch.randint(0, len(vocabulary), (12,), generator=generator).tolist()
            (corpus / label / f"{i:03d}.txt").write_text(" ".join(vocabulary[p] for p in picks))
    config = yaml.safe_load((ROOT / "configs/quickstart.yaml").read_text())
    config["trainer"].update(
        max_epochs=2, enable_progress_bar=False, enable_checkpointing=False, logger=False, num_sanity_val_steps=0
    )
    config["trainer"]["callbacks"][0]["init_args"].update(start=0.0, end=0.5, every_n_steps=1)
    config["model"]["init_args"].update(pretrained=str(model), lr=1e-3)
    config["data"]["init_args"].update(root=str(corpus), cache_dir=str(root / "cache"), batch_size=8)
    path = root / "trial.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
