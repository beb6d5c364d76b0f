import pytest
import torch
from pytorch_lightning import Callback, seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from lightning_compress.callbacks import AlignReg, GradualMagnitudePruning, SelfDistilledPruning
from tests.tiny import (
    RandomTokens,
    UserModule,
    assert_resume_exact,
    loader,
    make_trainer,
    run_ddp_script,
    tiny_bert_config,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*(val_dataloader|LeafSpec|without a GradualMagnitudePruning).*")


class Terms(Callback):
    def __init__(self):
        self.values = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        metrics = trainer.callback_metrics
        self.values.append({k: float(v) for k, v in metrics.items() if k in ("train/kd", "train/cc", "train/cos")})


def test_student_equal_to_teacher_gives_zero_kl_and_unit_diagonal_I11():
    seed_everything(0)
    terms = Terms()
    sdp = SelfDistilledPruning(feature_loss="cc", beta=1.0, offdiag_weight=0.0, teacher_cache=False)
    make_trainer([sdp, terms], max_steps=2).fit(UserModule(dropout=0.0), loader())
    assert terms.values[0]["train/kd"] == pytest.approx(0.0, abs=1e-6)
    assert terms.values[0]["train/cc"] == pytest.approx(0.0, abs=1e-4)  # Σ (1 - C_ii)², C_ii = 1
    assert terms.values[1]["train/kd"] > 0


def test_cos_variant_logs_its_term_and_weights_ce_by_alpha():
    seed_everything(0)
    terms = Terms()
    sdp = SelfDistilledPruning(alpha=0.3, feature_loss="cos")
    assert sdp.beta == 0.05 and sdp.task_weight == 0.3 and sdp.kl_weight == 0.0
    make_trainer([sdp, terms], max_steps=3).fit(UserModule(dropout=0.0), loader())
    assert set(terms.values[-1]) == {"train/cos"} and terms.values[-1]["train/cos"] > 0
    assert SelfDistilledPruning(feature_loss="cc").beta == 2e-5


def test_cache_fills_in_epoch_one_then_frees_the_teacher_and_matches_live_outputs():
    seed_everything(0)
    module = UserModule(dropout=0.0)
    sdp = SelfDistilledPruning(teacher_cache=True)
    teacher_at_start = None

    class Grab(Callback):
        def on_train_start(self, trainer, pl_module):
            nonlocal teacher_at_start
            import copy

            teacher_at_start = copy.deepcopy(sdp.teacher)

    make_trainer([GradualMagnitudePruning(final_sparsity=0.5), sdp, Grab()], max_epochs=2).fit(module, loader(40))
    assert sdp.cache_complete and sdp.teacher is None
    assert bool(sdp.cached.all()) and sdp.cached.numel() == 40
    assert sdp.cache_logits.dtype == torch.float16 and sdp.cache_features.shape == (40, 32)
    data = RandomTokens(40)
    with torch.no_grad():
        out = teacher_at_start(input_ids=data.input_ids, output_hidden_states=True)
    torch.testing.assert_close(sdp.cache_logits.float(), out.logits, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(sdp.cache_features.float(), out.hidden_states[-1][:, 0], rtol=1e-3, atol=2e-3)


def test_live_teacher_is_kept():
    seed_everything(0)
    sdp = SelfDistilledPruning(teacher_cache=False)
    make_trainer([GradualMagnitudePruning(final_sparsity=0.5), sdp], max_epochs=2).fit(UserModule(), loader(16))
    assert sdp.teacher is not None and sdp.cached is None
    assert not any(p.requires_grad for p in sdp.teacher.parameters()) and not sdp.teacher.training


def test_batches_without_idx_and_cache_on_fail_clearly():
    class NoIdx(RandomTokens):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            del item["idx"]
            return item

    data = DataLoader(NoIdx(16), batch_size=8)
    with pytest.raises(ValueError, match="training batches have none. HINT: add `idx`.*or pass teacher_cache=False"):
        make_trainer([SelfDistilledPruning()], max_steps=1).fit(UserModule(), data)
    make_trainer([SelfDistilledPruning(teacher_cache=False)], max_steps=1).fit(UserModule(), data)


def test_warns_without_a_pruning_callback():
    with pytest.warns(UserWarning, match="without a GradualMagnitudePruning callback: nothing is pruned"):
        make_trainer([SelfDistilledPruning()], max_steps=1).fit(UserModule(), loader(16))


def _dense_checkpoint(tmp_path):
    seed_everything(1)
    module = UserModule()
    trainer = make_trainer([], max_steps=3)
    trainer.fit(module, loader(16))
    path = tmp_path / "dense.ckpt"
    trainer.save_checkpoint(path)
    return module, path


def test_teacher_from_a_lightning_checkpoint_and_student_from_teacher(tmp_path):
    dense, path = _dense_checkpoint(tmp_path)
    seed_everything(0)
    module = UserModule()
    sdp = SelfDistilledPruning(teacher=str(path), teacher_cache=False, student_from_teacher=True)
    grabbed = {}

    class Grab(Callback):
        def on_train_start(self, trainer, pl_module):
            grabbed["student"] = {n: p.detach().clone() for n, p in pl_module.model.named_parameters()}

    make_trainer([sdp, Grab()], max_steps=1).fit(module, loader(16))
    for name, value in dense.model.state_dict().items():
        assert torch.equal(sdp.teacher.state_dict()[name], value), name
        if name in grabbed["student"]:
            assert torch.equal(grabbed["student"][name], value), name


def test_teacher_from_a_hugging_face_folder(tmp_path):
    dense, _ = _dense_checkpoint(tmp_path)
    dense.model.save_pretrained(tmp_path / "hf")
    sdp = SelfDistilledPruning(teacher=str(tmp_path / "hf"), teacher_cache=False)
    make_trainer([sdp], max_steps=1).fit(UserModule(), loader(16))
    for name, value in dense.model.state_dict().items():
        assert torch.equal(sdp.teacher.state_dict()[name], value), name


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"num_labels": 3}, "classification heads differ: the number of labels must match"),
        ({"hidden_size": 16, "intermediate_size": 32}, "does not match the module's model"),
    ],
)
def test_teacher_of_another_architecture_or_label_count_is_refused(tmp_path, overrides, match):
    from transformers import BertForSequenceClassification

    BertForSequenceClassification(tiny_bert_config(**overrides)).save_pretrained(tmp_path / "other")
    sdp = SelfDistilledPruning(teacher=str(tmp_path / "other"))
    with pytest.raises(ValueError, match=match):
        make_trainer([sdp], max_steps=1).fit(UserModule(), loader(16))


def test_teacher_of_another_model_type_is_refused(tmp_path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=64, dim=32, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=32)
    DistilBertForSequenceClassification(config).save_pretrained(tmp_path / "distil")
    with pytest.raises(ValueError, match="is a 'distilbert' model but the module trains a 'bert' model"):
        make_trainer([SelfDistilledPruning(teacher=str(tmp_path / "distil"))], max_steps=1).fit(UserModule(), loader())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"alpha": 1.5}, ValueError, r"alpha=1.5\)` is invalid: expected a float in \[0, 1\]"),
        ({"alpha": -0.1}, ValueError, r"alpha=-0.1\)` is invalid"),
        ({"temperature": 0.0}, ValueError, r"temperature=0.0\)` is invalid: expected a float > 0"),
        ({"temperature": -1}, ValueError, r"temperature=-1\)` is invalid"),
        ({"feature_loss": "mse"}, ValueError, r"feature_loss='mse'\)` is invalid: expected one of \['cc', 'cos'\]"),
        ({"kd_weighting": "tau"}, ValueError, r"kd_weighting='tau'\)` is invalid"),
        ({"beta": -1.0}, ValueError, r"beta=-1.0\)` is invalid"),
        ({"beta": 0.1, "feature_loss": None}, ValueError, "`beta` weighs the feature loss"),
        ({"teacher_cache": "yes"}, TypeError, r"teacher_cache='yes'\)` is invalid: expected a bool"),
        ({"student_from_teacher": True}, ValueError, "needs `teacher=<module, checkpoint or folder>`"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SelfDistilledPruning(**kwargs)


def _fit_sdp(tmp_path, ckpt_path=None, teacher_cache=True, data_seed=0):
    seed_everything(0)
    module = UserModule(dropout=0.0)  # the user's module saves no RNG state, so dropout would differ after a resume
    callbacks = [
        GradualMagnitudePruning(final_sparsity=0.7, start=0.1, end=0.8, every_n_steps=3),
        SelfDistilledPruning(feature_loss="cc", beta=0.01, teacher_cache=teacher_cache),
        ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}"),
    ]
    trainer = make_trainer(callbacks, max_epochs=3, enable_checkpointing=True)
    trainer.fit(module, loader(32, seed=data_seed), ckpt_path=ckpt_path)
    return module, callbacks[1]


@pytest.mark.parametrize("teacher_cache, stop_at_step", [(True, 2), (True, 6), (False, 2)])
def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path, teacher_cache, stop_at_step):
    """12 steps (4 per epoch): step 2 is inside epoch 0, with the teacher cache half filled; step 6 inside epoch 1."""
    runs = assert_resume_exact(
        lambda: [
            GradualMagnitudePruning(final_sparsity=0.7, start=0.1, end=0.8, every_n_steps=3),
            SelfDistilledPruning(feature_loss="cc", beta=0.01, teacher_cache=teacher_cache),
        ],
        stop_at_step=stop_at_step,
        tmp_path=tmp_path,
        make_loader=lambda: loader(32),
        max_epochs=3,
    )
    if teacher_cache:
        assert runs.resumed_callbacks[1].cache_complete
        assert torch.equal(runs.full_callbacks[1].cache_logits, runs.resumed_callbacks[1].cache_logits)


@pytest.mark.parametrize("resume_epoch", [0, 1])
def test_resume_on_another_subset_of_the_same_size_is_refused(tmp_path, resume_epoch):
    """The cache is keyed by `idx`: another 32 sentences reuse idx 0..31, so the fingerprints must tell them apart."""
    _, full_sdp = _fit_sdp(tmp_path / "full")
    ckpt = tmp_path / "full" / f"epoch={resume_epoch}.ckpt"
    assert loader(32, seed=1).dataset.input_ids[0].tolist() != loader(32).dataset.input_ids[0].tolist()
    match = r"SelfDistilledPruning.*training example idx=0 was computed from other input ids.*HINT: .*start a new run"
    with pytest.raises(RuntimeError, match=match):
        _fit_sdp(tmp_path / "other", ckpt_path=ckpt, data_seed=1)
    assert full_sdp.cache_complete and bool((full_sdp.cache_fingerprints != 0).all())
    # the same subset still resumes exactly (test_resume_is_exact compares the weights)
    _, resumed_sdp = _fit_sdp(tmp_path / "same", ckpt_path=ckpt)
    assert torch.equal(resumed_sdp.cache_fingerprints, full_sdp.cache_fingerprints)
    assert torch.equal(resumed_sdp.cache_logits, full_sdp.cache_logits)


def test_checkpoint_without_fingerprints_still_resumes(tmp_path):
    """A cache saved before fingerprints were kept loads with unknown (0) fingerprints and is served unchecked."""
    full, _ = _fit_sdp(tmp_path / "full")
    ckpt = torch.load(tmp_path / "full" / "epoch=0.ckpt", weights_only=False)
    (key,) = [key for key in ckpt["callbacks"] if key.startswith("SelfDistilledPruning")]
    del ckpt["callbacks"][key]["cache"]["fingerprints"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    resumed, resumed_sdp = _fit_sdp(tmp_path / "resumed", ckpt_path=tmp_path / "old.ckpt")
    assert int((resumed_sdp.cache_fingerprints != 0).sum()) == 0
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), name


def _stacked(order):
    seed_everything(0)
    module = UserModule()
    callbacks = {
        "gmp": GradualMagnitudePruning(final_sparsity=0.6, start=0.1, end=0.7, every_n_steps=2),
        "sdp": SelfDistilledPruning(feature_loss="cc", beta=0.01),
        "align": AlignReg(kind="frobenius", lam=0.1),
    }
    make_trainer([callbacks[key] for key in order], max_epochs=2).fit(module, loader(32))
    return module.state_dict()


@pytest.mark.parametrize("criterion_order", [("gmp", "sdp", "align")])
def test_any_callback_order_gives_bitwise_identical_weights(criterion_order):
    first = _stacked(criterion_order)
    second = _stacked(tuple(reversed(criterion_order)))
    third = _stacked(("sdp", "gmp", "align"))
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
        assert torch.equal(value, third[name]), name


@pytest.mark.parametrize("criterion", ["global_magnitude", "random", "taylor", "lamp", "lookahead", "l1", "l0"])
def test_composes_with_every_pruning_criterion(criterion):
    seed_everything(0)
    module = UserModule()
    pruning = GradualMagnitudePruning(final_sparsity=0.5, start=0.2, end=0.7, every_n_steps=2, criterion=criterion)
    sdp = SelfDistilledPruning(feature_loss="cc")
    align = AlignReg(kind="cosine_unit")
    make_trainer([pruning, sdp, align], max_epochs=2).fit(module, loader(32))
    assert pruning.sparsity == pytest.approx(0.5, abs=0.02)
    assert sdp.cache_complete
    assert all(torch.isfinite(p).all() for p in module.parameters())


DDP_SCRIPT = """
import sys, torch
from pytorch_lightning import Trainer, seed_everything
from lightning_compress.callbacks import AlignReg, GradualMagnitudePruning, SelfDistilledPruning
from tests.tiny import UserModule, loader

out = sys.argv[1]
seed_everything(0)
module = UserModule()
sdp = SelfDistilledPruning(feature_loss="cc", beta=0.01)
callbacks = [GradualMagnitudePruning(final_sparsity=0.6, start=0.1, end=0.7, every_n_steps=2), sdp,
             AlignReg(kind="cosine_unit", lam=0.1)]
trainer = Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, callbacks=callbacks, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(module, loader(32, batch_size=4))
torch.save({"weights": module.state_dict(), "cached": sdp.cached, "logits": sdp.cache_logits,
            "complete": sdp.cache_complete}, f"{out}/rank{trainer.global_rank}.pt")
"""


def test_ddp_two_processes_have_identical_weights_and_caches(tmp_path):
    rank0, rank1 = run_ddp_script(DDP_SCRIPT, tmp_path)
    assert rank0["complete"] and rank1["complete"] and bool(rank0["cached"].all())
    assert torch.equal(rank0["logits"], rank1["logits"])
    for name in rank0["weights"]:
        assert torch.equal(rank0["weights"][name], rank1["weights"][name]), name
