"""`teacher=` means the same in AlignReg, SelfDistilledPruning and TernaryWeightSplitting: a module (nn.Module or
LightningModule), a Lightning checkpoint path or a Hugging Face model folder, all giving the same weights."""

import pytest
import torch
from transformers import BertForSequenceClassification

from lightning_compress.callbacks import AlignReg, SelfDistilledPruning, TernaryWeightSplitting
from tests.tiny import UserModule, loader, make_trainer, tiny_bert_config


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict:
    """The same fine-tuned weights as a Hugging Face model, a LightningModule, a folder and a checkpoint."""
    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(1)
    hf_model = BertForSequenceClassification(tiny_bert_config())
    hf_model.save_pretrained(folder)
    lightning_module = UserModule()
    lightning_module.model.load_state_dict(hf_model.state_dict())
    checkpoint = folder / "teacher.ckpt"
    torch.save({"state_dict": lightning_module.state_dict()}, checkpoint)
    return {"hf_model": hf_model, "lightning_module": lightning_module, "folder": str(folder), "ckpt": str(checkpoint)}


KINDS = ["hf_model", "lightning_module", "folder", "ckpt"]


@pytest.mark.parametrize("kind", KINDS)
def test_alignreg_teacher_of_every_kind_gives_the_teacher_weights_as_reference(teachers, kind):
    align = AlignReg(teacher=teachers[kind])
    make_trainer([align], max_steps=1).fit(UserModule(), loader(16))
    expected = teachers["hf_model"].state_dict()
    assert align.references
    for name, reference in align.references.items():
        assert torch.equal(reference, expected[name.removeprefix("model.")]), name


@pytest.mark.parametrize("kind", KINDS)
def test_self_distilled_pruning_teacher_of_every_kind_is_loaded(teachers, kind):
    sdp = SelfDistilledPruning(teacher=teachers[kind], teacher_cache=False)
    make_trainer([sdp], max_steps=1).fit(UserModule(), loader(16))
    for key, value in teachers["hf_model"].state_dict().items():
        assert torch.equal(sdp.teacher.state_dict()[key], value), key


@pytest.mark.parametrize("kind", KINDS)
def test_tws_teacher_of_every_kind_sets_teacher_and_student(teachers, kind):
    tws = TernaryWeightSplitting(split_at=None, act_bits=None, width=1.0, teacher=teachers[kind])
    module = UserModule()
    tws.setup(make_trainer([tws], max_steps=1), module, "fit")
    for key, value in teachers["hf_model"].state_dict().items():
        assert torch.equal(tws.teacher.state_dict()[key], value), key


def test_a_module_teacher_is_saved_by_class_name_in_the_settings(teachers):
    assert AlignReg(teacher=teachers["hf_model"]).checkpoint_settings()["teacher"] == (
        "<module BertForSequenceClassification>"
    )


@pytest.mark.parametrize("cls", [AlignReg, SelfDistilledPruning, TernaryWeightSplitting])
def test_a_teacher_of_another_type_is_refused(cls):
    with pytest.raises(
        TypeError,
        match=rf"`{cls.__name__}\(teacher=3\)` is invalid: expected .*a module \(nn.Module "
        r"or LightningModule\), a Lightning checkpoint path or a Hugging Face model folder",
    ):
        cls(teacher=3)


def test_a_teacher_module_of_another_shape_is_refused():
    other = BertForSequenceClassification(tiny_bert_config(intermediate_size=48))
    with pytest.raises(
        ValueError,
        match=r"`SelfDistilledPruning\(teacher=<BertForSequenceClassification>\)` does not "
        "match the module's model",
    ):
        make_trainer([SelfDistilledPruning(teacher=other, teacher_cache=False)], max_steps=1).fit(
            UserModule(), loader(16)
        )
