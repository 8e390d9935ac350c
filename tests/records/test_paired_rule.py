"""One paired test of a figure (issue 24, item 3): comparison.md's bold and ``--gate paired`` run the
same test on the same pair, per byte for bits per byte and per token for perplexity, as the table
of figures declares (``Figure.paired``), never as a figure's key happens to be spelt.

Expected differences are worked out here from the documents' values, not by the code under test.
"""

from __future__ import annotations

import math

import pytest

from lmeval_fixtures.records.codecs import encode_per_document, encode_per_row
from lmeval_fixtures.records.comparison import verdict
from lmeval_fixtures.records.gates import GatePolicy, gates_for
from lmeval_fixtures.suite.figures import CORPUS_SETTINGS, DOC_BPB, RELATIVE, Figure, by_key
from lmeval_fixtures.suite.registry import Registry

FIGURES = by_key(Registry.default().figure_table())
CPU = {"device": "cpu", "dtype": "float32"}
DATA = {"wikitext-2-raw/validation.txt": "1" * 64}
PAIRED = GatePolicy(0.01, 2.0, None, 0.25, mode="paired", alpha=0.05)
N = 12
TOKENS = [30 + i for i in range(N)]
BYTES = [100 + 7 * i for i in range(N)]  # not a multiple of the tokens: per byte and per token differ
RUNNER_NLL = [round(50 + 5 * math.sin(i), 4) for i in range(N)]
BEST_NLL = [round(nll - 0.8 - 0.3 * math.cos(i), 4) for i, nll in enumerate(RUNNER_NLL)]  # lower on every document


def split(nll: list[float]) -> dict:
    """A validation split entry as a run records it, with its per-document values."""
    docs = [(v, t, b, 1) for v, t, b in zip(nll, TOKENS, BYTES, strict=True)]
    return {"bits_per_byte": sum(nll) / (math.log(2) * sum(BYTES)),
            "token_perplexity": math.exp(sum(nll) / sum(TOKENS)), "documents": N, "stride": 64,
            "context_length": 64, "max_eval_tokens": None, "detokenized": True,
            "per_document": encode_per_document(docs)}


def task(correct: list[bool]) -> dict:
    n = len(correct)
    rows = {"idx": list(range(n)), "label": [i % 2 for i in range(n)], "correct": correct,
            "margin": [0.5 if c else -0.5 for c in correct], "gold_loglikelihood": [-1.0] * n, "gold_bytes": [4] * n}
    return {"acc": sum(correct) / n, "acc_stderr": 0.05, "n": n, "prompt_set": "smallbench", "fewshot": 0,
            "max_samples": None, "per_row": encode_per_row(rows)}


def record(name: str, nll: list[float], right: int) -> dict:
    return {"run_id": "r", "checkpoint": {"name": name, "tokenizer_sha256": "t"}, "data_fingerprints": DATA,
            "environment": CPU, "perplexity": {"validation": split(nll)},
            "smallbench": {"sst2": task([i < right for i in range(60)])}}


BEST, RUNNER = record("best", BEST_NLL, 50), record("runner", RUNNER_NLL, 30)


def both(figure: Figure) -> tuple[object, str]:
    """The comparison's verdict on best against runner-up, and the paired gate's message for the
    best as this run against the runner-up as its baseline: each the best minus the runner-up."""
    found = verdict(figure, [BEST, RUNNER], {id(BEST): "best", id(RUNNER): "runner"})
    fragment = {key: BEST[key] for key in ("perplexity", "smallbench", "data_fingerprints")}
    [gate] = gates_for(fragment, [figure], RUNNER | {"_source": "b.json"}, PAIRED, CPU)
    assert gate.ok  # the best is not worse than the runner-up
    return found.result, gate.message


def test_bits_per_byte_is_tested_per_byte_by_both_whatever_the_key():
    # a declared figure whose key does not end in "bits_per_byte": the gate used to read the unit
    # off the key (and tested it per token), the comparison off the table (per byte)
    figure = Figure("val_bpb", "val bpb", ("perplexity", "validation", "bits_per_byte"), better="lower",
                    gate=RELATIVE, same=CORPUS_SETTINGS, paired=DOC_BPB)
    expected = (sum(BEST_NLL) - sum(RUNNER_NLL)) / (math.log(2) * sum(BYTES))
    per_token = (sum(BEST_NLL) - sum(RUNNER_NLL)) / (math.log(2) * sum(TOKENS))
    assert f"{expected:+.4f}" != f"{per_token:+.4f}"  # the pair tells the two apart
    result, message = both(figure)
    assert result.difference == pytest.approx(expected, rel=1e-9)
    assert f"bits/byte difference {expected:+.4f}, 95% interval [{result.low:+.4f}, {result.high:+.4f}]" in message
    assert "paired bootstrap over documents" in message


def test_perplexity_is_tested_per_token_as_log_perplexity_by_both():
    expected = (sum(BEST_NLL) - sum(RUNNER_NLL)) / sum(TOKENS)  # nats per token: the log-perplexity difference
    result, message = both(FIGURES["val_perplexity"])
    assert result.difference == pytest.approx(expected, rel=1e-9)
    assert f"log perplexity difference {expected:+.4f}, 95% interval [{result.low:+.4f}, {result.high:+.4f}]" \
        in message


def test_accuracy_is_mcnemar_on_the_same_rows_for_both():
    result, message = both(FIGURES["smallbench_sentiment_acc"])
    p = 2 * 0.5 ** 20  # 20 rows only the best got right, none only the runner-up: exact two-sided McNemar
    assert result.p_value == pytest.approx(p) and result.difference == pytest.approx(20 / 60)
    assert f"accuracy difference {20 / 60:+.4f}" in message and f"McNemar p = {p:.3g}" in message
