"""scripts/crosscheck_lmeval.py's comparison, on outputs laid out as lm-eval 0.4.13 and the suite write them."""

import importlib.util
import json

import pytest

from ..helpers import ROOT

SCRIPT = ROOT / "scripts" / "crosscheck_lmeval.py"


TASKS = ("sst2", "rte", "mrpc", "boolq")


STAMP = "2026-11-26T12-00-00.000000"


@pytest.fixture(scope="module")
def crosscheck():
    spec = importlib.util.spec_from_file_location("crosscheck_lmeval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_outputs(out, ours_ll=-1.5, their_acc=0.5, their_bpb=2.0):
    """Two examples per task (the first right, the second wrong) and two WikiText articles."""
    theirs, ours = out / "lmeval" / "m", out / "ours" / "crosscheck" / "m"
    results = {f"crosscheck_{t}": {"acc,none": their_acc, "acc_norm,none": 0.5} for t in TASKS}
    results["crosscheck_wikitext"] = {"word_perplexity,none": 100.0, "byte_perplexity,none": 4.0,
                                      "bits_per_byte,none": their_bpb}
    theirs.mkdir(parents=True)
    (theirs / f"results_{STAMP}.json").write_text(json.dumps({"results": results}))
    for task in TASKS:
        write_jsonl(theirs / f"samples_crosscheck_{task}_{STAMP}.jsonl", [
            {"doc_id": 1, "filtered_resps": [[-1.0, False], [-3.0, False]], "acc": 0.0, "acc_norm": 0.0},
            {"doc_id": 0, "filtered_resps": [["-1.5", "False"], ["-2.5", "False"]], "acc": 1.0, "acc_norm": 1.0},
        ])
        write_jsonl(ours / f"samples-smallbench-{task}.jsonl", [
            {"loglikelihoods": [ours_ll, -2.5], "correct": True, "correct_norm": True},
            {"loglikelihoods": [-1.0, -3.0], "correct": False, "correct_norm": False},
        ])
    write_jsonl(theirs / f"samples_crosscheck_wikitext_{STAMP}.jsonl",
                [{"doc_id": 0, "filtered_resps": [-100.0]}, {"doc_id": 1, "filtered_resps": [-50.0]}])
    write_jsonl(ours / "samples-perplexity-validation.jsonl", [{"nll": 100.0}, {"nll": 50.0}])
    (ours / "metrics.json").write_text(json.dumps({
        "smallbench": {t: {"acc": 0.5, "acc_norm": 0.5} for t in TASKS},
        "perplexity": {"validation": {"word_perplexity": 100.0, "byte_perplexity": 4.0, "bits_per_byte": 2.0}},
    }))


def verdicts(rows):
    return {row[0]: row[-1] for row in rows}


def test_matching_outputs_agree_in_doc_id_order(tmp_path, crosscheck):
    write_outputs(tmp_path)
    rows, ok = crosscheck.compare(tmp_path, "m")
    assert ok and set(verdicts(rows).values()) == {"yes"}
    assert len(rows) == 4 * 3 + 4


@pytest.mark.parametrize("change, failing", [
    ({"ours_ll": -1.5 + 2e-4}, "sst2 per-example log-likelihood (2 x 2)"),
    ({"their_acc": 0.25}, "rte acc"),
    ({"their_bpb": 2.001}, "wikitext bits_per_byte"),
])
def test_a_difference_beyond_tolerance_is_reported(tmp_path, crosscheck, change, failing):
    write_outputs(tmp_path, **change)
    rows, ok = crosscheck.compare(tmp_path, "m")
    assert not ok
    assert verdicts(rows)[failing] == "NO"
