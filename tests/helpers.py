"""Helpers the tests share across folders: tiny checkpoints and data made here, the benchmarks a
pytester run lays out, records built without a run, reference computations and hostile inputs.

Plain functions and constants only; the fixtures built on them live in ``conftest.py`` (and
``e2e/conftest.py`` for the pytester suites).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from lmeval_fixtures.core.schema import validate_record
from lmeval_fixtures.engine.perplexity import Document, score_documents
from lmeval_fixtures.engine.scoring import ScoringStats
from lmeval_fixtures.evaluation.run import Run
from lmeval_fixtures.models.loading import load_checkpoint
from lmeval_fixtures.models.model import ModelConfig, Transformer
from lmeval_fixtures.models.native import save_checkpoint
from lmeval_fixtures.models.tokenizer import TextTokenizer
from lmeval_fixtures.records.alike import METRIC_VERSION
from lmeval_fixtures.records.store import write_checkpoint_report
from lmeval_fixtures.suite.registry import Registry
from lmeval_fixtures.suite.smallbench import RowResult, TaskResult
from lmeval_fixtures.suite.sources import Hub
from lmeval_fixtures.suite.task_rows import load_task_rows

# ---- tiny checkpoints and data made by the tests themselves ------------------------------------------


SAMPLE_TEXT = (
    "The quick brown fox jumps over the lazy dog. A lobster is a crustacean of the sea.\n"
    "Robert Boulter is an English film, television and theatre actor. He had a guest role in 2000.\n"
    "Numbers like 1,000 and 3.14 and words like well-known appear in Wikipedia articles.\n"
)


def make_tokenizer(vocab_size: int = 320) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([SAMPLE_TEXT] * 20, trainer)
    return tokenizer


def tiny_config(vocab_size: int, **overrides) -> ModelConfig:
    base = dict(vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=2, glu_expansion=2.0, max_seq_len=64)
    base.update(overrides)
    return ModelConfig(**base)


def tiny_lm(max_seq_len: int, seed: int) -> tuple[Transformer, TextTokenizer]:
    """A tiny random native model in eval mode (weights from ``seed``) and the test tokenizer,
    ready for the scorers."""
    tok = make_tokenizer()
    model = Transformer(tiny_config(tok.get_vocab_size(), max_seq_len=max_seq_len)).eval()
    model.init_weights(seed)
    return model, TextTokenizer.from_json(tok.to_str(), "test")


def write_native_checkpoint(folder: Path, name: str = "model", seed: int = 0, fmt: str = "safetensors",
                            tokenizer: Tokenizer | None = None, **config_overrides) -> Path:
    """A random native checkpoint in ``folder``; returns the weights path. The training facts
    differ by format (5.5 / 10 and 5.25 / 7) so that a test sees which file they were read from."""
    tokenizer = tokenizer or make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size(), **config_overrides))
    model.init_weights(seed)
    facts = {"train_loss": 5.5, "step": 10} if fmt == "safetensors" else {"train_loss": 5.25, "step": 7}
    return save_checkpoint(model, folder, tokenizer, name=name, fmt=fmt, metadata=facts | {"seed": seed})


def write_wikitext(data_dir: Path, articles: int = 3, paragraphs: int = 4) -> Path:
    """A raw WikiText-like file pair under ``data_dir/wikitext-2-raw``."""
    folder = data_dir / "wikitext-2-raw"
    folder.mkdir(parents=True, exist_ok=True)
    for split, offset in (("validation", 0), ("test", 7)):
        lines = [" "]
        for a in range(articles):
            lines += [f" = Article {a + offset} = ", " "]
            lines += [f" = = Section {a} = = ", " "]
            for p in range(paragraphs + a):
                lines.append(f" The fox number {p} jumps over the dog @-@ like lobster , a crustacean ( of the sea ) "
                             f"with 1 @,@ 000 legs and 3 @.@ 14 claws . He said \" hello \" to {a} . ")
            lines.append(" ")
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir


def halve_baseline_bits_per_byte(metrics: Path, corpus: str, split: str = "test") -> None:
    """Halves a baseline record's bits per byte on one corpus split, so that a run gated against
    it regresses there (and only there)."""
    record = json.loads(metrics.read_text())
    record["corpora"][corpus][split]["bits_per_byte"] /= 2
    metrics.write_text(json.dumps(record))


def write_smallbench(data: Path, rows: int = 12) -> None:
    fields = {"sst2": ("sentence",), "rte": ("sentence1", "sentence2"), "mrpc": ("sentence1", "sentence2"),
              "boolq": ("passage", "question")}
    for task, names in fields.items():
        folder = data / "smallbench" / task
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("validation", "train"):
            lines = []
            for i in range(rows):
                row = {name: f"the fox {i} jumps over the lazy dog number {i % 3}" for name in names}
                lines.append(json.dumps(row | {"label": i % 2, "idx": i}))
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


# ---- the benchmarks a pytester run lays out (the checkout's benchmarks/) -----------------------------


ROOT = Path(__file__).resolve().parents[1]  # the checkout: README, benchmarks/, scripts/, workflows


SUITE_PLUGIN = "lmeval_fixtures.plugin"


BENCHMARK = (ROOT / "benchmarks" / "test_perplexity.py").read_text()  # the perplexity benchmark
SMALLBENCH = (ROOT / "benchmarks" / "test_smallbench.py").read_text()
LATENCY = (ROOT / "benchmarks" / "test_latency.py").read_text()


def lay_out_suite(pytester):
    """The perplexity and SmallBench benchmarks, their data, and checkpoint ``ck/a``."""
    pytester.makepyfile(test_perplexity=BENCHMARK, test_smallbench=SMALLBENCH)
    write_wikitext(pytester.path / "data")
    write_smallbench(pytester.path / "data")
    write_native_checkpoint(pytester.path / "ck" / "a", seed=1)
    return pytester


def record_of(suite, run: str, name: str = "a") -> dict:
    return json.loads((suite.path / "reports" / run / name / "metrics.json").read_text())


def validated_records(root: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(root.glob("reports/*/*/metrics.json")):
        record = json.loads(path.read_text())
        validate_record(record)
        assert (path.parent / "summary.md").is_file()
        found[path.parent.name] = record
    return found


def records_of(root: Path, run: str) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((root / run).glob("*/metrics.json"))}


def cached_items(record: dict) -> set[str]:
    return set(record.get("cache") or {})


# ---- records built without a run ---------------------------------------------------------------------


RUN = {"run_id": "r1", "timestamp": "2026-01-01T00:00:00+00:00", "seed": 1, "git_commit": None,
       "environment": {"device": "cpu", "dtype": "float32", "python": "3.11", "torch": "x", "platform": "p"}}
FIGURES = Registry.default().figure_table()


def split_figures(loss: float, **extra) -> dict:
    """A perplexity split as items record it (the schema's required fields)."""
    return {"loss": loss, "token_perplexity": 2.0 ** loss, "bits_per_byte": loss / 2, "byte_perplexity": 1.5,
            "word_perplexity": 9.0, "tokens": 10, "bytes": 30, "words": 6, "documents": 1, "stride": 64,
            "context_length": 64} | extra


def build(fragments, run=RUN) -> dict:
    recorder = Run(run)
    recorder.absorb(fragments)
    return recorder.records()


def write_report(record, folder):
    return write_checkpoint_report(record, folder, FIGURES, Registry.default())


ENVIRONMENT = {"device": "cpu", "dtype": "float32", "python": "3.11", "torch": "x", "platform": "p"}
SETTINGS = {"seed": 1234, "max_eval_tokens": None, "ppl_stride": None, "detokenize": True, "prompts": "smallbench",
            "max_samples": None, "fewshot": 0, "device": "cpu", "dtype": "float32", "metric_version": METRIC_VERSION,
            "batch_tokens": 16384, "baseline": None, "checkpoints": ["a"]}  # the last three change no figure
DATA = {"wikitext-2-raw/validation.txt": "1" * 64}


def history_split_figures(bpb: float, context: int = 64) -> dict:
    """A perplexity split as items record it (the schema's required fields)."""
    return {"loss": bpb * 2, "token_perplexity": 2.0 ** (bpb * 2), "bits_per_byte": bpb, "byte_perplexity": 1.5,
            "word_perplexity": 9.0, "tokens": 10, "bytes": 30, "words": 6, "documents": 1, "stride": context,
            "context_length": context, "max_eval_tokens": None, "detokenized": True}


def finished_run(folder: Path, run_id: str, bpb: dict[str, float], settings: dict | None = None,
                 data: dict | None = None, history: Path | None = None, context: int = 64) -> Path:
    """A run of checkpoints (name -> validation bits per byte) written by ``Run.finish`` as pytest
    would write it: metrics.json per checkpoint, the comparison, and (given a file) history lines."""
    metadata_ = {"run_id": run_id, "timestamp": f"2026-01-0{len(run_id) % 9 + 1}T00:00:00+00:00", "seed": 1234,
                 "git_commit": None, "environment": ENVIRONMENT, "settings": SETTINGS | (settings or {})}
    run = Run(metadata_)
    for name, value in bpb.items():
        run.absorb([(name, "t::ppl[validation]", {"perplexity": {"validation": history_split_figures(value, context)},
                                                    "data_fingerprints": DATA if data is None else data}),
                    (name, "~checkpoint", {"checkpoint": {"name": name, "path": "p", "sha256": name * 8}})])
        run.add_outcome(name, "t::ppl[validation]", "passed")
    done = run.finish(folder / run_id, compare_by="val_bits_per_byte", history=history, run_id=run_id)
    assert not done.errors, done.errors
    return folder / run_id


# ---- independent reference computations --------------------------------------------------------------


CONTEXTS = [
    "Sentence: the quick brown fox\nSentiment:",
    "Passage: Robert Boulter is an English film actor. He had a guest role.\nQuestion: is he an actor\nAnswer:",
    "",
    "lobster " * 30 + "\nAnswer:",  # longer than the window: cut from the left
    "Numbers like 1,000 ",  # trailing space moves onto the continuation
]


CONTINUATIONS = [" yes", " no", " positive", " not entailment", " well-known crustacean of the sea", "."]


def rolling_windows(tokens, prefix, max_len, context_len):
    pred_len = max_len - context_len + 1
    first = min(max_len, len(tokens))
    yield [prefix] + tokens[: first - 1], tokens[:first]
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, pred_len)
        end = predicted + n
        yield tokens[end - max_len - 1 : end - 1], tokens[end - n : end]
        predicted += n


def reference_nll(model, tokens, prefix, max_len, stride):
    total = 0.0
    for context, continuation in rolling_windows(tokens, prefix, max_len, max_len - stride + 1):
        context = context[: len(context) - (len(continuation) - 1)]  # make_disjoint_window
        full = (context + continuation)[-(max_len + 1):]
        inputs = torch.tensor([full[:-1]])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(inputs)[0].double(), dim=-1)
        n = len(continuation)
        scored = logprobs[-n:]
        for row, target in zip(scored, continuation, strict=True):
            total -= row[target].item()
    return total


def linear_head(weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.nn.Linear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def task_result(rows: list[RowResult], choices=("no", "sí")) -> TaskResult:
    return TaskResult("boolq", "smallbench", 0, rows, [len(c) for c in choices], ScoringStats(), 1.0,
                      choices=choices, continuations=tuple(" " + c for c in choices))


# Four rows, choices " no" (3 bytes) and " sí" (4 bytes: the í is two). Row 3's context ends with a
# newline, which the engine moves onto the continuation: its gold text as scored is "\n sí", 5 bytes.
HAND_ROWS = [
    RowResult(0, 1, [-1.0, -2.5], [False, False], "Q: a\nA:"),  # predicts 0, wrong; margin -2.5 - -1.0 = -1.5
    RowResult(1, 0, [-0.5, -3.0], [False, False], "Q: b\nA:"),  # predicts 0, right; margin 2.5
    RowResult(2, 1, [-2.0, -4.0], [False, False], "Q: c\nA:"),  # predicts 0, wrong; margin -2.0
    RowResult(3, 1, [-1.25, -1.0], [False, False], "Q: d\nA:\n"),  # predicts 1, right; margin 0.25
]


# ---- hostile checkpoints -----------------------------------------------------------------------------


FIX_JSON = "correct config.json"
FIX_PT = "re-save the checkpoint with a corrected config"
REFUSED_PICKLE = "refused: the pickle holds objects other than tensors (weights-only loading)"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no os.mkfifo on this platform")


def one_line(exc_info: pytest.ExceptionInfo) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def edit_config(path: Path, **changes) -> Path:
    """Rewrite the config of the checkpoint at ``path`` (config.json beside it, or the .pt's own);
    a value of ``...`` deletes the key. Returns the file that holds the config."""
    def apply(config: dict) -> dict:
        for key, value in changes.items():
            if value is ...:
                config.pop(key, None)
            else:
                config[key] = value
        return config

    if path.suffix == ".pt":
        payload = torch.load(path, weights_only=True)
        payload["config"] = apply(payload["config"])
        torch.save(payload, path)
        return path
    config_file = path.parent / "config.json"
    config_file.write_text(json.dumps(apply(json.loads(config_file.read_text()))))
    return config_file


def logits(loaded, length: int = 12) -> torch.Tensor:
    ids = torch.arange(length)[None] % loaded.config.vocab_size
    with torch.no_grad():
        return loaded.model(ids)


def load_within(path: Path, seconds: float = 30.0):
    """load_checkpoint in a thread, so that a regression (opening a FIFO) fails instead of hanging."""
    outcome: dict = {}

    def run():
        try:
            outcome["loaded"] = load_checkpoint(path)
        except Exception as exc:  # handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"loading {path} hangs"
    return outcome


class RunsCode:
    """Unpickling this runs ``touch MARKER``: the attack a weights-only load must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class RunsCodeHere:
    """Unpickling this runs ``touch pwned`` in the working folder."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


# ---- Hugging Face folders and hub caches (each helper skips its caller without transformers) ---------


D_MODEL, D_FF, LAYERS, HEADS, CONTEXT = 32, 80, 2, 4, 24


def write_hf_llama(folder, tied=True, seed=0, model_class=None, adds_bos=False):
    """A random LlamaForCausalLM with our test tokenizer, saved as a Hugging Face folder;
    ``adds_bos``: the tokenizer puts its BOS in front of every encoding, as Llama's does."""
    transformers = pytest.importorskip("transformers")
    tokenizer = make_tokenizer()
    if adds_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{tokenizer.id_to_token(0)} $A", special_tokens=[(tokenizer.id_to_token(0), 0)])
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=D_MODEL, intermediate_size=D_FF,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
        max_position_embeddings=CONTEXT, tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(seed)
    model = (model_class or transformers.LlamaForCausalLM)(config).eval()
    model.save_pretrained(str(folder))
    special = tokenizer.id_to_token(0)
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=special,
                                         eos_token=special).save_pretrained(str(folder))
    return folder, model


def direct_loglikelihood(model, context, continuation):
    """Context and continuation in one sequence, straight through ``model(ids).logits``, float64."""
    ids = torch.tensor([(context + continuation)[-(CONTEXT + 1):][:-1]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)[-len(continuation):]
    return logprobs.gather(1, torch.tensor(continuation)[:, None]).sum().item()


def lm_eval_encode(tokenizer, context, continuation):
    """lm-evaluation-harness's ``_encode_pair``, written out: trailing whitespace moves onto the
    continuation, which is what the whole string encodes to after the context's tokens.
    ``tokenizer.encode`` stands for HFLM's ``tok_encode``."""
    if not context:
        return [0], tokenizer.encode(continuation)
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole, head = tokenizer.encode(context + continuation), tokenizer.encode(context)
    return head, whole[len(head):]


def write_hf_folder(folder: Path, bin_payload=None) -> Path:
    """A tiny random Llama folder; with ``bin_payload`` its weights are a pytorch_model.bin holding that."""
    transformers = pytest.importorskip("transformers")
    tokenizer = make_tokenizer()
    config = transformers.LlamaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                      max_position_embeddings=32, bos_token_id=0, eos_token_id=0)
    transformers.LlamaForCausalLM(config).save_pretrained(str(folder))
    special = tokenizer.id_to_token(0)
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=special,
                                         eos_token=special).save_pretrained(str(folder))
    if bin_payload is not None:
        (folder / "model.safetensors").unlink()
        torch.save(bin_payload, folder / "pytorch_model.bin")
    return folder


MAIN = "a1" * 20  # commits: 40 hex digits, as in the hub's cache
STEP1 = "b2" * 20


def cache_model(cache: Path, repo_id: str, commit: str, refs: tuple[str, ...] = ("main",), seed: int = 0) -> Path:
    """One commit of ``repo_id`` in the cache at ``cache``, named by ``refs``; returns its snapshot folder.

    The files are blobs named by content with relative links from the snapshot, as
    huggingface_hub stores them (so the loader's digests read through links)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    staging = repo / "staging"
    write_hf_llama(staging, seed=seed)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(staging.iterdir()):
        blob = repo / "blobs" / f"{commit[:8]}-{file.name}"
        file.rename(blob)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    staging.rmdir()
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def snapshot_of(cache: Path, commit: str) -> Path:
    return cache / "models--acme--tiny-llama" / "snapshots" / commit


def nll(loaded) -> float:
    text = SAMPLE_TEXT * 2
    return score_documents(loaded.model, loaded.tokenizer, [Document(text, text)], CONTEXT).nll


# ---- task files and their rows -----------------------------------------------------------------------


REVIEWS = [("a charming and often affecting journey", "good"), ("dull and lifeless", "bad"),
           ("the fox jumps over the dog", "good"), ("unflinchingly bleak", "bad")]


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rows_of(task, split=None):
    return load_task_rows(task, split or task.split, None, Hub())[0]


def lmeval_task(tmp_path: Path, extra: str = "", base: str | None = None, rows: list[dict] | None = None) -> Path:
    """A task file including a base file one folder down, as a local override of lm-eval's files does."""
    jsonl(tmp_path / "local/validation.jsonl", rows or [{"sentence": t, "label": ["bad", "good"].index(g), "idx": i}
                                                        for i, (t, g) in enumerate(REVIEWS)])
    jsonl(tmp_path / "local/train.jsonl", [{"sentence": "great fun", "label": 1}, {"sentence": "a bore", "label": 0}])
    write(tmp_path / "lm_eval_tasks/reviews/default.yaml", base if base is not None else "\n".join([
        "tag: reviews_group",
        "task: reviews",
        "dataset_path: org/reviews",
        "output_type: multiple_choice",
        "training_split: train",
        "validation_split: validation",
        "doc_to_text: \"{{sentence | regex_replace(' +', ' ')}}\\nQuestion: good or bad?\\nAnswer:\"",
        "doc_to_target: label",
        "doc_to_choice: ['bad', 'good']",
        "should_decontaminate: true",
        "doc_to_decontamination_query: sentence",
        "metric_list:",
        "  - metric: acc",
        "    aggregation: mean",
        "    higher_is_better: true",
        "metadata:",
        "  version: 1.0",
    ]) + "\n")
    return write(tmp_path / "local/reviews.yaml", "\n".join([
        "include: ../lm_eval_tasks/reviews/default.yaml",
        "task: local_reviews",
        "dataset_path: json",
        "dataset_name: null",
        "dataset_kwargs: {data_files: {validation: validation.jsonl, train: train.jsonl}}",
        extra,
    ]) + "\n")


# (question, its own choices, the gold index): 2, 4 and 3 choices
QUIZ = [
    ("Which animal jumps over the dog?", ["the fox", "the lobster"], 0),
    ("What is 3.14 close to?", ["one", "two", "three", "pi itself"], 3),
    ("Where does a lobster live?", ["in the sea", "in a tree", "on the moon"], 0),
    ("Who is Robert Boulter?", ["an English actor", "a crustacean"], 0),
    ("How many legs?", ["1,000", "two", "none", "eight"], 1),
]


SHOTS = [("What is the fox?", ["quick", "slow", "lazy"], 0), ("Is the dog lazy?", ["no", "yes"], 1)]


def quiz_file(folder: Path, rows=QUIZ, extra: str = "") -> Path:
    jsonl(folder / "quiz.jsonl", [{"q": q, "options": c, "answer": g} for q, c, g in rows])
    jsonl(folder / "shots.jsonl", [{"q": q, "options": c, "answer": g} for q, c, g in SHOTS])
    text = ('name: quiz\ndata: quiz.jsonl\nfewshot_data: shots.jsonl\ntemplate: "Q: {q}\\nA:"\n'
            "choice_field: options\nlabel_field: answer\n")
    return write(folder / "quiz.yaml", text + extra)


def arc_rows() -> list[dict]:
    """Rows in ARC's schema: choices.text and choices.label per row (3 to 5 of them), answerKey."""
    return [
        {"id": "q0", "question": "Which animal jumps over the dog?",
         "choices": {"text": ["the fox", "the lobster", "the actor"], "label": ["A", "B", "C"]}, "answerKey": "A"},
        {"id": "q1", "question": "What is 3.14 close to?",
         "choices": {"text": ["one", "two", "three", "pi"], "label": ["A", "B", "C", "D"]}, "answerKey": "D"},
        {"id": "q2", "question": "Where does a lobster live?",
         "choices": {"text": ["sea", "tree", "moon", "desert", "sky"], "label": ["1", "2", "3", "4", "5"]},
         "answerKey": "1"},
        {"id": "q3", "question": "How many legs?",
         "choices": {"text": ["1,000", "two", "none", "eight"], "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
    ]


ARC_GOLD = [0, 3, 0, 1]


def arc_task_file(folder: Path, target: str) -> Path:
    """Our own lm-eval-style file over ``arc_rows``, ``doc_to_choice: "{{choices.text}}"`` as arc_easy's."""
    jsonl(folder / "arc.jsonl", [r | {"answer_text": r["choices"]["text"][g]} for r, g in zip(arc_rows(), ARC_GOLD,
                                                                                                strict=True)])
    return write(folder / "arc.yaml", "\n".join([
        "task: local_arc", "dataset_path: json", "dataset_name: null", "output_type: multiple_choice",
        "dataset_kwargs: {data_files: {test: arc.jsonl}}", "test_split: test",
        'doc_to_text: "Question: {{question}}\\nAnswer:"', 'doc_to_choice: "{{choices.text}}"',
        f"doc_to_target: {target}",
    ]) + "\n")


DOCS = ["The fox jumps over the dog.\nIt lands well.", "A lobster is a crustacean.", "Numbers: 1,000 and 3.14."]


def go_offline(patch) -> None:
    """No hub for the rest of a test: the environment variables for what reads them later (subprocesses,
    pytester runs) and the flags huggingface_hub and datasets read once at import, since both are
    imported before any test runs (tests/conftest.py), so the variables alone come too late."""
    import datasets
    import huggingface_hub

    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("HF_DATASETS_OFFLINE", "1")
    patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    patch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
