"""Export to a Hugging Face Llama folder: the same logits and the same tokens (needs transformers)."""

import pytest
import torch

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.models.loading import load_checkpoint

from .conftest import write_native_checkpoint

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("tied", [True, False])
def test_exported_llama_gives_the_native_logits(tmp_path, tied):
    path = write_native_checkpoint(tmp_path / "native", name="small", seed=3, tie_embeddings=tied,
                                   d_model=48, n_heads=3, glu_expansion=2.5, rope_theta=5000.0)
    out = tmp_path / "hf"
    assert cli(["export-hf", str(path), str(out)]) == 0
    native = load_checkpoint(path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True).eval()
    ids = torch.randint(0, native.config.vocab_size, (3, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = native.model(ids)
        got = hf(ids).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    text = "The quick brown fox, a lobster of 1,000 legs."
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == native.tokenizer.encode(text)
    assert tokenizer.eos_token_id == native.config.eos_token_id


def test_export_of_a_bad_checkpoint_is_a_one_line_error(tmp_path, capsys):
    assert cli(["export-hf", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2
    assert "missing.pt: no such file or folder" in capsys.readouterr().err
