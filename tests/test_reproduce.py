"""``lightning-compress reproduce``: row -> configs plans, fit commands, and every composed config parses."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from lightning_compress.cli import main
from lightning_compress.reporting.published import PUBLISHED_TABLES
from lightning_compress.reproduce import (
    INSTALLED_CONFIGS,
    REPO,
    RUN_RECORD,
    config_file,
    find_configs,
    find_identical_run,
    load_recipes,
    plan_runs,
    reproduce_main,
    run_command,
    run_plans,
)
from tests.data.fixtures import write_glue_task

_OWN = ("/_base/", "configs/methods/", "/_methods/")  # the composed fragments (standalone configs test themselves)


def _composed_plans() -> list:
    plans = []
    for table_id in load_recipes():
        for scaled in (False, True):
            found, _ = plan_runs(table_id, scaled=scaled, seeds=[1], runs_dir=Path("/tmp/unused"))
            plans += [p for p in found if all(any(part in c for part in _OWN) for c in p.configs)]
    return plans


def _covering(plans: list) -> list:
    """A few plans in which every config fragment appears at least once (greedy set cover)."""
    chosen, seen = [], set()
    for plan in sorted(plans, key=lambda p: -len(p.configs)):
        if not set(plan.configs) <= seen:
            chosen.append(plan)
            seen |= set(plan.configs)
    return chosen


COMPOSED = _composed_plans()
COVERING = _covering(COMPOSED)
# every composed config parses in the slow suite; the default suite parses each fragment at least once
COMPOSED_PARAMS = [plan if plan in COVERING else pytest.param(plan, marks=pytest.mark.slow) for plan in COMPOSED]


def _print_config(configs: tuple[str, ...]) -> dict:
    buffer = io.StringIO()
    args = ["fit", *[arg for config in configs for arg in ("--config", config)], "--print_config"]
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(buffer.getvalue())


def test_every_reproducible_table_has_a_recipe() -> None:
    recipes = load_recipes()
    assert set(recipes) == set(PUBLISHED_TABLES)
    for table_id, recipe in recipes.items():
        table = PUBLISHED_TABLES[table_id]
        assert set(recipe["rows"]) | set(recipe.get("skipped", {})) == set(table.methods), table_id
        assert set(recipe["scaled_tasks"]) <= set(recipe["tasks"]) <= set(table.tasks)


def test_scaled_plan_of_table_11_1() -> None:
    plans, skipped = plan_runs("oneill_11_1", scaled=True, seeds=[1, 2], runs_dir=Path("runs/x"))
    l2 = [p for p in plans if p.row == "l2_mbp" and p.task == "cola"]
    assert [p.seed for p in l2] == [1, 2]
    assert l2[0].configs == (
        "configs/scaled/_base/minilm_glue.yaml",
        "configs/glue/_base/task_cola.yaml",
        "configs/methods/gmp_l2_magnitude.yaml",
    )
    assert l2[0].run_dir.endswith("runs/x/oneill_11_1/scaled/l2_mbp/cola/seed1")
    reasons = {(s.row, s.task): s.reason for s in skipped}
    assert reasons[("*", "mnli")].startswith("no scaled data")
    assert reasons[("distilbert", None)].startswith("quoted")
    assert plans[0].seed == 1 and plans[-1].seed == 2  # seed-major


def test_run_command_and_finished_runs(tmp_path: Path) -> None:
    plans, _ = plan_runs("oneill_9_1", scaled=True, seeds=[1], runs_dir=tmp_path, rows=["lamp"], tasks=["xnli"])
    (plan,) = plans
    command = run_command(plan, ["--trainer.max_steps=2"])
    assert command[4] == "fit" and "--trainer.max_steps=2" in command
    assert command[-2:] == [
        f"--trainer.callbacks+={RUN_RECORD}",
        f"--trainer.callbacks.init_args.out_dir={plan.run_dir}",
    ]
    assert command[command.index("--export_dir") + 1] == "none"
    own = run_command(dataclasses.replace(plan, args=("--trainer.callbacks.init_args.seed=3",)))
    run_yaml = own.index(str(Path(plan.run_dir) / "run.yaml"))
    assert own[run_yaml + 1] == "--trainer.callbacks.init_args.seed=3"  # the run's own args follow its configs
    assert not plan.done
    Path(plan.run_dir).mkdir(parents=True)
    (Path(plan.run_dir) / "result.json").write_text(json.dumps({}))
    assert plan.done


def test_invalid_rows_and_tasks_name_the_choices(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="expected some of"):
        plan_runs("oneill_9_1", scaled=True, seeds=[1], runs_dir=Path("x"), rows=["nope"])
    with pytest.raises(SystemExit):
        reproduce_main(["oneill_9_1", "--tasks", "nope"])
    assert "--tasks nope" in capsys.readouterr().err


def test_dry_run_lists_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = reproduce_main(["oneill_10_10", "--scaled", "--seeds", "1", "--runs-dir", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped filter: quoted" in out and "32 runs planned" in out  # 8 rows x (xnli, panx, pawsx, udpos)
    assert "configs/methods/graddrop_layer.yaml" in out
    assert not any(tmp_path.iterdir())


def test_a_distillation_row_brings_its_teacher_run(tmp_path: Path) -> None:
    plans, _ = plan_runs("bai_5_2", scaled=True, seeds=[1], runs_dir=tmp_path, rows=["tws_118"], tasks=["mrpc"])
    teacher, student = plans
    assert (teacher.row, student.row) == ("full_precision", "tws_118")
    assert teacher.saves_checkpoint and not student.saves_checkpoint
    assert student.teacher_checkpoint == Path(teacher.run_dir) / "final.ckpt"
    assert run_command(teacher)[-1] == "--trainer.callbacks.init_args.save_checkpoint=true"
    command = run_command(student)
    assert f"--trainer.callbacks.init_args.teacher={teacher.run_dir}/final.ckpt" in command
    assert command.index(f"--trainer.callbacks+={RUN_RECORD}") > command.index("--config", 10)  # teacher arg first
    Path(teacher.run_dir).mkdir(parents=True)
    (Path(teacher.run_dir) / "result.json").write_text("{}")
    assert not teacher.done  # a teacher run is finished only with its weights
    (Path(teacher.run_dir) / "final.ckpt").write_bytes(b"")
    assert teacher.done


def test_reproduce_runs_the_teacher_then_the_distilled_row(tiny_minilm: str, tmp_path: Path) -> None:
    """End to end on a tiny model and task: the dense run saves its weights, then SDP-CC distills from them."""
    glue = tmp_path / "glue"
    write_glue_task(glue, "SST-2", n_train=16, n_dev=8)
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "max_epochs": 2,
                    "accelerator": "cpu",
                    "enable_checkpointing": False,
                    "num_sanity_val_steps": 0,
                    "enable_model_summary": False,
                },
                "model": {
                    "class_path": "lightning_compress.models.SequenceClassificationModule",
                    "init_args": {"pretrained": tiny_minilm, "lr": 1e-3},
                },
                "data": {
                    "class_path": "lightning_compress.data.GlueDataModule",
                    "init_args": {
                        "task": "sst2",
                        "data_dir": str(glue),
                        "batch_size": 4,
                        "max_seq_length": 16,
                        "cache_dir": str(tmp_path / "cache"),
                    },
                },
            }
        )
    )
    methods = REPO / "configs" / "methods"
    recipes = {
        "oneill_11_1": {
            "scaled_tasks": ["sst2"],
            "base": {"scaled": [str(base)]},
            "rows": {
                "dense": ["<base>", str(methods / "dense.yaml")],
                "sdp_cc": {
                    "configs": ["<base>", str(methods / "gmp_l2_magnitude.yaml"), str(methods / "sdp_cc.yaml")],
                    "teacher": {"row": "dense", "arg": "teacher"},
                },
            },
        }
    }
    plans, _ = plan_runs(
        "oneill_11_1", scaled=True, seeds=[7], runs_dir=tmp_path / "runs", rows=["sdp_cc"], recipes=recipes
    )
    assert run_plans(plans, [], workers=2) == 0
    dense, sdp = plans
    assert dense.done and sdp.done
    teacher = torch.load(Path(dense.run_dir) / "final.ckpt", map_location="cpu", weights_only=False)
    assert "optimizer_states" not in teacher and teacher["state_dict"]
    result = json.loads((Path(sdp.run_dir) / "result.json").read_text())
    assert result["seed"] == 7 and "val/accuracy" in result["metrics"]
    layer_sparsity = json.loads((Path(sdp.run_dir) / "layer_sparsity.json").read_text())
    assert layer_sparsity["prunable"] == pytest.approx(0.1, abs=0.01)  # one iterative step of 10 % after epoch 1
    assert (
        f"--trainer.callbacks.init_args.teacher={dense.run_dir}/final.ckpt"
        in (Path(sdp.run_dir) / "command.txt").read_text()
    )


def _finish(plan, extra: list[str] = (), checkpoint: bool = False) -> None:
    """Leave ``plan``'s folder as ``run_plans`` leaves a finished run (command, result, optionally weights)."""
    folder = Path(plan.run_dir)
    folder.mkdir(parents=True)
    (folder / "command.txt").write_text(" ".join(run_command(plan, extra)) + "\n")
    (folder / "metrics.csv").write_text("epoch,val/xnli/en/accuracy\n0,0.5\n")
    result = {**dataclasses.asdict(plan), "configs": list(plan.configs), "seconds": 60.0, "metrics": {"m": 0.5}}
    (folder / "result.json").write_text(json.dumps(result))
    if checkpoint:
        (folder / "final.ckpt").write_bytes(b"weights")


def test_a_run_another_table_made_is_copied_not_rerun(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Table 11.2's L2-MBP is Table 9.1's: same configs, task, seed and overrides; it is copied and relabelled."""
    (made,) = plan_runs("oneill_9_1", scaled=True, seeds=[1], runs_dir=tmp_path, rows=["l2_mbp"], tasks=["xnli"])[0]
    _finish(made)

    def plan(row: str, seed: int = 1):
        (found,) = plan_runs("oneill_11_2", scaled=True, seeds=[seed], runs_dir=tmp_path, rows=[row], tasks=["xnli"])[0]
        return found

    same = plan("l2_mbp")
    assert find_identical_run(same, run_command(same)) == Path(made.run_dir)
    assert find_identical_run(same, run_command(same, ["--trainer.max_epochs=2"])) is None  # other overrides
    assert find_identical_run(plan("l2_mbp", seed=2), run_command(plan("l2_mbp", seed=2))) is None
    assert find_identical_run(plan("lamp"), run_command(plan("lamp"))) is None  # other configs
    elsewhere = dataclasses.replace(same, run_dir=str(tmp_path / "l2_mbp" / "seed1"))
    assert find_identical_run(elsewhere, run_command(elsewhere)) is None  # not in a runs folder's layout

    assert run_plans([same], [], workers=1) == 0  # nothing is run: the executor would fail on a fake command
    assert f"copied l2_mbp / xnli / seed 1 from {made.run_dir}" in capsys.readouterr().out and same.done
    copied = json.loads((Path(same.run_dir) / "result.json").read_text())
    assert (copied["table"], copied["row"], copied["run_dir"]) == ("oneill_11_2", "l2_mbp", same.run_dir)
    assert copied["copied_from"] == made.run_dir and copied["metrics"] == {"m": 0.5}
    assert (Path(same.run_dir) / "metrics.csv").read_text() == (Path(made.run_dir) / "metrics.csv").read_text()


def test_a_teacher_run_is_copied_only_with_its_weights(tmp_path: Path) -> None:
    (dense_9_1,) = plan_runs("oneill_9_1", scaled=True, seeds=[1], runs_dir=tmp_path, rows=["dense"], tasks=["xnli"])[0]
    _finish(dense_9_1)
    teacher, student = plan_runs(
        "oneill_11_2", scaled=True, seeds=[1], runs_dir=tmp_path, rows=["sdp_cc"], tasks=["xnli"]
    )[0]
    assert teacher.row == "dense" and teacher.saves_checkpoint
    assert find_identical_run(teacher, run_command(teacher)) is None  # no final.ckpt to distill from
    (Path(dense_9_1.run_dir) / "final.ckpt").write_bytes(b"weights")
    assert find_identical_run(teacher, run_command(teacher)) == Path(dense_9_1.run_dir)
    assert find_identical_run(student, run_command(student)) is None  # students are never shared


@pytest.mark.parametrize("plan", COMPOSED_PARAMS, ids=lambda p: f"{p.table}-{p.scale}-{p.row}-{p.task}")
def test_composed_configs_parse(plan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    config = _print_config(plan.configs)
    callbacks = config["trainer"]["callbacks"] or []
    if "gmp_" in plan.configs[-1]:
        (pruning,) = callbacks
        assert pruning["class_path"] == "lightning_compress.callbacks.GradualMagnitudePruning"
        assert pruning["init_args"]["schedule"] == "iterative" and pruning["init_args"]["every_n_epochs"] == 1
        table = PUBLISHED_TABLES[plan.table]
        steps = round(math.log(table.remaining_for(plan.task)) / math.log(0.9))
        assert config["trainer"]["max_epochs"] == steps + 1  # one epoch per step, then one recovery epoch
        expected_decay = 5e-4 if "_l2_" in plan.configs[-1] else 0.0
        assert config["model"]["init_args"]["weight_decay"] == expected_decay
    classes = [callback["class_path"].rsplit(".", 1)[1] for callback in callbacks]
    if "/sdp_" in plan.configs[-1]:
        assert classes == ["GradualMagnitudePruning", "SelfDistilledPruning"]
        assert callbacks[1]["init_args"]["student_from_teacher"]
    if "/alignreg_" in plan.configs[-1]:
        assert classes == ["GradualMagnitudePruning", "AlignReg"]
    if plan.table == "oneill_10_10":
        assert "GradientDropout" in classes and ("ModelCheckpoint" in classes) == (plan.scale == "full")
    if plan.table == "bai_5_2" and plan.row != "full_precision":
        assert classes == ["TernaryWeightSplitting"] and config["trainer"]["gradient_clip_val"] == 1.0
        assert config["trainer"]["max_epochs"] == (3 if plan.scale == "scaled" else 18)
    data = config["data"]["init_args"]
    assert data["task"] == plan.task
    if plan.scale == "scaled":
        trainer = config["trainer"]
        assert trainer["accelerator"] == "cpu"
        per_epoch = trainer.get("limit_train_batches")
        if isinstance(per_epoch, int):  # short epochs, each a fresh slice of a larger reshuffled pool
            assert per_epoch * trainer["max_epochs"] <= 800
        else:
            assert data["max_train_samples"] <= 2000


def test_config_file_resolves_repository_paths_in_any_configs_folder(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    assert config_file("configs/methods/dense.yaml", mine) == mine / "methods" / "dense.yaml"
    assert config_file(str(tmp_path / "base.yaml"), mine) == tmp_path / "base.yaml"  # absolute: kept
    assert config_file("other/x.yaml", mine) == tmp_path / "other" / "x.yaml"  # beside the configs folder


def test_find_configs_order_and_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--configs`, then the checkout's configs/ next to the package, then the copy a wheel installs."""
    import lightning_compress.reproduce as reproduce

    assert find_configs() == REPO / "configs"
    mine = tmp_path / "mine"
    shutil.copytree(REPO / "configs", mine)
    assert find_configs(mine) == mine.resolve()
    installed = tmp_path / "prefix" / INSTALLED_CONFIGS
    monkeypatch.setattr(reproduce, "REPO", tmp_path / "site-packages")  # an installed wheel: no configs beside it
    monkeypatch.setattr(reproduce, "_installed_configs", lambda: [installed])
    with pytest.raises(FileNotFoundError, match=r"No configs folder with reproduce\.yaml found .* `--configs FOLDER`"):
        find_configs()
    shutil.copytree(REPO / "configs", installed)
    assert find_configs() == installed and find_configs(mine) == mine.resolve()
    with pytest.raises(FileNotFoundError, match=r"`--configs .*nowhere` is invalid: .*reproduce\.yaml does not exist"):
        find_configs(tmp_path / "nowhere")


def test_dry_run_reads_the_configs_folder_it_is_given(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    mine = tmp_path / "mine"
    shutil.copytree(REPO / "configs", mine)
    args = ["oneill_10_10", "--scaled", "--seeds", "1", "--runs-dir", str(tmp_path / "runs"), "--dry-run"]
    assert reproduce_main([*args, "--configs", str(mine)]) == 0
    out = capsys.readouterr().out
    assert f"configs: {mine}" in out and "32 runs planned" in out
    assert f"--config {mine / 'methods' / 'graddrop_layer.yaml'}" in out and str(REPO / "configs") not in out
    (plan,) = plan_runs("oneill_9_1", scaled=True, seeds=[1], runs_dir=tmp_path, rows=["lamp"], tasks=["xnli"])[0]
    assert run_command(plan, configs_dir=mine)[3] == str(tmp_path)  # the fit runs beside the configs folder
    with pytest.raises(SystemExit):
        reproduce_main([*args, "--configs", str(tmp_path / "nowhere")])
    assert "`--configs" in capsys.readouterr().err


def test_the_root_argument_is_deprecated_for_configs_dir(tmp_path: Path) -> None:
    args = {"scaled": True, "seeds": [1], "runs_dir": tmp_path, "rows": ["lamp"], "tasks": ["xnli"]}
    with pytest.deprecated_call(match=r"`plan_runs\(root=...\)` is deprecated .* `configs_dir=root / 'configs'`"):
        (plan,) = plan_runs("oneill_9_1", **args, root=REPO)[0]
    assert (plan,) == tuple(plan_runs("oneill_9_1", **args)[0])
    with pytest.deprecated_call(match=r"`run_command\(root=...\)` is deprecated"):
        assert run_command(plan, [], REPO) == run_command(plan, configs_dir=REPO / "configs")
