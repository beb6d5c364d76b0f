import pytest
import torch
from pytorch_lightning import Callback, seed_everything

from lightning_compress.callbacks import AlignReg, GradualMagnitudePruning
from tests.tiny import UserModule, assert_resume_exact, loader, make_trainer, tiny_bert_config


class TermLog(Callback):
    def __init__(self):
        self.values = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.values.append(float(trainer.callback_metrics["train/align_reg"]))


@pytest.mark.parametrize("kind", ["cosine_unit", "cosine_layer", "frobenius"])
def test_term_is_zero_at_step_0_then_positive(kind):
    seed_everything(0)
    log = TermLog()
    align = AlignReg(kind=kind, lam=1.0)
    make_trainer([align, log], max_steps=4).fit(UserModule(), loader())
    assert log.values[0] == 0.0
    assert all(value > 0 for value in log.values[1:])
    assert len(align.references) == 12  # 2 layers x 6 encoder Linear weights


def test_large_lambda_keeps_the_weights_closer_to_the_reference():
    def distance(lam):
        seed_everything(0)
        module = UserModule()
        align = AlignReg(kind="frobenius", lam=lam)
        make_trainer([align], max_epochs=1).fit(module, loader())
        params = dict(module.named_parameters())
        return sum(float((params[n] - r).norm()) for n, r in align.references.items())

    assert distance(5.0) < distance(0.0)


def test_lambda_zero_reproduces_plain_pruning_bitwise_I10():
    def weights(callbacks):
        seed_everything(0)
        module = UserModule()
        make_trainer(callbacks, max_epochs=2).fit(module, loader())
        return module.state_dict()

    schedule = dict(final_sparsity=0.6, start=0.1, end=0.7, every_n_steps=2)
    plain = weights([GradualMagnitudePruning(**schedule)])
    aligned = weights([GradualMagnitudePruning(**schedule), AlignReg(lam=0.0)])
    for name, value in plain.items():
        assert torch.equal(value, aligned[name]), name


def test_resume_from_a_mid_epoch_checkpoint_is_exact_and_keeps_the_reference(tmp_path):
    """24 steps (8 per epoch): the step-11 checkpoint lies inside epoch 2, between two pruning events."""
    runs = assert_resume_exact(
        lambda: [
            GradualMagnitudePruning(final_sparsity=0.7, start=0.1, end=0.8, every_n_steps=3),
            AlignReg(kind="cosine_unit", lam=0.5),
        ],
        stop_at_step=11,
        tmp_path=tmp_path,
        max_epochs=3,
    )
    full, resumed = runs.full_callbacks[1], runs.resumed_callbacks[1]
    assert full.references.keys() == resumed.references.keys()
    for name, ref in full.references.items():
        assert torch.equal(resumed.references[name], ref), name


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kind": "cosine"}, ValueError, r"`AlignReg\(kind='cosine'\)` is invalid: expected one of \['cosine_unit'"),
        ({"lam": -1.0}, ValueError, r"`AlignReg\(lam=-1.0\)` is invalid: expected a finite float >= 0"),
        ({"lam": "5e-4"}, TypeError, r"`AlignReg\(lam='5e-4'\)` is invalid"),
        ({"teacher": ""}, TypeError, r"`AlignReg\(teacher=''\)` is invalid: expected 'pretrained', a module"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        AlignReg(**kwargs)


def test_reference_of_another_shape_is_refused(tmp_path):
    from transformers import BertForSequenceClassification

    BertForSequenceClassification(tiny_bert_config(intermediate_size=48)).save_pretrained(tmp_path / "other")
    align = AlignReg(reference=str(tmp_path / "other"))
    with pytest.raises(ValueError, match="references whose shape differs from the weights: .*intermediate"):
        make_trainer([align], max_steps=1).fit(UserModule(), loader())


def test_missing_reference_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        make_trainer([AlignReg(reference=str(tmp_path / "nope"))], max_steps=1).fit(UserModule(), loader())
