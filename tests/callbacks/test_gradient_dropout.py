import importlib
from pathlib import Path

import pytest
import torch
import yaml
from pytorch_lightning import Callback, seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_compress.callbacks import GradientDropout, GradualMagnitudePruning
from lightning_compress.gradient_dropout import element_keep_mask, epoch_keep_mask, mask_generator
from tests.tiny import UserModule, assert_resume_exact, loader, make_trainer, run_ddp_script

ROOT = Path(__file__).resolve().parents[2]


class Recorder(Callback):
    """Copies gradients at ``on_before_optimizer_step`` and weights around the step, keyed by global step.

    Placed before the callback under test it sees the raw gradients; placed after, the masked ones.
    """

    def __init__(self):
        self.grads, self.before, self.after, self.epochs = {}, {}, {}, {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        step = trainer.global_step
        self.epochs[step] = trainer.current_epoch
        self.grads[step] = {n: None if p.grad is None else p.grad.clone() for n, p in pl_module.named_parameters()}
        self.before[step] = {n: p.detach().clone() for n, p in pl_module.named_parameters()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after[trainer.global_step - 1] = {n: p.detach().clone() for n, p in pl_module.named_parameters()}


def fit(callbacks, module=None, max_epochs=1, n=64, **kwargs):
    seed_everything(0)
    module = module or UserModule(dropout=0.0)
    make_trainer(callbacks, max_epochs=max_epochs, **kwargs).fit(module, loader(n))
    return module


def assert_same_weights(a, b):
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("mode", ["element", "layer"])
def test_p0_is_bitwise_plain_finetuning_with_the_same_dropout(mode):
    # model dropout kept at 0.1: the callback must not consume random numbers or touch a gradient
    plain = fit([], UserModule(dropout=0.1), max_epochs=2)
    graddrop = fit([GradientDropout(p=0.0, mode=mode, model_dropout=None)], UserModule(dropout=0.1), max_epochs=2)
    assert_same_weights(plain, graddrop)
    # default model_dropout=0.0 equals a plain run of the model built without dropout
    assert_same_weights(fit([], UserModule(dropout=0.0)), fit([GradientDropout(p=0.0, mode=mode)], UserModule()))


@pytest.mark.parametrize("rescale", [False, True])
def test_element_masks_follow_seed_step_and_name_and_touch_only_targets(rescale):
    raw, masked = Recorder(), Recorder()
    graddrop = GradientDropout(p=0.3, seed=5, rescale=rescale)
    fit([raw, graddrop, masked])
    targets = set(graddrop.target_names)
    assert len(targets) == 2 * 16 + 2  # every encoder tensor (biases, LayerNorm) and the pooler
    dropped = total = 0
    for step, grads in raw.grads.items():
        for name, grad in grads.items():
            if name not in targets:
                assert torch.equal(masked.grads[step][name], grad), name  # embeddings and head untouched
                continue
            keep = element_keep_mask(grad.shape, 0.3, mask_generator(5, "step", step, name))
            expected = grad * keep * (1 / 0.7 if rescale else 1.0)
            assert torch.equal(masked.grads[step][name], expected), (step, name)
            dropped, total = dropped + int((~keep).sum()), total + keep.numel()
    assert abs(dropped / total - 0.3) < 0.01


def test_update_mode_leaves_dropped_entries_bit_identical_under_adamw():
    masked = Recorder()
    graddrop = GradientDropout(p=0.5, mask_mode="update")
    fit([graddrop, masked], UserModule(weight_decay=0.1, dropout=0.0))
    moved = 0
    for step, grads in masked.grads.items():
        for name in graddrop.target_names:
            keep = element_keep_mask(grads[name].shape, 0.5, mask_generator(0, "step", step, name))
            before, after = masked.before[step][name], masked.after[step][name]
            assert torch.equal(after[~keep], before[~keep]), (step, name)  # no weight decay, no moment-driven move
            moved += int((after[keep] != before[keep]).sum())
    assert moved > 0


def test_grad_mode_lets_adamw_move_dropped_entries():
    # the printed Eq. 10.3: a zero gradient entry still moves through weight decay and the moments
    masked = Recorder()
    graddrop = GradientDropout(p=0.5)
    fit([graddrop, masked], UserModule(weight_decay=0.1, dropout=0.0))
    step, name = 3, graddrop.target_names[0]
    dropped = ~element_keep_mask(masked.grads[step][name].shape, 0.5, mask_generator(0, "step", step, name))
    assert (masked.after[step][name][dropped] != masked.before[step][name][dropped]).any()


@pytest.mark.parametrize("mask_mode", ["grad", "update"])
def test_layer_mode_drops_whole_blocks(mask_mode):
    raw, masked = Recorder(), Recorder()
    graddrop = GradientDropout(p=0.5, mode="layer", mask_mode=mask_mode)
    fit([raw, graddrop, masked], max_epochs=2)
    seen = set()
    for step, grads in masked.grads.items():
        for block in ("bert.encoder.layer.0.", "bert.encoder.layer.1."):
            names = [n for n in graddrop.target_names if block in n]
            kept = [torch.equal(grads[n], raw.grads[step][n]) for n in names if grads[n] is not None]
            dropped = [grads[n] is None or not grads[n].any() for n in names]
            assert all(dropped) or (all(kept) and len(kept) == len(names)), (step, block)
            seen.add(all(dropped))
            if all(dropped) and mask_mode == "update":
                assert all(torch.equal(masked.before[step][n], masked.after[step][n]) for n in names)
    assert seen == {True, False}


@pytest.mark.parametrize("mode", ["epoch", "toggle"])
def test_epoch_modes_fix_masks_per_epoch(mode):
    raw, masked = Recorder(), Recorder()
    graddrop = GradientDropout(mode=mode, seed=3)
    fit([raw, graddrop, masked], max_epochs=3, n=32)
    for step, grads in raw.grads.items():
        epoch = masked.epochs[step] + 1
        for name in graddrop.target_names:
            keep = epoch_keep_mask(grads[name].shape, epoch, 3, mask_generator(3, "chunks", name), mode == "toggle")
            assert torch.equal(masked.grads[step][name], grads[name] * keep), (step, name)
    last = max(raw.grads)
    if mode == "epoch":  # the last epoch trains every entry
        assert all(torch.equal(masked.grads[last][n], raw.grads[last][n]) for n in graddrop.target_names)


def test_linear_schedule_anneals_p_per_epoch_and_ends_untouched():
    seen = []

    class EpochP(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            seen.append(round(graddrop._epoch_p, 10))

    raw, masked = Recorder(), Recorder()
    graddrop = GradientDropout(p=0.9, schedule="linear")
    fit([raw, graddrop, masked, EpochP()], max_epochs=4, n=16)
    assert seen == [0.9, 0.6, 0.3, 0.0]
    last = max(raw.grads)
    assert all(torch.equal(masked.grads[last][n], raw.grads[last][n]) for n in graddrop.target_names)


def test_model_dropout_is_set_during_fit_and_restored():
    seen = {}

    class DropoutProbe(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["p"] = {m.p for m in pl_module.modules() if isinstance(m, torch.nn.Dropout)}

    module = fit([GradientDropout(p=0.1, model_dropout=0.0), DropoutProbe()], UserModule(dropout=0.1), n=16)
    assert seen["p"] == {0.0}
    assert {m.p for m in module.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}


def test_pruned_weights_stay_zero_when_stacked_with_pruning():
    pruning = GradualMagnitudePruning(final_sparsity=0.5, schedule="one_shot", start=2)
    module = fit([pruning, GradientDropout(p=0.3, mask_mode="update")], max_epochs=2)
    params = dict(module.named_parameters())
    for name, mask in pruning.masks.items():
        assert not params[name][~mask].any(), name


def _fit_with_checkpoints(tmp_path, graddrop_kwargs, ckpt_path=None):
    seed_everything(0)
    module = UserModule(dropout=0.0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer = make_trainer([GradientDropout(**graddrop_kwargs), checkpoints], max_epochs=3, enable_checkpointing=True)
    trainer.fit(module, loader(32), ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize(
    "graddrop_kwargs",
    [{"p": 0.3, "mask_mode": "update", "seed": 1}, {"mode": "toggle", "seed": 2}, {"mode": "layer", "seed": 3}],
)
def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path, graddrop_kwargs):
    """12 steps (4 per epoch): the step-6 checkpoint lies inside epoch 1."""
    assert_resume_exact(
        lambda: [GradientDropout(**graddrop_kwargs)],
        stop_at_step=6,
        tmp_path=tmp_path,
        make_loader=lambda: loader(32),
        max_epochs=3,
    )


def test_resume_adopts_the_seed_of_the_checkpoint(tmp_path):
    full = _fit_with_checkpoints(tmp_path / "full", {"p": 0.3, "seed": 1})
    with pytest.warns(UserWarning, match="the checkpoint was trained with seed=1, not seed=9"):
        resumed = _fit_with_checkpoints(tmp_path / "resumed", {"p": 0.3, "seed": 9}, tmp_path / "full" / "epoch=1.ckpt")
    assert_same_weights(full, resumed)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"p": 1.0}, ValueError, r"`GradientDropout\(p=1.0\)` is invalid: expected a float in \[0, 1\)"),
        ({"p": -0.1}, ValueError, r"`GradientDropout\(p=-0.1\)` is invalid"),
        ({"p": "0.2"}, TypeError, r"`GradientDropout\(p='0.2'\)` is invalid"),
        ({"p_end": 1.5}, ValueError, r"p_end=1.5\)` is invalid"),
        ({"model_dropout": 1.0}, ValueError, r"model_dropout=1.0\)` is invalid"),
        ({"mode": "row"}, ValueError, r"mode='row'\)` is invalid: expected one of \['element', 'layer', 'epoch'"),
        ({"schedule": "cosine"}, ValueError, r"schedule='cosine'\)` is invalid: expected one of"),
        ({"mask_mode": "weights"}, ValueError, r"mask_mode='weights'\)` is invalid"),
        ({"resample": "batch"}, ValueError, r"resample='batch'\)` is invalid"),
        ({"scope": "ffn"}, ValueError, r"scope='ffn'\)` is invalid"),
        ({"rescale": 1}, TypeError, r"rescale=1\)` is invalid: expected a bool"),
        ({"num_epochs": 0}, ValueError, r"num_epochs=0\)` is invalid"),
        ({"seed": 1.5}, TypeError, r"seed=1.5\)` is invalid"),
        ({"mode": "epoch", "schedule": "linear"}, ValueError, "schedule applies to 'element' and 'layer' only"),
        ({"mode": "toggle", "rescale": True}, ValueError, "rescaling by 1 / \\(1 - p\\) applies to"),
        ({"scope": "attention", "targets": "query"}, ValueError, "pass one or the other"),
        ({"targets": ["("]}, ValueError, "not a valid regular expression"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        GradientDropout(**kwargs)


def test_target_pattern_matching_nothing_fails_at_setup():
    with pytest.raises(ValueError, match=r"`targets` pattern 'decoder' matched no parameter; first parameter names"):
        fit([GradientDropout(targets=["decoder"])], n=8)


def test_epoch_mode_needs_a_number_of_epochs():
    with pytest.raises(ValueError, match="schedules over epochs: set the trainer's `max_epochs`"):
        fit([GradientDropout(mode="epoch")], max_epochs=-1, max_steps=3, n=8)


def test_attention_scope_targets_the_attention_projections():
    graddrop = GradientDropout(scope="attention")
    fit([graddrop], n=8)
    assert len(graddrop.target_names) == 2 * 8
    assert all(".attention." in n and "LayerNorm" not in n for n in graddrop.target_names)


DDP_SCRIPT = """
import sys, torch
from pytorch_lightning import Trainer, seed_everything
from lightning_compress.callbacks import GradientDropout, GradualUnfreezing
from tests.tiny import UserModule, loader

out, strategy = sys.argv[1], sys.argv[2]
seed_everything(0)
module = UserModule()
initial = {n: p.detach().clone() for n, p in module.named_parameters()}
callbacks = [GradientDropout(p=0.3, mask_mode="update"), GradualUnfreezing(layers_per_step=1)]
trainer = Trainer(strategy=strategy, accelerator="cpu", devices=2, max_epochs=2, callbacks=callbacks, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(module, loader(64, batch_size=4))
torch.save({"weights": module.state_dict(), "initial": initial}, f"{out}/rank{trainer.global_rank}.pt")
"""


def run_ddp(tmp_path, strategy):
    rank0, rank1 = run_ddp_script(DDP_SCRIPT, tmp_path, strategy)
    for name in rank0["weights"]:
        assert torch.equal(rank0["weights"][name], rank1["weights"][name]), name
    # 2 epochs, one block per epoch: the embeddings are never unfrozen, the top block always trains
    word_embeddings = "model.bert.embeddings.word_embeddings.weight"
    assert torch.equal(rank0["weights"][word_embeddings], rank0["initial"][word_embeddings])
    top = "model.bert.encoder.layer.1.output.dense.weight"
    assert not torch.equal(rank0["weights"][top], rank0["initial"][top])


def test_ddp_two_processes_drop_the_same_entries(tmp_path):
    run_ddp(tmp_path, "ddp")


@pytest.mark.slow
def test_ddp_with_find_unused_parameters_skips_frozen_gradients(tmp_path):
    run_ddp(tmp_path, "ddp_find_unused_parameters_true")


SCALED_VARIANTS = ("ft", "ft_nodropout", "graddrop", "graddrop_epoch", "gradfreeze", "layer_graddrop")
# the standalone scaled configs; the composed ones (configs/methods/graddrop_*.yaml on a base) parse in test_reproduce
CONFIGS = sorted(ROOT / "configs" / "scaled" / f"xnli_{variant}.yaml" for variant in SCALED_VARIANTS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_configs_build_their_callbacks(path):
    config = yaml.safe_load(path.read_text())
    callbacks = [_instantiate(spec) for spec in config["trainer"]["callbacks"]]
    assert any(isinstance(callback, GradientDropout) for callback in callbacks)
    for section in ("model", "data"):
        assert callable(_import(config[section]["class_path"]))


def _import(class_path):
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _instantiate(spec):
    return _import(spec["class_path"])(**spec.get("init_args", {}))
