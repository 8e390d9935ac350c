"""Evaluator speed against the raw forward pass, quiet and with a competing process, on three vocabularies.

    python scripts/speed_models.py --data-dir ../shared/data [--out /tmp/speed-models]

Models: the reference checkpoint ref-e25 (native, vocabulary 4096) and two Hugging
Face Llama folders made here (random weights: speed does not depend on training)
with BPE tokenizers trained on the reference training corpus, vocabulary 8192
(7.4M parameters, context 1024, as the held-out model of issue 15) and 32000. For
each model and condition, runs ``scripts/perplexity_check.py`` (WikiText-2
validation) and ``scripts/smallbench_check.py`` (every task, or ``--max-samples``
rows) in a subprocess and prints their ratios of scored tokens per second to raw
forward tokens per second (target: at least 0.9). "loaded" runs a second process
beside it, a one-thread matrix-multiply loop, as another job on a shared CI runner.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPETITOR = ("import torch\ntorch.set_num_threads(1)\na = torch.randn(768, 768)\n"
              "while True:\n    a = (a @ a).clamp_(-1, 1)\n")


def make_hf_model(out: Path, vocab: int, corpus: Path) -> Path:
    """A random-weight Llama folder with a BPE tokenizer of ``vocab`` entries (made once)."""
    if (out / "config.json").exists():
        return out
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = corpus.read_text(encoding="utf-8")[:8_000_000]
    tokenizer.train_from_iterator(text.split("\n\n"), trainer)
    config = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         bos_token_id=0, eos_token_id=0, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>").save_pretrained(out)
    return out


def ratios(script: str, checkpoint: str, data_dir: str, extra: list[str]) -> str:
    done = subprocess.run([sys.executable, f"scripts/{script}", "--data-dir", data_dir, "--checkpoint", checkpoint,
                           *extra], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return f"failed: {(done.stderr or done.stdout).strip().splitlines()[-1][:80]}"
    if script == "perplexity_check.py":
        found = re.search(r"evaluator ([\d,]+) scored tokens/s, raw forward ([\d,]+) tokens/s, ratio ([\d.]+)",
                          done.stdout)
        return f"{found.group(3)} ({found.group(1)} vs {found.group(2)} tok/s)" if found else "no ratio printed"
    found = re.search(r"^all\s.*\s([\d,]+)\s+([\d,]+)\s+([\d.]+)\s*$", done.stdout, re.M)
    return f"{found.group(3)} ({found.group(1)} vs {found.group(2)} tok/s)" if found else "no ratio printed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/speed-models"))
    parser.add_argument("--max-samples", type=int, default=300, help="SmallBench rows per task (default: 300)")
    parser.add_argument("--conditions", default="quiet,loaded")
    parser.add_argument("--models", default="ref,8k,32k", help="which of ref, 8k, 32k (default: all)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed repetitions of each check, medians (default: 3)")
    args = parser.parse_args()
    corpus = Path(args.data_dir) / "enwiki-2015-extract" / "train.txt"
    chosen = set(args.models.split(","))
    models = {}
    if "ref" in chosen:
        models["ref-e25 (4k)"] = str(ROOT / "lmeval_fixtures" / "reference" / "ref-e25")
    if "8k" in chosen:
        models["hf-llama-8k"] = str(make_hf_model(args.out / "llama-8k", 8192, corpus))
    if "32k" in chosen:
        models["hf-llama-32k"] = str(make_hf_model(args.out / "llama-32k", 32000, corpus))
    print(f"{'model':<14}{'condition':<10}{'perplexity ratio':<40}smallbench ratio")
    for condition in args.conditions.split(","):
        competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if condition == "loaded" else None
        try:
            for label, path in models.items():
                ppl = ratios("perplexity_check.py", path, args.data_dir,
                             ["--skip-agreement", "--repeats", str(args.repeats)])
                small = ratios("smallbench_check.py", path, args.data_dir, ["--max-samples", str(args.max_samples),
                                                                             "--speed-only", "--repeats",
                                                                             str(args.repeats)])
                print(f"{label:<14}{condition:<10}{ppl:<40}{small}", flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
    print("target: every ratio >= 0.9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
