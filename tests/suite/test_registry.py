"""The registry (``suite.registry``): clashing declarations refused, prompt sets checked, shots one setting per run."""


import pytest

from lmeval_fixtures import Corpus, Prompt, Registry, Task
from lmeval_fixtures.core.errors import RegistryError
from lmeval_fixtures.suite.declarations import declare

from ..helpers import lmeval_task


def test_clashing_declarations_are_refused():
    registry = Registry.default()
    with pytest.raises(RegistryError, match="task 'sst2' is already declared"):
        registry.add_task(Task("sst2", "x", ("", ""), ("sentence",), {"smallbench": Prompt("{sentence}", ("a",))}))
    with pytest.raises(RegistryError, match="task 'sst2b': its figure key smallbench_sentiment_acc is already"):
        registry.add_task(Task("sst2b", "sentiment", ("", ""), ("s",), {"smallbench": Prompt("{s}", ("a",))}))
    with pytest.raises(RegistryError, match="corpus 'wikitext' is already declared"):
        registry.add_corpus(Corpus("wikitext", "again", read=lambda *a: ([], None)))
    with pytest.raises(RegistryError, match="declare how to read it"):
        registry.add_corpus(Corpus("nothing", "no reader"))
    registry.add_task(Task("only-house", "only-house", ("", ""), ("s",), {"smallbench": Prompt("{s}", ("a",))}))
    with pytest.raises(RegistryError, match="--prompts lm-eval: task\\(s\\) only-house declare no such prompt set"):
        registry.check_prompts("lm-eval")


def test_shots_are_one_setting_per_run(tmp_path):
    registry = declare(Registry.default(), [], [lmeval_task(tmp_path, "num_fewshot: 2")])
    registry.check_fewshot(2)
    with pytest.raises(RegistryError, match="task 'local_reviews' declares num_fewshot 2, but this run has "
                                            "--fewshot 0; shots are one setting per run: pass --fewshot 2"):
        registry.check_fewshot(0)
    odd = declare(Registry.default(), [], [lmeval_task(tmp_path / "odd", 'fewshot_delimiter: "\\n###\\n"')])
    odd.check_fewshot(1)  # any delimiter is applied with shots
