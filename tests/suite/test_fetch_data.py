"""fetch_data against a fake hub: the layout, what it reads back as, the manifest, refusals, interruptions.

The fake hub serves small in-memory ``datasets.Dataset`` objects made here; every check compares
with those rows and pages (this file's own data), never with what fetch_data wrote.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
from datetime import datetime
from pathlib import Path

import datasets
import pytest

from lmeval_fixtures.core.errors import DataError, DataUnavailable, HubUnavailable
from lmeval_fixtures.suite import fetch_data as fetch_module
from lmeval_fixtures.suite.corpora import Corpus
from lmeval_fixtures.suite.fetch_data import MANIFEST, fetch_data
from lmeval_fixtures.suite.registry import Registry
from lmeval_fixtures.suite.sources import Hub, text_files
from lmeval_fixtures.suite.task_rows import load_task_rows
from lmeval_fixtures.suite.tasks import TASKS, Prompt, Task
from lmeval_fixtures.suite.wikitext import load_wikitext_articles

WIKI = ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1")

# A raw WikiText file as distributed (blank first line, " = Title = " articles) and, written out by
# hand, the articles the hub's document-level dataset holds for it.
VALIDATION_RAW = (" \n = Alpha = \n \n Alpha body @-@ text . \n \n = = Sub = = \n \n More . \n \n"
                  " = Beta = \n \n Ångström , here . \n \n")
VALIDATION_PAGES = [" = Alpha = \n \n Alpha body @-@ text . \n \n = = Sub = = \n \n More . \n ",
                    " = Beta = \n \n Ångström , here . \n \n"]
# A first article without a heading: no blank line is put back before it.
TEST_PAGES = ["Preface without a heading \n ", " = Gamma = \n \n Gamma body . \n \n"]

SERVED: dict[tuple[str, str, str], list[dict]] = {
    ("nyu-mll/glue", "sst2", "validation"): [
        {"sentence": "it 's a charming and often affecting journey . ", "label": 1, "idx": 0},
        {"sentence": "naïve café \u2028 line separator\u0085 and \u2029 too ", "label": 0, "idx": 1},
    ],
    ("nyu-mll/glue", "sst2", "train"): [
        {"sentence": "hide new secretions from the parental units ", "label": 0, "idx": 0},
        {"sentence": "that loves its characters ", "label": 1, "idx": 1},
        {"sentence": 'a "quoted" \\ backslash\tand tab ', "label": 1, "idx": 2},
    ],
    ("nyu-mll/glue", "rte", "validation"): [
        {"sentence1": "Dana Reeve died.", "sentence2": "Christopher Reeve had an accident.", "label": 1, "idx": 0},
    ],
    ("nyu-mll/glue", "rte", "train"): [
        {"sentence1": "No weapons were found.", "sentence2": "Weapons were found.", "label": 1, "idx": 0},
        {"sentence1": "A place of sorrow.", "sentence2": "Sorrow was felt.", "label": 0, "idx": 1},
    ],
    ("super_glue", "boolq", "validation"): [
        {"question": "does ethanol take more energy", "passage": "Ethanol fuel -- All biomass ...", "idx": 0,
         "label": 0},
    ],
    ("super_glue", "boolq", "train"): [
        {"question": "do iran and afghanistan speak the same language", "passage": "Persian language -- ...",
         "idx": 0, "label": 1},
    ],
    ("nyu-mll/glue", "mrpc", "validation"): [
        {"sentence1": 'He said " the witness " ,', "sentence2": "He called him the witness .", "label": 1, "idx": 0},
    ],
    ("nyu-mll/glue", "mrpc", "train"): [
        {"sentence1": "Amrozi accused his brother .", "sentence2": "His brother was accused .", "label": 0, "idx": 0},
    ],
    (*WIKI, "validation"): [{"page": page} for page in VALIDATION_PAGES],
    (*WIKI, "test"): [{"page": page} for page in TEST_PAGES],
}

LAYOUT = sorted([f"smallbench/{task}/{split}.jsonl" for task in ("sst2", "rte", "boolq", "mrpc")
                 for split in ("validation", "train")] + ["wikitext-2-raw/validation.txt", "wikitext-2-raw/test.txt"])


class FakeHub(Hub):
    """Serves ``served`` as in-memory datasets; ``interrupt_at`` raises that exception on the N-th load."""

    def __init__(self, served: dict | None = None, interrupt_at: tuple[int, BaseException] | None = None) -> None:
        super().__init__()
        self.served = copy.deepcopy(SERVED if served is None else served)
        self.interrupt_at = interrupt_at
        self.calls: list[tuple[str, str, str]] = []

    def load(self, path: str, name: str, split: str) -> object:
        self.calls.append((path, name, split))
        if self.interrupt_at and len(self.calls) == self.interrupt_at[0]:
            raise self.interrupt_at[1]
        return datasets.Dataset.from_list(copy.deepcopy(self.served[(path, name, split)]))


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in files_under(folder)}


@pytest.fixture
def fetched(tmp_path: Path) -> Path:
    dest = tmp_path / "data"
    fetch_data(dest, hub=FakeHub())
    return dest


def test_every_file_of_the_layout_is_written_with_the_umask_permissions(tmp_path: Path):
    dest = tmp_path / "new" / "data"
    lines: list[str] = []
    old = os.umask(0o027)
    try:
        written = fetch_data(dest, hub=FakeHub(), progress=lines.append)
    finally:
        os.umask(old)
    assert [p.relative_to(dest).as_posix() for p in written[:-1]] == [
        f"smallbench/{t}/{s}.jsonl" for t in ("sst2", "rte", "boolq", "mrpc") for s in ("validation", "train")
    ] + ["wikitext-2-raw/validation.txt", "wikitext-2-raw/test.txt"]
    assert written[-1] == dest / MANIFEST
    assert files_under(dest) == sorted([*LAYOUT, MANIFEST])  # nothing else: the staging folder is gone
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert stat.S_IMODE((dest / "smallbench" / "sst2").stat().st_mode) == 0o750
    for name in LAYOUT:
        assert any(name in line for line in lines), name


def test_local_reads_give_exactly_what_the_hub_served(fetched: Path):
    for task in TASKS.values():
        for split in ("validation", "train"):
            expected = SERVED[(*task.hub, split)]
            rows, source = load_task_rows(task, split, fetched)
            assert rows == expected
            assert [list(r) for r in rows] == [list(r) for r in expected]  # field order as on the hub
            lines = (fetched / task.local_file(split)).read_text(encoding="utf-8").split("\n")
            assert lines[-1] == "" and [json.loads(line) for line in lines[:-1]] == expected
            assert source.fingerprints == {task.local_file(split): hashlib.sha256(
                (fetched / task.local_file(split)).read_bytes()).hexdigest()}
    for split, pages in (("validation", VALIDATION_PAGES), ("test", TEST_PAGES)):
        articles, _ = load_wikitext_articles(split, fetched)
        assert articles == pages
    # the distributed raw file, byte for byte, where the articles allow it
    assert (fetched / "wikitext-2-raw/validation.txt").read_bytes() == VALIDATION_RAW.encode("utf-8")
    assert (fetched / "wikitext-2-raw/test.txt").read_text(encoding="utf-8") == "\n".join(TEST_PAGES)


def test_the_manifest_matches_the_files(fetched: Path):
    found = json.loads((fetched / MANIFEST).read_text(encoding="utf-8"))
    assert found["format"] == 1
    assert found["datasets_version"] == datasets.__version__
    assert datetime.fromisoformat(found["fetched_utc"]).utcoffset().total_seconds() == 0
    assert sorted(found["files"]) == LAYOUT
    for name, entry in found["files"].items():
        assert entry["sha256"] == hashlib.sha256((fetched / name).read_bytes()).hexdigest()
        served = SERVED[(entry["dataset"], entry["config"], entry["split"])]
        assert entry["rows"] == len(served)
        assert isinstance(entry["hub_fingerprint"], str) and entry["hub_fingerprint"]
    assert found["files"]["smallbench/boolq/train.jsonl"] | {"sha256": "", "hub_fingerprint": ""} == {
        "kind": "task", "name": "boolq", "dataset": "super_glue", "config": "boolq", "split": "train", "rows": 1,
        "sha256": "", "hub_fingerprint": ""}
    assert found["files"]["wikitext-2-raw/test.txt"]["kind"] == "corpus"
    listing = "".join(f"{hashlib.sha256((fetched / n).read_bytes()).hexdigest()}  {n}\n" for n in LAYOUT)
    assert found["content_sha256"] == hashlib.sha256(listing.encode()).hexdigest()


def test_existing_files_are_refused_unless_overwrite(fetched: Path):
    before = snapshot(fetched)
    hub = FakeHub()
    with pytest.raises(FileExistsError) as caught:
        fetch_data(fetched, hub=hub)
    message = str(caught.value)
    assert "\n" not in message and "smallbench/sst2/validation.jsonl exists" in message and "overwrite" in message
    assert hub.calls == []  # refused before anything was downloaded
    assert snapshot(fetched) == before
    # one file of the layout is enough to refuse
    (fetched / MANIFEST).unlink()
    for name in LAYOUT[1:]:
        (fetched / name).unlink()
    with pytest.raises(FileExistsError, match=LAYOUT[0]):
        fetch_data(fetched, hub=FakeHub())

    served = copy.deepcopy(SERVED)
    served[("nyu-mll/glue", "rte", "validation")][0]["label"] = 0
    fetch_data(fetched, hub=FakeHub(served), overwrite=True)
    assert load_task_rows(TASKS["rte"], "validation", fetched)[0][0]["label"] == 0


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), RuntimeError("connection reset")])
def test_an_interrupted_fetch_leaves_no_file(tmp_path: Path, interrupt: BaseException):
    dest = tmp_path / "data"
    with pytest.raises(type(interrupt)):
        fetch_data(dest, hub=FakeHub(interrupt_at=(5, interrupt)))
    assert files_under(dest) == [] and list(dest.iterdir()) == []


def test_a_write_cut_short_leaves_no_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real_write = fetch_module.write_atomic

    def half_then_fail(path: Path, text: str) -> None:
        if path.name == "train.jsonl" and path.parent.name == "rte":
            with open(path, "w", encoding="utf-8") as handle:  # a plain write interrupted half way
                handle.write(text[: len(text) // 2])
            raise OSError(28, "No space left on device")
        real_write(path, text)

    monkeypatch.setattr(fetch_module, "write_atomic", half_then_fail)
    dest = tmp_path / "data"
    with pytest.raises(OSError, match="No space left"):
        fetch_data(dest, hub=FakeHub())
    assert files_under(dest) == []
    with pytest.raises(DataUnavailable):
        load_task_rows(TASKS["sst2"], "validation", dest)


def test_an_interrupted_refetch_keeps_the_earlier_files(fetched: Path):
    before = snapshot(fetched)
    with pytest.raises(KeyboardInterrupt):
        fetch_data(fetched, hub=FakeHub(interrupt_at=(9, KeyboardInterrupt())), overwrite=True)
    assert snapshot(fetched) == before


def test_an_unreachable_hub_is_one_line_naming_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    dest = tmp_path / "data"
    with pytest.raises(HubUnavailable) as caught:
        fetch_data(dest, hub=Hub())
    assert isinstance(caught.value, DataError) and isinstance(caught.value, DataUnavailable)
    message = str(caught.value)
    assert "\n" not in message
    assert "nyu-mll/glue/sst2 validation" in message and "ConnectionError" in message
    assert "HF_DATASETS_OFFLINE" in message and "smallbench/sst2/validation.jsonl" in message
    assert files_under(dest) == []


def test_a_missing_dataset_is_one_line(tmp_path: Path):
    served = copy.deepcopy(SERVED)
    del served[(*WIKI, "test")]

    class MissingHub(FakeHub):
        def load(self, path: str, name: str, split: str) -> object:
            if (path, name, split) not in self.served:
                raise DataUnavailable("the hub failed (DatasetNotFoundError)")
            return super().load(path, name, split)

    with pytest.raises(HubUnavailable, match=r"EleutherAI/wikitext_document_level/wikitext-2-raw-v1 test .*"
                                             r"DatasetNotFoundError"):
        fetch_data(tmp_path / "data", hub=MissingHub(served))
    assert files_under(tmp_path / "data") == []


def test_a_bad_hub_row_is_refused_and_nothing_written(tmp_path: Path):
    served = copy.deepcopy(SERVED)
    served[("super_glue", "boolq", "train")][0]["label"] = -1  # an unlabelled split
    with pytest.raises(DataError, match=r"super_glue/boolq/train row 0: label -1 out of range") as caught:
        fetch_data(tmp_path / "data", hub=FakeHub(served))
    assert "\n" not in str(caught.value)
    assert files_under(tmp_path / "data") == []


def test_pages_that_cannot_be_read_back_the_same_are_refused(tmp_path: Path):
    served = copy.deepcopy(SERVED)
    served[(*WIKI, "validation")] = [{"page": " = Alpha = \r\n body \r\n"}]  # the reader reads CRLF as LF
    with pytest.raises(DataError, match=r"wikitext-2-raw/validation.txt does not read back as .*\(item 0 differs\)"):
        fetch_data(tmp_path / "data", hub=FakeHub(served))
    assert files_under(tmp_path / "data") == []


def test_a_selection_and_declared_tasks_with_hub_sources(tmp_path: Path):
    cola_rows = [{"sentence": "Our friends won't buy this analysis.", "label": 1, "idx": 0}]
    served = {("nyu-mll/glue", "cola", "validation"): cola_rows,
              ("nyu-mll/glue", "cola", "train"): cola_rows + [{"sentence": "They drank the pub.", "label": 0,
                                                               "idx": 1}]}
    registry = Registry.default()
    cola = registry.add_task(Task("cola", "acceptability", ("nyu-mll/glue", "cola"), ("sentence",), {
        "smallbench": Prompt("Sentence: {sentence}\nAcceptable:", ("no", "yes"))}, label="CoLA"))
    registry.add_corpus(Corpus("notes", "Lab notes", read=text_files("notes/{split}.txt")))
    dest = tmp_path / "data"
    written = fetch_data(dest, hub=FakeHub(served), tasks=["cola"], corpora=[], registry=registry)
    assert [p.relative_to(dest).as_posix() for p in written] == [
        "smallbench/cola/validation.jsonl", "smallbench/cola/train.jsonl", MANIFEST]
    assert load_task_rows(cola, "train", dest)[0] == served[("nyu-mll/glue", "cola", "train")]

    with pytest.raises(DataError, match=r"unknown task 'qnli' \(declared: sst2, rte, boolq, mrpc, cola\)"):
        fetch_data(tmp_path / "other", hub=FakeHub(), tasks=["qnli"], registry=registry)
    with pytest.raises(DataError, match="corpus 'notes' has no hub source"):
        fetch_data(tmp_path / "other", hub=FakeHub(), corpora=["notes"], registry=registry)
    with pytest.raises(DataError, match="nothing to fetch"):
        fetch_data(tmp_path / "other", hub=FakeHub(), tasks=[], corpora=[])
    # by default, the corpus without a hub source is left out and everything else fetched
    everything = {**SERVED, **served}
    written = fetch_data(tmp_path / "all", hub=FakeHub(everything), registry=registry)
    assert len(written) == len(LAYOUT) + 2 + 1
    assert not (tmp_path / "all" / "notes").exists()


def test_a_refetch_cut_short_while_landing_leaves_no_manifest(fetched: Path, monkeypatch: pytest.MonkeyPatch):
    real_land = fetch_module.land
    landed: list[Path] = []

    def land_two(staged: Path, target: Path) -> Path:
        if len(landed) == 2:
            raise KeyboardInterrupt
        landed.append(target)
        return real_land(staged, target)

    monkeypatch.setattr(fetch_module, "land", land_two)
    with pytest.raises(KeyboardInterrupt):
        fetch_data(fetched, hub=FakeHub(), overwrite=True)
    assert files_under(fetched) == LAYOUT  # every file whole (old or new), and no manifest claiming a finished fetch
    assert not [p for p in fetched.iterdir() if p.name.startswith(".fetch-")]
