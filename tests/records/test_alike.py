"""One rule for "measured alike" (issue 24, item 3): a setting recorded on one side only is a
difference, and every consumer (record merge, ``lmeval-fixtures merge``, comparison, history,
gates) follows it.

Each consumer is driven as a user drives it, on a pair that differs only in a setting one side
does not record; before the one rule, record merge and ``lmeval-fixtures merge`` let such a pair
through (they compared only settings both recorded, or only data) and the gate compared a field
missing on one side as if it were null.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.core.errors import RecordMergeError
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.records.alike import FIGURE_SETTINGS, alike, differences
from lmeval_fixtures.records.comparison import comparable_groups, render_comparison
from lmeval_fixtures.records.gates import GatePolicy, gates_for
from lmeval_fixtures.records.history import trend
from lmeval_fixtures.records.record import merge_records
from lmeval_fixtures.suite.registry import Registry

ENVIRONMENT = {"device": "cpu", "dtype": "float32", "python": "3.11", "torch": "x", "platform": "p"}
SETTINGS = {"seed": 1234, "max_eval_tokens": None, "ppl_stride": None, "detokenize": True, "prompts": "smallbench",
            "max_samples": None, "fewshot": 0, "device": "cpu", "dtype": "float32", "batch_tokens": 16384}
WITHOUT_FEWSHOT = {k: v for k, v in SETTINGS.items() if k != "fewshot"}  # as a version that did not record it
DATA = {"wikitext-2-raw/validation.txt": "1" * 64}
FIGURES = Registry.default().figure_table()


def split_figures(bpb: float) -> dict:
    return {"loss": bpb * 2, "token_perplexity": 2.0 ** (bpb * 2), "bits_per_byte": bpb, "byte_perplexity": 1.5,
            "word_perplexity": 9.0, "tokens": 10, "bytes": 30, "words": 6, "documents": 1, "stride": 64,
            "context_length": 64, "max_eval_tokens": None, "detokenized": True}


def finished_run(folder: Path, run_id: str, names: dict[str, float], settings: dict) -> Path:
    """A run folder as a pytest run writes it (``Run.finish``): one metrics.json per checkpoint."""
    run = Run({"run_id": run_id, "timestamp": "2026-01-01T00:00:00+00:00", "seed": 1234, "git_commit": None,
               "environment": ENVIRONMENT, "settings": settings})
    for name, bpb in names.items():
        run.absorb([(name, "t::ppl[validation]", {"perplexity": {"validation": split_figures(bpb)},
                                                    "data_fingerprints": DATA}),
                    (name, "~checkpoint", {"checkpoint": {"name": name, "path": "p", "sha256": name * 8}})])
        run.add_outcome(name, "t::ppl[validation]", "passed")
    done = run.finish(folder, compare_by="val_bits_per_byte", run_id=run_id)
    assert not done.errors, done.errors
    return folder


def record(name: str, bpb: float, settings: dict, data: dict | None = None) -> dict:
    return {"run_id": "r", "data_fingerprints": DATA if data is None else data, "embedding_ratio": 0.3,
            "settings": settings, "checkpoint": {"name": name, "tokenizer_sha256": "t"},
            "perplexity": {"validation": {"bits_per_byte": bpb, "token_perplexity": 10.0}}}


def line(run_id: str, value: float, settings: dict, context: int | None = None) -> dict:
    """A history line; ``context`` as a run that measured perplexity states it (None: not stated)."""
    stated = {k: v for k, v in settings.items() if k in FIGURE_SETTINGS}
    return {"run_id": run_id, "timestamp": f"2026-01-01T00:00:0{run_id[-1]}+00:00", "git_commit": None,
            "checkpoint": "a", "sha256": "x", "complete": True, "val_bits_per_byte": value,
            "settings": stated if context is None else stated | {"context": context}, "data_fingerprints": DATA}


# ---- the rule itself ---------------------------------------------------------------------------

def test_a_setting_recorded_on_one_side_only_is_a_difference_both_ways():
    full, partial = record("a", 2.0, SETTINGS), record("b", 2.0, WITHOUT_FEWSHOT)
    assert [str(d) for d in differences(full, partial)] == ["fewshot not recorded vs 0"]
    assert [str(d) for d in differences(partial, full)] == ["fewshot 0 vs not recorded"]
    assert not alike(full, partial) and alike(full, record("c", 1.0, dict(SETTINGS)))


def test_what_is_no_reason_stays_no_reason():
    # a data file only one record read (a run of fewer items), a setting that changes no figure
    assert alike(record("a", 2.0, SETTINGS), record("b", 2.0, SETTINGS | {"batch_tokens": 1}, data={}))
    # the context is the model's: it counts only where both state it (a run without perplexity states none)
    assert alike(line("r1", 2.0, SETTINGS, context=64), line("r2", 2.0, SETTINGS))
    assert [str(d) for d in differences(line("r1", 2.0, SETTINGS, context=64),
                                        line("r2", 2.0, SETTINGS, context=128))] == ["context 128 vs 64"]


def test_a_file_behind_a_fragment_that_the_reference_did_not_read_is_a_difference():
    baseline, fragment = {"data_fingerprints": {}}, {"data_fingerprints": {"f": "a" * 64}}
    assert alike(baseline, fragment, settings=False)  # between whole records: no reason
    assert not alike(baseline, fragment, settings=False, other_is_fragment=True)  # behind the figure: a reason


# ---- every consumer follows it ---------------------------------------------------------------

def test_record_merge_refuses_a_setting_recorded_in_one_record_only(tmp_path):
    finished_run(tmp_path / "r", "r", {"a": 2.0}, SETTINGS)
    earlier = json.loads((tmp_path / "r" / "a" / "metrics.json").read_text())
    later = finished_run(tmp_path / "again", "r", {"a": 2.0}, WITHOUT_FEWSHOT)
    later_record = json.loads((later / "a" / "metrics.json").read_text())
    with pytest.raises(RecordMergeError, match=r"measured with other settings than the earlier record "
                                               r"\(fewshot not recorded vs 0\)"):
        merge_records(earlier, later_record, FIGURES)

    # the same through a second invocation into the run folder (what --run-id again does)
    run = Run({"run_id": "r", "timestamp": "2026-01-02T00:00:00+00:00", "seed": 1234, "git_commit": None,
               "environment": ENVIRONMENT, "settings": WITHOUT_FEWSHOT})
    run.absorb([("a", "t::ppl[validation]", {"perplexity": {"validation": split_figures(1.0)},
                                              "data_fingerprints": DATA})])
    run.add_outcome("a", "t::ppl[validation]", "passed")
    before = (tmp_path / "r" / "a" / "metrics.json").read_text()
    done = run.finish(tmp_path / "r", compare_by="val_bits_per_byte", run_id="r")
    assert any("could not merge the record of a" in e and "fewshot not recorded vs 0" in e for e in done.errors)
    assert (tmp_path / "r" / "a" / "metrics.json").read_text() == before


def test_the_merge_command_refuses_shards_measured_otherwise(tmp_path, capsys):
    first = finished_run(tmp_path / "s1", "r", {"a": 2.0}, SETTINGS)
    second = finished_run(tmp_path / "s2", "r", {"b": 1.9}, WITHOUT_FEWSHOT)  # another checkpoint, same run id
    assert cli(["merge", str(tmp_path / "out"), str(first), str(second)]) == 2
    err = capsys.readouterr().err
    assert "refused: measured with other settings than" in err and "fewshot not recorded vs 0" in err
    assert not (tmp_path / "out").exists()

    alike_shard = finished_run(tmp_path / "s3", "r", {"b": 1.9}, SETTINGS)
    assert cli(["merge", str(tmp_path / "out"), str(first), str(alike_shard)]) == 0


def test_the_comparison_groups_a_setting_recorded_on_one_side_only_apart():
    records = [record("a", 2.0, SETTINGS), record("b", 1.9, WITHOUT_FEWSHOT), record("c", 1.8, SETTINGS)]
    assert [[r["checkpoint"]["name"] for r in g] for g in comparable_groups(records)] == [["a", "c"], ["b"]]
    text = render_comparison(records, FIGURES, "val_bits_per_byte")
    assert "(later groups vs group 1: fewshot not recorded vs 0)" in text
    assert "## Group 1: fewshot 0 (2 checkpoint(s))" in text
    assert "## Group 2: fewshot not recorded (1 checkpoint(s))" in text


def test_the_history_leaves_a_setting_recorded_on_one_side_only_out_of_the_trend():
    lines = [line("r1", 2.0, WITHOUT_FEWSHOT), line("r2", 2.1, SETTINGS), line("r3", 2.2, SETTINGS)]
    found = trend(lines, "a", "val_bits_per_byte")
    assert [row.split()[1] for row in found.rows] == ["r2", "r3"]
    assert "1 earlier run(s) with other settings or data left out (earlier vs latest: fewshot not recorded vs 0)" \
        in found.notes[0]


def test_the_gate_refuses_a_baseline_field_recorded_on_one_side_only():
    summary = {"acc": 0.5, "acc_stderr": 0.02, "prompt_set": "smallbench", "fewshot": 0, "max_samples": None}
    fragment = {"smallbench": {"sst2": summary}, "data_fingerprints": {}}
    cpu = {"device": "cpu", "dtype": "float32"}
    older = {k: v for k, v in summary.items() if k != "max_samples"}  # a baseline that does not record it
    baseline = {"_source": "b.json", "data_fingerprints": {}, "environment": cpu, "smallbench": {"sst2": older}}
    policy = GatePolicy(0.01, 2.0, None, 0.25)
    [refused] = gates_for(fragment, FIGURES, baseline, policy, cpu)
    assert not refused.ok
    assert "baseline b.json refused: measured with other max_samples than the baseline " \
           "(max_samples all vs not recorded)" in refused.message
    [passed] = gates_for(fragment, FIGURES, baseline | {"smallbench": {"sst2": dict(summary)}}, policy, cpu)
    assert passed.ok


@pytest.mark.parametrize("change", [
    {}, {"fewshot": 3}, {"max_samples": 200}, {"dtype": "bfloat16"}, "drop fewshot", "drop all",
])
def test_merge_comparison_and_history_agree_on_every_pair(tmp_path, change):
    """Whatever the pair, the three consumers of whole records decide alike: merge refuses exactly
    the pairs comparison groups apart and the trend leaves out."""
    if change == "drop fewshot":
        other = WITHOUT_FEWSHOT
    elif change == "drop all":
        other = {}
    else:
        other = SETTINGS | change
    expected_alike = change == {}
    assert alike(record("a", 2.0, SETTINGS), record("a", 2.0, other)) == expected_alike

    finished_run(tmp_path / "one", "r", {"a": 2.0}, SETTINGS)
    earlier = json.loads((tmp_path / "one" / "a" / "metrics.json").read_text())
    finished_run(tmp_path / "two", "r", {"a": 2.0}, other)
    later = json.loads((tmp_path / "two" / "a" / "metrics.json").read_text())
    try:
        merge_records(earlier, later, FIGURES)
        merged = True
    except RecordMergeError:
        merged = False
    grouped_together = len(comparable_groups([record("a", 2.0, SETTINGS), record("b", 1.0, other)])) == 1
    trended = len(trend([line("r1", 2.0, other), line("r2", 2.0, SETTINGS)], "a", "val_bits_per_byte").rows) == 2
    assert merged == grouped_together == trended == expected_alike


# ---- issue 25: the same item read from other text, whatever the files are called ---------------------


@pytest.mark.parametrize("mine, theirs, names", [
    # --corpus c=a.txt, then c=b.txt: the file names differ, so no fingerprint is shared
    ({"a.txt": "1" * 64}, {"b.txt": "2" * 64}, ["perplexity:c:test"]),
    # a corpus renamed and given other text: the same item name, other inputs
    ({"held/test.txt": "1" * 64}, {"held/test.txt": "1" * 64}, ["perplexity:c:test"]),
    # a task of the same name from another YAML file
    ({"quiz.yaml": "3" * 64}, {"other/quiz.yaml": "4" * 64}, ["smallbench:quiz"]),
])
def test_the_same_item_with_other_inputs_is_not_alike_for_merge_history_and_comparison(mine, theirs, names):
    earlier = record("a", 2.0, SETTINGS, data=mine) | {"inputs_sha256": {n: "e" * 64 for n in names}}
    later = record("a", 2.0, SETTINGS, data=theirs) | {"inputs_sha256": {n: "f" * 64 for n in names}}
    if mine == theirs:
        later["data_fingerprints"] = dict(mine)  # the files agree by name; only the inputs tell them apart
    found = differences(earlier, later)
    assert [str(d) for d in found] == [f"data {n} differs" for n in names]
    with pytest.raises(RecordMergeError, match=f"{names[0]} differs from the earlier record's data"):
        merge_records(earlier | {"errors": [], "invocations": []}, later | {"errors": [], "invocations": []}, FIGURES)
    assert len(comparable_groups([earlier, record("b", 2.0, SETTINGS, data=theirs) | {
        "inputs_sha256": {n: "f" * 64 for n in names}}])) == 2
    # an item only one side measured is no reason (a run of fewer items), as for data files
    assert not differences(earlier, later | {"inputs_sha256": {"perplexity:other:test": "f" * 64}})
