"""``se-numpy ablate``: the plan, reuse and resume of runs, bit-identical results in one
process, in a pool of any size and on a Dask cluster, the report files, clear errors.

Runs here are tiny (64 images, 1 epoch): the point is that the machinery gives
the same bits everywhere, not what the networks learn (docs/ablations.md).
"""
import json
import os
import time

import pytest

from se_numpy.ablate.cli import run_ablation
from se_numpy.ablate.executors import run_local
from se_numpy.ablate.experiment import plan_ablation
from se_numpy.ablate.runs import RunSpec, build_trainer, execute_run, limit_threads
from se_numpy.ablate.tables import TABLE_NAMES
from se_numpy.cli import main


TINY = dict(train_limit=64, test_limit=64, epochs=1)


def _quiet(message):
    pass


def _per_run(results):
    return [(r["key"], r["test_error"], r["weights_sha256"]) for r in results]


@pytest.fixture(scope="module")
def squeeze_plan():
    return plan_ablation(["squeeze"], "se_tiny_resnet", 2, TINY)


@pytest.fixture(scope="module")
def pooled(squeeze_plan, tmp_path_factory):
    """The squeeze table's runs in a pool of two processes."""
    out = str(tmp_path_factory.mktemp("pool2"))
    specs = [run.spec.to_dict() for run in squeeze_plan.runs]
    return out, specs, run_local(specs, out, workers=2, quiet=True)


def test_all_plans_every_shared_run_once():
    plan = plan_ablation(list(TABLE_NAMES), "se_tiny_resnet", 2, TINY)
    # 8 tables list 6+2+3+5+4+2+3+9 = 34 rows; the no-SE net (4 tables) and the baseline
    # SE net (all 8) are one variant each, so 34 - 3 - 7 = 24 distinct variants remain
    assert len(plan.rows) == 34
    assert len(plan.runs) == 24 * 2
    baseline = plan.rows[("reduction", "r=2")]
    for table, name in (("squeeze", "avg"), ("excitation", "sigmoid"), ("integration", "standard"),
                        ("se3x3", "SE"), ("nosqueeze", "SE"), ("stages", "all stages (SE_All)"),
                        ("attention", "SE")):
        assert plan.rows[(table, name)] == baseline
    assert plan.rows[("stages", "no SE")] == plan.rows[("reduction", "no SE")]
    assert plan.rows[("attention", "no SE")] == plan.rows[("reduction", "no SE")]


def test_a_table_that_does_not_apply_fails_before_training():
    with pytest.raises(ValueError, match="integration.*placement"):
        plan_ablation(["integration"], "se_mobilenet_v1", 1, TINY)
    with pytest.raises(ValueError, match="SE model"):
        plan_ablation(["squeeze"], "tiny_resnet", 1, TINY)
    with pytest.raises(ValueError, match="unknown table"):
        plan_ablation(["Table10"], "se_tiny_resnet", 1, TINY)


def test_pool_size_does_not_change_a_bit(pooled, squeeze_plan, tmp_path):
    _, specs, two = pooled
    one = run_local(specs, str(tmp_path), workers=1, quiet=True)
    assert all(result["trained"] for result in one + two)
    assert _per_run(one) == _per_run(two)
    # and the variants really differ (else equality would prove nothing)
    assert len({result["weights_sha256"] for result in two}) == len(two)


def test_a_run_in_this_process_gives_the_same_bits(pooled, tmp_path):
    _, specs, two = pooled
    assert _per_run([execute_run(specs[0], str(tmp_path))]) == _per_run(two[:1])


def test_dask_cluster_gives_the_same_bits(pooled, tmp_path):
    distributed = pytest.importorskip("distributed")
    from se_numpy.ablate.executors import run_dask
    _, specs, two = pooled
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as cluster:
        on_dask = run_dask(specs, str(tmp_path), cluster.scheduler_address, quiet=True)
    assert _per_run(on_dask) == _per_run(two)


def test_finished_runs_are_read_not_retrained(pooled):
    out, specs, two = pooled
    result_files = [os.path.join(r["run_dir"], "result.json") for r in two]
    stamps = [os.stat(path).st_mtime_ns for path in result_files]
    again = [execute_run(spec, out) for spec in specs]     # what every worker calls
    assert not any(result["trained"] for result in again)
    assert _per_run(again) == _per_run(two)
    assert [os.stat(path).st_mtime_ns for path in result_files] == stamps


def test_a_killed_run_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    budget = dict(TINY, epochs=2)
    spec = plan_ablation(["excitation"], "se_tiny_resnet", 1, budget).runs[1].spec   # tanh
    uninterrupted = execute_run(spec.to_dict(), str(tmp_path / "whole"))
    # the same run stopped after epoch 1, as a kill between epochs would leave it
    run_dir = tmp_path / "killed" / "runs" / spec.directory_name
    with limit_threads():
        build_trainer(spec, str(run_dir)).fit(stop_after=1)
    assert not (run_dir / "result.json").exists()
    resumed = execute_run(spec.to_dict(), str(tmp_path / "killed"))
    assert resumed["resumed_from_epoch"] == 1 and resumed["trained"]
    assert resumed["weights_sha256"] == uninterrupted["weights_sha256"]
    assert resumed["test_error"] == uninterrupted["test_error"]


def test_a_changed_budget_is_another_run():
    spec = plan_ablation(["squeeze"], "se_tiny_resnet", 1, TINY).runs[0].spec
    longer = RunSpec(spec.variant, spec.model, spec.options, dict(spec.train, epochs=2))
    renamed = RunSpec("another name", spec.model, spec.options, spec.train)
    assert longer.key != spec.key and renamed.key == spec.key
    # the baseline is "avg" in one table and "SE" in another: one directory for both
    assert renamed.directory_name == spec.directory_name
    assert longer.directory_name != spec.directory_name


def test_a_run_finished_under_another_table_is_reused(pooled):
    out, _, two = pooled
    baseline = plan_ablation(["se3x3"], "se_tiny_resnet", 2, TINY)     # its baseline is "SE"
    spec = baseline.runs[0].spec
    assert spec.variant == "SE"
    result = execute_run(spec.to_dict(), out)
    assert not result["trained"] and result["variant"] == "SE"
    assert result["weights_sha256"] == two[0]["weights_sha256"]


def test_report_files_and_summary_fields(pooled):
    out, _, two = pooled      # the same runs: the report reads them, trains nothing
    paths, text, counts = run_ablation("squeeze", seeds=2, budget=TINY, workers=2, out=out,
                                       quiet=True, log=_quiet)
    assert counts["trained"] == 0 and counts["reused"] == 4
    with open(paths["summary"]) as handle:
        summary = json.load(handle)
    table = summary["tables"]["squeeze"]
    assert table["paper_table"] == 11 and table["baseline"] == "avg"
    rows = {row["name"]: row for row in table["variants"]}
    assert rows["avg"]["paper_top1"] == 22.28 and rows["max"]["paper_top1"] == 22.57
    row = rows["max"]
    for field in ("settings", "params", "mflops", "test_errors", "mean", "std", "difference",
                  "p", "significant", "paper_table"):
        assert field in row, field
    assert row["settings"]["squeeze"] == "max"
    assert row["test_errors"] == [r["test_error"] for r in two if r["variant"] == "max"]
    assert row["difference"] == pytest.approx(rows["max"]["mean"] - rows["avg"]["mean"])
    assert "Table 11" in text and "max" in text
    for name in ("squeeze.png", "table.txt", "squeeze.txt"):
        assert os.path.getsize(os.path.join(out, name)) > 100, name
    with open(os.path.join(out, "squeeze.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_unreachable_scheduler_is_one_line_within_seconds(capsys):
    start = time.perf_counter()
    code = main(["ablate", "squeeze", "--scheduler", "tcp://127.0.0.1:9", "--quiet"])
    elapsed = time.perf_counter() - start
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and "cannot reach the Dask scheduler" in error
    assert elapsed < 30     # the client gives up after 5 s; this only catches a hang


def test_cli_bad_options_and_data(capsys):
    assert main(["ablate", "squeeze", "--seeds", "0", "--quiet"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["ablate", "squeeze", "--data", "cifar10:/nonexistent/dir", "--quiet"]) == 2
    assert "/nonexistent/dir" in capsys.readouterr().err


def test_a_data_set_missing_on_a_worker_names_the_machine():
    from se_numpy.ablate.runs import _dataset
    with pytest.raises(RuntimeError, match="same path on every machine"):
        _dataset("mnist:/nonexistent/dir")


def test_a_failing_run_stops_the_pool_with_its_error(tmp_path):
    spec = plan_ablation(["squeeze"], "se_tiny_resnet", 1, TINY).runs[0].spec
    missing = RunSpec(spec.variant, spec.model, spec.options,
                      dict(spec.train, data="mnist:/nonexistent/dir"))
    with pytest.raises(RuntimeError, match="same path on every machine"):
        run_local([missing.to_dict()] * 3, str(tmp_path), workers=1, quiet=True)
