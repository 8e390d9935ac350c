"""The native parameter-allocation transformer.

A Llama-style decoder written so that a reader sees the maths, in the manner of
nanoGPT's ``model.py``. The layout (names, rotary convention, RMSNorm in float32,
SwiGLU) deliberately mirrors Hugging Face's ``LlamaForCausalLM`` so that a native
checkpoint exports to a Llama folder without changing a single weight.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.names import closest_name

HEAD_KEY = "lm_head.weight"
REQUIRED_FIELDS = ("vocab_size", "d_model", "n_layers", "n_heads")
DERIVED_FIELDS = ("d_ff",)  # written into records; accepted back when it agrees with the config
# Inclusive upper bounds of the size fields. The loader counts parameters against the weights
# before allocating any, but max_seq_len sizes the rotary tables, which the weights do not bound;
# the others are bounded generously (far beyond this suite's 1M-1B parameter models) so that
# a typo such as 10**12 is named as what it is.
SIZE_LIMITS = MappingProxyType({"vocab_size": 2**30, "d_model": 2**20, "n_layers": 2**16, "n_heads": 2**16,
                                "max_seq_len": 2**20})
TOKEN_FIELDS = ("bos_token_id", "eos_token_id")
POSITIVE_FLOAT_FIELDS = ("glu_expansion", "norm_eps", "rope_theta")
BOOL_FIELDS = ("tie_embeddings",)


def describe_value(value: Any) -> str:
    """A config value as the file spells it, and its JSON kind: ``"false" (a string)``, ``2.5 (a
    number with a fraction)``; messages say what was found, not just that it was wrong."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    if value is None:
        return "null"
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, int):
        kind = "an integer"
    elif isinstance(value, float):
        kind = ("not a finite number" if not math.isfinite(value)
                else "a number with a fraction" if not value.is_integer() else "a float, not an integer")
    elif isinstance(value, (list, tuple)):
        kind = "a list"
    elif isinstance(value, Mapping):
        kind = "an object"
    else:
        kind = f"a {type(value).__name__}"
    return f"{text} ({kind})"


def _is_int(value: Any) -> bool:
    """A real integer: JSON ``true`` is a bool (an int to Python) and ``2.0`` a float; neither counts."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"field {name} must be true or false, got {describe_value(value)}")


def _check_size(name: str, value: Any) -> None:
    limit = SIZE_LIMITS[name]
    if not _is_int(value) or not 1 <= value <= limit:
        raise ValueError(f"field {name} must be an integer from 1 to {limit:,}, got {describe_value(value)}")


def _check_positive_float(name: str, value: Any) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise ValueError(f"field {name} must be a finite number greater than 0, got {describe_value(value)}")


def _check_token(name: str, value: Any, vocab_size: int) -> None:
    if not _is_int(value) or not 0 <= value < vocab_size:
        raise ValueError(f"field {name} must be a token id from 0 to vocab_size - 1 = {vocab_size - 1}, "
                         f"got {describe_value(value)}")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a native model; ``d_ff`` follows from ``glu_expansion * d_model``."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    glu_expansion: float = 8 / 3
    max_seq_len: int = 512
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    bos_token_id: int = 0
    eos_token_id: int = 0

    def __post_init__(self) -> None:
        """Check every field's type and range before anything is derived from it.

        A config is untrusted input: JSON ``"false"`` is a truthy string, so an unchecked
        ``tie_embeddings`` would tie a model trained untied and drop its head; a float layer
        count or a huge ``max_seq_len`` would fail later, far from the field that caused it.
        Sizes come first, so that the token ids can be checked against ``vocab_size``.
        """
        for name in SIZE_LIMITS:
            _check_size(name, getattr(self, name))
        for name in BOOL_FIELDS:
            _check_bool(name, getattr(self, name))
        for name in POSITIVE_FLOAT_FIELDS:
            _check_positive_float(name, getattr(self, name))
        for name in TOKEN_FIELDS:
            _check_token(name, getattr(self, name), self.vocab_size)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"d_model {self.d_model} / n_heads {self.n_heads} gives an odd head dimension "
                             f"{self.head_dim}; rotary embeddings need an even one")
        if self.d_ff < 1:
            raise ValueError(f"field glu_expansion {self.glu_expansion!r} times d_model {self.d_model} "
                             "rounds to a feed-forward width of 0")

    @property
    def d_ff(self) -> int:
        return int(round(self.glu_expansion * self.d_model))

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    # Parameter counts are derived from the shapes, so that a budget can be checked
    # before any tensor is allocated (a config claiming 10^12 parameters must not
    # reach ``torch.empty``).
    @property
    def embedding_params(self) -> int:
        """Input embedding plus the output head when it is not tied."""
        per_matrix = self.vocab_size * self.d_model
        return per_matrix if self.tie_embeddings else 2 * per_matrix

    @property
    def params_per_layer(self) -> int:
        attention = 4 * self.d_model * self.d_model
        feed_forward = 3 * self.d_model * self.d_ff
        norms = 2 * self.d_model
        return attention + feed_forward + norms

    @property
    def non_embedding_params(self) -> int:
        return self.n_layers * self.params_per_layer + self.d_model  # + final norm

    @property
    def total_params(self) -> int:
        return self.embedding_params + self.non_embedding_params

    @property
    def embedding_ratio(self) -> float:
        return self.embedding_params / self.total_params

    def stored_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every weight a checkpoint holds, in ``state_dict`` order, from the config's
        arithmetic alone: the loader checks a file against it before anything is built (a model
        built on the meta device would do, but its first initialisation imports torch's
        decompositions: two seconds of every process's start-up). ``test_model`` checks it
        against the real module."""
        d, ff, vocab = self.d_model, self.d_ff, self.vocab_size
        shapes: dict[str, tuple[int, ...]] = {"embed_tokens.weight": (vocab, d)}
        for i in range(self.n_layers):
            layer = f"layers.{i}."
            shapes |= {f"{layer}input_layernorm.weight": (d,)}
            shapes |= {f"{layer}self_attn.{name}.weight": (d, d) for name in ("q_proj", "k_proj", "v_proj", "o_proj")}
            shapes |= {f"{layer}post_attention_layernorm.weight": (d,), f"{layer}mlp.gate_proj.weight": (ff, d),
                       f"{layer}mlp.up_proj.weight": (ff, d), f"{layer}mlp.down_proj.weight": (d, ff)}
        shapes["norm.weight"] = (d,)
        if self.stores(HEAD_KEY):
            shapes[HEAD_KEY] = (vocab, d)
        return shapes

    def stores(self, key: str) -> bool:
        """Whether a checkpoint holds the weight ``key``. A tied head *is* the input embedding,
        so checkpoints store it once, as ``embed_tokens.weight``; the rule lives here alone
        because writers, the loader's shape check and the Hugging Face export must agree on it."""
        return not (self.tie_embeddings and key == HEAD_KEY)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """Every key a native config may hold: the fields, and the derived ``d_ff``."""
        return frozenset(f.name for f in fields(cls)) | frozenset(DERIVED_FIELDS)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelConfig:
        """Build from JSON; every field type-checked, ``d_ff`` checked against the others.

        An unknown key is refused rather than ignored: a misspelt field (``tie_embedding``)
        would otherwise leave its default in force, a model that silently is not the one
        trained. Raises ``ValueError`` whose message names the field.
        """
        unknown = sorted((str(k) for k in raw if k not in cls.field_names()), key=str)
        if unknown:
            raise ValueError(_unknown_message(unknown[0], cls.field_names()))
        missing = [name for name in REQUIRED_FIELDS if name not in raw]
        if missing:
            raise ValueError(f"config lacks {', '.join(missing)} (required: {', '.join(REQUIRED_FIELDS)})")
        config = cls(**{k: v for k, v in raw.items() if k not in DERIVED_FIELDS})
        if "d_ff" in raw and (not _is_int(raw["d_ff"]) or raw["d_ff"] != config.d_ff):
            raise ValueError(f"field d_ff {describe_value(raw['d_ff'])} disagrees with "
                             f"round(glu_expansion * d_model) = {config.d_ff}")
        return config

    @classmethod
    def from_budget(
        cls,
        total_params: int,
        embedding_ratio: float,
        glu_expansion: float,
        vocab_size: int,
        n_layers: int | None = None,
        *,
        head_dim: int = 32,
        **overrides: Any,
    ) -> ModelConfig:
        """Split a parameter budget between the embedding and the transformer body.

        The embedding share fixes ``d_model`` (rounded to a multiple of ``head_dim``).
        With ``d_ff`` tied to ``glu_expansion * d_model``, the remaining budget then
        fixes the depth, so ``n_layers`` is fitted (the nearest whole number of layers,
        at least one) unless given. Rounding means the realised total and ratio
        differ from the request: read them from the returned config, which is what
        the metrics record reports. A fitted depth lands within half a layer of the
        budget, up to the ``d_model`` rounding.
        """
        if not 0 < embedding_ratio < 1:
            raise ValueError(f"embedding_ratio must be in (0, 1), got {embedding_ratio}")
        if total_params <= 0:
            raise ValueError(f"total_params must be positive, got {total_params}")
        tied = overrides.get("tie_embeddings", True)
        matrices = 1 if tied else 2
        raw_width = embedding_ratio * total_params / (matrices * vocab_size)
        d_model = max(head_dim, head_dim * round(raw_width / head_dim))
        probe = cls(vocab_size=vocab_size, d_model=d_model, n_layers=1, n_heads=d_model // head_dim,
                    glu_expansion=glu_expansion, **overrides)
        if n_layers is None:
            body_budget = total_params - probe.embedding_params - d_model
            n_layers = max(1, round(body_budget / probe.params_per_layer))
        return cls(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                   n_heads=d_model // head_dim, glu_expansion=glu_expansion, **overrides)


def _unknown_message(key: str, known: frozenset[str]) -> str:
    close = closest_name(key, known, cutoff=0.6)
    hint = f"did you mean {close}?" if close else f"known: {', '.join(sorted(known))}"
    return f"unknown field {key!r} ({hint}); remove it or correct its name"


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in float32, as Llama does, so bf16 runs agree."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotary_tables(config: ModelConfig, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables in the "rotate half" layout used by Hugging Face Llama."""
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim))
    positions = torch.arange(length, device=device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        d = config.d_model
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, width = x.shape
        shape = (batch, length, self.n_heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if attention_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # (batch, length, length) booleans, True where a query may attend
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask[:, None])
        return self.o_proj(y.transpose(1, 2).reshape(batch, length, width))


class SwiGLU(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.up_proj = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down_proj = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.self_attn = CausalSelfAttention(config)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attention_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    """Decoder-only language model; ``forward`` returns logits for every position.

    ``hidden_states`` and ``logits_from_hidden`` are exposed separately so that
    scorers can project only the positions they score onto the vocabulary.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self._rotary_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def stored_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint holds (``ModelConfig.stores``), in ``state_dict`` order."""
        return {k: v for k, v in self.state_dict().items() if self.config.stores(k)}

    def load_stored_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load what ``stored_state_dict`` wrote. A tied head stored anyway is ignored, and the
        head stays the embedding: one tensor, as it was trained, whatever the file held."""
        tied = self.config.tie_embeddings
        self.load_state_dict({k: v for k, v in state.items() if self.config.stores(k)}, strict=not tied)
        if tied:
            self.lm_head.weight = self.embed_tokens.weight

    def init_weights(self, seed: int) -> None:
        """GPT-2 style initialisation: N(0, 0.02), residual outputs scaled by depth."""
        generator = torch.Generator().manual_seed(seed)
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.endswith("layernorm.weight") or name == "norm.weight":
                    param.fill_(1.0)
                else:
                    std = residual_std if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                    param.copy_(torch.randn(param.shape, generator=generator) * std)

    def _rotary(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self._rotary_cache
        if cached is None or cached[0].shape[0] < length or cached[0].device != device:
            cached = rotary_tables(self.config, max(length, self.config.max_seq_len), device)
            self._rotary_cache = cached
        return cached

    def hidden_states(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-norm hidden states, shape (batch, length, d_model).

        ``position_ids`` and a boolean ``attention_mask`` (batch, length, length) let a
        scorer pack several continuations of one context into one row, each attending
        to the context and to itself only; without them the row is plainly causal.
        """
        length = input_ids.shape[1]
        last_position = length - 1 if position_ids is None else int(position_ids.max())
        if last_position >= self.config.max_seq_len:
            raise ValueError(f"position {last_position} exceeds max_seq_len {self.config.max_seq_len}")
        cos, sin = self._rotary(max(length, last_position + 1), input_ids.device)
        if position_ids is None:
            cos, sin = cos[:length], sin[:length]
        else:
            cos, sin = cos[position_ids][:, None], sin[position_ids][:, None]
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, cos, sin, attention_mask)
        return self.norm(x)

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    @property
    def output_projection(self) -> nn.Linear:
        """What ``logits_from_hidden`` applies, for scorers that project a vocabulary block at a time."""
        return self.lm_head

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.logits_from_hidden(self.hidden_states(input_ids))


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (a tied head is counted once)."""
    return sum(p.numel() for p in model.parameters())
