"""--corpus NAME=SOURCE (``suite.corpus_option``): the grammar, every source format (its own small files),
the hub form (mocked) and the one-line errors. (The option declared into a registry: test_declarations.py;
in the settings: evaluation/test_settings.py; through a run: e2e/test_extending.py.)"""

import hashlib
import json
import shutil
from pathlib import Path

import datasets
import pytest

from lmeval_fixtures.core.errors import DataError, DataUnavailable, UsageError
from lmeval_fixtures.suite.corpus_option import HubSource, LocalSource, parse_corpus
from lmeval_fixtures.suite.sources import Hub

from ..helpers import DOCS


def read(spec, split=None, hub=None):
    corpus = spec.corpus()
    return corpus.read(split or corpus.splits[0], None, hub or Hub())


def table(rows=DOCS, **extra):
    return datasets.Dataset.from_dict({"body": list(rows), "n": list(range(len(rows)))} | extra)


def test_a_text_file_is_one_split_named_by_its_file(tmp_path):
    (tmp_path / "held.txt").write_text("\n\n".join(DOCS) + "\n")
    (tmp_path / "train.txt").write_text("x\n")
    spec = parse_corpus("mine=held.txt", tmp_path)
    assert spec.corpus().splits == ("test",) and spec.corpus().label == "mine"
    assert dict(spec.sources)["test"] == LocalSource(tmp_path / "held.txt", "text", None)
    assert parse_corpus("tr=train.txt", tmp_path).corpus().splits == ("train",)
    assert parse_corpus(f"abs={tmp_path / 'held.txt'}:lines", Path("/")).sources[0][1].option == "lines"


def test_a_folder_with_split_entries_has_those_splits_in_record_order(tmp_path):
    folder = tmp_path / "c"
    (folder / "validation").mkdir(parents=True)  # a folder of .txt documents is a split too
    (folder / "validation" / "a.txt").write_text("doc a")
    (folder / "test.jsonl").write_text(json.dumps({"body": "doc"}) + "\n")
    (folder / "train.csv").write_text("x\n")
    (folder / "notes.md").write_text("not a split")
    spec = parse_corpus("c=c", tmp_path)
    assert spec.corpus().splits == ("validation", "test", "train")
    kinds = {split: (source.kind, source.path.name) for split, source in spec.sources}
    assert kinds == {"validation": ("folder", "validation"), "test": ("jsonl", "test.jsonl"),
                     "train": ("table", "train.csv")}


def test_a_folder_of_text_files_is_one_document_per_file(tmp_path):
    (tmp_path / "docs").mkdir()
    for name, text in zip(("b.txt", "a.txt", "c.TXT"), DOCS, strict=True):
        (tmp_path / "docs" / name).write_text(text)
    (tmp_path / "docs" / "skip.md").write_text("not a .txt file")
    spec = parse_corpus("d=docs", tmp_path)
    documents, source = read(spec)
    assert spec.corpus().splits == ("test",)
    # by file name: a, b, c; each file's last line read as ended (sources.normalise_text), as a saved file's is
    assert documents == [DOCS[1] + "\n", DOCS[0] + "\n", DOCS[2] + "\n"]
    manifest = "".join(f"{hashlib.sha256(t.encode()).hexdigest()}  {n}\n"
                       for n, t in (("a.txt", DOCS[1]), ("b.txt", DOCS[0]), ("c.TXT", DOCS[2])))
    assert source.fingerprints == {"d/test/docs/": hashlib.sha256(manifest.encode()).hexdigest()}


@pytest.mark.parametrize(("text", "expected"), [
    ("h=hf:owner/set:test", HubSource("owner/set", None, "test", "text")),
    ("h=hf:owner/set:cfg:validation", HubSource("owner/set", "cfg", "validation", "text")),
    ("h=hf:owner/set:cfg:test:body", HubSource("owner/set", "cfg", "test", "body")),
    ("h=hf:owner/set::test:body", HubSource("owner/set", None, "test", "body")),
])
def test_the_hub_form(text, expected):
    spec = parse_corpus(text, Path.cwd())
    assert spec.sources == ((expected.split, expected),)


def test_a_path_holding_a_colon_is_taken_whole(tmp_path):
    (tmp_path / "a:b.txt").write_text("one\n\ntwo\n")
    assert read(parse_corpus("c=a:b.txt", tmp_path))[0] == ["one", "two\n"]
    assert read(parse_corpus("c=a:b.txt:lines", tmp_path))[0] == ["one", "two"]


@pytest.mark.parametrize(("text", "message"), [
    ("noequals", "expected NAME=PATH"),
    ("=x.txt", "expected NAME=PATH"),
    ("../x=x.txt", "corpus '../x': use one plain name"),
    ("c=missing.txt", "missing.txt does not exist"),
    ("c=missing.jsonl:body", "missing.jsonl does not exist"),
    ("c=x.txt:paragraphs", "':paragraphs' after a text file names how documents are cut: blank, lines, whole"),
    ("c=x.jsonl:", "an empty FIELD"),
    ("c=empty", "holds neither split entries"),
    ("c=twice", "test.jsonl and test.txt both hold split test; keep one"),
    ("c=docs:lines", "a folder of .txt files is one document per file; drop ':lines'"),
    ("c=hf:owner/set", "expected hf:OWNER/DATASET[:CONFIG]:SPLIT[:FIELD]"),
    ("c=hf:owner/set:a:b:c:d", "expected hf:OWNER/DATASET"),
    ("c=hf:owner/set:test[:100]", "split slices such as test[:100] are not taken"),
    ("c=hf:owner/set:cfg:../x", "split '../x': use one plain name"),
])
def test_what_cannot_work_is_a_usage_error_at_start_up(tmp_path, text, message):
    (tmp_path / "x.txt").write_text("a\n")
    (tmp_path / "x.jsonl").write_text("{}\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "twice").mkdir()
    (tmp_path / "twice" / "test.txt").write_text("a")
    (tmp_path / "twice" / "test.jsonl").write_text("{}")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("a")
    with pytest.raises(UsageError) as caught:
        parse_corpus(text, tmp_path)
    assert message in str(caught.value) and str(caught.value).startswith(f"--corpus {text!r}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("rule", "expected"), [
    (None, DOCS),
    ("blank", DOCS),
    ("lines", [line for doc in DOCS for line in doc.split("\n")]),
    ("whole", ["\n\n".join(DOCS) + "\n"]),
])
def test_a_text_file_is_cut_by_its_rule_and_fingerprinted(tmp_path, rule, expected):
    path = tmp_path / "t.txt"
    path.write_bytes(("\n\n".join(DOCS) + "\n").replace("\n", "\r\n").encode())
    documents, source = read(parse_corpus(f"t=t.txt{':' + rule if rule else ''}", tmp_path))
    assert [d.rstrip("\n") for d in documents] == [d.rstrip("\n") for d in expected]
    assert source.fingerprints == {"t/test/t.txt": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert source.notes and "CRLF" in source.notes[0]  # read as LF, and the record says so


def test_json_lines_with_a_field(tmp_path):
    rows = [{"body": d, "id": i} for i, d in enumerate(DOCS)] + [{"body": "  ", "id": 9}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    documents, source = read(parse_corpus("r=r.jsonl:body", tmp_path))
    assert documents == DOCS
    assert source.notes == ["r.jsonl: 1 blank document(s) left out"]
    assert list(source.fingerprints) == ["r/test/r.jsonl"]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    assert read(parse_corpus("t=t.jsonl", tmp_path))[0] == DOCS  # the default field is text


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".arrow", ".json"])
def test_tables_are_read_through_datasets(tmp_path, suffix):
    path = tmp_path / f"rows{suffix}"
    if suffix == ".csv":
        table().to_csv(str(path), index=False)
    elif suffix == ".parquet":
        table().to_parquet(str(path))
    elif suffix == ".json":
        table().to_json(str(path))
    else:
        table().save_to_disk(str(tmp_path / "saved"))
        shutil.copy(next((tmp_path / "saved").glob("*.arrow")), path)
    documents, source = read(parse_corpus(f"tab=rows{suffix}:body", tmp_path))
    assert documents == DOCS
    assert source.fingerprints == {f"tab/test/rows{suffix}": hashlib.sha256(path.read_bytes()).hexdigest()}
    with pytest.raises(DataError, match=r"rows\S*: no field 'text' \(fields: body, n\); name the text field"):
        read(parse_corpus(f"tab=rows{suffix}", tmp_path))


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: p.write_text("\n \n\n"), "corpus 'bad': .*e.txt holds no documents \\(documents are cut by the "
                                        "blank rule\\)"),
    (lambda p: p.write_bytes(b"caf\xe9 au lait\n"), "e.txt: not UTF-8 \\(byte 3, line 1\\)"),
])
def test_an_empty_or_unreadable_text_file_is_one_line_naming_it(tmp_path, write, message):
    write(tmp_path / "e.txt")
    with pytest.raises(DataError, match=message):
        read(parse_corpus("bad=e.txt", tmp_path))


@pytest.mark.parametrize(("lines", "message"), [
    ([{"body": "x"}, {"other": "y"}], r"r.jsonl:2: no field 'body' \(fields: other\)"),
    ([{"body": 3}], r"r.jsonl:1: field 'body' holds int, not text"),
    (["just text"], r"r.jsonl:1: no field 'body' \(fields: a JSON str\)"),
    ([{"body": ""}], r"corpus 'r': .*r.jsonl holds no documents"),
])
def test_bad_json_lines_rows_name_the_file_and_line(tmp_path, lines, message):
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(DataError, match=message):
        read(parse_corpus("r=r.jsonl:body", tmp_path))
    (tmp_path / "r.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"r.jsonl:1: invalid JSON"):
        read(parse_corpus("r=r.jsonl:body", tmp_path))


def test_a_table_that_is_not_one_is_one_line(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet at all")
    with pytest.raises(DataError, match=r"x.parquet: not readable as parquet \(\w+"):
        read(parse_corpus("x=x.parquet", tmp_path))


@pytest.fixture
def hub_calls(monkeypatch):
    calls = []
    served = table(text=["", "b", "c"])

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        if path == "owner/missing":
            raise FileNotFoundError("no such dataset")
        return served

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_a_hub_split_is_read_through_the_runs_hub(hub_calls):
    documents, source = read(parse_corpus("h=hf:owner/set:cfg:validation:body", Path.cwd()))
    assert documents == DOCS and hub_calls == [("owner/set", "cfg", "validation")]
    key = "hub:owner/set/cfg/validation"
    assert source.description == key and source.fingerprints == {key: table(text=["", "b", "c"])._fingerprint}
    documents, source = read(parse_corpus("h=hf:owner/set:test", Path.cwd()))
    assert documents == ["b", "c"] and source.notes == ["hub:owner/set/default/test: 1 blank document(s) left out"]
    assert hub_calls[-1] == ("owner/set", None, "test")


def test_a_hub_without_the_field_or_without_the_dataset(hub_calls):
    with pytest.raises(DataError, match=r"corpus 'h': hub:owner/set/default/test has no field 'words' \(fields: "
                                        r"body, n, text\)"):
        read(parse_corpus("h=hf:owner/set::test:words", Path.cwd()))
    hub = Hub()
    with pytest.raises(DataUnavailable, match=r"corpus 'h': hub:owner/missing/default/test unavailable: the hub "
                                              r"failed \(FileNotFoundError\)"):
        read(parse_corpus("h=hf:owner/missing:test", Path.cwd()), hub=hub)
