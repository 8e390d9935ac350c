"""Export to a Hugging Face Llama folder (``models.hf_export``, ``lmeval-fixtures export-hf``): the same logits
and the same tokens; never over the source checkpoint, nor into a non-empty folder without --force
(needs transformers)."""


import pytest
import torch

from lmeval_fixtures.cli.main import main as cli
from lmeval_fixtures.core.files import sha256_file
from lmeval_fixtures.models.loading import load_checkpoint

from ..helpers import write_native_checkpoint

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


@pytest.fixture
def source(tmp_path):
    pytest.importorskip("transformers")
    path = write_native_checkpoint(tmp_path / "X", name="model", seed=2)
    return path, {p.name: sha256_file(p) for p in path.parent.iterdir()}


@pytest.mark.parametrize("where", ["same", "parent", "symlink"])
def test_export_into_the_source_folder_is_refused_and_the_source_kept(tmp_path, source, capsys, where):
    path, before = source
    out = {"same": path.parent, "parent": tmp_path, "symlink": tmp_path / "link"}[where]
    if where == "symlink":
        out.symlink_to(path.parent, target_is_directory=True)
    assert cli(["export-hf", str(path), str(out), "--force"]) == 2
    line = capsys.readouterr().err.strip()
    assert line == (f"lmeval-fixtures export-hf: {out}: holds the source checkpoint {path.resolve()}, which the "
                    "export would overwrite; pass another folder")
    assert {p.name: sha256_file(p) for p in path.parent.iterdir()} == before


def test_export_into_a_non_empty_folder_needs_force(tmp_path, source, capsys):
    path, _ = source
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert cli(["export-hf", str(path), str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"lmeval-fixtures export-hf: {out}: not empty (holds notes.txt); pass a new or empty folder, "
        "or --force (force=True) to write into it")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert cli(["export-hf", str(path), str(out), "--force"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(["export-hf", str(path), str(empty)]) == 0  # an empty folder needs no --force


def test_export_onto_a_file_is_refused(tmp_path, source, capsys):
    path, _ = source
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert cli(["export-hf", str(path), str(target), "--force"]) == 2
    assert capsys.readouterr().err.strip() == (f"lmeval-fixtures export-hf: {target}: exists and is not a folder; "
                                               "pass a new or empty folder")
