"""`lmeval-fixtures list` (``cli.listing``): what a run can measure, read off the declarations a run reads."""

from __future__ import annotations

import json
from pathlib import Path

from lmeval_fixtures.cli.main import main as cli

PACKAGE = Path(__file__).resolve().parents[2] / "lmeval_fixtures"


def listed(capsys, *args: str) -> dict:
    assert cli(["list", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_names_each_task_with_its_prompt_sets_figure_key_and_other_names(capsys):
    tasks = {t["name"]: t for t in listed(capsys)["tasks"]}
    assert sorted(tasks) == ["boolq", "mrpc", "rte", "sst2"]
    # the original schema's key, and the three names a user meets for the same task
    assert tasks["sst2"]["figure_key"] == "smallbench_sentiment_acc"
    assert tasks["sst2"]["also_accepted"] == ["sst2", "SST-2", "smallbench_sst2_acc"]
    assert tasks["rte"]["figure_key"] == "smallbench_nli_acc" and "RTE" in tasks["rte"]["also_accepted"]
    assert all(t["prompt_sets"] == ["lm-eval", "smallbench"] for t in tasks.values())
    assert "smallbench_qa_margin" in tasks["boolq"]["figures"]


def test_list_gives_corpora_families_and_reference_checkpoint_paths(capsys):
    found = listed(capsys)
    assert [(c["name"], c["splits"]) for c in found["corpora"]] == [("wikitext", ["validation", "test"])]
    assert "val_bits_per_byte" in found["corpora"][0]["figures"]
    assert list(found["families"]) == ["perplexity", "smallbench", "latency", "throughput"]
    references = {r["name"]: Path(r["path"]) for r in found["reference_checkpoints"]}
    assert sorted(references) == ["ref-e25", "ref-e35", "ref-e50"]
    for name, path in references.items():  # a path one can hand to --checkpoint
        assert path.is_file() and path.resolve() == (PACKAGE / "reference" / name / "model.safetensors").resolve()


def test_list_as_text_is_four_tables(capsys):
    assert cli(["list"]) == 0
    out = capsys.readouterr().out
    assert "| sst2 | smallbench_sentiment_acc | sst2, SST-2, smallbench_sst2_acc |" in out
    assert out.count("|---|") >= 4 and "ref-e35/model.safetensors" in out


def test_list_declares_task_files_and_corpora_as_a_run_does(tmp_path, capsys):
    task = tmp_path / "arc.yaml"
    task.write_text("name: arc\ndata: arc.jsonl\ntemplate: '{question}'\nchoices: [A, B]\n")
    (tmp_path / "arc.jsonl").write_text('{"question": "q", "label": 0}\n')
    corpus = tmp_path / "notes.txt"
    corpus.write_text("one document\n")
    found = listed(capsys, "--task-file", str(task), "--corpus", f"notes={corpus}")
    arc = next(t for t in found["tasks"] if t["name"] == "arc")
    assert arc["figure_key"] == "smallbench_arc_acc" and arc["data"] == "own files"
    assert "notes" in [c["name"] for c in found["corpora"]]


def test_a_bad_declaration_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli(["list", "--task-file", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lmeval-fixtures list: --task-file ") and "missing.yaml" in err
