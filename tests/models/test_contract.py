"""The checks every loaded model passes (``models.contract``): a vocabulary that covers the
tokenizer's, and finite weights."""

import pytest
import torch

from lmeval_fixtures.core.errors import CheckpointError
from lmeval_fixtures.models.loading import load_checkpoint

from ..helpers import write_native_checkpoint


def test_vocabulary_mismatch_with_matching_weights(tmp_path):
    from ..helpers import make_tokenizer

    path = write_native_checkpoint(tmp_path / "c", tokenizer=make_tokenizer(320))
    make_tokenizer(400).save(str(path.parent / "tokenizer.json"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: config vocab_size 320 is smaller than the "
                                              r"tokenizer's 400 tokens"):
        load_checkpoint(path)


def test_nan_weights_are_refused(tmp_path):
    path = write_native_checkpoint(tmp_path / "c", fmt="pt")
    payload = torch.load(path, weights_only=True)
    payload["model"]["norm.weight"][0] = float("nan")
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_checkpoint(path)
