"""A thin tokenizer wrapper: the few calls the scorers need, and a fingerprint.

For native checkpoints encoding never adds special tokens; the scorers put the
BOS/EOS token in front themselves, as lm-evaluation-harness does for causal
models. A Hugging Face tokenizer is used as lm-evaluation-harness 0.4.13's
``HFLM`` uses it: ``encode`` adds what the tokenizer adds by default (Llama's
``<s>``, for example), so both tools score the very same token sequences.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from ..core.errors import CheckpointError, TokenizerError
from ..core.files import special_file_message

ENCODING_PARTS = ("added_tokens", "normalizer", "pre_tokenizer", "model", "decoder")


def adds_special_tokens(tokenizer: Tokenizer) -> bool:
    """Whether encoding with special tokens really changes anything (a template that adds
    nothing, as ``transformers`` writes for tokenizers without one, does not)."""
    probe = "Hello world. 1,000 lobsters"
    return tokenizer.encode(probe, add_special_tokens=True).ids != tokenizer.encode(probe, add_special_tokens=False).ids


def encoding_sha256(tokenizer: Tokenizer, add_special_tokens: bool = False) -> str:
    """Fingerprint of what turns text into ids and back, and nothing else.

    Padding and truncation never apply here (windows are cut by the scorers), nor does
    the post-processor unless special tokens are added, and serialisers differ in them: the same
    tokenizer saved by ``tokenizers`` and by ``transformers`` must compare as the same,
    or a native checkpoint and its Hugging Face export would be flagged as not comparable.
    """
    raw = json.loads(tokenizer.to_str())
    parts = ENCODING_PARTS + (("post_processor",) if add_special_tokens else ())
    canonical = json.dumps({part: raw.get(part) for part in parts}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, bos_token_id: int, sha256: str, source: str,
                 add_special_tokens: bool = False) -> None:
        tokenizer.no_truncation()  # a tokenizer.json may carry settings that would cut texts silently
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.add_special_tokens = add_special_tokens
        self.bos_token_id = bos_token_id
        self.sha256 = sha256
        self.source = source

    @classmethod
    def from_json(cls, text: str, source: str, bos_token_id: int | None = None,
                  add_special_tokens: bool = False) -> TextTokenizer:
        """``add_special_tokens``: encode as the tokenizer's template says (where it adds anything)."""
        try:
            tokenizer = Tokenizer.from_str(text)
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TokenizerError(f"{source}: not a valid tokenizer.json ({first_line})") from None
        if bos_token_id is None:
            bos_token_id = tokenizer.token_to_id("<|endoftext|>")
            if bos_token_id is None:
                raise TokenizerError(f"{source}: no BOS/EOS token id in the config and no <|endoftext|> token")
        adds = add_special_tokens and adds_special_tokens(tokenizer)
        return cls(tokenizer, bos_token_id, encoding_sha256(tokenizer, adds), source, adds)

    @classmethod
    def from_file(cls, path: Path, bos_token_id: int | None = None) -> TextTokenizer:
        """Read a tokenizer.json; a FIFO or device is refused before it is opened (it would hang)."""
        return cls.from_file_and_sha256(path, bos_token_id)[0]

    @classmethod
    def from_file_and_sha256(cls, path: Path, bos_token_id: int | None = None) -> tuple[TextTokenizer, str]:
        """``from_file`` and the sha256 of the very bytes parsed (one read: a checkpoint's identity
        names the tokenizer file that was loaded, not one that replaced it a moment later)."""
        special = special_file_message(Path(path))
        if special is not None:
            raise TokenizerError(special)
        try:
            raw = Path(path).read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenizerError(f"{path}: cannot read tokenizer ({exc.__class__.__name__}: {exc})") from None
        return cls.from_json(text, str(path), bos_token_id), hashlib.sha256(raw).hexdigest()

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=self.add_special_tokens).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=self.add_special_tokens)]

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=False)


TokenizerLike = TextTokenizer | Tokenizer


def as_text_tokenizer(tokenizer: TokenizerLike | Any, bos_token_id: int | None = None) -> TextTokenizer:
    """Ours as it is; a Hugging Face fast tokenizer with its BOS (else EOS) as the start token,
    as lm-evaluation-harness starts sequences; a ``tokenizers.Tokenizer`` with ``<|endoftext|>``."""
    if isinstance(tokenizer, TextTokenizer):
        return tokenizer
    if hasattr(tokenizer, "backend_tokenizer"):
        return text_tokenizer(tokenizer, "in-memory Hugging Face tokenizer")
    return TextTokenizer.from_json(tokenizer.to_str(), "in-memory tokenizer", bos_token_id)


def text_tokenizer(tokenizer: Any, source: str | Path) -> TextTokenizer:
    """The fast tokenizer's backend, with HFLM's prefix token (BOS, else EOS) as the start token,
    encoding as HFLM's ``tok_encode`` does by default: with the tokenizer's special tokens."""
    if not getattr(tokenizer, "is_fast", False):
        raise CheckpointError(f"{source}: needs a fast tokenizer (tokenizer.json); "
                              "save one with AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained()")
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if start is None:
        raise CheckpointError(f"{source}: the tokenizer has neither a BOS nor an EOS token to start sequences with")
    return TextTokenizer.from_json(tokenizer.backend_tokenizer.to_str(), f"{source} (tokenizer)", start,
                                   add_special_tokens=True)
