"""Sharded runs, through pytester: shards merged equal the whole run, the merge refuses shards of other runs or
data, -m and -k select before the split, and the reference sweep's and the matrix workflow's shards cover
the sweep once at balanced cost."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from lmeval_fixtures.cli.main import main as cli

from ..helpers import ROOT, lay_out_suite, records_of

RUN_LEVEL = {"run_id", "timestamp", "environment", "invocations", "settings", "seconds", "tokens_per_second",
             "duration_s"}


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in RUN_LEVEL}
    return value


def test_shards_merge_into_the_report_of_a_single_run(two_models, capsys):
    common = ["--checkpoint", "ck", "--data-dir", "data"]
    two_models.runpytest(*common, "--run-id", "whole").assert_outcomes(passed=12)
    first = two_models.runpytest(*common, "--run-id", "split", "--shard", "1/2", "--report-dir", "s1")
    second = two_models.runpytest(*common, "--run-id", "split", "--shard", "2/2", "--report-dir", "s2")
    assert first.parseoutcomes()["passed"] + second.parseoutcomes()["passed"] == 12
    assert first.parseoutcomes()["deselected"] == 6
    out = two_models.path / "merged"
    assert cli(["merge", str(out), str(two_models.path / "s1/split"), str(two_models.path / "s2/split")]) == 0
    whole, merged = records_of(two_models.path / "reports", "whole"), records_of(two_models.path, "merged")
    assert sorted(merged) == ["a", "b"]
    for name in ("a", "b"):
        assert strip(merged[name]) == strip(whole[name])
    assert (out / "comparison.md").is_file()


def test_merge_refuses_shards_of_other_runs_or_data(two_models, capsys):
    common = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity"]
    two_models.runpytest(*common, "--run-id", "r1", "--shard", "1/2", "--report-dir", "s1")
    two_models.runpytest(*common, "--run-id", "r2", "--shard", "2/2", "--report-dir", "s2")
    assert cli(["merge", str(two_models.path / "m"), str(two_models.path / "s1/r1"),
                str(two_models.path / "s2/r2")]) == 2
    assert "shards of different runs" in capsys.readouterr().err

    two_models.runpytest(*common, "--run-id", "r1", "--shard", "2/2", "--report-dir", "s3")
    for path in (two_models.path / "s3/r1").glob("*/metrics.json"):
        record = json.loads(path.read_text())
        record["data_fingerprints"]["wikitext-2-raw/validation.txt"] = "0" * 64
        path.write_text(json.dumps(record))
    assert cli(["merge", str(two_models.path / "m"), str(two_models.path / "s1/r1"),
                str(two_models.path / "s3/r1")]) == 2
    assert "wikitext-2-raw/validation.txt differs from the data of" in capsys.readouterr().err


def test_merge_into_a_folder_of_another_run_is_refused_not_relabelled(suite, capsys):
    args = ["--checkpoint", "ck", "--data-dir", "data", "-m", "perplexity"]
    for run in ("base", "other"):
        suite.runpytest(*args, "--run-id", run).assert_outcomes(passed=2)
    before = (suite.path / "reports/base/a/metrics.json").read_text()
    assert cli(["merge", str(suite.path / "reports/base"), str(suite.path / "reports/other")]) == 2
    assert "holds run base, not other" in capsys.readouterr().err
    assert (suite.path / "reports/base/a/metrics.json").read_text() == before


def test_the_reference_sweeps_eight_shards_cost_within_one_and_a_half_times_of_each_other():
    costs = []
    for index in range(1, 9):
        done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q",
                               "-p", "no:cacheprovider", "--shard", f"{index}/8"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        found = re.search(r"shard \d/8: \d+ of 30 items, estimated cost ([\d.]+)", done.stdout)
        assert found, done.stdout[-1500:]
        costs.append(float(found.group(1)))
    assert max(costs) <= 1.5 * min(costs), costs


def test_eight_shards_merged_equal_the_whole_run(pytester, offline):
    suite = lay_out_suite(pytester)
    (suite.path / "ck" / "a").rename(suite.path / "ck" / "a-model")
    from ..helpers import write_native_checkpoint

    write_native_checkpoint(suite.path / "ck" / "b", seed=2)
    args = ["--checkpoint", "ck", "--data-dir", "data", "--max-samples", "6", "--no-cache", "--threads", "1"]
    suite.runpytest(*args, "--run-id", "sweep", "--report-dir", "whole").assert_outcomes(passed=12)
    for index in range(1, 9):
        suite.runpytest(*args, "--run-id", "sweep", "--report-dir", f"part{index}", "--shard", f"{index}/8")
    parts = [str(suite.path / f"part{i}" / "sweep") for i in range(1, 9) if (suite.path / f"part{i}").exists()]
    assert cli(["merge", str(suite.path / "merged"), *parts]) == 0
    timing = re.compile(r"(seconds|duration_s|tokens_per_second)$")
    for name in ("a-model", "b"):
        whole = json.loads((suite.path / "whole" / "sweep" / name / "metrics.json").read_text())
        merged = json.loads((suite.path / "merged" / name / "metrics.json").read_text())
        assert _figures(whole, timing) == _figures(merged, timing)
        assert merged["complete"] is True


def _figures(record: dict, timing: re.Pattern, prefix: str = "") -> dict:
    """Every leaf of the perplexity, SmallBench and flat figure fields, timings aside."""
    out = {}
    for key, value in record.items():
        path = f"{prefix}{key}"
        if timing.search(key) or path in ("run_id", "timestamp", "invocations", "items", "settings", "environment"):
            continue
        if isinstance(value, dict):
            out |= _figures(value, timing, path + ".")
        elif isinstance(value, (int, float, str)) or value is None:
            out[path] = value
    return out


@pytest.mark.parametrize("count", [2, 3])
def test_selection_is_applied_before_the_split(pytester, offline, count):
    suite = lay_out_suite(pytester)
    base = ["--checkpoint", "ck", "--data-dir", "data", "--max-samples", "6", "-m", "smallbench", "-k", "not boolq"]
    total = 0
    for index in range(1, count + 1):
        result = suite.runpytest(*base, "--shard", f"{index}/{count}", "--run-id", f"s{index}", "--collect-only")
        total += len([line for line in result.stdout.lines if "test_smallbench[" in line])
    assert total == 3  # sst2, rte, mrpc: -m and -k chose them first, then the shards split them


def _shard_step(index: int, checkpoints: str) -> tuple[str, dict[str, str]]:
    """The sweep's shard step as GitHub runs it: its script with the ``${{ }}`` expressions filled in
    for matrix index ``index`` and the workflow input ``checkpoints``, and its step environment."""
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "sweep-shards.yml").read_text())
    step = next(s for s in workflow["jobs"]["shard"]["steps"] if "pytest benchmarks" in s.get("run", ""))

    def expand(text: str) -> str:
        text = text.replace("${{ matrix.index }}", str(index)).replace("${{ env.RUN_ID }}", "sweep-1")
        text = re.sub(r"\$\{\{ github\.event\.inputs\.checkpoints && format\('([^']*)\{0\}', "
                      r"github\.event\.inputs\.checkpoints\) \|\| '' \}\}",
                      lambda m: m.group(1) + checkpoints if checkpoints else "", text)
        return text.replace("${{ github.event.inputs.checkpoints }}", checkpoints)

    return expand(step["run"]), {k: expand(str(v)) for k, v in (step.get("env") or {}).items()}


def test_the_sweep_passes_each_space_separated_checkpoint_as_its_own_option(tmp_path):
    script, env = _shard_step(1, "runs/a.safetensors owner/model@main  runs/c.pt")
    shown = subprocess.run(["bash", "-c", 'pytest() { printf "%s\\n" "$@"; }\n' + script], cwd=tmp_path,
                           env=env | {"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    args = shown.stdout.splitlines()
    given = [args[i + 1] for i, arg in enumerate(args) if arg == "--checkpoint"]
    assert given == ["runs/a.safetensors", "owner/model@main", "runs/c.pt"]
    assert not {"runs/a.safetensors", "owner/model@main", "runs/c.pt"} & {
        arg for i, arg in enumerate(args) if i == 0 or args[i - 1] != "--checkpoint"}  # none left as a path
    script, env = _shard_step(1, "")
    shown = subprocess.run(["bash", "-c", 'pytest() { printf "%s\\n" "$@"; }\n' + script], cwd=tmp_path,
                           env=env | {"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert "--checkpoint" not in shown.stdout.splitlines() and "" not in shown.stdout.splitlines()


def test_the_matrix_workflows_shards_cover_the_sweep_once_and_its_merge_parses(tmp_path, monkeypatch):
    import shlex

    import yaml

    from lmeval_fixtures.cli.main import build_parser

    monkeypatch.delenv("PYTEST_PLUGINS")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "sweep-shards.yml").read_text())
    count = len(workflow["jobs"]["shard"]["strategy"]["matrix"]["index"])
    seen: list[str] = []
    for index in range(1, count + 1):
        script, env = _shard_step(index, "")
        script = script.replace("lmeval-data", str(tmp_path)).replace("lmeval-cache", str(tmp_path / "cache"))
        python = shlex.quote(sys.executable)
        pytest_here = f'pytest() {{ {python} -m pytest "$@" --collect-only -q -p no:cacheprovider; }}\n'
        done = subprocess.run(["bash", "-c", pytest_here + script], cwd=ROOT, env=os.environ | env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        seen += [line for line in done.stdout.splitlines() if "::" in line]
    assert len(seen) == len(set(seen)) == 30  # every item of the reference sweep, in exactly one shard
    merge = next(s for s in workflow["jobs"]["merge"]["steps"] if "lmeval-fixtures merge" in s.get("run", ""))
    argv = shlex.split(merge["run"].replace("${{ env.RUN_ID }}", "sweep-1"))[1:]
    parsed = build_parser().parse_args(argv)
    assert parsed.command == "merge" and len(parsed.shards) == count
