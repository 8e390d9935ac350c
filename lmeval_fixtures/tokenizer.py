"""A thin tokenizer wrapper: the few calls the scorers need, and a fingerprint.

Encoding never adds special tokens; the scorers put the BOS/EOS token in front
themselves, as lm-evaluation-harness does for causal models.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tokenizers import Tokenizer


class TokenizerError(ValueError):
    """A tokenizer file that cannot be used; the message names the file."""


ENCODING_PARTS = ("added_tokens", "normalizer", "pre_tokenizer", "model", "decoder")


def encoding_sha256(tokenizer: Tokenizer) -> str:
    """Fingerprint of what turns text into ids and back, and nothing else.

    Post-processor, padding and truncation never apply here (no special tokens are
    added, windows are cut by the scorers), and serialisers differ in them: the same
    tokenizer saved by ``tokenizers`` and by ``transformers`` must compare as the same,
    or a native checkpoint and its Hugging Face export would be flagged as not comparable.
    """
    raw = json.loads(tokenizer.to_str())
    canonical = json.dumps({part: raw.get(part) for part in ENCODING_PARTS}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, bos_token_id: int, sha256: str, source: str) -> None:
        tokenizer.no_truncation()  # a tokenizer.json may carry settings that would cut texts silently
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.bos_token_id = bos_token_id
        self.sha256 = sha256
        self.source = source

    @classmethod
    def from_json(cls, text: str, source: str, bos_token_id: int | None = None) -> TextTokenizer:
        try:
            tokenizer = Tokenizer.from_str(text)
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TokenizerError(f"{source}: not a valid tokenizer.json ({first_line})") from None
        if bos_token_id is None:
            bos_token_id = tokenizer.token_to_id("<|endoftext|>")
            if bos_token_id is None:
                raise TokenizerError(f"{source}: no BOS/EOS token id in the config and no <|endoftext|> token")
        return cls(tokenizer, bos_token_id, encoding_sha256(tokenizer), source)

    @classmethod
    def from_file(cls, path: Path, bos_token_id: int | None = None) -> TextTokenizer:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenizerError(f"{path}: cannot read tokenizer ({exc.__class__.__name__}: {exc})") from None
        return cls.from_json(text, str(path), bos_token_id)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=False)
