"""Every name renamed for one vocabulary still works for one release: it warns (LightningDeprecationWarning, naming
the new spelling) and behaves exactly as the new name."""

from types import SimpleNamespace

import pytest
import torch
from lightning_fabric.utilities.rank_zero import LightningDeprecationWarning
from transformers import BertForSequenceClassification

from lightning_compress.callbacks import AlignReg, GradualMagnitudePruning, StructuredPruning, TernaryWeightSplitting
from lightning_compress.pruning.structured import skip_layer, skip_layer_
from lightning_compress.quantization import (
    half_width,
    half_width_,
    quantize_model,
    quantize_model_,
    split_model,
    split_model_,
)
from lightning_compress.tuner import dr_ucb_search, level_set_search
from tests.tiny import UserModule, loader, make_trainer, tiny_bert_config


def deprecated(match: str):
    return pytest.warns(LightningDeprecationWarning, match=match)


def stub_trainer(total: int = 40, batches: int = 8) -> SimpleNamespace:
    """What `_compute_events` reads from a Trainer: 5 epochs of 8 optimizer steps."""
    return SimpleNamespace(
        estimated_stepping_batches=total,
        num_training_batches=batches,
        accumulate_grad_batches=1,
        max_steps=-1,
        max_epochs=total // batches,
    )


# ---------------------------------------------------------------------------------------------- frequency
@pytest.mark.parametrize("cls", [GradualMagnitudePruning, StructuredPruning])
@pytest.mark.parametrize(
    "old, new", [({"frequency": 3}, {"every_n_steps": 3}), ({"frequency": "epoch"}, {"every_n_epochs": 1})]
)
def test_frequency_warns_and_gives_the_same_events(cls, old, new):
    schedule = dict(final_sparsity=0.5, schedule="iterative", step_fraction=0.3, start=0, end=1.0)
    replacement = "every_n_steps=3" if "every_n_steps" in new else "every_n_epochs=1"
    with deprecated(
        rf"`{cls.__name__}\(frequency={old['frequency']!r}\)` is deprecated .* use `{cls.__name__}\("
        rf"{replacement}\)` instead"
    ):
        legacy = cls(**schedule, **old)
    current = cls(**schedule, **new)
    assert (legacy.every_n_steps, legacy.every_n_epochs) == (current.every_n_steps, current.every_n_epochs)
    assert legacy._compute_events(stub_trainer()) == current._compute_events(stub_trainer())
    assert legacy.checkpoint_settings() == current.checkpoint_settings()
    with deprecated(rf"`{cls.__name__}.frequency` is deprecated"):
        assert current.frequency == old["frequency"]


def test_frequency_epoch_is_one_event_per_epoch_and_every_n_epochs_scales_it():
    events = GradualMagnitudePruning(
        final_sparsity=0.5, schedule="iterative", step_fraction=0.3, start=0, end=1.0, every_n_epochs=2
    )._compute_events(stub_trainer())
    assert [e.step for e in events] == [16, 32]  # 8 steps per epoch, every 2 epochs


@pytest.mark.parametrize("cls", [GradualMagnitudePruning, StructuredPruning])
def test_bad_or_conflicting_cadence_arguments(cls):
    name = cls.__name__
    with (
        pytest.warns(LightningDeprecationWarning),
        pytest.raises(ValueError, match=rf"`{name}\(frequency=0\)` is invalid: expected an int > 0 or 'epoch'\."),
    ):
        cls(frequency=0)
    with (
        pytest.warns(LightningDeprecationWarning),
        pytest.raises(
            ValueError,
            match=rf"`{name}\(frequency=2, every_n_steps=5, every_n_epochs=None\)` is invalid: expected only",
        ),
    ):
        cls(frequency=2, every_n_steps=5)
    with pytest.raises(ValueError, match=rf"`{name}\(every_n_steps=5, every_n_epochs=1\)` is invalid: expected one"):
        cls(every_n_steps=5, every_n_epochs=1)
    with pytest.raises(ValueError, match=rf"`{name}\(every_n_steps=0\)` is invalid: expected an int >= 1 or None\."):
        cls(every_n_steps=0)
    with pytest.raises(TypeError, match=rf"`{name}\(every_n_epochs=1.0\)` is invalid: expected an int >= 1 or None\."):
        cls(every_n_epochs=1.0)
    assert cls().every_n_steps == 10 and cls().every_n_epochs is None  # the old default, frequency=10


def test_checkpoints_saved_with_frequency_compare_as_the_new_settings():
    pruning = GradualMagnitudePruning(every_n_steps=2)
    saved = {key: value for key, value in pruning.checkpoint_settings().items() if not key.startswith("every_n")}
    pruning.check_resumed_settings({"settings": {**saved, "frequency": 2}})  # unchanged: no warning, no error
    with pytest.warns(UserWarning, match=r"every_n_steps: 3 → 2"):
        pruning.check_resumed_settings({"settings": {**saved, "frequency": 3}})
    with pytest.warns(UserWarning, match=r"every_n_steps: None → 2; every_n_epochs: 1 → None"):
        pruning.check_resumed_settings({"settings": {**saved, "frequency": "epoch"}})


# ---------------------------------------------------------------------------------------------- teacher
@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(1)
    BertForSequenceClassification(tiny_bert_config()).save_pretrained(folder)
    return str(folder)


def test_alignreg_reference_warns_and_uses_the_same_reference_weights(teacher_folder):
    with deprecated(r"`AlignReg\(reference='.*'\)` is deprecated .* use `AlignReg\(teacher='.*'\)` instead"):
        legacy = AlignReg(reference=teacher_folder)
    current = AlignReg(teacher=teacher_folder)
    assert legacy.teacher == teacher_folder and legacy.checkpoint_settings() == current.checkpoint_settings()
    for callback in (legacy, current):
        make_trainer([callback], max_steps=1).fit(UserModule(), loader(16))
    assert legacy.references.keys() == current.references.keys() and legacy.references
    assert all(torch.equal(legacy.references[name], current.references[name]) for name in current.references)
    with deprecated(r"`AlignReg.reference` is deprecated"):
        assert current.reference == teacher_folder
    with pytest.warns(LightningDeprecationWarning), pytest.raises(ValueError, match="expected only `teacher`"):
        AlignReg(teacher=teacher_folder, reference=teacher_folder)


def test_alignreg_checkpoints_saved_with_reference_compare_as_teacher():
    align = AlignReg()
    saved = {key: value for key, value in align.checkpoint_settings().items() if key != "teacher"}
    align.check_resumed_settings({"settings": {**saved, "reference": "pretrained"}})
    with pytest.raises(ValueError, match=r"teacher: 'other.ckpt' → 'pretrained'"):
        align.check_resumed_settings({"settings": {**saved, "reference": "other.ckpt"}})


def test_tws_teacher_checkpoint_warns_and_starts_from_the_same_weights(teacher_folder):
    with deprecated(
        r"`TernaryWeightSplitting\(teacher_checkpoint='.*'\)` is deprecated .* use "
        r"`TernaryWeightSplitting\(teacher='.*'\)` instead"
    ):
        legacy = TernaryWeightSplitting(split_at=None, act_bits=None, teacher_checkpoint=teacher_folder)
    current = TernaryWeightSplitting(split_at=None, act_bits=None, teacher=teacher_folder)
    assert legacy.teacher_source == teacher_folder and legacy.checkpoint_settings() == current.checkpoint_settings()
    modules = []
    for callback in (legacy, current):
        module = UserModule()
        trainer = make_trainer([callback], max_steps=1)
        callback.setup(trainer, module, "fit")
        modules.append(module)
    expected = BertForSequenceClassification.from_pretrained(teacher_folder).state_dict()
    for key, value in modules[1].model.state_dict().items():
        assert torch.equal(modules[0].model.state_dict()[key], value), key
    assert torch.equal(legacy.teacher.state_dict()["classifier.weight"], expected["classifier.weight"])
    with deprecated(r"`TernaryWeightSplitting.teacher_checkpoint` is deprecated"):
        assert current.teacher_checkpoint == teacher_folder
    with pytest.warns(LightningDeprecationWarning), pytest.raises(ValueError, match="expected only `teacher`"):
        TernaryWeightSplitting(teacher=teacher_folder, teacher_checkpoint=teacher_folder)


# ---------------------------------------------------------------------------------------------- in-place functions
def _tiny() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_bert_config())


@pytest.mark.parametrize(
    "old, new, run",
    [
        (half_width, half_width_, lambda fn, model: fn(model)),
        (quantize_model, quantize_model_, lambda fn, model: fn(model, "ternary", 8)),
        (split_model, split_model_, lambda fn, model: (quantize_model_(model, "ternary", 8), fn(model))[1]),
    ],
    ids=["half_width", "quantize_model", "split_model"],
)
def test_old_function_names_warn_and_do_the_same(old, new, run):
    legacy_model, model = _tiny(), _tiny()
    with deprecated(rf"`{old.__name__}` is deprecated .* use `{new.__name__}` \(same arguments\) instead"):
        legacy = run(old, legacy_model)
    assert legacy == run(new, model)
    inputs = torch.randint(0, 64, (2, 8))
    legacy_model.eval(), model.eval()
    assert torch.equal(legacy_model(inputs).logits, model(inputs).logits)


def test_skip_layer_warns_and_makes_the_block_the_identity():
    block = _tiny().bert.encoder.layer[0]
    hidden = torch.randn(2, 5, 32)
    with deprecated(r"`skip_layer` is deprecated .* use `skip_layer_`"):
        handle = skip_layer(block)
    assert torch.equal(block(hidden)[0] if isinstance(block(hidden), tuple) else block(hidden), hidden)
    handle.remove()
    handle = skip_layer_(block)
    assert torch.equal(block(hidden)[0] if isinstance(block(hidden), tuple) else block(hidden), hidden)
    handle.remove()


# ---------------------------------------------------------------------------------------------- tuner
def curve(s: float) -> float:
    return 0.9 - 0.4 / (1 + 2.718281828 ** (-(s - 0.7) / 0.03))


def test_dr_ucb_search_runs_dr_ucb_and_warns_when_the_switch_is_left_out():
    level, initial = curve(0.0) - 0.02, [(0.0, curve(0.0))]
    with deprecated(r"`dr_ucb_search\(\.\.\.\)` without `acquisition` .* runs DR-UCB now.* use `level_set_search"):
        implicit = dr_ucb_search(curve, level, n_iter=4, seed=0, initial=initial)
    explicit = level_set_search(curve, level, n_iter=4, seed=0, initial=initial, acquisition="dr_ucb")
    assert implicit.xs == explicit.xs and implicit.best_x == explicit.best_x


def test_dr_ucb_search_with_the_switch_does_not_warn_and_level_set_stays_reachable(recwarn):
    level, initial = curve(0.0) - 0.02, [(0.0, curve(0.0))]
    switched = dr_ucb_search(curve, level, n_iter=4, seed=0, initial=initial, acquisition="level_set")
    assert not [w for w in recwarn if issubclass(w.category, LightningDeprecationWarning)]
    assert switched.xs == level_set_search(curve, level, n_iter=4, seed=0, initial=initial).xs
