"""The library API (``lmeval_fixtures.api``): ``evaluate`` and the ``evaluate_*`` helpers on in-memory models
and checkpoints, every option checked as the command line checks it, and the README's example as written."""

import math
import re

import pytest
import torch

from lmeval_fixtures import evaluate_perplexity, evaluate_smallbench, profile_latency
from lmeval_fixtures.api import reference_checkpoints
from lmeval_fixtures.core.errors import UsageError
from lmeval_fixtures.models.loading import load_checkpoint
from lmeval_fixtures.models.model import Transformer

from .helpers import (
    CONTEXT,
    DOCS,
    ROOT,
    direct_loglikelihood,
    lm_eval_encode,
    make_tokenizer,
    tiny_config,
    write_wikitext,
)

README = ROOT / "README.md"


def test_readme_library_example_runs(capsys):
    text = README.read_text()
    code = re.search(r"<!-- library-example -->\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "bits/byte" in out and "SST-2 acc" in out and "latency 1x128" in out


def test_in_memory_model_and_plain_tokenizer_keep_training_mode():
    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    model.init_weights(0)
    model.train()
    result = evaluate_perplexity(model, tokenizer, ["the fox jumps over the dog . " * 5], max_len=64)
    assert model.training and result.tokens > 0 and result.bits_per_byte > 0
    rows = [{"passage": "The fox jumps.", "question": "does the fox jump", "label": 1}]
    task = evaluate_smallbench(model, tokenizer, "boolq", rows, max_len=64)
    assert task.n == 1 and model.training


def test_profile_latency_on_any_module():
    model = torch.nn.Sequential(torch.nn.Embedding(50, 8), torch.nn.Linear(8, 50))
    stats = profile_latency(model, batch=2, seq=16, rounds=3, warmup=1, vocab_size=50)
    assert stats["rounds"] == 3 and stats["mean_ms"] > 0
    with pytest.raises(ValueError, match="pass vocab_size"):
        profile_latency(model, rounds=1)


def test_evaluate_an_in_memory_model_from_a_training_loop(tmp_path):
    from lmeval_fixtures import evaluate
    from lmeval_fixtures.core.schema import validate_record

    from .helpers import write_wikitext

    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    model.init_weights(0)
    model.train()
    done = evaluate(model, tokenizer, name="step-10", families=["perplexity", "latency"],
                    data_dir=write_wikitext(tmp_path / "data"), report_dir=tmp_path / "reports",
                    latency_shapes="1x16", latency_rounds=3, history=False)
    assert model.training  # handed back as it came
    record = done.records["step-10"]
    validate_record(record)
    assert record["val_bits_per_byte"] > 0 and record["latency"]["1x16"]["rounds"] == 3
    assert record["checkpoint"]["format"] == "in-memory" and len(record["checkpoint"]["sha256"]) == 64
    assert (tmp_path / "reports" / record["run_id"] / "step-10" / "summary.md").is_file()
    assert not (tmp_path / "reports/history.jsonl").exists()
    with pytest.raises(ValueError, match="evaluate: no such keyword max_tokens; did you mean max_eval_tokens\\?"):
        evaluate(model, tokenizer, max_tokens=5)


@pytest.mark.parametrize("options, says", [
    ({"detokenize": True}, "--detokenize True: expected text"),
    ({"detokenize": "yes"}, "--detokenize 'yes': choose one of on, off"),
    ({"log_samples": "yes"}, "--log-samples 'yes': choose one of full, hash"),
    ({"max_samples": True}, "--max-samples True: expected int"),
    ({"max_samples": 2.7}, "--max-samples 2.7: expected a whole number"),
    ({"seed": "x"}, "--seed 'x': expected int"),
    ({"latency_shapes": ["1x128"]}, "--latency-shapes ['1x128']: expected text"),
    ({"data_dir": 5}, "--data-dir 5: expected text"),
    ({"families": None}, "families None: give one or more of"),
    ({"families": []}, "families []: give one or more of"),
    ({"families": ["perplexity", "speed"]}, "families: unknown speed"),
])
def test_evaluate_checks_every_option_as_the_command_line_does(options, says):
    from lmeval_fixtures import evaluate
    from lmeval_fixtures.core.errors import UsageError

    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    with pytest.raises(UsageError) as caught:
        evaluate(model, tokenizer, **options)
    assert says in str(caught.value)


def test_evaluate_refuses_a_missing_tokenizer_a_wrong_model_and_a_bad_name(tmp_path):
    from lmeval_fixtures import evaluate
    from lmeval_fixtures.core.errors import UsageError

    from .helpers import write_native_checkpoint, write_wikitext

    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    with pytest.raises(UsageError, match="an in-memory model needs its tokenizer object"):
        evaluate(model, "tokenizer.json")
    with pytest.raises(UsageError, match="pass a checkpoint path or an in-memory torch.nn.Module, not list"):
        evaluate(["a.safetensors"])
    with pytest.raises(UsageError, match="name '../evil': use one plain name"):
        evaluate(model, tokenizer, name="../evil")
    ckpt = write_native_checkpoint(tmp_path / "ck" / "a")
    with pytest.raises(UsageError, match="name 'a/b': use one plain name"):
        evaluate(ckpt, name="a/b")
    data = write_wikitext(tmp_path / "data")
    done = evaluate(ckpt, name="mine", families="perplexity", data_dir=data, report_dir=tmp_path / "r", device=None,
                    history=False)
    assert list(done.records) == ["mine"]  # None means the default; the name applies to a path too
    assert done.records["mine"]["val_perplexity"] is not None


def test_the_library_api_takes_the_option(tmp_path, tiny_checkpoint):
    from lmeval_fixtures import evaluate

    (tmp_path / "held.txt").write_text("\n\n".join(DOCS) + "\n")
    done = evaluate(tiny_checkpoint, families=["perplexity"], corpus=[f"held={tmp_path / 'held.txt'}"],
                    data_dir=str(write_wikitext(tmp_path / "data")), report_dir=str(tmp_path / "reports"),
                    history=False)
    record, = done.records.values()
    assert record["corpora"]["held"]["test"]["documents"] == 3


def test_library_takes_an_in_memory_model_and_tokenizer(hf_folder):
    transformers = pytest.importorskip("transformers")
    folder, model = hf_folder
    rows = [{"sentence1": "The fox jumps.", "sentence2": "A fox is jumping over the dog.", "label": 0},
            {"sentence1": "Robert Boulter is an actor.", "sentence2": "He is a lobster.", "label": 1}]
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    direct = evaluate_smallbench(model, tokenizer, "rte", rows, CONTEXT, prompt_set="lm-eval")
    loaded = load_checkpoint(folder)
    suite = evaluate_smallbench(loaded.model, loaded.tokenizer, "rte", rows, CONTEXT, prompt_set="lm-eval")
    assert [r.loglikelihoods for r in direct.rows] == [r.loglikelihoods for r in suite.rows]
    for row in direct.rows:
        for choice, value in zip(direct.choices, row.loglikelihoods, strict=True):
            context, continuation = lm_eval_encode(loaded.tokenizer, row.context, " " + choice)
            assert value == pytest.approx(direct_loglikelihood(model, context, continuation), abs=1e-4)


def test_reference_names_do_not_change():
    assert [spec.name for spec in reference_checkpoints()] == ["ref-e25", "ref-e35", "ref-e50"]


def test_readme_training_loop_example_runs(tmp_path, monkeypatch, capsys):
    """The README's training loop as written: a tiny checkpoint and data made here, evaluate() every 3 steps."""
    import json

    from lmeval_fixtures.core.schema import validate_record

    from .helpers import write_native_checkpoint

    monkeypatch.chdir(tmp_path)
    write_native_checkpoint(tmp_path / "runs/start", name="model")
    write_wikitext(tmp_path / "data")
    code = re.search(r"<!-- training-loop-example -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    history = [json.loads(line) for line in (tmp_path / "runs/eval/training.jsonl").read_text().splitlines()]
    assert [line["step"] for line in history] == [1, 2, 3, 3, 4, 5, 6, 6]  # six steps, two evaluations
    records = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "runs/eval").glob("*/*/metrics.json")}
    assert sorted(records) == ["step-3", "step-6"]
    for name, step in (("step-3", 3), ("step-6", 6)):
        record = records[name]
        validate_record(record)
        loss = next(line["figures"]["train_loss"] for line in history if line["step"] == step)
        assert record["train_loss"] == loss  # the loop's loss, not the checkpoint's stored 5.5
        assert record["checkpoint"]["training"] == {"train_loss": loss, "step": step, "source": "MetricsLogger"}
        assert record["train_perplexity"] == pytest.approx(math.exp(loss))
        evaluated = next(line["figures"] for line in history if line["step"] == step and "val_bits_per_byte"
                         in line["figures"])
        assert evaluated["val_bits_per_byte"] == record["val_bits_per_byte"]
    summary = json.loads((tmp_path / "runs/eval/training-summary.json").read_text())
    bpb = [records[n]["val_bits_per_byte"] for n in ("step-3", "step-6")]
    assert summary["figures"]["val_bits_per_byte"]["best"] == min(bpb)
    assert summary["figures"]["train_loss"]["count"] == 6
    assert out.startswith(f"best val bits/byte {min(bpb):.3f} at step {3 if bpb[0] <= bpb[1] else 6}; step 6: "
                          f"train loss {records['step-6']['train_loss']:.3f}")


def test_evaluate_records_the_training_facts_it_is_given_and_says_where_they_came_from(tmp_path):
    from lmeval_fixtures import MetricsLogger, evaluate

    from .helpers import write_native_checkpoint

    weights = write_native_checkpoint(tmp_path / "ckpt")  # stored: train_loss 5.5, step 10
    options = dict(families=["perplexity"], data_dir=write_wikitext(tmp_path / "data"), max_eval_tokens=200,
                   report_dir=tmp_path / "reports", history=False)
    stored = evaluate(weights, name="stored", **options).records["stored"]
    assert stored["train_loss"] == 5.5 and stored["checkpoint"]["training"]["step"] == 10
    assert "source" not in stored["checkpoint"]["training"]
    given = evaluate(weights, name="given", training={"train_loss": 2.0, "step": 40}, **options).records["given"]
    assert given["train_loss"] == 2.0 and given["train_perplexity"] == pytest.approx(math.exp(2.0))
    assert given["checkpoint"]["training"] == {"train_loss": 2.0, "step": 40, "source": "evaluate(training=...)"}
    assert given["invocations"][-1]["args"][:3] == ["lmeval_fixtures.evaluate", repr(str(weights)), "name='given'"]
    logger = MetricsLogger()
    logger.log(7, lr=0.1)  # no train loss logged yet: the checkpoint's own facts stay
    kept = evaluate(weights, name="kept", logger=logger, **options).records["kept"]
    assert kept["train_loss"] == 5.5
    logger.log(8, train_loss=float("nan"))  # a diverged loss is recorded as null and said so
    diverged = evaluate(weights, name="diverged", logger=logger, **options).records["diverged"]
    assert diverged["train_loss"] is None and "checkpoint.training.train_loss is nan (written as null)" in (
        diverged["errors"])


@pytest.mark.parametrize("kwargs, says", [
    (dict(training={"train_loss": "low"}), "training: 'train_loss'='low'; give numbers by name (train_loss=2.31, "
                                           "step=400)"),
    (dict(training=[("train_loss", 1.0)]), "training: pass a mapping of numbers by name, not list"),
    (dict(logger={"train_loss": 1.0}), "logger: pass a lmeval_fixtures.MetricsLogger, not dict"),
    (dict(training={"train_loss": 1.0}, logger="both"), "evaluate: pass training= or logger=, not both (the "
                                                        "logger's figures are its training facts)"),
])
def test_evaluate_refuses_bad_training_facts_before_anything_runs(tmp_path, kwargs, says):
    from lmeval_fixtures import evaluate

    from .helpers import one_line

    with pytest.raises(UsageError) as info:
        evaluate(tmp_path / "nothing.safetensors", report_dir=tmp_path / "reports", **kwargs)
    assert one_line(info) == says
    assert not (tmp_path / "reports").exists()
def test_evaluate_with_track_logs_each_record_it_measured(tmp_path):
    """``track=`` (``--track``): every door ends in ``Run.finish``, which logs each record this invocation
    measured as one tracker run, after the reports are written."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lmeval_fixtures import evaluate

    from .helpers import write_wikitext

    tokenizer = make_tokenizer()
    model = Transformer(tiny_config(tokenizer.get_vocab_size()))
    model.init_weights(0)
    done = evaluate(model, tokenizer, name="step-20", families=["perplexity"], run_id="tracked",
                    data_dir=write_wikitext(tmp_path / "data"), report_dir=tmp_path / "reports",
                    track=f"tensorboard:{tmp_path / 'tb'}", history=False)
    assert done.tracked == ["tracked/step-20"] and not done.errors
    events = EventAccumulator(str(tmp_path / "tb" / "tracked" / "step-20"))
    events.Reload()
    [scalar] = events.Scalars("val_bits_per_byte")
    assert scalar.step == 20 and scalar.value == pytest.approx(done.records["step-20"]["val_bits_per_byte"])
