"""Train the embedded reference checkpoints: a tiny parameter-allocation sweep.

Three native models share one byte-level BPE tokenizer and one parameter budget,
and differ only in how the budget is split between the embedding and the body
(embedding ratio 0.25 / 0.35 / 0.50), which is the comparison our users run.

    python scripts/train_reference.py --corpus ../shared/data/enwiki-2015-extract/train.txt

Each retraining adds its weights to git history for good: train, check, commit once.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lmeval_fixtures.models.model import ModelConfig, Transformer
from lmeval_fixtures.models.native import save_checkpoint

SPECIAL = "<|endoftext|>"
SWEEP = {"ref-e25": 0.25, "ref-e35": 0.35, "ref-e50": 0.50}


def train_tokenizer(text_path: Path, vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(text_path)], trainer)
    return tokenizer


def encode_corpus(tokenizer: Tokenizer, text: str) -> torch.Tensor:
    """Articles are separated by blank lines after a title; treat each line block as text, EOS between articles."""
    eos = tokenizer.token_to_id(SPECIAL)
    ids: list[int] = []
    lines = text.split("\n")
    encodings = tokenizer.encode_batch([line + "\n" for line in lines])
    for line, enc in zip(lines, encodings, strict=True):
        ids.extend(enc.ids)
        if not line:
            ids.append(eos)
    return torch.tensor(ids, dtype=torch.int64)


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_one(config: ModelConfig, tokens: torch.Tensor, held_out: torch.Tensor, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    model = Transformer(config)
    model.init_weights(args.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95),
    )
    generator = torch.Generator().manual_seed(args.seed)
    seq = args.seq_len
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        offsets = torch.randint(0, len(tokens) - seq - 1, (args.batch_size,), generator=generator)
        batch = torch.stack([tokens[o : o + seq + 1] for o in offsets.tolist()])
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == args.steps - 1:
            print(f"  step {step:5d}  loss {loss.item():.4f}  {time.perf_counter() - start:7.1f}s", flush=True)
    model.eval()
    with torch.inference_mode():
        usable = (len(held_out) - 1) // seq * seq
        inputs = held_out[:usable].view(-1, seq)
        targets = held_out[1 : usable + 1].view(-1, seq)
        total = 0.0
        for i in range(0, len(inputs), 16):
            logits = model(inputs[i : i + 16])
            total += F.cross_entropy(logits.reshape(-1, config.vocab_size).float(), targets[i : i + 16].reshape(-1),
                                     reduction="sum").item()
        held_out_loss = total / usable
    tail = losses[-50:]
    return {
        "model": model,
        "train_loss": sum(tail) / len(tail),
        "held_out_loss": held_out_loss,
        "steps": args.steps,
        "tokens_seen": args.steps * args.batch_size * seq,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/data/enwiki-2015-extract/train.txt"))
    parser.add_argument("--out", type=Path, default=Path("lmeval_fixtures/reference"))
    parser.add_argument("--budget", type=int, default=1_600_000)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--glu-expansion", type=float, default=8 / 3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--only", choices=sorted(SWEEP), action="append", help="train only these (repeatable)")
    args = parser.parse_args()

    raw = args.corpus.read_bytes()
    corpus_sha = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8")
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer_path = args.out / "tokenizer.json"
    if tokenizer_path.exists():
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    else:
        tokenizer = train_tokenizer(args.corpus, args.vocab_size)
    tokens = encode_corpus(tokenizer, text)
    split = int(len(tokens) * 0.98)
    train_tokens, held_out = tokens[:split], tokens[split:]
    print(f"corpus {args.corpus} sha256 {corpus_sha[:16]}: {len(tokens):,} tokens "
          f"({len(train_tokens):,} train, {len(held_out):,} held out)")
    eos = tokenizer.token_to_id(SPECIAL)
    for name, ratio in SWEEP.items():
        if args.only and name not in args.only:
            continue
        config = ModelConfig.from_budget(args.budget, ratio, args.glu_expansion, args.vocab_size,
                                         max_seq_len=args.seq_len, bos_token_id=eos, eos_token_id=eos)
        print(f"{name}: d_model {config.d_model}, d_ff {config.d_ff}, layers {config.n_layers}, "
              f"params {config.total_params:,}, embedding ratio {config.embedding_ratio:.3f}", flush=True)
        result = train_one(config, train_tokens, held_out, args)
        metadata = {
            "train_loss": f"{result['train_loss']:.6f}",
            "held_out_loss": f"{result['held_out_loss']:.6f}",
            "step": str(result["steps"]),
            "tokens_seen": str(result["tokens_seen"]),
            "seed": str(args.seed),
            "corpus_sha256": corpus_sha,
            "train_seconds": f"{result['seconds']:.1f}",
        }
        # float16 halves what every retraining adds to git history; the loader casts back
        save_checkpoint(result["model"], args.out / name, tokenizer, metadata=metadata, dtype=torch.float16)
        print(f"{name}: train loss {result['train_loss']:.4f}, held-out loss {result['held_out_loss']:.4f} "
              f"(ppl {math.exp(result['held_out_loss']):.1f}), {result['seconds']:.0f}s", flush=True)
    tokenizer.save(str(tokenizer_path))


if __name__ == "__main__":
    main()
