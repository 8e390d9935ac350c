"""Export a native checkpoint as a Hugging Face Llama folder (the ``hf`` extra).

The native model was laid out as Llama (parameter names, rotate-half rotary
positions, float32 RMSNorm, SwiGLU), so the export renames and copies: the same
weights, so any other harness evaluates exactly the model this suite measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..core.errors import CheckpointError, ExportError
from ..core.files import readable_by_umask
from .discovery import resolved
from .hf_models import require_transformers
from .loading import LoadedCheckpoint, load_checkpoint
from .model import HEAD_KEY


def llama_config(loaded: LoadedCheckpoint) -> dict:
    c = loaded.config
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": c.vocab_size, "hidden_size": c.d_model, "intermediate_size": c.d_ff,
        "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_heads,
        "head_dim": c.head_dim, "max_position_embeddings": c.max_seq_len, "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta, "tie_word_embeddings": c.tie_embeddings, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "bos_token_id": c.bos_token_id,
        "eos_token_id": c.eos_token_id, "torch_dtype": "float32",
    }


def _source_path(checkpoint: str | Path | LoadedCheckpoint) -> Path:
    return resolved(Path(checkpoint.path if isinstance(checkpoint, LoadedCheckpoint) else checkpoint))


def check_out_dir(source: Path, out: Path, force: bool = False) -> None:
    """Refuse an output folder that would lose files: one holding the source checkpoint (its
    weights, config.json and tokenizer.json would be overwritten by the export's own), even
    with ``force``; and, unless ``force``, any non-empty folder, whose files may be another
    model's (a stale weights file beside the new config would load as a different model)."""
    target = resolved(out)
    if target.exists() and not target.is_dir():
        raise ExportError(f"{out}: exists and is not a folder; pass a new or empty folder")
    if source.is_relative_to(target):  # the source's own folder, or one above it
        raise ExportError(f"{out}: holds the source checkpoint {source}, which the export would overwrite; "
                          "pass another folder")
    if target.is_dir() and not force:
        entries = sorted(p.name for p in target.iterdir())
        if entries:
            more = f" and {len(entries) - 1} more" if len(entries) > 1 else ""
            raise ExportError(f"{out}: not empty (holds {entries[0]}{more}); pass a new or empty folder, "
                              "or --force (force=True) to write into it")


def export_hf(checkpoint: str | Path | LoadedCheckpoint, out_dir: str | Path, force: bool = False) -> Path:
    """Write config.json, model.safetensors and the tokenizer files of a Llama folder.

    ``out_dir`` is checked first (``check_out_dir``): never the source's folder, and an
    existing non-empty folder only with ``force``.
    """
    transformers = require_transformers("exporting to Hugging Face")
    out = Path(out_dir)
    check_out_dir(_source_path(checkpoint), out, force)
    loaded = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    if loaded.config is None:
        raise CheckpointError(f"{loaded.path}: already a Hugging Face folder; there is nothing to export")
    out.mkdir(parents=True, exist_ok=True)
    # Llama keeps the body under "model." and the head (stored only when untied) at the top
    state = {name if name == HEAD_KEY else f"model.{name}": tensor
             for name, tensor in loaded.model.stored_state_dict().items()}
    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    readable_by_umask(out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(llama_config(loaded), indent=2) + "\n")
    special = loaded.tokenizer._tokenizer.id_to_token(loaded.config.bos_token_id)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=loaded.tokenizer._tokenizer,
                                                bos_token=special, eos_token=special)
    fast.save_pretrained(str(out))
    return out
