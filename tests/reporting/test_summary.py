import pytest
import torch

from lightning_compress.callbacks import GradualMagnitudePruning
from lightning_compress.reporting.summary import summarize_fit
from tests.tiny import UserModule, make_trainer


def test_fit_summary_refuses_a_non_finite_model(tmp_path):
    module = UserModule()
    with torch.no_grad():
        module.model.bert.embeddings.word_embeddings.weight[5, 2] = float("nan")
    trainer = make_trainer([GradualMagnitudePruning(final_sparsity=0.5)])
    with pytest.raises(FloatingPointError, match=r"The fit summary refuses .* 'model\.bert\.embeddings\.word_embed"):
        summarize_fit(trainer, module, tmp_path / "compressed")
    assert not (tmp_path / "compressed").exists()
