"""The declarations a run's options make (``suite.declarations``): --corpus and --task-file added to a copy of
the registry; a clash or a bad name is a usage error naming the option."""

from pathlib import Path

import pytest

from lmeval_fixtures import Registry
from lmeval_fixtures.core.errors import UsageError
from lmeval_fixtures.suite.corpus_option import parse_corpus
from lmeval_fixtures.suite.declarations import declare

from ..helpers import jsonl, write


def test_the_option_declares_a_corpus_with_its_own_figures(tmp_path):
    (tmp_path / "validation.txt").write_text("a\n")
    registry = declare(Registry.default(), [parse_corpus(f"own={tmp_path}", Path.cwd())], [])
    keys = {f.key for f in registry.figure_table()}
    assert {"own_val_bits_per_byte", "own_val_perplexity", "val_bits_per_byte"} <= keys
    assert "own" not in Registry.default().corpora  # a copy: the registry given is not declared into
    with pytest.raises(UsageError, match=r"^--corpus wikitext=\S+: corpus 'wikitext' is already declared$"):
        declare(Registry.default(), [parse_corpus(f"wikitext={tmp_path}", Path.cwd())], [])
    with pytest.raises(UsageError, match="corpus 'own' is already declared"):
        declare(Registry.default(), [parse_corpus(f"own={tmp_path}", Path.cwd())] * 2, [])


def test_a_task_file_clashing_or_badly_named_is_a_usage_error(tmp_path):
    jsonl(tmp_path / "v.jsonl", [{"q": "x", "label": 0}])
    for name, message in (("sst2", "task 'sst2' is already declared"), ("../x", "task '../x': use one plain name"),
                          ("avg", "task 'avg': its figure key smallbench_avg_acc is already another figure's")):
        path = write(tmp_path / f"{name.strip('./')}.yaml", f"name: '{name}'\ndata: v.jsonl\ntemplate: '{{q}}'\n"
                                                             "choices: [a, b]\n")
        with pytest.raises(UsageError, match=rf"^--task-file {path}: {message}"):
            declare(Registry.default(), [], [path])
