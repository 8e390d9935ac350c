"""A run exported in lm-evaluation-harness's results and samples layout (``records.lmeval_export``), read back
by lm-eval's own code: its file-name readers, its results table, and its aggregations recomputing every figure
from the exported samples (they must equal our record's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmeval_fixtures import evaluate
from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.records.lmeval_export import date_id

from ..helpers import write_native_checkpoint, write_smallbench, write_wikitext


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    write_wikitext(root / "data")
    write_smallbench(root / "data")
    write_native_checkpoint(root / "ck" / "tiny-a", seed=1)
    done = evaluate(root / "ck" / "tiny-a", families=("perplexity", "smallbench"), max_samples=6, history=False,
                    data_dir=root / "data", report_dir=root / "reports", run_id="exp", log_samples="full")
    assert not done.errors
    assert cli(["export-lmeval", str(root / "reports" / "exp"), "--out", str(root / "lm")]) == 0
    return done.records["tiny-a"], root / "lm" / "tiny-a"


def test_lmeval_finds_the_results_and_each_task_s_samples_by_name(exported):
    lm_utils = pytest.importorskip("lm_eval.utils")
    record, folder = exported
    files = sorted(str(p) for p in folder.iterdir())
    [results] = lm_utils.get_results_filenames(files)
    samples = lm_utils.get_sample_results_filenames(files)
    tasks = {lm_utils.get_file_task_name(f.rsplit("/", 1)[1]) for f in samples}
    assert tasks == {"sst2", "rte", "boolq", "mrpc", "wikitext_validation", "wikitext_test"}
    assert lm_utils.get_latest_filename(files) in files
    when = date_id(record["timestamp"])  # the run's time, as lm-eval dates its files
    assert {lm_utils.get_file_datetime(f) for f in samples} == {when}
    assert lm_utils.get_file_datetime(results) == when + ".json"  # lm-eval strips only ".jsonl", for both kinds
    data = json.loads(Path(results).read_text())
    assert {"results", "configs", "versions", "n-shot", "config", "higher_is_better"} <= set(data)
    table = lm_utils.make_table(data)  # lm-eval's own results table
    assert "|sst2" in table.replace(" ", "") and "bits_per_byte" in table


def read_samples_as_lmeval_does(path) -> list[dict]:
    """lm-eval publishes samples files as a JSON Lines dataset (its metadata card's data_files), read by datasets."""
    import datasets

    return list(datasets.load_dataset("json", data_files=str(path), split="train"))


def test_lmeval_s_aggregations_over_the_exported_samples_give_our_figures(exported):
    registry = pytest.importorskip("lm_eval.api.registry")
    pytest.importorskip("lm_eval.api.metrics")  # registers the aggregations
    record, folder = exported
    [results_file] = folder.glob("results_*.json")
    data = json.loads(results_file.read_text())
    for task, config in data["configs"].items():
        [samples_file] = folder.glob(f"samples_{task}_*.jsonl")
        samples = read_samples_as_lmeval_does(samples_file)
        assert len(samples) == data["n-samples"][task]["effective"]
        for metric in config["metric_list"]:
            aggregate = registry.get_aggregation(metric["aggregation"])
            value = aggregate([sample[metric["metric"]] for sample in samples])
            assert value == pytest.approx(data["results"][task][f"{metric['metric']},none"], rel=1e-9), (task, metric)
    # and the results are our record's figures under lm-eval's names
    assert data["results"]["sst2"]["acc,none"] == record["smallbench"]["sst2"]["acc"]
    assert data["results"]["wikitext_validation"]["bits_per_byte,none"] == record["val_bits_per_byte"]
    assert data["results"]["wikitext_test"]["word_perplexity,none"] == record["perplexity"]["test"]["word_perplexity"]
    assert data["n-shot"]["rte"] == 0 and data["config"]["limit"] == 6


def test_a_multiple_choice_sample_holds_each_choice_s_loglikelihood(exported):
    _, folder = exported
    [path] = folder.glob("samples_boolq_*.jsonl")
    sample = json.loads(path.read_text().splitlines()[0])
    assert [a["arg_1"] for a in sample["arguments"].values()] == [" no", " yes"]
    assert sample["arguments"]["gen_args_0"]["arg_0"].startswith("Passage: ")
    assert len(sample["resps"]) == 2 and all(len(r[0]) == 2 for r in sample["resps"])
    best = max(range(2), key=lambda i: sample["filtered_resps"][i][0])
    assert sample["acc"] == float(str(best) == sample["target"])


def test_a_run_without_samples_exports_its_results_alone(tmp_path, capsys):
    from ..helpers import finished_run

    run = finished_run(tmp_path, "r", {"a": 2.0})
    assert cli(["export-lmeval", str(run), "--out", str(tmp_path / "lm")]) == 0
    written = capsys.readouterr().out.split()
    assert len(written) == 1 and "/a/results_" in written[0]
    data = json.loads(Path(written[0]).read_text())
    assert data["results"]["wikitext_validation"]["bits_per_byte,none"] == 2.0
