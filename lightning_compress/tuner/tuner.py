r"""``SparsityTuner``: the most compressed setting of a LightningCLI run that keeps a metric.

After Condensa (Joseph et al., 2020); see docs/tuner.md.

A sweep is a set of trials; each is ``lightning-compress fit`` on the trial config with the knob(s) set, in
its own run directory, carrying a :class:`TrialReport` callback that writes the metrics to ``result.json``.

1. Dense trial (knobs at their lower bounds) unless ``dense_metric`` is given: ``level = dense - eps``
   (``relative``: ``dense * (1 - eps)``; for ``mode="min"`` metrics such as a loss, ``dense + eps``).
2. One knob: stage-1 level-set search (:func:`propose_level_set`, ``q`` = number of workers per round) for
   the largest feasible knob; then, with an ``objective``, stage-2 search of that objective inside
   ``[low, x_acc]``. Several knobs: batch constrained BO (:func:`propose_constrained`, qLogNEI), maximising
   the first knob (or ``objective``) subject to the metric constraint.

Every trial is journaled (:class:`Journal`); ``run(resume=True)`` reuses finished trials and re-runs those
that were running, after checking that the sweep's settings are the ones it was started with. One tuner at a
time holds the sweep folder (:class:`SweepLock`). Ctrl-C stops the running trials and re-queues them, so the
sweep resumes where it stopped. Failed trials (crash, timeout, a diverged run: ``FloatingPointError`` or any
non-finite logged metric) are ``failed``, count as infeasible and are never the best trial.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pytorch_lightning.utilities import rank_zero_warn
from rich.console import Console

from lightning_compress.tuner.executors import EXECUTORS, TrialOutcome, TrialSpec
from lightning_compress.tuner.journal import Journal, Trial
from lightning_compress.tuner.lock import SweepLock
from lightning_compress.tuner.search import (
    LEVEL_SET_STRATEGIES,
    feasible_points,
    propose_constrained,
    propose_level_set,
    propose_objective,
)

__all__ = [
    "DEFAULT_KNOB",
    "Knob",
    "SparsityTuner",
    "TunerResult",
    "get_path",
    "nonfinite_metrics",
    "set_path",
    "settings_changes",
]

#: ``final_sparsity`` of the GradualMagnitudePruning callback in ``trainer.callbacks``.
DEFAULT_KNOB = "trainer.callbacks.GradualMagnitudePruning.init_args.final_sparsity"
_MODES = {"max": 1.0, "min": -1.0}
_REPORT = "lightning_compress.tuner.trial_report.TrialReport"


@dataclass
class Knob:
    """A dotted path into the trial config and the interval searched."""

    path: str
    low: float = 0.0
    high: float = 0.99


@dataclass
class TunerResult:
    """Best trial (``None`` if none was feasible), its knob values and config, the level and all trials."""

    best: Trial | None
    knobs: dict[str, float]
    level: float
    dense_metric: float
    config: dict
    trials: list[Trial] = field(default_factory=list)


def nonfinite_metrics(metrics: dict[str, Any]) -> list[str]:
    """Names of the metrics that are NaN or infinite: a run with any of them diverged."""
    return sorted(k for k, v in metrics.items() if isinstance(v, int | float) and not math.isfinite(v))


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts/lists -> ``{dotted.path: leaf}`` (an empty list is a leaf)."""
    if isinstance(value, dict):  # an empty dict has no leaves: {} and a missing key compare equal
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}.{key}").items()}
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}.{i}").items()}
    return {prefix: value}


def settings_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One line per setting that differs between a stored sweep and now (only keys the stored one recorded).

    Example:
        >>> settings_changes({"epsilon": 0.02, "seed": 0}, {"epsilon": 0.05, "seed": 0})
        ['epsilon: 0.02 when the sweep started, 0.05 now']
    """
    missing = "<not set>"
    lines = []
    for key in stored:
        before, after = _flatten(stored[key], key), _flatten(current.get(key, missing), key)
        for path in sorted(set(before) | set(after)):
            old, new = before.get(path, missing), after.get(path, missing)
            if old != new:
                lines.append(f"{path}: {old!r} when the sweep started, {new!r} now")
    return lines


class _SigintIgnored:
    """Ignore Ctrl-C while the sweep cleans up after the first one (main thread only)."""

    def __enter__(self) -> None:
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _step(node: Any, part: str, path: str) -> Any:
    if isinstance(node, dict):
        if part in node:
            return node[part]
        raise KeyError(f"knob path {path!r}: no key {part!r}; keys here are {sorted(node)}")
    if isinstance(node, list):
        if part.lstrip("-").isdigit():
            return node[int(part)]
        matches = [
            item for item in node if isinstance(item, dict) and str(item.get("class_path", "")).split(".")[-1] == part
        ]
        if len(matches) == 1:
            return matches[0]
        names = [str(item.get("class_path", "?")).split(".")[-1] if isinstance(item, dict) else "?" for item in node]
        raise KeyError(f"knob path {path!r}: {part!r} matches {len(matches)} list items; items are {names}")
    raise KeyError(f"knob path {path!r}: cannot go into {type(node).__name__} at {part!r}")


def get_path(config: dict, path: str) -> Any:
    """Value at a dotted ``path``; list items by index or by the class name of their ``class_path``."""
    node: Any = config
    for part in path.split("."):
        node = _step(node, part, path)
    return node


def set_path(config: dict, path: str, value: Any, create: bool = False) -> None:
    """Set the value at a dotted ``path`` (which must exist up to its last key unless ``create``) in place."""
    *parents, last = path.split(".")
    node: Any = config
    for part in parents:
        node = _step(node, part, path)
    if isinstance(node, list):
        node[int(last)] = value
    elif isinstance(node, dict):
        if last not in node:
            # an init_arg the config leaves at its default is allowed only under init_args
            if not create and (not parents or parents[-1] != "init_args"):
                raise KeyError(f"knob path {path!r}: no key {last!r}; keys here are {sorted(node)}")
        node[last] = value
    else:
        raise KeyError(f"knob path {path!r}: cannot set {last!r} in a {type(node).__name__}")


class SparsityTuner:
    r"""Search the compression knob(s) of a LightningCLI config under a metric constraint.

    Args:
        config: Trial config (path to a LightningCLI YAML or its dict).
        knobs: Dotted paths (str or ``{"path", "low", "high"}`` dicts); default :data:`DEFAULT_KNOB` on (0, 0.99).
        metric: Metric to keep, as logged (``val/accuracy``).
        mode: ``"max"`` (higher is better) or ``"min"``.
        epsilon: Allowed degradation (``>= 0``), absolute or ``relative`` to the dense metric.
        dense_metric: Metric of the dense run; ``None`` runs it first.
        n_trials: Stage-1 trials (or rounds x workers for several knobs), ``>= 1``.
        acquisition: Stage-1 method: ``"level_set"`` (default), ``"dr_ucb"``, ``"bisection"``.
        objective: Stage-2 metric (e.g. ``trial/nonzero_mb``) and ``objective_mode``/``objective_trials``.
        executor: ``{"kind": "local" | "ray", ...constructor arguments}``.
        out_dir: Sweep directory (journal, trial run directories, outputs).
        overrides: Dotted path -> value applied to the trial config before the knobs (e.g. shorter runs).
        trial_timeout: Seconds before a trial is killed and marked failed.
        noise_std: Known metric noise (``None``: estimated).
        seed: Seed of the search.

    Example:
        >>> tuner = SparsityTuner("configs/scaled/sst2_gmp.yaml", epsilon=0.02, n_trials=8)  # doctest: +SKIP
        >>> result = tuner.run(); result.knobs  # doctest: +SKIP
    """

    def __init__(
        self,
        config: str | Path | dict,
        knobs: Sequence[str | dict] | str | None = None,
        metric: str = "val/accuracy",
        mode: Literal["max", "min"] = "max",
        epsilon: float = 0.02,
        relative: bool = False,
        dense_metric: float | None = None,
        n_trials: int = 10,
        acquisition: str = "level_set",
        objective: str | None = None,
        objective_mode: Literal["max", "min"] = "min",
        objective_trials: int = 0,
        executor: dict | None = None,
        out_dir: str | Path = "runs/tune",
        overrides: dict[str, Any] | None = None,
        trial_timeout: float | None = None,
        noise_std: float | None = None,
        seed: int = 0,
        live: bool = True,
    ) -> None:
        if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or epsilon < 0:
            raise ValueError(f"`SparsityTuner(epsilon={epsilon!r})` is invalid: expected a float >= 0.")
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise ValueError(f"`SparsityTuner(n_trials={n_trials!r})` is invalid: expected an int >= 1.")
        if mode not in _MODES or objective_mode not in _MODES:
            raise ValueError(f"`mode={mode!r}`/`objective_mode={objective_mode!r}`: expected one of {list(_MODES)}.")
        if acquisition not in LEVEL_SET_STRATEGIES:
            raise ValueError(f"`acquisition={acquisition!r}` is invalid: expected one of {list(LEVEL_SET_STRATEGIES)}.")
        if objective_trials < 0:
            raise ValueError(f"`objective_trials={objective_trials!r}` is invalid: expected an int >= 0.")
        executor = dict(executor or {"kind": "local"})
        kind = executor.pop("kind", "local")
        if kind not in EXECUTORS:
            raise ValueError(f"`executor.kind={kind!r}` is invalid: expected one of {list(EXECUTORS)}.")
        if isinstance(config, str | Path):
            self.config_path: Path | None = Path(config)
            config = yaml.safe_load(Path(config).read_text())
        else:
            self.config_path = None
        self.config = copy.deepcopy(config)
        self.overrides = copy.deepcopy(dict(overrides or {}))
        for path, value in (overrides or {}).items():
            set_path(self.config, path, value, create=True)
        if knobs is None:
            knobs = [DEFAULT_KNOB]
        elif isinstance(knobs, str):
            knobs = [knobs]
        self.knobs = [Knob(**k) if isinstance(k, dict) else Knob(k) for k in knobs]
        for knob in self.knobs:
            try:
                get_path(self.config, knob.path)
            except (KeyError, IndexError) as error:
                raise ValueError(f"{error.args[0]} (in the trial config). Fix the knob path.") from None
            if not knob.low < knob.high:
                raise ValueError(f"knob {knob.path!r}: expected low < high, got ({knob.low}, {knob.high}).")
        self.metric, self.sign = metric, _MODES[mode]
        self.epsilon, self.relative, self.dense_metric = float(epsilon), relative, dense_metric
        self.n_trials, self.acquisition = n_trials, acquisition
        self.objective, self.objective_sign, self.objective_trials = objective, _MODES[objective_mode], objective_trials
        self.executor_kind, self.executor_args = kind, executor
        self.out_dir = Path(out_dir)
        self.trial_timeout, self.noise_std, self.seed, self.live = trial_timeout, noise_std, seed, live

    # -- trials -----------------------------------------------------------------------------------------
    def trial_config(self, knobs: dict[str, float], run_dir: Path) -> dict:
        """The trial config with ``knobs`` set, logging to ``run_dir`` and carrying a :class:`TrialReport`."""
        config = copy.deepcopy(self.config)
        for path, value in knobs.items():
            set_path(config, path, float(value))
        trainer = config.setdefault("trainer", {})
        trainer["default_root_dir"] = str(run_dir)
        callbacks = trainer.get("callbacks") or []
        trainer["callbacks"] = [*callbacks, {"class_path": _REPORT, "init_args": {"out": str(run_dir / "result.json")}}]
        return config

    def _spec(self, trial: Trial) -> TrialSpec:
        run_dir = (self.out_dir / f"trial_{trial.id:04d}").resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        config_file = run_dir / "config.yaml"
        config_file.write_text(yaml.safe_dump(self.trial_config(trial.knobs, run_dir), sort_keys=False))
        command = [sys.executable, "-m", "lightning_compress.cli", "fit", "--config", str(config_file)]
        command += ["--export_dir", "none"]
        return TrialSpec(
            trial.id, command, str(run_dir), str(run_dir / "result.json"), self.trial_timeout, cwd=str(Path.cwd())
        )

    def _make_executor(self):
        return EXECUTORS[self.executor_kind](**self.executor_args)

    def _value(self, trial: Trial) -> float:
        """The signed metric (higher is better) of a finished trial; NaN when failed or diverged."""
        if trial.status != "done" or nonfinite_metrics(trial.metrics):
            return float("nan")
        return self.sign * float(trial.metrics.get(self.metric, float("nan")))

    def _level(self, dense: float) -> float:
        margin = self.epsilon * abs(dense) if self.relative else self.epsilon
        return self.sign * dense - margin

    def _record(self, journal: Journal, outcome: TrialOutcome) -> None:
        diverged = nonfinite_metrics(outcome.metrics)
        if outcome.status == "done" and diverged:
            journal.fail(outcome.trial_id, f"diverged: non-finite {', '.join(diverged)} (NaN/inf)", outcome.metrics)
        elif outcome.status == "done":
            journal.finish(outcome.trial_id, outcome.metrics)
        else:
            journal.fail(outcome.trial_id, outcome.error or "failed", outcome.metrics)

    def _run_queued(self, journal: Journal, executor, display) -> None:
        """Run every queued trial (at most ``n_workers`` at once), journaling each state change."""
        queued = journal.trials(status="queued")
        for trial in queued:
            while executor.pending >= executor.n_workers:
                for outcome in executor.wait():
                    self._record(journal, outcome)
                display(journal)
            spec = self._spec(trial)
            journal.start(trial.id, spec.run_dir)
            executor.submit(spec)
            display(journal)
        while executor.pending:
            for outcome in executor.wait():
                self._record(journal, outcome)
            display(journal)

    def _check_metric_logged(self, trial: Trial) -> None:
        if trial.status == "done" and self.metric not in trial.metrics:
            logged = sorted(k for k in trial.metrics if not k.startswith("trial/"))
            raise ValueError(
                f"metric {self.metric!r} was never logged by trial {trial.id} ({trial.run_dir}); "
                f"logged metrics: {logged}. Set `metric` to one of them."
            )
        if self.objective is not None and trial.status == "done" and self.objective not in trial.metrics:
            raise ValueError(
                f"objective {self.objective!r} was never logged by trial {trial.id}; logged: {sorted(trial.metrics)}."
            )

    # -- sweep --------------------------------------------------------------------------------------------
    def _settings(self) -> dict:
        """What decides a sweep's trials and answer (not where they run: executor and timeout may change)."""
        settings = {
            "knobs": [vars(k) for k in self.knobs],
            "metric": self.metric,
            "mode": "max" if self.sign > 0 else "min",
            "epsilon": self.epsilon,
            "relative": self.relative,
            "dense_metric": self.dense_metric,
            "n_trials": self.n_trials,
            "acquisition": self.acquisition,
            "objective": self.objective,
            "objective_mode": "max" if self.objective_sign > 0 else "min",
            "objective_trials": self.objective_trials,
            "noise_std": self.noise_std,
            "seed": self.seed,
            "overrides": self.overrides,
            "trial_config": self.config,
        }
        return json.loads(json.dumps(settings, default=str))

    def run(self, resume: bool = False, allow_changed_settings: bool = False) -> TunerResult:
        """Run (or with ``resume=True`` continue) the sweep; writes outputs to ``out_dir``.

        Args:
            resume: Continue the sweep journaled in ``out_dir``. Its stored settings (knobs, metric, mode,
                epsilon, trial config, overrides, seed, ...) must equal this tuner's.
            allow_changed_settings: Resume even if the settings changed (the differences are warned about).

        Raises:
            SweepLockedError: Another tuner holds ``out_dir``.
            FileExistsError: ``out_dir`` holds a sweep and ``resume`` is False, or trial folders without a journal.
            JournalError: The journal exists but is empty or unreadable.
            ValueError: ``resume`` with changed settings and not ``allow_changed_settings``.
            KeyboardInterrupt: After Ctrl-C, once the running trials are stopped and re-queued.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with SweepLock(self.out_dir):
            return self._run_locked(resume, allow_changed_settings)

    def _open_journal(self, resume: bool, allow_changed_settings: bool) -> Journal:
        journal_path = self.out_dir / "journal.sqlite"
        if journal_path.exists() and not resume:
            raise FileExistsError(
                f"{journal_path} exists: pass --resume to continue that sweep, or use another out_dir."
            )
        if not journal_path.exists():
            leftovers = sorted(p.name for p in self.out_dir.glob("trial_*"))
            if leftovers:
                shown = ", ".join(leftovers[:3]) + (", ..." if len(leftovers) > 3 else "")
                raise FileExistsError(
                    f"{self.out_dir} holds trial folders ({shown})"
                    f" but no journal {journal_path}; a new sweep would overwrite them. Use another out_dir, or "
                    "remove the trial folders."
                )
        journal = Journal(journal_path)
        settings = self._settings()
        if resume:
            stored = journal.get_meta("settings")
            changes = settings_changes(stored, settings) if stored is not None else []
            if changes and not allow_changed_settings:
                journal.close()
                listed = "\n  ".join(changes[:20]) + ("\n  ..." if len(changes) > 20 else "")
                raise ValueError(
                    f"--resume: the sweep in {self.out_dir} was started with other settings:\n  {listed}\n"
                    "Resume with the settings it was started with, or pass --allow-changed-settings "
                    "(`SparsityTuner.run(allow_changed_settings=True)`) to continue under the new ones."
                )
            if changes:
                rank_zero_warn(f"resuming {self.out_dir} with changed settings: " + "; ".join(changes[:20]))
            journal.requeue_running()
        journal.set_meta("settings", settings)
        return journal

    def _run_locked(self, resume: bool, allow_changed_settings: bool) -> TunerResult:
        from lightning_compress.tuner.output import LiveTable, write_outputs

        journal = self._open_journal(resume, allow_changed_settings)
        try:
            executor = self._make_executor()
            table = LiveTable(self, enabled=self.live)
            try:
                with table:
                    result = self._sweep(journal, executor, table.update)
            except KeyboardInterrupt:
                with _SigintIgnored():
                    executor.cancel()
                    requeued = journal.requeue_running()
                Console(stderr=True).print(
                    f"sweep {self.out_dir} interrupted: stopped and re-queued trials {requeued}; continue it with "
                    "`lightning-compress tune --config ... --resume` (or `SparsityTuner.run(resume=True)`).",
                    markup=False,
                )
                raise
            finally:
                executor.shutdown()
            write_outputs(self, result, journal)
        finally:
            journal.close()
        return result

    def _sweep(self, journal: Journal, executor, display) -> TunerResult:
        low = {k.path: k.low for k in self.knobs}
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            dense = self.dense_metric
            if dense is None:
                if not journal.trials(stage="dense"):
                    journal.add("dense", low)
                self._run_queued(journal, executor, display)
                trial = journal.trials(stage="dense")[0]
                self._check_metric_logged(trial)
                if trial.status != "done" or math.isnan(self._value(trial)):
                    raise RuntimeError(f"the dense trial failed, no level can be set: {trial.error}")
                dense = float(trial.metrics[self.metric])
            level = self._level(dense)
            if len(self.knobs) == 1:
                self._stage_one(journal, executor, display, level, dense)
                if self.objective is not None and self.objective_trials > 0:
                    self._stage_two(journal, executor, display, level, dense)
            else:
                self._constrained(journal, executor, display, level)
        return self._result(journal, level, dense)

    def _history(self, journal: Journal, stages: Sequence[str]) -> tuple[list[float], list[float]]:
        trials = [t for t in journal.trials() if t.stage in stages and t.status in ("done", "failed")]
        for trial in trials:
            self._check_metric_logged(trial)
        path = self.knobs[0].path
        return [t.knobs[path] for t in trials], [self._value(t) for t in trials]

    def _stage_one(self, journal: Journal, executor, display, level: float, dense: float) -> None:
        knob = self.knobs[0]
        bounds = (knob.low, knob.high)
        while True:
            self._run_queued(journal, executor, display)
            done = len(journal.trials(stage="level"))
            if done >= self.n_trials:
                return
            xs, ys = self._history(journal, ("dense", "level"))
            if not xs:
                xs, ys = [knob.low], [self.sign * dense]
            q = min(executor.n_workers, self.n_trials - done)
            points, _ = propose_level_set(
                xs, ys, level, q=q, method=self.acquisition, bounds=bounds, noise_std=self.noise_std
            )
            for x in points:
                journal.add("level", {knob.path: x})

    def _feasible_x(self, journal: Journal, level: float) -> float:
        knob = self.knobs[0]
        xs, ys = self._history(journal, ("dense", "level"))
        flags = feasible_points(
            xs, ys, level, method=self.acquisition, bounds=(knob.low, knob.high), noise_std=self.noise_std
        )
        return max([x for x, f in zip(xs, flags, strict=True) if f], default=knob.low)

    def _stage_two(self, journal: Journal, executor, display, level: float, dense: float) -> None:
        knob = self.knobs[0]
        x_acc = self._feasible_x(journal, level)
        if x_acc <= knob.low:
            return
        while True:
            self._run_queued(journal, executor, display)
            done = len(journal.trials(stage="objective"))
            if done >= self.objective_trials:
                return
            trials = [t for t in journal.trials() if t.status in ("done", "failed") and t.knobs[knob.path] <= x_acc]
            xs = [t.knobs[knob.path] for t in trials]
            fs = [
                self.objective_sign * float(t.metrics.get(self.objective, float("nan")))
                if t.status == "done" and self._value(t) >= level
                else float("nan")
                for t in trials
            ]
            q = min(executor.n_workers, self.objective_trials - done)
            points, _ = propose_objective(xs, fs, bounds=(knob.low, x_acc), q=q, maximize=True)
            for x in points:
                journal.add("objective", {knob.path: x})

    def _constrained(self, journal: Journal, executor, display, level: float) -> None:
        bounds = torch.tensor([[k.low for k in self.knobs], [k.high for k in self.knobs]], dtype=torch.double)
        while True:
            self._run_queued(journal, executor, display)
            done = len(journal.trials(stage="constrained"))
            if done >= self.n_trials:
                return
            trials = [t for t in journal.trials() if t.status in ("done", "failed")]
            for trial in trials:
                self._check_metric_logged(trial)
            X = torch.tensor([[t.knobs[k.path] for k in self.knobs] for t in trials], dtype=torch.double)
            X = X.view(-1, len(self.knobs))
            metric = torch.tensor([self._value(t) for t in trials], dtype=torch.double)
            objective = self._objective_values(trials, X)
            q = min(executor.n_workers, self.n_trials - done)
            candidates = propose_constrained(X, objective, metric, level, bounds, q=q)
            for row in candidates.tolist():
                journal.add("constrained", {k.path: v for k, v in zip(self.knobs, row, strict=True)})

    def _objective_values(self, trials: list[Trial], X: torch.Tensor) -> torch.Tensor:
        if self.objective is None:
            return X[:, 0].clone()
        return torch.tensor(
            [self.objective_sign * float(t.metrics.get(self.objective, float("nan"))) for t in trials],
            dtype=torch.double,
        )

    def _result(self, journal: Journal, level: float, dense: float) -> TunerResult:
        trials = journal.trials()
        feasible = [t for t in trials if t.status == "done" and t.stage != "dense" and self._value(t) >= level]
        best: Trial | None = None
        if len(self.knobs) == 1 and self.objective is None:
            x_acc = self._feasible_x(journal, level)
            candidates = [t for t in feasible if t.knobs[self.knobs[0].path] == x_acc]
            best = candidates[0] if candidates else None
        elif feasible:
            key = self.objective

            def score(t: Trial) -> float:
                if key is None:
                    return t.knobs[self.knobs[0].path]
                return self.objective_sign * float(t.metrics.get(key, float("-inf")))

            scored = [t for t in feasible if not math.isnan(score(t))]
            best = max(scored, key=score) if scored else None
        knobs = best.knobs if best is not None else {k.path: k.low for k in self.knobs}
        run_dir = self.out_dir / "best"
        return TunerResult(best, knobs, self.sign * level, dense, self.trial_config(knobs, run_dir), trials)


def make_tuner(config_file: str | Path, **overrides: Any) -> SparsityTuner:
    """A :class:`SparsityTuner` from a tune YAML (``trial:`` is relative to the YAML's folder or, failing that, to
    the configs folder above it: ``trial: scaled/sst2_gmp.yaml`` in ``configs/tune/x.yaml``)."""
    config_file = Path(config_file)
    settings = yaml.safe_load(config_file.read_text()) or {}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if "trial" not in settings:
        raise ValueError(f"{config_file}: missing `trial:` (path of the LightningCLI config each trial runs).")
    trial = Path(settings.pop("trial"))
    if not trial.is_absolute():
        candidates = [config_file.parent / trial, config_file.parent.parent / trial]
        trial = next((c for c in candidates if c.is_file()), candidates[0]).resolve()
    if not trial.is_file():
        raise FileNotFoundError(f"{config_file}: trial config {trial} does not exist.")
    allowed = set(SparsityTuner.__init__.__code__.co_varnames[2 : SparsityTuner.__init__.__code__.co_argcount])
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"{config_file}: unknown keys {unknown}; allowed: {sorted(allowed)}.")
    return SparsityTuner(trial, **settings)
