"""Checkpoints are read without running code stored in them: `lightning_compress/checkpoints.py` and every entry point
that reads a checkpoint (`lightning-compress export`, the callbacks' `teacher`,
`load_compressed`)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from pytorch_lightning import seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint
from transformers import BertForSequenceClassification

from lightning_compress.callbacks import (
    AlignReg,
    GradientDropout,
    GradualMagnitudePruning,
    GradualUnfreezing,
    SelfDistilledPruning,
    TernaryWeightSplitting,
)
from lightning_compress.checkpoints import UntrustedCheckpointError, load_checkpoint
from lightning_compress.cli import main
from lightning_compress.export import COMPRESSED_FILE, load_compressed, save_compressed
from lightning_compress.models import SequenceClassificationModule
from tests.tiny import UserModule, loader, make_trainer, tiny_bert_config


class Payload:
    """What an attacker puts into a checkpoint: unpickling it creates ``marker`` (any code could run instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@dataclass
class Recipe:
    """A legitimate custom hyper-parameter object: only a full unpickling reads a checkpoint holding it."""

    lr: float = 1e-3


def user_checkpoint(path: Path, extra: object) -> Path:
    """A Lightning-style checkpoint of the tiny user module whose hyper-parameters hold ``extra``."""
    module = UserModule()
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"extra": extra}}, path)
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def malicious(tmp_path, marker) -> Path:
    return user_checkpoint(tmp_path / "malicious.ckpt", Payload(marker))


@pytest.fixture
def trusted(tmp_path) -> Path:
    return user_checkpoint(tmp_path / "trusted.ckpt", Recipe())


def fit(callback, **kwargs) -> UserModule:
    seed_everything(0)
    module = UserModule()
    make_trainer([callback], max_epochs=1, limit_train_batches=2, **kwargs).fit(module, loader(16))
    return module


# ---------------------------------------------------------------------------------------------------- the loader
def test_weights_only_load_refuses_code_and_names_file_reason_and_switch(malicious, marker):
    with pytest.raises(UntrustedCheckpointError) as info:
        load_checkpoint(malicious)
    message = str(info.value)
    assert not marker.exists()
    assert str(malicious) in message and "cannot be loaded safely" in message
    assert "posix.system" in message  # torch's reason, without its generic advice
    assert "Weights only load failed" not in message
    assert "`trust_checkpoint=True`" in message and "Only if you trust the file" in message


def test_trusted_load_reads_custom_objects(trusted):
    assert isinstance(load_checkpoint(trusted, trust_checkpoint=True)["hyper_parameters"]["extra"], Recipe)
    with pytest.raises(UntrustedCheckpointError, match="Recipe"):
        load_checkpoint(trusted)


def test_empty_truncated_and_missing_files_are_told_apart(tmp_path, trusted):
    empty = tmp_path / "empty.ckpt"
    empty.touch()
    with pytest.raises(ValueError, match=r"empty\.ckpt is empty \(0 bytes\), so it was truncated"):
        load_checkpoint(empty)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trusted.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"truncated\.ckpt \(200 bytes\) cannot be read as a PyTorch checkpoint"):
        load_checkpoint(truncated)
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_safetensors_files_are_read_without_pickle(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.arange(3.0)}, str(tmp_path / "weights.safetensors"))
    assert torch.equal(load_checkpoint(tmp_path / "weights.safetensors")["w"], torch.arange(3.0))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match=r"bad\.safetensors \(16 bytes\) cannot be read as a safetensors file"):
        load_checkpoint(tmp_path / "bad.safetensors")


# ---------------------------------------------------------------------------------------------------- callbacks
CALLBACKS = {
    "AlignReg": lambda path, **kw: AlignReg(teacher=str(path), **kw),
    "SelfDistilledPruning": lambda path, **kw: SelfDistilledPruning(teacher=str(path), teacher_cache=False, **kw),
    "TernaryWeightSplitting": lambda path, **kw: TernaryWeightSplitting(
        split_at=None, act_bits=None, teacher=str(path), **kw
    ),
}
ARGUMENT = {"AlignReg": "teacher", "SelfDistilledPruning": "teacher", "TernaryWeightSplitting": "teacher"}


@pytest.mark.parametrize("name", list(CALLBACKS))
def test_callback_refuses_a_malicious_checkpoint(name, malicious, marker):
    with pytest.raises(UntrustedCheckpointError) as info:
        fit(CALLBACKS[name](malicious))
    assert not marker.exists()
    message = str(info.value)
    assert message.startswith(f"`{name}({ARGUMENT[name]}={str(malicious)!r})` is invalid")
    assert f"`{name}(..., trust_checkpoint=True)`" in message


@pytest.mark.parametrize("name", list(CALLBACKS))
def test_callback_with_trust_checkpoint_reads_a_checkpoint_holding_custom_objects(name, trusted):
    reference = UserModule().state_dict()
    callback = CALLBACKS[name](trusted, trust_checkpoint=True)
    fit(callback)
    if name == "AlignReg":
        assert callback.references and all(torch.equal(v, reference[k]) for k, v in callback.references.items())
    else:
        assert callback.teacher is not None


@pytest.mark.parametrize("name", list(CALLBACKS))
def test_callback_names_an_empty_checkpoint(name, tmp_path):
    empty = tmp_path / "teacher.ckpt"
    empty.touch()
    with pytest.raises(ValueError, match=rf"`{name}\({ARGUMENT[name]}='.*teacher\.ckpt'\)` is invalid: .* is empty"):
        fit(CALLBACKS[name](empty))


def test_missing_tws_teacher_names_argument_and_path(tmp_path):
    missing = str(tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match=rf"`TernaryWeightSplitting\(teacher='{missing}'\)`"):
        fit(TernaryWeightSplitting(split_at=None, teacher=missing))


@pytest.mark.parametrize("name", list(CALLBACKS))
def test_trust_checkpoint_must_be_a_bool(name, trusted):
    with pytest.raises(TypeError, match=rf"`{name}\(trust_checkpoint='yes'\)` is invalid: expected a bool"):
        CALLBACKS[name](trusted, trust_checkpoint="yes")


def test_tws_teacher_sets_student_weights(tmp_path):
    torch.manual_seed(1)
    teacher = BertForSequenceClassification(tiny_bert_config())
    state = {f"model.{key}": value for key, value in teacher.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "teacher.ckpt")
    tws = TernaryWeightSplitting(split_at=None, act_bits=None, teacher=str(tmp_path / "teacher.ckpt"))
    fit(tws, max_steps=1)
    for key, value in teacher.state_dict().items():
        assert torch.equal(tws.teacher.state_dict()[key], value)


# ---------------------------------------------------------------------------------------------------- own checkpoints
OWN_CALLBACKS = {
    "GradualMagnitudePruning": lambda: [GradualMagnitudePruning(final_sparsity=0.5, end=1.0, every_n_steps=1)],
    "AlignReg": lambda: [GradualMagnitudePruning(final_sparsity=0.5, end=1.0, every_n_steps=1), AlignReg()],
    "SelfDistilledPruning": lambda: [
        GradualMagnitudePruning(final_sparsity=0.5, end=1.0, every_n_steps=1),
        SelfDistilledPruning(),
    ],
    "TernaryWeightSplitting": lambda: [TernaryWeightSplitting(split_at=2, act_bits=8, adaptive_budget=0.5)],
    "GradientDropout": lambda: [GradientDropout(p=0.2, num_epochs=2)],
    "GradualUnfreezing": lambda: [GradualUnfreezing()],
}


@pytest.mark.parametrize("name", list(OWN_CALLBACKS))
def test_checkpoints_of_every_callback_load_weights_only(name, tmp_path):
    seed_everything(0)
    every_step = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1, filename="{step}")
    trainer = make_trainer(
        OWN_CALLBACKS[name]() + [every_step], max_epochs=2, limit_train_batches=2, enable_checkpointing=True
    )
    trainer.fit(UserModule(), loader(32, batch_size=4))
    checkpoints = sorted(tmp_path.glob("*.ckpt"))
    assert len(checkpoints) == 4
    for path in checkpoints:
        checkpoint = torch.load(path, weights_only=True)
        assert any(name in key for key in checkpoint["callbacks"])


# ---------------------------------------------------------------------------------------------------- export
@pytest.fixture
def project_checkpoint(tiny_minilm, tmp_path) -> Path:
    """A checkpoint of SequenceClassificationModule written by a Python `Trainer.fit` (no CLI class path)."""
    seed_everything(0)
    module = SequenceClassificationModule(pretrained=tiny_minilm, num_labels=2)
    path = tmp_path / "module.ckpt"
    trainer = make_trainer([], max_steps=1)
    trainer.fit(module, loader(8))
    trainer.save_checkpoint(path)
    torch.load(path, weights_only=True)  # the project's own checkpoints load weights-only
    return path


def run_export(*argv, capsys) -> str:
    """Run `lightning-compress export`; return its error output (SystemExit expected) or standard output."""
    try:
        main(["export", *map(str, argv)])
    except SystemExit as exit:
        assert exit.code == 2
        return capsys.readouterr().err
    return capsys.readouterr().out


def test_export_refuses_a_malicious_checkpoint(project_checkpoint, tmp_path, marker, capsys):
    checkpoint = torch.load(project_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["payload"] = Payload(marker)
    torch.save(checkpoint, tmp_path / "malicious.ckpt")
    error = run_export(tmp_path / "malicious.ckpt", tmp_path / "out", capsys=capsys)
    assert not marker.exists()
    assert "malicious.ckpt cannot be loaded safely" in error and "`--trust-checkpoint`" in error
    assert not (tmp_path / "out").exists()


def test_export_with_trust_checkpoint_reads_a_checkpoint_holding_custom_objects(project_checkpoint, tmp_path, capsys):
    checkpoint = torch.load(project_checkpoint, weights_only=True)
    checkpoint["hyper_parameters"]["recipe"] = Recipe()
    torch.save(checkpoint, tmp_path / "custom.ckpt")
    assert "cannot be loaded safely" in run_export(tmp_path / "custom.ckpt", tmp_path / "out", capsys=capsys)
    output = run_export(tmp_path / "custom.ckpt", tmp_path / "out", "--trust-checkpoint", capsys=capsys)
    assert output.startswith("wrote")
    model = load_compressed(tmp_path / "out")
    expected = {key.removeprefix("model."): value for key, value in checkpoint["state_dict"].items()}
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())


def test_export_of_a_project_checkpoint_needs_no_trust(project_checkpoint, tmp_path, capsys):
    assert run_export(project_checkpoint, tmp_path / "out", capsys=capsys).startswith("wrote")
    assert (tmp_path / "out" / COMPRESSED_FILE).is_file()


def test_export_names_an_empty_checkpoint(tmp_path, capsys):
    (tmp_path / "empty.ckpt").touch()
    error = run_export(tmp_path / "empty.ckpt", tmp_path / "out", capsys=capsys)
    assert "empty.ckpt is empty (0 bytes), so it was truncated" in error


def test_export_of_a_user_module_checkpoint_says_what_is_supported(tmp_path, capsys):
    torch.save({"state_dict": UserModule().state_dict(), "hyper_parameters": {"lr": 0.01}}, tmp_path / "user.ckpt")
    error = " ".join(run_export(tmp_path / "user.ckpt", tmp_path / "out", capsys=capsys).split())
    assert "expected a checkpoint of SequenceClassificationModule or TokenClassificationModule" in error
    assert "`save_compressed(module.model, outdir)`" in error


def test_export_does_not_write_into_a_foreign_folder_unless_overwrite(project_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    error = " ".join(run_export(project_checkpoint, out, capsys=capsys).split())
    assert f"`save_compressed(outdir='{out}')` is invalid: the folder is not empty (['notes.txt'])" in error
    assert "`--overwrite`" in error and (out / "notes.txt").is_file()
    assert run_export(project_checkpoint, out, "--overwrite", capsys=capsys).startswith("wrote")
    assert not (out / "notes.txt").exists()


# ---------------------------------------------------------------------------------------------------- load_compressed
def test_load_compressed_refuses_a_pickle_in_place_of_the_tensor_file(tmp_path, marker):
    model = BertForSequenceClassification(tiny_bert_config())
    save_compressed(model, tmp_path / "out")
    with open(tmp_path / "out" / COMPRESSED_FILE, "wb") as file:
        pickle.dump({"weights": Payload(marker)}, file)
    with pytest.raises(ValueError, match=rf"{COMPRESSED_FILE} \(\d+ bytes\) cannot be read as a safetensors file"):
        load_compressed(tmp_path / "out")
    assert not marker.exists()
