"""A typed view of ``metrics.json``: one attribute per top-level field of the schema.

Scripts that read records (a sweep's analysis, a training loop's early stopping) otherwise
index strings (``record["val_bits_per_byte"]``) and learn about a typo at run time;
``MetricsRecord`` gives attribute access and a type checker's help. The schema
(``schema/metrics.schema.json``) stays the single source: the fields are written out here
for the type checker, and ``tests/records/test_metrics_record.py`` fails when a schema
property has no field, a field has no schema property, a field's type differs from the
property's, or a required property has a default. The nested parts (``checkpoint``,
``perplexity``, ``smallbench``, ``latency``...) stay plain dicts: their keys are declared
by tasks and corpora, not by this class.

``from_json`` validates first (``core.schema.validate_record``), so a view is never
built over a record the suite would refuse; ``to_json`` gives back the dict it came from
(equal, keys in schema order): a key the record lacked stays absent, a null stays null,
and a key the schema does not declare is kept in ``extra``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..core.errors import RecordInvalid
from ..core.files import read_json_object
from ..core.schema import load_schema, validate_record

GROUPS = ("identity", "model", "training", "validation", "test", "perplexity", "smallbench", "performance",
          "reproducibility", "run")


def _in(group: str, *, default: Any = ..., factory: Any = None) -> Any:
    """A field of ``group``; required (no default) unless ``default`` or ``factory`` is given."""
    if factory is not None:
        return field(default_factory=factory, metadata={"group": group})
    if default is ...:
        return field(metadata={"group": group})
    return field(default=default, metadata={"group": group})


@dataclass(kw_only=True)
class MetricsRecord:
    """One checkpoint's ``metrics.json``; fields in the schema's order, grouped as a reader looks for them."""

    # identity
    schema_version: int = _in("identity")
    run_id: str = _in("identity")
    experiment_name: str | None = _in("identity")
    timestamp: str = _in("identity")
    # model configuration (parameter allocation)
    total_params: int | None = _in("model")
    d_model: int | None = _in("model")
    d_ff: int | None = _in("model")
    n_layers: int | None = _in("model")
    embedding_ratio: float | None = _in("model")
    glu_expansion: float | None = _in("model")
    # training
    train_loss: float | None = _in("training")
    train_perplexity: float | None = _in("training")
    # validation and test (the original schema's corpus, WikiText-2)
    val_loss: float | None = _in("validation")
    val_perplexity: float | None = _in("validation")
    test_loss: float | None = _in("test")
    test_perplexity: float | None = _in("test")
    # SmallBench
    smallbench_sentiment_acc: float | None = _in("smallbench")
    smallbench_nli_acc: float | None = _in("smallbench")
    smallbench_qa_acc: float | None = _in("smallbench")
    smallbench_paraphrase_acc: float | None = _in("smallbench")
    smallbench_avg_acc: float | None = _in("smallbench")
    # performance
    latency_batch1_seq128: float | None = _in("performance")
    latency_batch1_seq512: float | None = _in("performance")
    throughput_tokens_per_sec: float | None = _in("performance")
    memory_allocated_mb: float | None = _in("performance")
    memory_reserved_mb: float | None = _in("performance")
    # reproducibility
    seed: int | None = _in("reproducibility")
    git_commit: str | None = _in("reproducibility")
    # fields added after the original schema (absent from some records)
    embedding_params: int | None = _in("model", default=None)
    non_embedding_params: int | None = _in("model", default=None)
    n_heads: int | None = _in("model", default=None)
    vocab_size: int | None = _in("model", default=None)
    val_bits_per_byte: float | None = _in("validation", default=None)
    test_bits_per_byte: float | None = _in("test", default=None)
    val_word_perplexity: float | None = _in("validation", default=None)
    test_word_perplexity: float | None = _in("test", default=None)
    # nested parts
    checkpoint: dict[str, Any] = _in("identity")
    environment: dict[str, Any] = _in("reproducibility")
    settings: dict[str, Any] | None = _in("reproducibility", default=None)
    data_fingerprints: dict[str, Any] = _in("reproducibility")
    perplexity: dict[str, Any] = _in("perplexity")
    corpora: dict[str, Any] | None = _in("perplexity", default=None)
    items: dict[str, Any] = _in("run")
    errors: list[Any] = _in("run")
    complete: bool = _in("run")
    smallbench: dict[str, Any] | None = _in("smallbench", default=None)
    gates: dict[str, Any] | None = _in("run", default=None)
    smallbench_tasks: list[Any] | None = _in("smallbench", default=None)
    latency: dict[str, Any] | None = _in("performance", default=None)
    throughput: dict[str, Any] | None = _in("performance", default=None)
    invocations: list[Any] | None = _in("reproducibility", default=None)
    batch_scaling: dict[str, Any] | None = _in("performance", default=None)
    samples: dict[str, Any] | None = _in("run", default=None)
    inputs_sha256: dict[str, Any] | None = _in("reproducibility", default=None)  # item -> what its figures read
    # not schema properties: keys the schema does not declare, and optional keys that were null
    extra: dict[str, Any] = field(default_factory=dict, metadata={"group": None})
    present_nulls: frozenset[str] = field(default=frozenset(), repr=False, metadata={"group": None})

    @classmethod
    def schema_fields(cls) -> list[str]:
        """The fields that are schema properties (all but ``extra`` and ``present_nulls``)."""
        return [f.name for f in fields(cls) if f.metadata.get("group")]

    @classmethod
    def group(cls, name: str) -> list[str]:
        """The fields of one group of ``GROUPS`` ("training", "smallbench", ...), in order."""
        if name not in GROUPS:
            raise ValueError(f"group {name!r}: choose among {', '.join(GROUPS)}")
        return [f.name for f in fields(cls) if f.metadata.get("group") == name]

    @classmethod
    def from_json(cls, source: dict[str, Any] | str | Path) -> MetricsRecord:
        """The view of a record dict, or of a ``metrics.json`` file; a record the schema refuses
        raises ``RecordInvalid`` naming the file and the first field at fault."""
        if isinstance(source, dict):
            record, where = source, None
        else:
            where = Path(source)
            record = read_json_object(where, RecordInvalid, "metrics record")
        try:
            validate_record(record)
        except RecordInvalid as exc:
            raise RecordInvalid(f"{where}: {exc}" if where else str(exc)) from None
        names = set(cls.schema_fields())
        given = {k: copy.deepcopy(v) for k, v in record.items() if k in names}
        nulls = frozenset(k for k, v in given.items() if v is None and k not in load_schema()["required"])
        extra = {k: copy.deepcopy(v) for k, v in record.items() if k not in names}
        return cls(**given, extra=extra, present_nulls=nulls)

    def to_json(self) -> dict[str, Any]:
        """The record as ``metrics.json`` holds it: equal to the dict ``from_json`` was given."""
        required = set(load_schema()["required"])
        out: dict[str, Any] = {}
        for name in self.schema_fields():
            value = getattr(self, name)
            if value is not None or name in required or name in self.present_nulls:
                out[name] = copy.deepcopy(value)
        return out | copy.deepcopy(self.extra)

    @property
    def name(self) -> str:
        """The checkpoint's name (the report folder's)."""
        return self.checkpoint["name"]
