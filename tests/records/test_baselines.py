"""--update-baseline (``records.baselines``): per checkpoint, never another checkpoint's record lost."""

from __future__ import annotations

import pytest

from lmeval_fixtures.core.errors import BaselineError, BaselineTargetError
from lmeval_fixtures.records.baselines import publish_baseline

from ..hostile_files import SPECIAL, ends_within, make_hostile


def run_folder(root, run_id: str, names: list[str], text: str) -> object:
    for name in names:
        (root / run_id / name).mkdir(parents=True)
        (root / run_id / name / "metrics.json").write_text(f'{{"of": "{name}", "run": "{text}"}}')
        (root / run_id / name / "summary.md").write_text(f"# {name} {text}\n")
    return root / run_id


@pytest.mark.parametrize("first, second", [(["e25", "e35", "e50"], ["e35"]), (["a"], ["b"]), (["a", "b"], ["b", "a"])])
def test_update_baseline_adds_and_replaces_per_checkpoint_and_keeps_the_others(tmp_path, first, second):
    target = tmp_path / "baselines" / "ci"
    publish_baseline(run_folder(tmp_path, "r1", first, "one"), first, target)
    publish_baseline(run_folder(tmp_path, "r2", second, "two"), second, target)
    for name in sorted(set(first) | set(second)):
        expected = "two" if name in second else "one"
        assert (target / name / "metrics.json").read_text() == f'{{"of": "{name}", "run": "{expected}"}}'
        assert (target / name / "summary.md").read_text() == f"# {name} {expected}\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["ci"]  # no staging or old folder left


def test_a_folder_that_is_not_a_baseline_is_still_refused_and_kept(tmp_path):
    target = tmp_path / "src"
    (target / "pkg").mkdir(parents=True)
    (target / "pkg" / "code.py").write_text("x = 1\n")
    with pytest.raises(BaselineTargetError, match="not a baseline folder"):
        publish_baseline(run_folder(tmp_path, "r1", ["a"], "one"), ["a"], target)
    assert (target / "pkg" / "code.py").read_text() == "x = 1\n"


@pytest.mark.parametrize("kind", SPECIAL + ["huge", "invalid UTF-8"])
def test_a_file_left_beside_the_runs_own_is_refused_by_name_and_the_old_baseline_kept(tmp_path, kind):
    """A ``samples-*.jsonl`` someone left in a checkpoint's folder as a FIFO or a device: before, the copy into the
    baseline waited on it for ever (or read a device without end)."""
    target = tmp_path / "baselines" / "ci"
    publish_baseline(run_folder(tmp_path, "r1", ["a"], "one"), ["a"], target)
    later = run_folder(tmp_path, "r2", ["a"], "two")
    make_hostile(later / "a" / "samples-x.jsonl", kind)
    with ends_within(20), pytest.raises(BaselineError, match=r"r2/a/samples-x\.jsonl: "):
        publish_baseline(later, ["a"], target)
    assert (target / "a" / "metrics.json").read_text() == '{"of": "a", "run": "one"}'  # the old one, whole
