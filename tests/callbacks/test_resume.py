"""Checkpoint state found by class and position, and the settings check on resume (callbacks/_resume.py)."""

import pytest
import torch
from pytorch_lightning import seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_compress.callbacks import (
    AlignReg,
    GradientDropout,
    GradualMagnitudePruning,
    GradualUnfreezing,
    SelfDistilledPruning,
    TernaryWeightSplitting,
)
from tests.tiny import UserModule, loader, make_trainer

QUERIES = r".*layer\.\d\.attention\.self\.query\.weight"
VALUES = r".*layer\.\d\.attention\.self\.value\.weight"


def _fit(tmp_path, callbacks, ckpt_path=None, max_epochs=1):
    """8 optimizer steps per epoch; a checkpoint per epoch, ``epoch=<e>.ckpt``."""
    seed_everything(0)
    module = UserModule(dropout=0.0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer = make_trainer([*callbacks, checkpoints], max_epochs=max_epochs, enable_checkpointing=True)
    trainer.fit(module, loader(), ckpt_path=ckpt_path)
    return module


def _pruning(**overrides):
    settings = dict(final_sparsity=0.5, start=1, end=6, every_n_steps=2)
    return GradualMagnitudePruning(**{**settings, **overrides})


def test_resume_with_changed_final_sparsity_keeps_the_masks_and_warns(tmp_path):
    """The reported bug: the changed setting used to change the state key, so the masks were dropped (sparsity 0)."""
    full = _pruning()
    _fit(tmp_path / "full", [full])
    assert full.sparsity == pytest.approx(0.5, abs=1e-3)
    resumed = _pruning(final_sparsity=0.8)
    with pytest.warns(UserWarning, match=r"final_sparsity: 0\.5 → 0\.8") as record:
        _fit(tmp_path / "resumed", [resumed], ckpt_path=tmp_path / "full" / "epoch=0.ckpt", max_epochs=2)
    # resumed after the schedule's end (step 6 < 8): the masks stay, and the unreachable 0.8 is named
    assert any("sparsity 0.5000, but final_sparsity=0.8" in str(w.message) for w in record)
    assert resumed.sparsity == pytest.approx(0.5, abs=1e-3)
    for name, mask in full.masks.items():
        assert torch.equal(resumed.masks[name], mask), name


def test_resume_with_a_longer_schedule_continues_pruning_from_the_saved_masks(tmp_path):
    full = _pruning()
    _fit(tmp_path / "full", [full])
    resumed = _pruning(final_sparsity=0.8, end=12)
    with pytest.warns(UserWarning, match=r"end: 6 → 12.*only its events after the last saved event"):
        _fit(tmp_path / "resumed", [resumed], ckpt_path=tmp_path / "full" / "epoch=0.ckpt", max_epochs=2)
    assert resumed.last_event_step > full.last_event_step
    assert resumed.sparsity == pytest.approx(0.8, abs=1e-3)
    for name, mask in full.masks.items():  # (True = kept) a weight pruned before the resume stays pruned
        assert not (resumed.masks[name].cpu() & ~mask).any(), name


def test_resume_with_changed_criterion_raises_listing_the_difference(tmp_path):
    _fit(tmp_path / "full", [_pruning()])
    checkpoint = tmp_path / "full" / "epoch=0.ckpt"
    match = (
        r"criterion='random'\)` is invalid for resuming from the checkpoint '.*epoch=0\.ckpt'"
        r".*criterion: 'magnitude' → 'random'.*HINT: resume with criterion='magnitude'"
    )
    with pytest.raises(ValueError, match=match):
        _fit(tmp_path / "resumed", [_pruning(criterion="random")], ckpt_path=checkpoint, max_epochs=2)


def test_two_stacked_instances_resume_into_the_right_one(tmp_path):
    first, second = _pruning(targets=QUERIES), _pruning(targets=VALUES, final_sparsity=0.25)
    _fit(tmp_path / "full", [first, second])
    keys = set(torch.load(tmp_path / "full" / "epoch=0.ckpt", weights_only=False)["callbacks"])
    assert {"GradualMagnitudePruning", "GradualMagnitudePruning{'index': 1}"} <= keys
    resumed_first, resumed_second = _pruning(targets=QUERIES), _pruning(targets=VALUES, final_sparsity=0.25)
    _fit(tmp_path / "resumed", [resumed_first, resumed_second], ckpt_path=tmp_path / "full" / "epoch=0.ckpt")
    for saved, resumed in ((first, resumed_first), (second, resumed_second)):
        assert set(resumed.masks) == set(saved.masks)
        for name, mask in saved.masks.items():
            assert torch.equal(resumed.masks[name].cpu(), mask.cpu()), name
    assert resumed_second.sparsity == pytest.approx(0.25, abs=1e-3)


def test_swapped_stacked_instances_raise_instead_of_crossing_states(tmp_path):
    _fit(tmp_path / "full", [_pruning(targets=QUERIES), _pruning(targets=VALUES)])
    swapped = [_pruning(targets=VALUES), _pruning(targets=QUERIES)]
    with pytest.raises(ValueError, match=r"targets: \['.*query.*'\] → \['.*value.*'\]"):
        _fit(tmp_path / "resumed", swapped, ckpt_path=tmp_path / "full" / "epoch=0.ckpt")


def test_checkpoint_with_an_old_hyper_parameter_key_still_resumes(tmp_path):
    full = _pruning()
    _fit(tmp_path / "full", [full])
    checkpoint = torch.load(tmp_path / "full" / "epoch=0.ckpt", weights_only=False)
    state = checkpoint["callbacks"].pop("GradualMagnitudePruning")
    del state["settings"]
    old_key = "GradualMagnitudePruning{'criterion': 'magnitude', 'final_sparsity': 0.5, 'targets': [], 'exclude': []}"
    checkpoint["callbacks"][old_key] = state
    torch.save(checkpoint, tmp_path / "old.ckpt")
    resumed = _pruning()
    _fit(tmp_path / "resumed", [resumed], ckpt_path=tmp_path / "old.ckpt", max_epochs=2)
    for name, mask in full.masks.items():
        assert torch.equal(resumed.masks[name].cpu(), mask.cpu()), name


@pytest.mark.parametrize(
    ("make", "fixed", "resumable"),
    [
        (AlignReg, {"kind": "frobenius"}, {"lam": 1e-3}),
        (SelfDistilledPruning, {"feature_loss": "cos"}, {"alpha": 0.3}),
        (TernaryWeightSplitting, {"act_bits": 4, "act_quantizer": "lsq"}, {"temperature": 2.0}),
        (GradientDropout, {"mode": "layer"}, {"p": 0.3}),
        (GradualUnfreezing, {"order": "bottom_up"}, {"layers_per_step": 1}),
    ],
)
def test_every_stateful_callback_checks_its_settings_on_load(make, fixed, resumable):
    state = make().state_dict()
    assert state["settings"] == make().checkpoint_settings()
    arg = next(iter(fixed))
    with pytest.raises(ValueError, match=rf"`{make.__name__}\({arg}=.*is invalid for resuming.*{arg}: "):
        make(**fixed).load_state_dict(state)
    with pytest.warns(UserWarning, match=rf"{make.__name__}: resuming .*{next(iter(resumable))}: "):
        make(**resumable).load_state_dict(state)
    make().load_state_dict(state)  # same settings: no warning, no error


def test_loss_term_order_does_not_depend_on_the_state_key():
    first, second = AlignReg(lam=1e-3), AlignReg(lam=2e-3)
    second._state_index = 1
    keys = {first.loss_term_order_key, second.loss_term_order_key}
    first._state_index, second._state_index = 1, 0
    assert {first.loss_term_order_key, second.loss_term_order_key} == keys
    assert first.state_key == "AlignReg{'index': 1}" and second.state_key == "AlignReg"
