import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lightning_compress.tuner import SparsityTuner, SweepLock, SweepLockedError
from lightning_compress.tuner.executors import LocalExecutor, TrialSpec, run_trial
from lightning_compress.tuner.journal import Journal, JournalError

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


DIVERGED = {
    # the tuned metric itself is NaN once the run diverges
    "loss": (
        "val/loss",
        "min",
        "if x > 0.45: json.dump({'val/loss': float('nan')}, open(out, 'w'))\n"
        "else: json.dump({'val/loss': 0.3 + 0.01 * x}, open(out, 'w'))",
    ),
    # accuracy stays a finite (even better) number while the loss is NaN, or the run raises FloatingPointError
    "accuracy": (
        "val/accuracy",
        "max",
        "if x > 0.7: raise FloatingPointError('non-finite loss at step 3')\n"
        "if x > 0.45: json.dump({'val/accuracy': 0.95, 'val/loss': float('nan')}, open(out, 'w'))\n"
        "else: json.dump({'val/accuracy': 0.9 - 0.01 * x, 'val/loss': 0.3}, open(out, 'w'))",
    ),
}


@pytest.mark.parametrize("case", sorted(DIVERGED))
def test_diverged_trials_are_failed_and_never_the_best(tmp_path, case):
    metric, mode, script = DIVERGED[case]
    tuner = FakeTrials(
        CONFIG, out_dir=tmp_path, n_trials=5, live=False, epsilon=0.05, metric=metric, mode=mode, script=script
    )
    result = tuner.run()
    trials = Journal(tmp_path / "journal.sqlite").trials()
    knob = lambda t: next(iter(t.knobs.values()))  # noqa: E731
    diverged = [t for t in trials if knob(t) > 0.45]
    assert diverged and all(t.status == "failed" and "diverged" in t.error for t in diverged)
    assert all(t.status == "done" for t in trials if knob(t) <= 0.45)
    assert result.best is not None and knob(result.best) <= 0.45 and result.best.status == "done"
    best = yaml.safe_load((tmp_path / "best_config.yaml").read_text())
    assert best["trainer"]["callbacks"][0]["init_args"]["final_sparsity"] == knob(result.best)


def test_a_second_tuner_on_the_same_folder_is_refused_until_the_holder_dies(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom lightning_compress.tuner import SweepLock\n"
         f"SweepLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        tuner = FakeTrials(CONFIG, out_dir=tmp_path, n_trials=1, live=False, script=GOOD)
        with pytest.raises(SweepLockedError, match=rf"in use by another tuner \(pid {holder.pid}"):
            tuner.run(resume=True)
        assert not (tmp_path / "journal.sqlite").exists()
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock
        holder.wait()
    with SweepLock(tmp_path) as lock:
        assert lock.held and (tmp_path / "sweep.lock").read_text().strip() == str(os.getpid())


def test_resume_refuses_changed_settings_unless_allowed(tmp_path):
    FakeTrials(CONFIG, out_dir=tmp_path, n_trials=1, live=False, script=GOOD).run()
    changed = FakeTrials(
        CONFIG, out_dir=tmp_path, n_trials=1, live=False, script=GOOD, epsilon=0.05,
        overrides={"model.init_args.lr": 0.2},
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"(?s)epsilon: 0.02 when the sweep started, 0.05 now.*"
                       r"trial_config.model.init_args.lr: 0.1 when.*0.2 now.*--allow-changed-settings"):  # fmt: skip
        changed.run(resume=True)
    changed.run(resume=True, allow_changed_settings=True)
    FakeTrials(
        CONFIG, out_dir=tmp_path, n_trials=1, live=False, script=GOOD, epsilon=0.05,
        overrides={"model.init_args.lr": 0.2},
    ).run(resume=True)  # fmt: skip  # the new settings are now the stored ones


def test_empty_or_corrupt_journal_and_orphan_trial_folders_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "journal.sqlite").write_bytes(b"")
    (tmp_path / "empty" / "trial_0001").mkdir()
    with pytest.raises(JournalError, match=r"journal.sqlite is not readable: it is empty \(0 bytes\)"):
        FakeTrials(CONFIG, out_dir=tmp_path / "empty", live=False, script=GOOD).run(resume=True)
    assert (tmp_path / "empty" / "journal.sqlite").stat().st_size == 0  # left as it was
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "journal.sqlite").write_bytes(b"not a database " * 500)
    with pytest.raises(JournalError, match=r"corrupt/journal.sqlite is not readable.*another out_dir"):
        Journal(tmp_path / "corrupt" / "journal.sqlite")
    (tmp_path / "orphans" / "trial_0003").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"holds trial folders \(trial_0003\) but no journal"):
        FakeTrials(CONFIG, out_dir=tmp_path / "orphans", live=False, script=GOOD).run()


INTERRUPTIBLE = """
import sys
sys.path.insert(0, {root!r})
from tests.tuner.test_tuner import CONFIG, FakeTrials
script = {script!r}
FakeTrials(CONFIG, out_dir={out!r}, n_trials=3, live=False, script=script, executor={{"workers": 2}}).run(
    resume=len(sys.argv) > 1)
"""


def _text(path: Path) -> str:
    """The stripped text of ``path``, or "" while it does not exist (yet)."""
    return path.read_text().strip() if path.exists() else ""


def test_first_ctrl_c_stops_running_trials_requeues_them_and_the_sweep_resumes(tmp_path):
    out = tmp_path / "sweep"
    slow = "open(out + '.pid', 'w').write(str(__import__('os').getpid()))\nif x > 0: time.sleep(120)\n" + GOOD
    driver = tmp_path / "driver.py"
    driver.write_text(INTERRUPTIBLE.format(root=str(ROOT), script=slow, out=str(out)))
    process = subprocess.Popen([sys.executable, str(driver)], stderr=subprocess.PIPE, text=True)

    def running_and_asleep() -> list:
        """The running trials once every one of them is a sleeping (x > 0) trial that has written its pid, else []."""
        trials = Journal(out / "journal.sqlite").trials() if (out / "journal.sqlite").exists() else []
        running = [t for t in trials if t.status == "running"]
        asleep = all(min(t.knobs.values()) > 0 and _text(Path(t.run_dir, "result.json.pid")) for t in running)
        return running if running and asleep else []

    deadline = time.time() + 120
    while time.time() < deadline and not running_and_asleep():
        time.sleep(0.2)
    running = running_and_asleep()
    assert running, "no trial was left running asleep within 120 s"
    pids = [int(Path(t.run_dir, "result.json.pid").read_text()) for t in running]
    started = time.perf_counter()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert time.perf_counter() - started < 30 and "KeyboardInterrupt" in stderr and "re-queued" in stderr, stderr
    trials = Journal(out / "journal.sqlite").trials()
    assert {t.id for t in trials if t.status == "queued"} >= {t.id for t in running}
    assert not [t for t in trials if t.status == "running"]
    for pid in pids:  # the trial processes are gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    fast = driver.read_text().replace("if x > 0: time.sleep(120)", "pass")
    driver.write_text(fast)
    subprocess.run([sys.executable, str(driver), "--resume"], check=True, capture_output=True, timeout=300)
    trials = Journal(out / "journal.sqlite").trials()
    assert len(trials) == 1 + 3 and all(t.status == "done" for t in trials)
    assert {t.attempts for t in trials if t.id in {r.id for r in running}} == {2}


def test_sweep_without_matplotlib_skips_the_plots_and_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("lightning_compress.tuner.output.has_module", lambda name: False)
    FakeTrials(CONFIG, out_dir=tmp_path, n_trials=2, live=False, script=GOOD).run()
    assert (tmp_path / "trials.csv").is_file() and (tmp_path / "best_config.yaml").is_file()
    assert not (tmp_path / "metric_vs_knob.png").exists() and not (tmp_path / "trace.png").exists()
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "plots skipped: they need matplotlib, `pip install lightning-compress[report]`" in out
