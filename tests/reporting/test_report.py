"""``lightning-compress report`` on a fabricated runs folder: table numbers, point selection, ordering verdicts."""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

import pytest

from lightning_compress.cli import main
from lightning_compress.reporting.comparison import compare_table, ordering_status
from lightning_compress.reporting.published import get_table
from lightning_compress.reporting.report import write_report
from lightning_compress.reporting.runs import load_runs

XGLUE_POINT = 1 - 0.9**11  # sparsity of the Table 9.1 / 11.2 point


def _write_run(root: Path, table: str, row: str, task: str, seed: int, validations: list[dict], scale="scaled"):
    """A run folder as `reproduce` leaves it: result.json, a CSVLogger metrics.csv (train rows too), layer file."""
    run_dir = root / table / scale / row / task / f"seed{seed}"
    run_dir.mkdir(parents=True)
    keys = sorted({key for v in validations for key in v})
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", "step", "train/loss", *keys])
        writer.writeheader()
        for epoch, validation in enumerate(validations):
            writer.writerow({"epoch": epoch, "step": 10 * epoch + 5, "train/loss": 0.5})
            writer.writerow({"epoch": epoch, "step": 10 * epoch + 9, **validation})
    meta = {"table": table, "row": row, "task": task, "seed": seed, "scale": scale, "configs": [], "metrics": {}}
    (run_dir / "result.json").write_text(json.dumps(meta))
    last = validations[-1].get("val/prunable_sparsity", 0.0)
    layers = {"layers": {"model.encoder.layer.0.q.weight": last, "model.encoder.layer.0.k.weight": last / 2}}
    (run_dir / "layer_sparsity.json").write_text(json.dumps(layers))


def _xnli(avg: float, sparsity: float, en: float = 0.8) -> dict:
    return {
        "val/avg/accuracy": avg,
        "val/en/accuracy": en,
        "val/de/accuracy": 2 * avg - en,
        "val/prunable_sparsity": sparsity,
    }


@pytest.fixture()
def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    # Table 11.2: the score at the step-11 point is the value; the earlier and the later points are decoys
    table_point = {"l2_mbp": (0.60, 0.62), "sdp_kld": (0.58, 0.60), "sdp_cc": (0.66, 0.70), "taylor": (0.61, 0.63)}
    for row, seeds in table_point.items():
        for seed, value in enumerate(seeds, start=1):
            history = [_xnli(0.9, 0.0), _xnli(0.8, 0.5), _xnli(value, XGLUE_POINT), _xnli(0.1, 1 - 0.9**12)]
            _write_run(root, "oneill_11_2", row, "xnli", seed, history)
    # Table 11.1: SST-2 at step 22, CoLA at step 15; the dense run has no sparsity (its last validation counts)
    _write_run(root, "oneill_11_1", "dense", "sst2", 1, [{"val/accuracy": 0.80}, {"val/accuracy": 0.85}])
    _write_run(root, "oneill_11_1", "l2_mbp", "sst2", 1, [
        {"val/accuracy": 0.84, "val/prunable_sparsity": 0.0},
        {"val/accuracy": 0.81, "val/prunable_sparsity": 1 - 0.9**22},
    ])  # fmt: skip
    _write_run(root, "oneill_11_1", "l2_mbp", "cola", 1, [
        {"val/matthews": 0.30, "val/prunable_sparsity": 1 - 0.9**15},
        {"val/matthews": 0.10, "val/prunable_sparsity": 1 - 0.9**16},
    ])  # fmt: skip
    # Table 10.10: model selection on the best English epoch
    _write_run(root, "oneill_10_10", "ft", "xnli", 1, [_xnli(0.70, 0.0, en=0.85), _xnli(0.72, 0.0, en=0.80)])
    # exact zeros of the pretrained model that a frozen or dropped gradient keeps: not a pruning curve
    _write_run(root, "oneill_10_10", "graddrop", "xnli", 1, [_xnli(0.71, 0.08, en=0.80), _xnli(0.69, 0.0, en=0.86)])
    return root


def test_table_point_is_selected_by_sparsity_and_averaged_over_seeds(runs_dir: Path) -> None:
    table = get_table("oneill_11_2")
    comparison = compare_table(table, load_runs(runs_dir), "scaled")
    rows = {row.method: row for row in comparison.rows}
    cc = rows["sdp_cc"].cells[0]
    assert cc.mean == pytest.approx(68.0)
    assert cc.std == pytest.approx(statistics.stdev([66.0, 70.0]))
    assert cc.n == 2 and cc.published == 66.47
    assert rows["sdp_cc"].average == pytest.approx(68.0)  # XNLI is the only column with runs
    assert rows["sdp_cc"].published_average == 70.76
    assert rows["sdp_cc"].remaining == pytest.approx(0.9**11)
    assert rows["l2_mbp"].cells[0].mean == pytest.approx(61.0)
    assert rows["sdp_cos"].cells[0].mean is None and rows["sdp_cos"].runs == 0
    assert rows["dense"].average is None


def test_ordering_verdicts(runs_dir: Path) -> None:
    comparison = compare_table(get_table("oneill_11_2"), load_runs(runs_dir), "scaled")
    verdicts = {(v.claim.better, v.claim.worse): v for v in comparison.verdicts}
    assert verdicts[("sdp_cc", "sdp_kld")].status == "held"
    assert verdicts[("sdp_cc", "sdp_kld")].better == pytest.approx(68.0)
    assert verdicts[("sdp_cc", "sdp_kld")].worse == pytest.approx(59.0)
    assert verdicts[("sdp_kld", "l2_mbp")].status == "not held"
    assert verdicts[("sdp_cc", "taylor")].status == "held"
    assert verdicts[("sdp_cos", "l2_mbp")].status == "no data"
    assert verdicts[("sdp_cc", "sdp_kld")].columns == (0,)
    # seeds (66, 70) vs (58, 60): gap 9 against a spread of sqrt(std² + std²) = sqrt(8 + 2)
    assert verdicts[("sdp_cc", "sdp_kld")].spread == pytest.approx(10**0.5)


@pytest.mark.parametrize(
    ("gap", "spread", "status"),
    [(3.0, 2.0, "held"), (1.0, 2.0, "held on the mean only"), (0.0, 2.0, "not held"), (-3.0, 0.5, "not held"),
     (5.0, None, "undecided")],
)  # fmt: skip
def test_ordering_status_weighs_the_gap_against_the_seed_spread(gap: float, spread: float | None, status: str) -> None:
    assert ordering_status(gap, spread) == status


def test_glue_points_per_task_and_dense_last_validation(runs_dir: Path) -> None:
    comparison = compare_table(get_table("oneill_11_1"), load_runs(runs_dir), "scaled")
    rows = {row.method: row for row in comparison.rows}
    labels = [c.label for c in get_table("oneill_11_1").columns]
    assert rows["l2_mbp"].cells[labels.index("SST-2")].mean == pytest.approx(81.0)
    assert rows["l2_mbp"].cells[labels.index("CoLA")].mean == pytest.approx(30.0)  # step 15, not 16
    assert rows["dense"].cells[labels.index("SST-2")].mean == pytest.approx(85.0)
    assert rows["l2_mbp"].average == pytest.approx(81.0)  # score_7 over the columns we have (SST-2)
    verdicts = {(v.claim.better, v.claim.worse): v.status for v in comparison.verdicts}
    assert verdicts[("l2_mbp", "random")] == "no data"


def test_best_english_epoch_selection(runs_dir: Path) -> None:
    comparison = compare_table(get_table("oneill_10_10"), load_runs(runs_dir), "scaled")
    rows = {row.method: row for row in comparison.rows}
    assert rows["ft"].cells[0].mean == pytest.approx(70.0)  # epoch 0 has the best English score
    assert rows["graddrop"].cells[0].mean == pytest.approx(69.0)
    verdicts = {(v.claim.better, v.claim.worse): v.status for v in comparison.verdicts}
    assert verdicts[("graddrop", "ft")] == "undecided"  # one seed each: no spread to weigh the gap against
    assert verdicts[("layer_graddrop", "ft")] == "no data"


def test_report_command_writes_tables_and_figures(runs_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    main(["report", str(runs_dir), "--out", str(out)])
    names = {path.name for path in out.iterdir()}
    for stem in ("oneill_11_2_scaled", "oneill_11_1_scaled", "oneill_10_10_scaled"):
        assert {f"{stem}.md", f"{stem}.csv"} <= names
    assert {"oneill_11_2_scaled_xnli_sparsity.png", "oneill_11_2_scaled_xnli_languages.png"} <= names
    assert "oneill_11_2_scaled_layers.png" in names
    assert "oneill_10_10_scaled_xnli_sparsity.png" not in names  # not a pruning table: no sparsity curve
    markdown = (out / "oneill_11_2_scaled.md").read_text()
    assert "| L2-MBP + SDP-CC | 68.00 ± 2.83 (66.47) |" in markdown
    claim = "L2-MBP + SDP-CC > L2-MBP + SDP-KLD (average; §11.5: SDP-CC best): **held** — ours 68.00 vs 59.00"
    assert claim in markdown
    assert "(seed spread 3.16)" in markdown
    assert "**not held**" in markdown and "**no data**" in markdown
    with open(out / "oneill_11_2_scaled.csv") as handle:
        lines = [line for line in csv.DictReader(handle) if line["method"] == "sdp_cc" and line["task"] == "xnli"]
    assert float(lines[0]["ours_mean"]) == pytest.approx(68.0) and lines[0]["n"] == "2"


def test_report_refreshes_the_marked_sections_of_a_results_page(runs_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    stale = "<!-- report:oneill_11_2_scaled -->\nold numbers\n<!-- /report:oneill_11_2_scaled -->"
    untouched = "<!-- report:bai_5_2_scaled -->\nno runs yet\n<!-- /report:bai_5_2_scaled -->"
    graddrop = "<!-- report:oneill_10_10_scaled -->\n<!-- /report:oneill_10_10_scaled -->"
    page.write_text(f"# Results\n\nprose before\n{stale}\nprose after\n{untouched}\n{graddrop}\n")
    main(["report", str(runs_dir), "--out", str(tmp_path / "docs" / "results"), "--update", str(page)])
    text = page.read_text()
    assert "old numbers" not in text
    assert text.startswith("# Results\n\nprose before\n<!-- report:oneill_11_2_scaled -->\n")
    assert "\nprose after\n" + untouched in text  # a table without runs keeps its section
    start, end = text.index("<!-- report:oneill_11_2_scaled -->"), text.index("<!-- /report:oneill_11_2_scaled -->")
    section = text[start:end]
    # only the rows and the column that were run, ours next to the published number
    assert "| method | seeds | XNLI | published (XLM-R Base) | weights remaining % |" in section
    assert "| L2-MBP + SDP-CC | 2 | 68.00 ± 2.83 | 66.47 | 31.4 |" in section
    assert "PAWSX" not in section and "Random" not in section
    # the orderings with data, and the figures linked relative to the page
    assert "L2-MBP + SDP-CC > L2-MBP + SDP-KLD" in section and "**held** — ours 68.00 vs 59.00" in section
    assert "**no data**" not in section
    assert "![oneill_11_2_scaled_xnli_languages.png](results/oneill_11_2_scaled_xnli_languages.png)" in section
    # a table that is not about pruning has no remaining-weights column
    start, end = text.index("<!-- report:oneill_10_10_scaled -->"), text.index("<!-- /report:oneill_10_10_scaled -->")
    assert "| method | seeds | XNLI | published (XLM-R Large) |\n" in text[start:end]
    assert "| XLM-R Large (FT) | 1 | 70.00 | 79.25 |" in text[start:end]  # its best English epoch, not the last
    # running it again gives the same page
    main(["report", str(runs_dir), "--out", str(tmp_path / "docs" / "results"), "--update", str(page)])
    assert page.read_text() == text


def test_report_update_needs_an_existing_page_with_closed_markers(runs_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["report", str(runs_dir), "--out", str(tmp_path / "out"), "--update", str(tmp_path / "missing.md")])
    page = tmp_path / "results.md"
    page.write_text("<!-- report:oneill_11_2_scaled -->\nthe closing marker was deleted\n")
    with pytest.raises(ValueError, match="no closing <!-- /report:oneill_11_2_scaled -->"):
        main(["report", str(runs_dir), "--out", str(tmp_path / "out"), "--update", str(page)])
    assert page.read_text() == "<!-- report:oneill_11_2_scaled -->\nthe closing marker was deleted\n"


def test_report_without_runs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path), "--out", str(tmp_path / "out")])
    assert write_report(tmp_path, tmp_path / "out") == []


def test_truncated_result_json_names_the_file_and_the_fix(runs_dir: Path, tmp_path: Path) -> None:
    path = runs_dir / "oneill_11_1" / "scaled" / "dense" / "sst2" / "seed1" / "result.json"
    path.write_text(path.read_text()[:25])  # a run killed while writing its result
    match = (
        r"'.*oneill_11_1/scaled/dense/sst2/seed1/result\.json', line 1, column \d+: not valid JSON .*interrupted "
        r"while writing it\. HINT: delete the run folder '.*seed1' and run `lightning-compress reproduce`"
    )
    with pytest.raises(ValueError, match=match):
        main(["report", str(runs_dir), "--out", str(tmp_path / "out")])
    path.write_text(json.dumps({"table": "oneill_11_1", "row": "dense"}))
    with pytest.raises(ValueError, match=r"result\.json' lacks the keys \['task', 'seed'\] .*HINT: delete the run"):
        load_runs(runs_dir)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"result\.json' holds a JSON list, expected an object"):
        load_runs(runs_dir)


def test_truncated_layer_sparsity_file_names_the_file(runs_dir: Path) -> None:
    path = runs_dir / "oneill_10_10" / "scaled" / "ft" / "xnli" / "seed1" / "layer_sparsity.json"
    path.write_text('{"layers": {"model.enc')
    with pytest.raises(ValueError, match=r"ft/xnli/seed1/layer_sparsity\.json', line 1, column \d+: not valid JSON"):
        load_runs(runs_dir)


def test_report_without_matplotlib_writes_the_tables_and_names_the_extra(
    runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("lightning_compress.reporting.report.has_module", lambda name: False)
    out = tmp_path / "results"
    main(["report", str(runs_dir), "--out", str(out)])
    assert "figures skipped: they need matplotlib, `pip install lightning-compress[report]`" in capsys.readouterr().out
    assert (out / "oneill_11_2_scaled.md").is_file() and not list(out.glob("*.png"))
    assert "## Figures" not in (out / "oneill_11_2_scaled.md").read_text()


def test_figures_without_matplotlib_name_the_extra(
    runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "lightning_compress.reporting.plots", raising=False)
    with pytest.raises(ImportError, match=r"^Plotting the figures of .* needs matplotlib, which is not installed: "):
        write_report(runs_dir, tmp_path / "out")
    assert write_report(runs_dir, tmp_path / "tables", plots=False)  # the tables alone need no matplotlib
