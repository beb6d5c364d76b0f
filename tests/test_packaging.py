"""The wheel: its configs listing covers every config, and a wheel installed without extras imports and runs.

The slow test builds the wheel from a copy of the sources, installs it in a fresh venv (``torch==2.13.0`` first, so
no CUDA build is pulled, then the wheel without extras, dependencies from the package index) and runs the callbacks'
imports, ``lightning-compress --help``, ``reproduce --dry-run`` from the installed configs and ``report``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lightning_compress.extras import EXTRAS
from lightning_compress.reproduce import INSTALLED_CONFIGS, plan_runs

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the Makefile's CPU pin
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "lightning_compress", "configs")


def test_every_config_is_installed_with_the_wheel() -> None:
    """``[tool.setuptools.data-files]`` lists each configs folder, into the same folder under the installed copy."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    listed = set()
    for target, patterns in data_files.items():
        for pattern in patterns:
            for path in glob.glob(pattern, root_dir=REPO):
                assert Path(target) == INSTALLED_CONFIGS / Path(path).parent.relative_to("configs"), (target, path)
                listed.add(path)
    configs = {str(path.relative_to(REPO)) for path in (REPO / "configs").rglob("*") if path.is_file()}
    assert configs - listed == set(), "add these folders to [tool.setuptools.data-files] in pyproject.toml"


def _run(command: list[str | Path], cwd: Path, timeout: float = 1200, **kwargs) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


_IMPORTS = textwrap.dedent(
    """
    import importlib.util, sys
    import lightning_compress
    import lightning_compress.callbacks as callbacks
    from lightning_compress.callbacks import *
    import lightning_compress.export, lightning_compress.tuner
    from lightning_compress.tuner import RayExecutor

    assert "site-packages" in lightning_compress.__file__, lightning_compress.__file__
    assert callbacks.__all__ and all(name in globals() for name in callbacks.__all__), callbacks.__all__
    print("MISSING", sorted(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
    try:
        RayExecutor()
    except ImportError as error:
        print("ERROR", error)
    """
)


def _write_run(runs: Path) -> None:
    """One finished scaled run of Table 11.1, as `reproduce` leaves it."""
    run_dir = runs / "oneill_11_1" / "scaled" / "dense" / "sst2" / "seed1"
    run_dir.mkdir(parents=True)
    meta = {"table": "oneill_11_1", "row": "dense", "task": "sst2", "seed": 1, "scale": "scaled", "configs": []}
    (run_dir / "result.json").write_text(json.dumps({**meta, "metrics": {"val/accuracy": 0.85}}))
    (run_dir / "metrics.csv").write_text("epoch,step,val/accuracy\n0,9,0.80\n1,19,0.85\n")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_wheel_without_extras_imports_and_runs(tmp_path: Path) -> None:
    start = time.monotonic()
    source = tmp_path / "source"  # a copy: building in the checkout would write build/ and *.egg-info there
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", source, "-w", tmp_path / "wheel"], cwd=tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("lightning_compress-*.whl")

    # the venv sees neither the checkout (PYTHONPATH) nor local data or model copies
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("LIGHTNING_COMPRESS_")}
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    python, cli = venv / "bin" / "python", venv / "bin" / "lightning-compress"
    _run([python, "-m", "pip", "install", "-q", TORCH], cwd=tmp_path, timeout=1800, env=env)
    _run([python, "-m", "pip", "install", "-q", wheel], cwd=tmp_path, timeout=1800, env=env)
    installed = time.monotonic()

    work = tmp_path / "work"  # outside the checkout: nothing of it is importable or found from here
    work.mkdir()
    out = _run([python, "-c", _IMPORTS, *EXTRAS], cwd=work, env=env)
    assert "MISSING " + str(sorted(EXTRAS)) in out, out  # no extra came in with the core dependencies
    assert "RayExecutor needs ray, which is not installed: `pip install lightning-compress[ray]`." in out

    assert "{fit,validate,test,predict}" in _run([cli, "--help"], cwd=work, env=env)
    assert "--configs FOLDER" in _run([cli, "reproduce", "--help"], cwd=work, env=env)
    runs = work / "runs"
    dry_run = [cli, "reproduce", "oneill_11_1", "--scaled", "--seeds", "1", "--runs-dir", runs, "--dry-run"]
    out = _run(dry_run, cwd=work, env=env)
    configs = venv / INSTALLED_CONFIGS
    planned = plan_runs("oneill_11_1", scaled=True, seeds=[1], runs_dir=runs, configs_dir=REPO / "configs")[0]
    assert f"configs: {configs}" in out and f"oneill_11_1: {len(planned)} runs planned" in out, out
    assert f"[todo] l2_mbp / sst2 / seed 1: fit --config {configs / 'scaled' / '_base' / 'minilm_glue.yaml'}" in out
    assert "config not found" not in out, out

    _write_run(runs)
    out = _run([cli, "report", runs, "--out", work / "results"], cwd=work, env=env)
    assert "figures skipped: they need matplotlib, `pip install lightning-compress[report]`" in out, out
    assert (work / "results" / "oneill_11_1_scaled.md").is_file() and not list((work / "results").glob("*.png"))
    print(f"wheel test: install {installed - start:.0f} s, checks {time.monotonic() - installed:.0f} s")
