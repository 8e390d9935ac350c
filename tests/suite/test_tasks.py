"""Task declarations (``suite.tasks``): the lm-eval prompt set is lm-evaluation-harness's text."""

from lmeval_fixtures.suite.tasks import TASKS


def test_lm_eval_prompts_are_lm_evaluation_harness_text():
    row = {"sentence1": "A man.", "sentence2": "A person", "passage": "P", "question": "q", "sentence": "s"}
    assert TASKS["rte"].prompts["lm-eval"].context(row) == "A man.\nQuestion: A person True or False?\nAnswer:"
    assert TASKS["boolq"].prompts["lm-eval"].context(row) == "P\nQuestion: q?\nAnswer:"
    assert TASKS["sst2"].prompts["lm-eval"].continuations() == [" negative", " positive"]
    assert TASKS["rte"].prompts["lm-eval"].choices == ("True", "False")
