"""Where trials run: :class:`LocalExecutor` (one process per device or CPU share) and :class:`RayExecutor`.

Both take a :class:`TrialSpec` (a command, its run directory and the JSON file the trial writes its metrics
to) and hand back :class:`TrialOutcome` objects; the tuner journals both sides, so the executor is chosen
by a config key and nothing else changes.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from lightning_compress.extras import import_extra

__all__ = ["EXECUTORS", "LocalExecutor", "RayExecutor", "TrialOutcome", "TrialSpec", "run_trial"]

_LOG_TAIL = 2000
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class TrialSpec:
    """A trial to run: ``command`` (from ``cwd``, default the tuner's), logging to ``run_dir``, which writes its
    metrics as JSON to ``result_file``; relative paths in the trial config resolve against ``cwd``."""

    trial_id: int
    command: list[str]
    run_dir: str
    result_file: str
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass
class TrialOutcome:
    """Result of a trial: ``status`` is ``"done"`` or ``"failed"`` (with ``error``)."""

    trial_id: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-_LOG_TAIL:]
    except OSError:
        return ""


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it when the thread that started it dies, so a tuner killed
    with ``kill -9`` leaves no orphan trial writing into a run directory that ``--resume`` reuses."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_trial(
    spec: TrialSpec,
    env: dict[str, str] | None = None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> TrialOutcome:
    """Run ``spec.command`` (stdout/stderr to ``run_dir/trial.log``) and read its result file.

    A non-zero exit, a timeout (the whole process group is killed) or a missing/unreadable result file give
    a ``failed`` outcome whose error holds the reason and the end of the log; a run that raised
    ``FloatingPointError`` (a non-finite loss or weight) is reported as ``diverged``. ``on_start`` receives the
    started process (its own process group), so an executor can stop it.
    """
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    result_file = Path(spec.result_file)
    result_file.unlink(missing_ok=True)
    log = run_dir / "trial.log"
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(
            spec.command,
            cwd=spec.cwd,
            env={**os.environ, **(env or {}), **spec.env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        if on_start is not None:
            on_start(process)
        try:
            code = process.wait(timeout=spec.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return TrialOutcome(
                spec.trial_id, "failed", error=f"timed out after {spec.timeout:g} s", seconds=spec.timeout or 0.0
            )
    seconds = time.perf_counter() - started
    if code != 0:
        tail = _tail(log)
        reason = "diverged (FloatingPointError), " if "FloatingPointError" in tail else ""
        return TrialOutcome(spec.trial_id, "failed", error=f"{reason}exit code {code}:\n{tail}", seconds=seconds)
    try:
        metrics = json.loads(result_file.read_text())
    except (OSError, ValueError) as error:
        return TrialOutcome(
            spec.trial_id, "failed", error=f"no readable result file {result_file}: {error}", seconds=seconds
        )
    return TrialOutcome(spec.trial_id, "done", {k: float(v) for k, v in metrics.items()}, seconds=seconds)


def _cuda_device_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA means CPU workers
        return 0


class LocalExecutor:
    r"""Run trials as local processes, one per device.

    With CUDA devices, worker ``k`` sees only its own GPU (``CUDA_VISIBLE_DEVICES``). CPU-only, ``workers``
    processes share the cores: each gets ``OMP_NUM_THREADS = MKL_NUM_THREADS = cores // workers`` (at least 1).

    Args:
        devices: ``"auto"`` (all visible GPUs, else CPU), an int number of GPUs, a list of GPU indices, or
            ``"cpu"``.
        workers: CPU-only: number of concurrent trials (default 1); ignored with GPUs.
        cpu_count: Cores to split (default ``os.cpu_count()``).

    Example:
        >>> executor = LocalExecutor(devices="cpu", workers=2)
        >>> executor.submit(spec); outcomes = executor.wait()  # doctest: +SKIP
    """

    def __init__(
        self, devices: str | int | list[int] = "auto", workers: int | None = None, cpu_count: int | None = None
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"`LocalExecutor(workers={workers!r})` is invalid: expected an int >= 1 or None.")
        gpus: list[int]
        if devices == "auto":
            gpus = list(range(_cuda_device_count()))
        elif devices == "cpu":
            gpus = []
        elif isinstance(devices, int) and not isinstance(devices, bool) and devices >= 0:
            gpus = list(range(devices))
        elif isinstance(devices, list) and all(isinstance(d, int) for d in devices):
            gpus = list(devices)
        else:
            raise ValueError(
                f"`LocalExecutor(devices={devices!r})` is invalid: expected 'auto', 'cpu', an int or a list of ints."
            )
        cores = cpu_count or os.cpu_count() or 1
        if gpus:
            threads = str(max(cores // len(gpus), 1))
            self.slot_envs = [
                {"CUDA_VISIBLE_DEVICES": str(g), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for g in gpus
            ]
        else:
            n = workers or 1
            threads = str(max(cores // n, 1))
            self.slot_envs = [
                {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for _ in range(n)
            ]
        self._slots: queue.Queue[dict[str, str]] = queue.Queue()
        for env in self.slot_envs:
            self._slots.put(env)
        self._pool = ThreadPoolExecutor(max_workers=len(self.slot_envs), thread_name_prefix="trial")
        self._futures: set[Future] = set()
        self._processes: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._cancelled = False

    @property
    def n_workers(self) -> int:
        return len(self.slot_envs)

    def _run(self, spec: TrialSpec) -> TrialOutcome:
        env = self._slots.get()

        def started(process: subprocess.Popen) -> None:
            with self._lock:
                self._processes[spec.trial_id] = process
                if self._cancelled:
                    _signal_group(process, signal.SIGKILL)

        try:
            if self._cancelled:
                return TrialOutcome(spec.trial_id, "failed", error="cancelled before it started")
            return run_trial(spec, env, on_start=started)
        finally:
            with self._lock:
                self._processes.pop(spec.trial_id, None)
            self._slots.put(env)

    def submit(self, spec: TrialSpec) -> None:
        self._futures.add(self._pool.submit(self._run, spec))

    @property
    def pending(self) -> int:
        return len(self._futures)

    def wait(self, timeout: float | None = None) -> list[TrialOutcome]:
        """Block until at least one submitted trial finishes (or ``timeout``); return the finished ones."""
        if not self._futures:
            return []
        done, _ = wait(self._futures, timeout=timeout, return_when=FIRST_COMPLETED)
        self._futures -= done
        return [future.result() for future in done]

    def cancel(self, grace: float = 5.0) -> None:
        """Stop every running trial (SIGTERM to its process group, SIGKILL after ``grace`` seconds) and forget
        the submitted ones: their outcomes are never returned, so the caller decides what they become."""
        with self._lock:
            self._cancelled = True
            processes = list(self._processes.values())
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        _, alive = wait(self._futures, timeout=grace)
        if alive:
            with self._lock:
                processes = list(self._processes.values())
            for process in processes:
                _signal_group(process, signal.SIGKILL)
            wait(self._futures)
        self._futures.clear()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:  # already gone
        pass


class RayExecutor:
    r"""Run trials as Ray tasks on an existing cluster (``pip install 'lightning-compress[ray]'``).

    Each trial is one task with ``num_gpus=gpus_per_trial`` and ``num_cpus=cpus_per_trial`` that runs the
    trial command on a worker node (the run directory must be on a file system the node can write; the
    metrics come back through Ray). Ray assigns ``CUDA_VISIBLE_DEVICES``; ``OMP_NUM_THREADS`` is set to the
    task's CPUs.

    Args:
        address: Cluster address for ``ray.init`` (``None``: connect to a running cluster or start a local one).
        gpus_per_trial, cpus_per_trial: Resources of one trial.
        max_concurrent: Trials in flight at once (default: what the cluster's resources allow).
    """

    def __init__(
        self,
        address: str | None = None,
        gpus_per_trial: float = 1,
        cpus_per_trial: float = 1,
        max_concurrent: int | None = None,
        init_kwargs: dict | None = None,
    ) -> None:
        ray = import_extra("ray", "RayExecutor")
        if gpus_per_trial < 0 or cpus_per_trial <= 0:
            raise ValueError(
                f"`RayExecutor(gpus_per_trial={gpus_per_trial!r}, cpus_per_trial={cpus_per_trial!r})` is invalid: "
                "expected gpus >= 0 and cpus > 0."
            )
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, **(init_kwargs or {}))
        resources = ray.cluster_resources()
        if max_concurrent is None:
            by_cpu = int(resources.get("CPU", 1) // cpus_per_trial)
            by_gpu = int(resources.get("GPU", 0) // gpus_per_trial) if gpus_per_trial > 0 else by_cpu
            max_concurrent = max(min(by_cpu, by_gpu), 1)
        self._max_concurrent = max_concurrent
        threads = str(max(int(cpus_per_trial), 1))
        self._remote = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial)(_ray_trial).options(
            runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}}
        )
        self._refs: list = []

    @property
    def n_workers(self) -> int:
        return self._max_concurrent

    @property
    def pending(self) -> int:
        return len(self._refs)

    def submit(self, spec: TrialSpec) -> None:
        self._refs.append(self._remote.remote(spec))

    def wait(self, timeout: float | None = None) -> list[TrialOutcome]:
        if not self._refs:
            return []
        done, self._refs = self._ray.wait(self._refs, num_returns=1, timeout=timeout)
        return [self._ray.get(ref) for ref in done]

    def cancel(self, grace: float = 5.0) -> None:
        """Stop every running trial: ``ray.cancel(force=True)`` kills the worker, and with it the trial process
        (it dies with the thread that started it)."""
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs = []

    def shutdown(self) -> None:
        self._refs = []


def _ray_trial(spec: TrialSpec) -> TrialOutcome:
    return run_trial(spec)


#: Executors by the ``executor.kind`` config key.
EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}
