"""``lightning-compress reproduce TABLE``: run every (row, task, seed) of a published table as ``fit`` subprocesses.

The row -> configs mapping is ``configs/reproduce.yaml``; the configs folder is found by :func:`find_configs`
(``--configs FOLDER``, else the checkout's ``configs/`` next to the package, else the copy a wheel installs under
``<prefix>/share/lightning_compress/configs``). Each run gets its own folder
``<runs_dir>/<table>/<full|scaled>/<row>/<task>/seed<k>`` holding ``run.yaml`` (seed, CSV logger into the folder),
the CSV log, ``layer_sparsity.json`` and, once the run has finished, ``result.json``; a run with a ``result.json``
is skipped, so an interrupted table resumes. A run that another table has already made (same configs, task, seed
and overrides; e.g. Table 11.2's L2-MBP is Table 9.1's) is copied from that table's folder instead of run again.
A row that distills from another one (``teacher: {row, arg}`` in the
recipe: SDP from the dense row, TWS/BWN from the full-precision row) runs after it: the teacher run saves
``final.ckpt`` and the student gets ``--trainer.callbacks.init_args.<arg>=<teacher run>/final.ckpt`` (the last
callback of the row's configs takes the teacher). Runs go through
:class:`~lightning_compress.tuner.executors.LocalExecutor` (one run per GPU, or ``workers`` CPU runs sharing the
cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import site
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from pytorch_lightning.utilities import rank_zero_deprecation

from lightning_compress.reporting.published import PUBLISHED_TABLES, get_table
from lightning_compress.reporting.run_record import FINAL_CHECKPOINT

__all__ = [
    "INSTALLED_CONFIGS",
    "REPO",
    "PlannedRun",
    "SkippedRun",
    "config_file",
    "find_configs",
    "find_identical_run",
    "load_recipes",
    "plan_runs",
    "reproduce_main",
    "run_command",
]

#: Repository root of an editable install (a checkout): its ``configs/`` folder comes first after ``--configs``.
REPO = Path(__file__).resolve().parents[1]
#: Where a wheel installs the configs, under the environment's data prefix (pyproject ``[tool.setuptools.data-files]``).
INSTALLED_CONFIGS = Path("share") / "lightning_compress" / "configs"
RECIPES_FILE = "reproduce.yaml"
RUN_RECORD = "lightning_compress.reporting.run_record.RunRecord"
# the fit runs in the folder holding the configs folder (the repository in a checkout: relative paths in the configs
# resolve as they do there), whatever the executor's cwd
_LAUNCH = "import os, sys; os.chdir(sys.argv[1]); from lightning_compress.cli import main; main(sys.argv[2:])"


@dataclass(frozen=True)
class PlannedRun:
    """One ``fit`` of a table: its row, task, seed, scale, config files (in order) and run folder.

    ``args`` are CLI arguments of this run alone, after its configs (e.g. a callback's seed); ``teacher_dir`` is the
    run whose ``final.ckpt`` it receives as ``--trainer.callbacks.init_args.<teacher_arg>``; a run with
    ``saves_checkpoint`` writes that file.
    """

    table: str
    row: str
    task: str
    seed: int
    scale: str
    configs: tuple[str, ...]
    run_dir: str
    teacher_dir: str | None = None
    teacher_arg: str | None = None
    saves_checkpoint: bool = False
    args: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        folder = Path(self.run_dir)
        return (folder / "result.json").is_file() and (
            not self.saves_checkpoint or (folder / FINAL_CHECKPOINT).is_file()
        )

    @property
    def teacher_checkpoint(self) -> Path | None:
        return None if self.teacher_dir is None else Path(self.teacher_dir) / FINAL_CHECKPOINT


@dataclass(frozen=True)
class SkippedRun:
    """A row (or row x task) that is not run, and why."""

    row: str
    task: str | None
    reason: str


def _installed_configs() -> list[Path]:
    """Where a wheel may have put its configs: the environment's data prefix, then the user base (``pip --user``)."""
    prefixes = dict.fromkeys([sysconfig.get_path("data"), sys.prefix, site.getuserbase()])
    return [Path(prefix) / INSTALLED_CONFIGS for prefix in prefixes if prefix]


def find_configs(configs: str | Path | None = None) -> Path:
    """The configs folder that ``reproduce`` reads (``reproduce.yaml``, ``methods/``, ``scaled/``, ...).

    Order: ``configs`` (the ``--configs`` option); the checkout's ``configs/`` next to the package (editable
    install); the copy a wheel installs under ``<prefix>/share/lightning_compress/configs``.

    Raises:
        FileNotFoundError: ``configs`` has no ``reproduce.yaml``, or it is ``None`` and no folder was found; the
            message names the places looked at and ``--configs``.

    Example:
        >>> find_configs()  # doctest: +SKIP
        PosixPath('/home/me/lightning_compress/configs')
    """
    if configs is not None:
        folder = Path(configs).expanduser().resolve()
        if not (folder / RECIPES_FILE).is_file():
            raise FileNotFoundError(
                f"`--configs {configs}` is invalid: {folder / RECIPES_FILE} does not exist; expected a copy of the "
                "repository's configs/ folder (reproduce.yaml, methods/, scaled/, ...)."
            )
        return folder
    candidates = [REPO / "configs", *_installed_configs()]
    for folder in candidates:
        if (folder / RECIPES_FILE).is_file():
            return folder
    raise FileNotFoundError(
        f"No configs folder with {RECIPES_FILE} found (looked in {', '.join(str(c) for c in candidates)}); pass "
        "`--configs FOLDER`, a copy of the repository's configs/ folder."
    )


def config_file(item: str, configs_dir: Path) -> Path:
    """The file a config path of ``reproduce.yaml`` names: ``configs/<path>`` is ``<configs_dir>/<path>``.

    Paths in ``reproduce.yaml`` are written relative to the repository (``configs/methods/dense.yaml``), so a configs
    folder found anywhere (a checkout, an installed copy, ``--configs``) resolves them alike; an absolute path is
    kept, and another relative path is taken from the folder holding ``configs_dir``.
    """
    path = Path(item)
    if path.is_absolute():
        return path
    if path.parts[:1] == ("configs",):
        return Path(configs_dir).joinpath(*path.parts[1:])
    return Path(configs_dir).parent / path


def load_recipes(path: str | Path | None = None) -> dict:
    """The table -> row -> configs mapping (default: ``reproduce.yaml`` of :func:`find_configs`); the error names the
    file and what is wrong."""
    path = find_configs() / RECIPES_FILE if path is None else Path(path)
    recipes = yaml.safe_load(path.read_text())
    if not isinstance(recipes, dict):
        raise ValueError(f"{path}: expected a mapping of table ids, got {type(recipes).__name__}.")
    unknown = sorted(set(recipes) - set(PUBLISHED_TABLES))
    if unknown:
        raise ValueError(f"{path}: unknown tables {unknown}; expected ids from {list(PUBLISHED_TABLES)}.")
    return recipes


def _row_items(entry: list | dict, scale: str) -> list[str]:
    """A row's config list at ``scale``: the list itself, or its ``configs`` / ``full`` / ``scaled`` entry."""
    if isinstance(entry, list):
        return entry
    return entry.get("configs", entry.get(scale, []))


def _missing(configs: tuple[str, ...], configs_dir: Path) -> list[str]:
    return [c for c in dict.fromkeys(configs) if not config_file(c, configs_dir).is_file()]


def _expand(items: list[str], base: list[str], task: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        out.extend(base if item == "<base>" else [item])
    return tuple(item.replace("<task>", task) for item in out)


def plan_runs(
    table_id: str,
    *,
    scaled: bool,
    seeds: list[int],
    runs_dir: Path,
    rows: list[str] | None = None,
    tasks: list[str] | None = None,
    recipes: dict | None = None,
    root: Path | None = None,
    configs_dir: Path | None = None,
) -> tuple[list[PlannedRun], list[SkippedRun]]:
    """Every run of ``table_id`` (seed-major, so all rows get a first seed early) and the skipped rows.

    ``recipes`` default to ``reproduce.yaml`` of ``configs_dir`` (default: :func:`find_configs`), whose config paths
    are checked there (:func:`config_file`). ``root`` (a repository root) is deprecated: pass
    ``configs_dir=root / "configs"``.

    Raises:
        ValueError: ``rows`` or ``tasks`` name something the table does not have.
    """
    table = get_table(table_id)
    configs_dir = _configs_dir(configs_dir, root, "plan_runs")
    recipes = load_recipes(configs_dir / RECIPES_FILE) if recipes is None else recipes
    recipe = recipes.get(table_id, {})
    scale = "scaled" if scaled else "full"
    available = list(recipe.get("scaled_tasks" if scaled else "tasks", []))
    for name, asked, valid in (("rows", rows, table.methods), ("tasks", tasks, table.tasks)):
        bad = sorted(set(asked or []) - set(valid))
        if bad:
            raise ValueError(f"`--{name} {' '.join(bad)}` is invalid for {table_id}: expected some of {list(valid)}.")
    chosen_tasks = [t for t in available if tasks is None or t in tasks]
    skipped = [SkippedRun("*", t, f"no {scale} data/config for this task") for t in table.tasks if t not in available]
    base = recipe.get("base", {}).get(scale, [])
    entries = recipe.get("rows", {})

    def run_dir(method: str, task: str, seed: int) -> str:
        return str((Path(runs_dir) / table_id / scale / method / task / f"seed{seed}").resolve())

    plans: dict[tuple[str, str, int], PlannedRun] = {}
    teachers: set[tuple[str, str, int]] = set()
    for method in table.methods:
        if rows is not None and method not in rows:
            continue
        entry = entries.get(method)
        if entry is None:
            reason = recipe.get("skipped", {}).get(method, "method not implemented in this library")
            skipped.append(SkippedRun(method, None, reason))
            continue
        items = _row_items(entry, scale)
        if not items:
            skipped.append(SkippedRun(method, None, f"no {scale} configs"))
            continue
        teacher = entry.get("teacher") if isinstance(entry, dict) else None
        teacher_items = [] if teacher is None else _row_items(entries[teacher["row"]], scale)
        for task in chosen_tasks:
            configs = _expand(items, base, task)
            missing = _missing(configs + _expand(teacher_items, base, task), configs_dir)
            if missing:
                skipped.append(SkippedRun(method, task, f"config not found: {', '.join(missing)}"))
                continue
            for seed in seeds:
                plan = PlannedRun(table_id, method, task, seed, scale, configs, run_dir(method, task, seed))
                if teacher is not None:
                    key = (teacher["row"], task, seed)
                    teachers.add(key)
                    plan = dataclasses.replace(plan, teacher_dir=run_dir(*key), teacher_arg=teacher["arg"])
                plans[(method, task, seed)] = plan
    for method, task, seed in teachers:  # a teacher row runs (and keeps its weights) even when not asked for
        configs = _expand(_row_items(entries[method], scale), base, task)
        plan = plans.get((method, task, seed)) or PlannedRun(
            table_id, method, task, seed, scale, configs, run_dir(method, task, seed)
        )
        plans[(method, task, seed)] = dataclasses.replace(plan, saves_checkpoint=True)
    ordered = sorted(plans.values(), key=lambda p: (p.seed, table.methods.index(p.row), p.task))
    return ordered, skipped


def _run_overrides(plan: PlannedRun) -> dict:
    """Last config of a run: its seed, and every log file in the run folder."""
    return {
        "seed_everything": plan.seed,
        "trainer": {
            "default_root_dir": plan.run_dir,
            "enable_progress_bar": False,
            "logger": {
                "class_path": "pytorch_lightning.loggers.CSVLogger",
                "init_args": {"save_dir": plan.run_dir, "name": "", "version": ""},
            },
        },
        "data": {"init_args": {"seed": plan.seed}},
    }


def _configs_dir(configs_dir: Path | None, root: Path | None, caller: str) -> Path:
    """``configs_dir``, else the configs folder of the deprecated ``root`` argument, else :func:`find_configs`."""
    if root is not None:
        rank_zero_deprecation(
            f"`{caller}(root=...)` is deprecated since lightning_compress 0.1.0 and will be removed in 0.2.0: pass "
            "`configs_dir=root / 'configs'` (the configs folder)."
        )
        if configs_dir is None:
            configs_dir = Path(root) / "configs"
    return find_configs() if configs_dir is None else Path(configs_dir)


def run_command(
    plan: PlannedRun,
    extra: list[str] = (),
    root: Path | None = None,
    export: bool = False,
    *,
    configs_dir: Path | None = None,
) -> list[str]:
    """The ``lightning-compress fit`` command of ``plan``; ``extra`` are CLI overrides.

    Its config paths are resolved in ``configs_dir`` (default: :func:`find_configs`) and it runs from the folder
    holding ``configs_dir`` (the repository in a checkout). ``root`` (a repository root) is deprecated: pass
    ``configs_dir=root / "configs"``.
    """
    configs_dir = _configs_dir(configs_dir, root, "run_command")
    command = [sys.executable, "-c", _LAUNCH, str(configs_dir.parent), "fit"]
    for config in plan.configs:
        command += ["--config", str(config_file(config, configs_dir))]
    command += ["--config", str(Path(plan.run_dir) / "run.yaml"), *plan.args]
    if not export:
        command += ["--export_dir", "none"]
    if plan.teacher_checkpoint is not None:
        command += [f"--trainer.callbacks.init_args.{plan.teacher_arg}={plan.teacher_checkpoint}"]
    command += [*extra, f"--trainer.callbacks+={RUN_RECORD}", f"--trainer.callbacks.init_args.out_dir={plan.run_dir}"]
    if plan.saves_checkpoint:
        command += ["--trainer.callbacks.init_args.save_checkpoint=true"]
    return command


def _result(plan: PlannedRun, metrics: dict[str, float], seconds: float) -> dict:
    return {**asdict(plan), "configs": list(plan.configs), "seconds": seconds, "metrics": metrics}


def _normalized_command(command: str, run_dir: str) -> str:
    """A run's command with its own folder abstracted, so the same run of two tables compares equal."""
    return command.replace(run_dir, "<run>").replace(" --trainer.callbacks.init_args.save_checkpoint=true", "")


def find_identical_run(plan: PlannedRun, command: list[str]) -> Path | None:
    """A finished run of another table under the same runs folder that ran ``command`` for ``plan``, if any.

    Only runs without a teacher are shared: a student's command names its own table's teacher run.
    """
    own = Path(plan.run_dir)
    layout = (own.parents[3].name, own.parents[2].name, own.parent.name)  # <runs_dir>/<table>/<scale>/<row>/<task>/
    if plan.teacher_dir is not None or layout != (plan.table, plan.scale, plan.task):
        return None
    runs_dir = own.parents[4]
    wanted = _normalized_command(" ".join(command), plan.run_dir)
    for result_file in sorted(runs_dir.glob(f"*/{plan.scale}/*/{plan.task}/{own.name}/result.json")):
        candidate = result_file.parent
        command_file = candidate / "command.txt"
        if candidate == own or not command_file.is_file():
            continue
        source_dir = json.loads(result_file.read_text()).get("run_dir", str(candidate))
        same = _normalized_command(command_file.read_text().strip(), source_dir) == wanted
        if same and (not plan.saves_checkpoint or (candidate / FINAL_CHECKPOINT).is_file()):
            return candidate
    return None


def _copy_run(source: Path, plan: PlannedRun) -> None:
    """Make ``plan``'s folder a copy of the identical finished run in ``source``, its result relabelled."""
    run_dir = Path(plan.run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(source, run_dir)
    result = json.loads((source / "result.json").read_text())
    relabelled = {**result, **_result(plan, result["metrics"], result["seconds"]), "copied_from": str(source)}
    (run_dir / "result.json").write_text(json.dumps(relabelled, indent=1))


def run_plans(
    plans: list[PlannedRun],
    extra: list[str],
    workers: int | None,
    export: bool = False,
    configs_dir: Path | None = None,
) -> int:
    """Run the unfinished ``plans`` through a :class:`LocalExecutor`; returns the number of failed runs.

    Config paths resolve in ``configs_dir`` (default: :func:`find_configs`).

    A run that another table already made is copied (:func:`find_identical_run`). A run with a teacher is
    submitted once its teacher run has finished (and fails, without running, if the teacher
    failed); the others start at once, as many at a time as the executor has slots.
    """
    from lightning_compress.tuner.executors import LocalExecutor, TrialSpec

    configs_dir = find_configs() if configs_dir is None else Path(configs_dir)

    def report(plan: PlannedRun, status: str, detail: str = "") -> None:
        label = f"{plan.row} / {plan.task} / seed {plan.seed}"
        print(f"[{time.strftime('%H:%M:%S')}] {status:<6} {label}{detail}", flush=True)

    todo = []
    for plan in plans:
        if plan.done:
            continue
        source = find_identical_run(plan, run_command(plan, extra, export=export, configs_dir=configs_dir))
        if source is None:
            todo.append(plan)
        else:
            _copy_run(source, plan)
            report(plan, "copied", f" from {source}")
    if not todo:
        return 0
    executor = LocalExecutor(devices="auto", workers=workers)
    by_id: dict[int, PlannedRun] = {}

    def submit(plan: PlannedRun) -> None:
        run_dir = Path(plan.run_dir)
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an interrupted run starts over
        run_dir.mkdir(parents=True)
        (run_dir / "run.yaml").write_text(yaml.safe_dump(_run_overrides(plan), sort_keys=False))
        command = run_command(plan, extra, export=export, configs_dir=configs_dir)
        (run_dir / "command.txt").write_text(" ".join(command) + "\n")
        by_id[len(by_id)] = plan
        executor.submit(TrialSpec(len(by_id) - 1, command, plan.run_dir, str(run_dir / "final_metrics.json")))

    waiting = [plan for plan in todo if plan.teacher_dir is not None]
    for plan in todo:
        if plan.teacher_dir is None:
            submit(plan)
    failed = 0
    try:
        while waiting or executor.pending:
            for plan in [p for p in waiting if p.teacher_checkpoint.is_file()]:
                waiting.remove(plan)
                submit(plan)
            if not executor.pending:  # every remaining run waits for a teacher that will not come
                for plan in waiting:
                    failed += 1
                    report(plan, f"FAILED (no teacher: {plan.teacher_checkpoint} was not written)")
                break
            for outcome in executor.wait():
                plan = by_id[outcome.trial_id]
                if outcome.status == "done":
                    result = _result(plan, outcome.metrics, outcome.seconds)
                    (Path(plan.run_dir) / "result.json").write_text(json.dumps(result, indent=1))
                    report(plan, f"done ({outcome.seconds / 60:.1f} min)")
                else:
                    failed += 1
                    report(plan, f"FAILED: {outcome.error}")
    finally:
        executor.shutdown()
    return failed


def reproduce_main(argv: list[str]) -> int:
    """``lightning-compress reproduce TABLE [--scaled] [--seeds N] ... [-- CLI OVERRIDES]``."""
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="lightning-compress reproduce",
        description="Run every (row, task, seed) of a published table; finished runs are skipped. "
        "Arguments after `--` are passed to every `lightning-compress fit` (e.g. -- --trainer.max_steps=2).",
    )
    parser.add_argument("table", choices=list(PUBLISHED_TABLES), help="Published table id.")
    parser.add_argument("--scaled", action="store_true", help="CPU-sized variants on the local data.")
    parser.add_argument("--seeds", type=int, default=3, help="Number of seeds (1..N).")
    parser.add_argument("--rows", nargs="+", default=None, help="Only these rows (method ids).")
    parser.add_argument("--tasks", nargs="+", default=None, help="Only these tasks.")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/reproduce"), help="Root of the run folders.")
    parser.add_argument("--workers", type=int, default=None, help="Concurrent CPU runs (GPUs: one run per GPU).")
    parser.add_argument("--export", action="store_true", help="Also write each run's compressed model.")
    parser.add_argument("--dry-run", action="store_true", help="Print the plan and the commands, run nothing.")
    parser.add_argument(
        "--configs",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="Configs folder holding reproduce.yaml (default: the checkout's configs/ next to the package, else the "
        "copy installed with the wheel under <prefix>/share/lightning_compress/configs).",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds} is invalid: expected an int >= 1.")
    try:
        configs_dir = find_configs(args.configs)
    except FileNotFoundError as error:
        parser.error(str(error))
    if not get_table(args.table).reproducible:
        print(f"{args.table}: {get_table(args.table).note}")
    try:
        plans, skipped = plan_runs(
            args.table,
            scaled=args.scaled,
            seeds=list(range(1, args.seeds + 1)),
            runs_dir=args.runs_dir,
            rows=args.rows,
            tasks=args.tasks,
            configs_dir=configs_dir,
        )
    except ValueError as error:
        parser.error(str(error))
    print(f"configs: {configs_dir}")
    for skip in skipped:
        print(f"skipped {skip.row}" + (f" / {skip.task}" if skip.task else "") + f": {skip.reason}")
    done = sum(plan.done for plan in plans)
    print(f"{args.table}: {len(plans)} runs planned, {done} already finished, {len(plans) - done} to run")
    if args.dry_run:
        for plan in plans:
            command = run_command(plan, extra, export=args.export, configs_dir=configs_dir)
            state = "done" if plan.done else "copy" if find_identical_run(plan, command) else "todo"
            print(f"[{state}] {plan.row} / {plan.task} / seed {plan.seed}: {' '.join(command[4:])}")
        return 0
    failed = run_plans(plans, extra, args.workers, export=args.export, configs_dir=configs_dir)
    print(f"{args.table}: {failed} failed; tables and plots: lightning-compress report {args.runs_dir}")
    return 1 if failed else 0
