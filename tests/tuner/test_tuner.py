import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lightning_compress.tuner import SparsityTuner
from lightning_compress.tuner.executors import LocalExecutor, TrialSpec, run_trial
from lightning_compress.tuner.journal import Journal

CONFIG = {
    "trainer": {
        "callbacks": [
            {"class_path": "lightning_compress.callbacks.GradualMagnitudePruning", "init_args": {"final_sparsity": 0.9}}
        ]
    },
    "model": {"class_path": "x.Model", "init_args": {"lr": 0.1}},
}


class FakeTrials(SparsityTuner):
    """Trials are a Python one-liner computing the metric from the knob (no training)."""

    def __init__(self, *args, script: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = script

    def _spec(self, trial):
        run_dir = self.out_dir / f"trial_{trial.id:04d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        x = next(iter(trial.knobs.values()))
        out = run_dir / "result.json"
        code = f"import json, math, sys, time; x = {x!r}; out = {str(out)!r}\n{self.script}"
        return TrialSpec(trial.id, [sys.executable, "-c", code], str(run_dir), str(out), self.trial_timeout)


GOOD = "json.dump({'val/accuracy': 0.9 - 0.4 / (1 + math.exp(-(x - 0.6) / 0.03))}, open(out, 'w'))"


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no key 'Pruning'"):
        SparsityTuner(CONFIG, knobs="trainer.callbacks.0.init_args.Pruning.x", out_dir=tmp_path)
    with pytest.raises(ValueError, match="matches 0 list items"):
        SparsityTuner(CONFIG, knobs="trainer.callbacks.L0.init_args.final_sparsity", out_dir=tmp_path)
    with pytest.raises(ValueError, match="epsilon=-0.1"):
        SparsityTuner(CONFIG, epsilon=-0.1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="n_trials=0"):
        SparsityTuner(CONFIG, n_trials=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="executor.kind='slurm'"):
        SparsityTuner(CONFIG, executor={"kind": "slurm"}, out_dir=tmp_path)


def test_metric_never_logged_is_reported_after_the_first_trial(tmp_path):
    tuner = FakeTrials(
        CONFIG, out_dir=tmp_path, n_trials=2, live=False, script="json.dump({'val/loss': 1.0}, open(out, 'w'))"
    )
    with pytest.raises(ValueError, match=r"'val/accuracy' was never logged.*\['val/loss'\]"):
        tuner.run()


def test_sweep_finds_the_threshold_and_writes_outputs(tmp_path):
    tuner = FakeTrials(CONFIG, out_dir=tmp_path, n_trials=8, live=False, script=GOOD, executor={"workers": 2})
    result = tuner.run()
    x = result.knobs["trainer.callbacks.GradualMagnitudePruning.init_args.final_sparsity"]
    assert 0.45 < x < 0.55 and result.best.metrics["val/accuracy"] >= result.level
    best = yaml.safe_load((tmp_path / "best_config.yaml").read_text())
    assert best["trainer"]["callbacks"][0]["init_args"]["final_sparsity"] == x
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + 8
    assert (tmp_path / "metric_vs_knob.png").stat().st_size > 0 and (tmp_path / "trace.png").is_file()
    with pytest.raises(FileExistsError, match="--resume"):
        tuner.run()


def test_nan_crash_and_timeout_trials_fail_and_the_sweep_goes_on(tmp_path):
    script = (
        "if x > 0.8: sys.exit(3)\n"
        "if 0.6 < x <= 0.8: json.dump({'val/accuracy': float('nan')}, open(out, 'w'))\n"
        "else: json.dump({'val/accuracy': 0.9 - 0.1 * x}, open(out, 'w'))"
    )
    tuner = FakeTrials(CONFIG, out_dir=tmp_path, n_trials=4, live=False, epsilon=0.05, script=script)
    tuner.run()
    trials = Journal(tmp_path / "journal.sqlite").trials()
    assert len(trials) == 1 + 4 and all(t.status in ("done", "failed") for t in trials)
    failed = [t for t in trials if t.status == "failed"]
    assert failed and all("NaN" in t.error for t in failed)
    assert all(next(iter(t.knobs.values())) > 0.6 for t in failed)
    outcome = run_trial(TrialSpec(1, [sys.executable, "-c", "import sys; sys.exit(3)"], str(tmp_path / "c"), "r.json"))
    assert outcome.status == "failed" and "exit code 3" in outcome.error
    sleeper = TrialSpec(2, [sys.executable, "-c", "import time; time.sleep(30)"], str(tmp_path / "t"), "r.json", 1.0)
    started = time.perf_counter()
    outcome = run_trial(sleeper)
    assert outcome.status == "failed" and "timed out" in outcome.error and time.perf_counter() - started < 10


def test_local_executor_gives_each_cpu_worker_its_share_of_threads():
    executor = LocalExecutor(devices="cpu", workers=2, cpu_count=8)
    assert executor.n_workers == 2 and {e["OMP_NUM_THREADS"] for e in executor.slot_envs} == {"4"}
    executor.shutdown()
    with pytest.raises(ValueError, match="devices='tpu'"):
        LocalExecutor(devices="tpu")


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_real_tiny_sweep_survives_kill_9_and_resumes(tiny_trial_config, tmp_path):
    """`lightning-compress tune` on real tiny fit runs, killed with SIGKILL mid-sweep, then `--resume`."""
    out = tmp_path / "sweep"
    tune = tmp_path / "tune.yaml"
    tune.write_text(
        yaml.safe_dump(
            {
                "trial": str(tiny_trial_config),
                "metric": "val/accuracy",
                "epsilon": 0.5,
                "n_trials": 4,
                "executor": {"kind": "local", "devices": "cpu", "workers": 2},
                "out_dir": str(out),
                "trial_timeout": 600,
            }
        )
    )
    command = [str(Path(sys.executable).parent / "lightning-compress"), "tune", "--config", str(tune), "--no_live"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal_path = out / "journal.sqlite"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once a level trial is running
        if journal_path.exists() and Journal(journal_path).trials(stage="level", status="running"):
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = Journal(journal_path).trials()
    assert any(t.status == "running" for t in killed)
    done_before = {t.id: t.metrics for t in killed if t.status == "done"}
    subprocess.run([*command, "--resume"], cwd=ROOT, env=env, check=True, capture_output=True)
    trials = Journal(journal_path).trials()
    assert [t.stage for t in trials].count("dense") == 1 and [t.stage for t in trials].count("level") == 4
    assert all(t.status == "done" for t in trials)
    assert len({json.dumps(t.knobs) for t in trials}) == len(trials)  # every trial recorded once
    for trial_id, metrics in done_before.items():
        assert trials[trial_id - 1].metrics == metrics and trials[trial_id - 1].attempts == 1
    assert any(t.attempts == 2 for t in trials)  # the interrupted ones ran again
    assert (out / "best_config.yaml").is_file() and (out / "trials.csv").is_file()
