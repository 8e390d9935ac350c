"""Perplexity on real data: agreement with a simple reference, and speed against the raw forward pass.

    python scripts/perplexity_check.py --data-dir ../shared/data [--checkpoint PATH] [--split validation]

1. Agreement: the batched evaluator against a deliberately simple computation
   (one document at a time, one window at a time, float64 log-softmax over full
   logits, float64 sums) on the whole split. Prints the relative difference.
2. Speed: scored tokens per second of the evaluator against the model's raw
   forward throughput (full logits, no scoring) at the same batch shape, measured
   alternately in the same process. Prints both and the ratio (target >= 0.85).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from lmeval_fixtures.engine.perplexity import plan_windows, score_documents
from lmeval_fixtures.evaluation.settings import REFERENCE_DIR
from lmeval_fixtures.models.discovery import discover_checkpoints
from lmeval_fixtures.models.loading import load_checkpoint
from lmeval_fixtures.suite.wikitext import load_wikitext_articles, wikitext_documents


@torch.inference_mode()
def simple_nll(model, tokenizer, documents, max_len: int) -> tuple[float, int]:
    total, count = 0.0, 0
    for doc in documents:
        ids = tokenizer.encode(doc.text)
        stream = [tokenizer.bos_token_id] + ids
        for w in plan_windows(len(ids), max_len):
            inputs = torch.tensor([stream[w.start : w.start + w.length]])
            logprobs = torch.log_softmax(model(inputs)[0].double(), dim=-1)
            for pos in range(w.length - w.n_scored, w.length):
                total -= logprobs[pos, stream[w.start + pos + 1]].item()
                count += 1
    return total, count


@torch.inference_mode()
def raw_forward_seconds(model, rows: int, length: int, batches: int, vocab: int) -> float:
    ids = torch.randint(0, vocab, (rows, length), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in range(batches):
        model(ids)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--checkpoint", default=None, help="default: the first reference checkpoint")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-agreement", action="store_true")
    args = parser.parse_args()

    spec = discover_checkpoints([args.checkpoint or REFERENCE_DIR])[0]
    ckpt = load_checkpoint(spec)
    articles, source = load_wikitext_articles(args.split, args.data_dir)
    docs = wikitext_documents(articles)
    max_len = ckpt.max_seq_len
    print(f"checkpoint {ckpt.name} ({ckpt.allocation.total_params:,} params), {source.description}, "
          f"{len(docs)} documents, context {max_len}, torch threads {torch.get_num_threads()}")

    result = score_documents(ckpt.model, ckpt.tokenizer, docs, max_len, batch_tokens=args.batch_tokens)
    print(f"evaluator: tokens {result.tokens:,}, token ppl {result.token_perplexity:.6f}, "
          f"bits/byte {result.bits_per_byte:.6f}, word ppl {result.word_perplexity:.4f}")
    if not args.skip_agreement:
        nll, count = simple_nll(ckpt.model, ckpt.tokenizer, docs, max_len)
        print(f"simple reference: tokens {count:,}, NLL {nll:.6f}; evaluator NLL {result.nll:.6f}; "
              f"relative difference {abs(result.nll - nll) / abs(nll):.2e} (bound 1e-6)")

    rows = max(1, args.batch_tokens // max_len)
    batches = -(-result.windows // rows)
    eval_times, raw_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        score_documents(ckpt.model, ckpt.tokenizer, docs, max_len, batch_tokens=args.batch_tokens)
        eval_times.append(time.perf_counter() - start)
        raw_times.append(raw_forward_seconds(ckpt.model, rows, max_len, batches, ckpt.allocation.vocab_size))
    eval_rate = result.tokens / statistics.median(eval_times)
    raw_rate = rows * max_len * batches / statistics.median(raw_times)
    print(f"speed (median of {args.repeats}, batch {rows}x{max_len}, {batches} batches, tokenization included): "
          f"evaluator {eval_rate:,.0f} scored tokens/s, raw forward {raw_rate:,.0f} tokens/s, "
          f"ratio {eval_rate / raw_rate:.3f} (target >= 0.85)")


if __name__ == "__main__":
    main()
