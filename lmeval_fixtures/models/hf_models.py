"""Hugging Face causal-LM folders as checkpoints (the ``hf`` extra).

A folder is read with ``AutoModelForCausalLM`` and ``AutoTokenizer`` from local
files only, with ``trust_remote_code=False``: like a native checkpoint it is
untrusted input, and nothing in it may run. The model is wrapped in
``CausalLMAdapter`` so that the scorers see the same two halves as the native
model, and the tokenizer's fast backend becomes a ``TextTokenizer``. The start
token and the context length follow lm-evaluation-harness's ``HFLM``, so both
tools score the same token sequences.

A Hugging Face hub model id (``owner/name``, optionally ``@revision``) is a
checkpoint too: ``hub_snapshot`` fetches the files a causal LM needs into the
Hugging Face cache with ``huggingface_hub.snapshot_download`` (nothing when
they are there and ``HF_HUB_OFFLINE`` is set) and returns the snapshot folder,
which is then loaded like any local folder. lm-evaluation-harness users name
models this way (``pretrained=EleutherAI/pythia-14m,revision=step1000``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.errors import CheckpointError, MissingExtra
from ..core.files import require_regular, sha256_file
from .contract import REFUSED_PICKLE, Allocation, check_loaded
from .hf_adapter import CausalLMAdapter
from .tokenizer import TextTokenizer, text_tokenizer

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CONTEXT_ATTRIBUTES = ("n_positions", "max_position_embeddings", "n_ctx")  # HFLM's order
DEFAULT_CONTEXT = 2048  # HFLM's fallback when neither config nor tokenizer says

# owner/name as the hub spells them, and an optional @revision (branch, tag, commit; refs/pr/1 has slashes)
HUB_ID = re.compile(r"(?P<owner>[A-Za-z0-9][A-Za-z0-9._-]*)/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
                    r"(?:@(?P<revision>[A-Za-z0-9][A-Za-z0-9._/-]*))?")
HUB_ID_MAX = 96  # huggingface_hub's limit on owner/name
# a missing path with one of these suffixes is a mistyped file, never a model id
FILE_SUFFIXES = (*WEIGHT_SUFFIXES, ".json", ".ckpt", ".gguf", ".txt")
COMMIT = re.compile(r"[0-9a-f]{40}")
# What a causal LM needs, at the repository's top level only (some repositories keep other
# checkpoints, ONNX or original-format exports in sub-folders): weights are fetched as
# safetensors when the repository has them, else as .bin, never both.
HUB_COMMON_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json", "added_tokens.json", "tokenizer.model", "spiece.model",
                    "vocab.json", "vocab.txt", "merges.txt")
HUB_SAFETENSORS = ("*.safetensors", "model.safetensors.index.json")
HUB_BIN = ("*.bin", "pytorch_model.bin.index.json")
TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})  # huggingface_hub's reading of a boolean variable


def require_transformers(purpose: str) -> Any:
    """The transformers module, or an error saying which extra to install for ``purpose``."""
    try:
        import transformers
    except ImportError:
        raise MissingExtra(f"{purpose} needs transformers: pip install 'lmeval-fixtures[hf]'") from None
    return transformers


@dataclass(frozen=True)
class HubModel:
    """A model on the Hugging Face hub, as lm-eval users name it: ``owner/name[@revision]``."""

    owner: str
    name: str
    revision: str | None = None

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.name}"

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")

    def name_chain(self) -> list[str]:
        """Candidate checkpoint names, least qualified first (see ``checkpoints.checkpoint_names``):
        the repository's name, then with the revision, then with the owner too. Each is one
        plain path component: a revision's slashes become ``-``, a commit is cut to 12 digits."""
        chain = [self.name]
        if self.revision:
            label = self.revision[:12] if COMMIT.fullmatch(self.revision) else self.revision.replace("/", "-")
            chain.append(f"{self.name}-{label}")
        chain.append(f"{self.owner}-{chain[-1]}")
        return [name[:128] for name in chain]


def parse_hub_id(value: str | Path) -> HubModel | None:
    """``value`` as a hub model id, or None when it cannot be one.

    Only the shape is checked, nothing is looked up: ``owner/name`` in the hub's characters
    (no ``--`` or ``..``, not ending in ``.git``, at most 96 characters), optionally
    ``@revision``, and not ending in a file suffix (``runs/a.safetensors``). Whether a local
    path of that name exists is the caller's question: a path always wins.
    """
    match = HUB_ID.fullmatch(str(value))
    if match is None:
        return None
    owner, name, revision = match.group("owner", "name", "revision")
    repo_id = f"{owner}/{name}"
    if ("--" in repo_id or ".." in repo_id or repo_id.endswith(".git") or len(repo_id) > HUB_ID_MAX
            or name.lower().endswith(FILE_SUFFIXES) or (revision and (".." in revision or revision.endswith("/")))):
        return None
    return HubModel(owner, name, revision)


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, read now: huggingface_hub
    reads it once, at import, and a run (or a test) may set it after that."""
    import huggingface_hub.constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return (value is not None and value.upper() in TRUE_VALUES) or huggingface_hub.constants.is_offline_mode()


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder, by huggingface_hub's rules (``HF_HUB_CACHE``, else
    ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``) applied now rather than at its import."""
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(cache)))


@contextlib.contextmanager
def _quiet_hub_bars() -> Iterator[None]:
    """No download bars: one per file per checkpoint would interleave with pytest's output."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    shown = not are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if shown:
            enable_progress_bars()


def _hub_error(model: HubModel, exc: BaseException, offline: bool, cache: Path) -> CheckpointError:
    """One line for whatever ``snapshot_download`` raised: what went wrong and what to do."""
    from huggingface_hub import errors

    detail = _first_line(exc)
    if isinstance(exc, errors.RevisionNotFoundError):
        return CheckpointError(f"{model}: the Hugging Face hub has no revision {model.revision!r} of "
                               f"{model.repo_id}; pass one of its branches, tags or commits")
    if isinstance(exc, errors.GatedRepoError):
        return CheckpointError(f"{model}: a gated model; accept its terms on huggingface.co and log in "
                               "(hf auth login), or pass a local folder")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return CheckpointError(f"{model}: no such file or folder, nor a model on the Hugging Face hub (a private "
                               "one needs hf auth login); check the path or the model id")
    if isinstance(exc, errors.IncompleteSnapshotError):
        return CheckpointError(f"{model}: the Hugging Face cache holds an incomplete download ({detail}); "
                               "run once online to complete it, or pass a local folder")
    if isinstance(exc, errors.LocalEntryNotFoundError):
        if offline:
            return CheckpointError(f"{model}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                                   "run once online or pass a local folder")
        cause = exc.__cause__ or exc
        return CheckpointError(f"{model}: not in the Hugging Face cache and the hub cannot be reached "
                               f"({type(cause).__name__}); run once online or pass a local folder")
    if isinstance(exc, errors.HfHubHTTPError):
        return CheckpointError(f"{model}: the Hugging Face hub refused the download ({detail}); "
                               "retry later, or pass a local folder")
    if isinstance(exc, OSError):
        return CheckpointError(f"{model}: cannot download into the Hugging Face cache {cache} ({detail}); "
                               "free space or set HF_HUB_CACHE to a writable folder")
    return CheckpointError(f"{model}: cannot fetch from the Hugging Face hub ({type(exc).__name__}: {detail})")


def hub_snapshot(model: HubModel) -> Path:
    """The local snapshot folder of ``model``, fetched into the Hugging Face cache when missing.

    Only what a causal LM needs is fetched (``HUB_COMMON_FILES`` and the weights); the
    cache is shared with transformers, lm-evaluation-harness and every other tool, so a
    model they downloaded is found here too. With ``HF_HUB_OFFLINE`` set nothing is
    requested: the cache has it, or the error says to run once online. The folder's name
    is the commit it holds. Every failure is one ``CheckpointError`` line naming ``model``.
    """
    try:
        require_transformers("a Hugging Face hub model")  # before downloading what could not be loaded
        from huggingface_hub import snapshot_download
    except (MissingExtra, ImportError) as exc:
        raise CheckpointError(f"{model}: {exc}") from None
    offline, cache = hub_offline(), hub_cache_dir()
    options: dict[str, Any] = {"cache_dir": str(cache), "local_files_only": offline, "ignore_patterns": ["*/*"]}
    try:
        with _quiet_hub_bars():
            folder = Path(snapshot_download(model.repo_id, revision=model.revision,
                                            allow_patterns=[*HUB_COMMON_FILES, *HUB_SAFETENSORS], **options))
            if not any(folder.glob("*.safetensors")):  # the same commit, its .bin weights instead
                folder = Path(snapshot_download(model.repo_id, revision=folder.name,
                                                allow_patterns=[*HUB_COMMON_FILES, *HUB_BIN], **options))
    except Exception as exc:  # huggingface_hub raises HTTP, file-system and validation errors
        raise _hub_error(model, exc, offline, cache) from None
    return folder


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def folder_sha256s(folder: Path) -> dict[str, str]:
    """sha256 of every regular file in a Hugging Face folder, by name."""
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def _listing_sha256(files: dict[str, str]) -> str:
    listing = "".join(f"{name}\0{sha}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def folder_identity(path: Path, before: dict[str, str]) -> dict[str, str]:
    """The digests of what a folder held while transformers read it (which files it reads is
    transformers' choice, so it cannot hash while reading): every file is hashed before the load
    and after it, and a folder whose files changed in between is refused, since the figures
    could be of either version. ``sha256``: the weights; ``config_sha256``: config.json;
    ``tokenizer_file_sha256``: every other file (tokenizer, special tokens, generation config)."""
    after = folder_sha256s(path)
    if after != before:
        changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        raise CheckpointError(f"{path}: {', '.join(changed[:3])} changed while the folder was loading; "
                              "evaluate it again once it is fully written")
    weights = {n: sha for n, sha in after.items() if Path(n).suffix in WEIGHT_SUFFIXES}
    rest = {n: sha for n, sha in after.items() if n not in weights and n != "config.json"}
    return {"sha256": _listing_sha256(weights), "config_sha256": after.get("config.json", ""),
            "tokenizer_file_sha256": _listing_sha256(rest)}


def context_length(config: Any, tokenizer: Any) -> int:
    """The longest sequence scored in one window: what HFLM would use for this model."""
    for name in CONTEXT_ATTRIBUTES:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000_000:  # "no limit" is stored as a huge int
        return limit
    return DEFAULT_CONTEXT


def allocation(model: torch.nn.Module, max_seq_len: int) -> Allocation:
    """Counts from the loaded tensors (a tied head counted once); shape fields from the config."""
    config = model.config
    unique = {id(p): p.numel() for p in model.parameters()}
    inputs = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    embedding = inputs.numel()
    if head is not None and head.weight is not inputs:
        embedding += head.weight.numel()
    d_model = getattr(config, "hidden_size", None)
    d_ff = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    gated = any(name.endswith("gate_proj.weight") for name, _ in model.named_parameters())
    return Allocation(
        total_params=sum(unique.values()), embedding_params=embedding, vocab_size=config.vocab_size,
        max_seq_len=max_seq_len, d_model=d_model, d_ff=d_ff,
        n_layers=getattr(config, "num_hidden_layers", None), n_heads=getattr(config, "num_attention_heads", None),
        glu_expansion=d_ff / d_model if gated and d_ff and d_model else None,
    )


def require_regular_entries(folder: Path) -> None:
    """Refuse a folder holding a FIFO, device or socket before transformers opens anything in it:
    which files it reads depends on the model, and opening a FIFO hangs the whole session."""
    for entry in sorted(folder.iterdir()):
        require_regular(entry)


def _refused_pickle(folder: Path, exc: BaseException) -> CheckpointError | None:
    """Our line when transformers' ``torch.load(weights_only=True)`` refused a ``.bin`` weights file,
    else None. torch's message, cut to a line, would read as advice to pass weights_only=False."""
    chain = [exc, exc.__cause__, exc.__context__]
    refused = any(isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in str(e)
                  for e in chain if e is not None)
    if not refused:
        return None
    bins = sorted(p for p in folder.iterdir() if p.suffix == ".bin")
    culprit = folder / "pytorch_model.bin" if (folder / "pytorch_model.bin") in bins else (bins or [folder])[0]
    return CheckpointError(f"{culprit}: {REFUSED_PICKLE}; re-save the model with "
                           "save_pretrained(folder), which writes safetensors")


def _model_error(folder: Path, exc: BaseException) -> CheckpointError:
    refused = _refused_pickle(folder, exc)
    return refused or CheckpointError(f"{folder}: cannot load as a Hugging Face causal LM ({_first_line(exc)})")


def load_hf_folder(path: Path, device: str, dtype: torch.dtype) -> tuple[
        CausalLMAdapter, TextTokenizer, Allocation, dict[str, Any]]:
    """Model, tokenizer, allocation and identity of one folder; every failure is one line naming it."""
    try:
        transformers = require_transformers("a Hugging Face folder")
    except MissingExtra as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    require_regular_entries(path)
    before = folder_sha256s(path)
    options = {"local_files_only": True, "trust_remote_code": False}
    try:
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), **options)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... per backend
        raise CheckpointError(f"{path}: cannot load its tokenizer ({_first_line(exc)})") from None
    tokenizer = text_tokenizer(hf_tokenizer, path)
    bars = transformers.utils.logging
    shown = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()  # a bar per checkpoint would interleave with pytest's output
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, **options)
    except Exception as exc:
        raise _model_error(path, exc) from None
    finally:
        if shown:
            bars.enable_progress_bar()
    model = model.to(device).eval()
    check_loaded(path, model, tokenizer, model.config.vocab_size)
    identity = {
        "path": str(path),
        "format": "hf",
        **folder_identity(path, before),
        "tokenizer_sha256": tokenizer.sha256,
        "tokenizer_adds_special_tokens": tokenizer.add_special_tokens,
        "config": json.loads(model.config.to_json_string(use_diff=True)),
        "training": {},
    }
    return CausalLMAdapter(model), tokenizer, allocation(model, context_length(model.config, hf_tokenizer)), identity
