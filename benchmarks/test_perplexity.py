"""WikiText-2 raw perplexity per checkpoint and split (DESIGN.md, "Metrics")."""

import math
import time

import pytest

from lmeval_fixtures.gates import perplexity_gates
from lmeval_fixtures.perplexity import evaluate_perplexity

RECORD_PREFIX = {"validation": "val", "test": "test"}


@pytest.mark.perplexity
@pytest.mark.parametrize("split", ["validation", "test"])
def test_perplexity(checkpoint, wikitext, split, record_metric, lmeval, gates):
    corpus = wikitext(split)
    settings = lmeval.settings
    start = time.perf_counter()
    result = evaluate_perplexity(
        checkpoint.model, checkpoint.tokenizer, corpus.documents, checkpoint.max_seq_len,
        stride=settings.ppl_stride, batch_tokens=settings.batch_tokens, max_eval_tokens=settings.max_eval_tokens,
    )
    seconds = time.perf_counter() - start
    prefix = RECORD_PREFIX[split]
    figures = result.summary() | {
        "detokenized": corpus.detokenized, "max_eval_tokens": settings.max_eval_tokens,
        "seconds": round(seconds, 3), "tokens_per_second": result.tokens / seconds,
    }
    samples = {"_samples": {f"perplexity-{split}": result.samples()}} if settings.log_samples else {}
    record_metric(checkpoint, samples | {
        f"{prefix}_loss": result.loss,
        f"{prefix}_perplexity": result.token_perplexity,
        f"{prefix}_bits_per_byte": result.bits_per_byte,
        f"{prefix}_word_perplexity": result.word_perplexity,
        "perplexity": {split: figures},
        "data_fingerprints": corpus.source.fingerprints,
    })
    assert result.tokens > 0, f"no tokens scored in WikiText-2 {split}"
    assert math.isfinite(result.loss), f"{checkpoint.name}: {split} loss is {result.loss} (weights or numerics broken)"
    assert math.isfinite(result.token_perplexity), (
        f"{checkpoint.name}: {split} perplexity overflows (loss {result.loss:.1f} nats/token); loss and bits per "
        "byte are recorded")
    gates.enforce(checkpoint, perplexity_gates(split, prefix, figures, corpus.source.fingerprints,
                                               gates.baseline(checkpoint.name), settings.ppl_tolerance))
