import itertools

import pytest
import torch
from pytorch_lightning import Callback, seed_everything
from pytorch_lightning.callbacks import ModelCheckpoint
from transformers import get_linear_schedule_with_warmup

from lightning_compress.callbacks import TernaryWeightSplitting
from lightning_compress.export import load_compressed, save_compressed
from lightning_compress.quantization import QuantEmbedding, QuantLinear, SplitBinaryEmbedding, SplitBinaryLinear
from lightning_compress.quantization.splitting import split_groups
from tests.tiny import UserModule, assert_resume_exact, loader, make_trainer, run_ddp_script

# Lightning 2.6 leaves the train loader's mid-epoch state pending when `configure_optimizers` reads
# `trainer.estimated_stepping_batches` (a warm-up schedule does); the callbacks' `on_train_start` applies it.


class ScheduledModule(UserModule):
    """The tiny user module with a Hugging Face linear warm-up schedule (a LambdaLR)."""

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = self.trainer.estimated_stepping_batches
        scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class Probe(Callback):
    """Records the phase, distillation stage, learning rate and optimizer parameters at every step."""

    def __init__(self, tws):
        self.tws, self.rows = tws, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        optimizer = trainer.optimizers[0]
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        trainable = {id(p) for p in pl_module.parameters() if p.requires_grad}
        self.rows.append(
            {
                "step": trainer.global_step,
                "phase": self.tws.phase,
                "stage": self.tws.stage,
                "lr": optimizer.param_groups[0]["lr"],
                "params_match": in_optimizer == trainable,
                "kd": float(trainer.callback_metrics.get("train/tws/kd", float("nan"))),
            }
        )


def test_one_fit_runs_ternary_distillation_split_and_binary_finetuning():
    seed_everything(0)
    module = ScheduledModule(dropout=0.0)
    tws = TernaryWeightSplitting(split_at=12, act_bits=8, width=0.5, intermediate_until=0.5)
    probe = Probe(tws)
    make_trainer([tws, probe], max_epochs=3).fit(module, loader())  # 8 steps per epoch, 24 steps
    assert tws.split_step == 12 and tws.phase == "binary"
    stages = [(row["phase"], row["stage"]) for row in probe.rows]
    assert stages[:6] == [("ternary", "intermediate")] * 6
    assert stages[6:12] == [("ternary", "prediction")] * 6
    assert stages[12:] == [("binary", "prediction")] * 12
    assert all(row["params_match"] for row in probe.rows)  # the rebuilt optimizer holds the split parameters
    assert all(row["kd"] > 0 for row in probe.rows)
    # each phase runs the whole warm-up + linear decay: lr restarts after the split and reaches ~0 at both ends
    lrs = [row["lr"] for row in probe.rows]
    assert lrs[11] < 0.1 * max(lrs[:12]) and lrs[12] > 0.5 * max(lrs[:12]) and lrs[-1] < 0.1 * max(lrs[12:])
    modules = dict(module.model.named_modules())
    assert isinstance(modules["bert.encoder.layer.0.attention.self.query"], SplitBinaryLinear)
    assert isinstance(modules["bert.pooler.dense"], SplitBinaryLinear)
    assert isinstance(modules["bert.embeddings.word_embeddings"], SplitBinaryEmbedding)
    assert type(modules["classifier"]) is torch.nn.Linear
    assert modules["bert.encoder.layer.0.intermediate.dense"].out_features == 32  # half width
    assert tws.teacher.bert.encoder.layer[0].intermediate.dense.out_features == 64


def test_bwn_baseline_is_binary_from_the_start_and_never_splits():
    seed_everything(0)
    module = UserModule()
    tws = TernaryWeightSplitting(split_at=None, weights="binary", distill="prediction")
    make_trainer([tws], max_epochs=1).fit(module, loader())
    assert tws.phase == "binary" and tws.split_step is None and tws.width == 1.0
    query = module.model.bert.encoder.layer[0].attention.self.query
    assert isinstance(query, QuantLinear) and query.weights == "binary" and query.out_features == 32
    assert isinstance(module.model.bert.embeddings.word_embeddings, QuantEmbedding)


# 8 steps per epoch, split at step 12: the ends of epochs 0 and 1, and two steps inside epoch 1, before and after it
@pytest.mark.parametrize("stop_at_step, mid_epoch", [(8, False), (16, False), (10, True), (13, True)])
def test_resume_before_or_after_the_split_is_exact(tmp_path, stop_at_step, mid_epoch):
    runs = assert_resume_exact(
        lambda: [TernaryWeightSplitting(split_at=12, act_bits=4, act_quantizer="lsq", width=0.5)],
        stop_at_step=stop_at_step,
        tmp_path=tmp_path,
        make_module=lambda: ScheduledModule(dropout=0.0),
        max_epochs=3,
        mid_epoch=mid_epoch,
    )
    full, resumed = runs.full_callbacks[0], runs.resumed_callbacks[0]
    assert resumed.phase == full.phase == "binary"
    assert resumed.split_step == full.split_step == 12
    assert any(name.endswith("weight1") for name in runs.resumed_module.state_dict())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"split_at": 0}, ValueError, r"split_at=0\)` is invalid: splitting at step 0 comes before any ternary"),
        ({"split_at": 1.0}, ValueError, r"must lie in \(0, 1\)"),
        ({"split_at": "half"}, TypeError, r"split_at='half'\)` is invalid"),
        ({"act_bits": 32}, ValueError, r"act_bits=32\)` is unsupported: expected an int in"),
        ({"act_quantizer": "pact"}, ValueError, r"act_quantizer='pact'\)` is invalid"),
        ({"weights": 2}, TypeError, r"weights=2\)` is invalid: expected one of \['ternary', 'binary'\]"),
        ({"weights": "binary", "split_at": 0.5}, ValueError, "only ternary weights are split"),
        ({"distill": "kl"}, ValueError, r"distill='kl'\)` is invalid"),
        ({"width": 0.0}, ValueError, r"width=0.0\)` is invalid"),
        ({"temperature": 0}, ValueError, r"temperature=0\)` is invalid"),
        ({"adaptive_budget": 1.5}, ValueError, r"adaptive_budget=1.5\)` is invalid"),
        ({"adaptive_budget": "half"}, TypeError, r"adaptive_budget='half'\)` is invalid"),
        ({"adaptive_budget": 0.5, "split_at": None}, ValueError, "needs a split"),
        ({"adaptive_rest": "ternaryish"}, ValueError, r"adaptive_rest='ternaryish'\)` is invalid"),
        ({"adaptive_batches": 0}, ValueError, r"adaptive_batches=0\)` is invalid"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        TernaryWeightSplitting(**kwargs)


def test_split_fraction_rounding_to_step_zero_fails_before_training():
    tws = TernaryWeightSplitting(split_at=0.01)
    with pytest.raises(ValueError, match="before any ternary training"):
        make_trainer([tws], max_epochs=1).fit(UserModule(), loader(16))


def test_model_without_linear_layers_is_rejected():
    class NoLinear(UserModule):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Embedding(4, 4)

    with pytest.raises(ValueError, match="found no nn.Linear module"):
        make_trainer([TernaryWeightSplitting(distill="none")], max_epochs=1).fit(NoLinear(), loader())


DDP_SCRIPT = """
import sys, torch
from pytorch_lightning import Trainer, seed_everything
from lightning_compress.callbacks import TernaryWeightSplitting
from tests.tiny import UserModule, loader

out = sys.argv[1]
seed_everything(0)
module = UserModule()
tws = TernaryWeightSplitting(split_at=10, act_bits=8, width=0.5)
trainer = Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, callbacks=[tws], logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(module, loader(64, batch_size=4))
torch.save({"phase": tws.phase, "weights": module.state_dict()}, f"{out}/rank{trainer.global_rank}.pt")
"""


def test_ddp_two_processes_keep_identical_weights_across_the_split(tmp_path):
    rank0, rank1 = run_ddp_script(DDP_SCRIPT, tmp_path)
    assert rank0["phase"] == rank1["phase"] == "binary"
    assert any(name.endswith("weight1") for name in rank0["weights"])
    for name in rank0["weights"]:
        assert torch.equal(rank0["weights"][name], rank1["weights"][name]), name


def _fit_adaptive(tmp_path, budget=0.4, rest="binary", ckpt_path=None, max_epochs=3):
    seed_everything(0)
    module = ScheduledModule(dropout=0.0)
    tws = TernaryWeightSplitting(
        split_at=12, act_bits=8, width=0.5, adaptive_budget=budget, adaptive_rest=rest, adaptive_batches=3
    )
    checkpoints = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer = make_trainer([tws, checkpoints], max_epochs=max_epochs, enable_checkpointing=True)
    trainer.fit(module, loader(), ckpt_path=ckpt_path)
    return module, tws


def test_split_groups_pairs_query_and_key_and_keeps_embedding_and_pooler_alone():
    suffixes = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")
    suffixes += ("intermediate.dense", "output.dense")
    names = [f"bert.encoder.layer.{j}.{suffix}" for j in (0, 1) for suffix in suffixes]
    names += ["bert.pooler.dense", "bert.embeddings.word_embeddings"]
    groups, parts, layers = split_groups(names)
    assert len(groups) == 2 * 5 + 2 and groups["layer1/mha_qk"] == names[6:8]
    assert len(parts["mha_qk"]) == 4 and len(layers["0"]) == 6
    assert groups["bert.pooler.dense"] == ["bert.pooler.dense"]


def test_adaptive_split_plan_is_the_knapsack_optimum_of_the_measured_gains(tmp_path):
    module, tws = _fit_adaptive(tmp_path)
    adaptive = tws.adaptive
    items = list(adaptive["groups"])
    values = [adaptive["sensitivity"][i] for i in items]
    costs = [adaptive["costs"][i] for i in items]
    assert len(items) == 2 * 5 + 2 and adaptive["budget"] == round(0.4 * sum(costs))
    assert any(v > 0 for v in values) and len(set(values)) > 1  # gains were measured, not defaults
    best = max(
        sum(v for v, take in zip(values, choice) if take)
        for choice in itertools.product([False, True], repeat=len(items))
        if sum(c for c, take in zip(costs, choice) if take) <= adaptive["budget"]
    )
    chosen = set(adaptive["selected"])
    assert sum(c for i, c in zip(items, costs) if i in chosen) <= adaptive["budget"]
    assert sum(v for i, v in zip(items, values) if i in chosen) == pytest.approx(best, rel=1e-12, abs=1e-15)
    assert 0 < len(chosen) < len(items)
    # a mixed model: the planned modules are split pairs, every other one binary (adaptive_rest="binary")
    modules = dict(module.model.named_modules())
    assert sorted(tws.plan) == sorted(n for i in chosen for n in adaptive["groups"][i])
    for item, names in adaptive["groups"].items():
        for name in names:
            if item in chosen:
                assert isinstance(modules[name], (SplitBinaryLinear, SplitBinaryEmbedding)), name
            else:
                assert isinstance(modules[name], (QuantLinear, QuantEmbedding)), name
                assert modules[name].weights == "binary", name


def test_resume_from_a_mid_epoch_checkpoint_after_an_adaptive_split_is_exact(tmp_path):
    settings = dict(split_at=12, act_bits=8, width=0.5, adaptive_budget=0.4, adaptive_rest="binary", adaptive_batches=3)
    runs = assert_resume_exact(
        lambda: [TernaryWeightSplitting(**settings)],
        stop_at_step=13,
        tmp_path=tmp_path,
        make_module=lambda: ScheduledModule(dropout=0.0),
        max_epochs=3,
    )
    full, resumed = runs.full_callbacks[0], runs.resumed_callbacks[0]
    assert resumed.plan == full.plan and resumed.adaptive == full.adaptive
    full_modules, resumed_modules = dict(runs.full_module.named_modules()), dict(runs.resumed_module.named_modules())
    for name, module in full_modules.items():
        assert type(resumed_modules[name]) is type(module), name
        assert getattr(resumed_modules[name], "weights", None) == getattr(module, "weights", None), name


@pytest.mark.parametrize("rest", ["binary", "ternary"])
def test_mixed_adaptive_model_exports_and_reloads_identical_outputs(tmp_path, rest):
    module, tws = _fit_adaptive(tmp_path / "run", rest=rest, max_epochs=2)
    model = module.model.eval()
    kinds = {getattr(m, "weights", None) for m in model.modules()}
    assert {"split", rest} <= kinds
    save_compressed(model, tmp_path / "export")
    loaded = load_compressed(tmp_path / "export")
    x = torch.randint(0, 64, (3, 10))
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).logits, loaded(input_ids=x).logits)


def test_forward_hooks_are_removed_when_fit_ends_and_attached_again_by_a_later_fit():
    seed_everything(0)
    module = UserModule()
    counts = lambda model: sum(len(m._forward_hooks) for m in model.modules())  # noqa: E731
    before = counts(module)
    tws = TernaryWeightSplitting(split_at=None, distill="prediction", width=1.0)
    make_trainer([tws], max_epochs=1, limit_train_batches=2).fit(module, loader())
    assert counts(module) == before and counts(tws.teacher) == 0
    # a second fit attaches them again: the distillation finds the student's logits (or it would raise)
    make_trainer([tws], max_epochs=1, limit_train_batches=2).fit(module, loader())
    assert counts(module) == before
