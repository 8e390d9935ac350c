"""The native model (``models.model``): parameter counts, tied heads, budgets, config checks, causality."""


import pytest
import torch

from lmeval_fixtures.models.model import ModelConfig, Transformer, count_parameters

from ..helpers import tiny_config


@pytest.mark.parametrize("tied", [True, False])
def test_parameter_counts_match_the_module(tied):
    config = ModelConfig(vocab_size=300, d_model=48, n_layers=3, n_heads=3, glu_expansion=2.5, tie_embeddings=tied)
    model = Transformer(config)
    assert config.total_params == count_parameters(model)
    embedding = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("embed_tokens", "lm_head")))
    assert config.embedding_params == embedding
    assert config.non_embedding_params == count_parameters(model) - embedding
    assert config.d_ff == 120


@pytest.mark.parametrize("tied", [True, False])
def test_a_checkpoint_stores_a_tied_head_once_and_reloads_it_tied(tied):
    config = ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2, tie_embeddings=tied)
    model = Transformer(config)
    model.init_weights(1)
    stored = model.stored_state_dict()
    assert ("lm_head.weight" in stored) != tied
    assert sum(v.numel() for v in stored.values()) == config.total_params
    again = Transformer(config)
    # a tied head written anyway (other writers keep it) is ignored: the head is the embedding
    again.load_stored_state_dict(stored | {"lm_head.weight": torch.zeros(300, 32)} if tied else stored)
    assert (again.lm_head.weight is again.embed_tokens.weight) == tied
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(again(ids), model(ids))


@pytest.mark.parametrize("ratio", [0.2, 0.35, 0.5])
@pytest.mark.parametrize("budget", [1_000_000, 5_000_000])
def test_from_budget_lands_within_half_a_layer(budget, ratio):
    config = ModelConfig.from_budget(budget, ratio, 8 / 3, vocab_size=8192)
    assert config.d_model % 32 == 0
    # Stated tolerance: the fitted depth misses the budget by at most half a layer, plus the
    # embedding share moved by rounding d_model to a multiple of the head width.
    rounding = abs(config.embedding_params - ratio * budget)
    assert abs(config.total_params - budget) <= config.params_per_layer / 2 + rounding + config.d_model
    assert abs(config.embedding_ratio - ratio) < 0.1


def test_from_budget_honours_a_given_depth():
    config = ModelConfig.from_budget(2_000_000, 0.3, 3.0, vocab_size=4096, n_layers=4)
    assert config.n_layers == 4 and config.d_ff == 3 * config.d_model


@pytest.mark.parametrize("raw, message", [
    ({"vocab_size": 10, "d_model": 30, "n_layers": 1, "n_heads": 4}, "not divisible"),
    ({"vocab_size": 10, "d_model": 32, "n_layers": 0, "n_heads": 4}, "n_layers"),
    ({"vocab_size": 10, "d_model": 32, "n_heads": 4}, "lacks n_layers"),
    ({"vocab_size": 10, "d_model": 32, "n_layers": 1, "n_heads": 4, "d_ff": 7}, "d_ff 7"),
    ({"vocab_size": 10, "d_model": 30, "n_layers": 1, "n_heads": 2}, "odd head dimension 15"),
    ({"vocab_size": 10, "d_model": 32, "n_layers": 1, "n_heads": 4, "tie_embeddings": "false"},
     r'^field tie_embeddings must be true or false, got "false" \(a string\)$'),
    ({"vocab_size": 10, "d_model": 32, "n_layers": 1.0, "n_heads": 4}, r"n_layers .* got 1\.0 \(a float"),
    ({"vocab_size": 10, "d_model": 32, "n_layers": 1, "n_heads": 4, "bos_token_id": 10}, "bos_token_id"),
    ({"vocab_size": 10, "d_model": 32, "n_layers": 1, "n_heads": 4, "n_layer": 1}, "did you mean n_layers"),
])
def test_bad_configs_are_refused(raw, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(raw)


def test_model_config_checks_direct_construction_too():
    with pytest.raises(ValueError, match=r'^field tie_embeddings must be true or false, got "no" \(a string\)$'):
        tiny_config(320, tie_embeddings="no")
    with pytest.raises(ValueError, match=r"^field n_layers must be an integer"):
        ModelConfig(vocab_size=320, d_model=32, n_layers=2.0, n_heads=2)


def test_forward_is_causal_and_padding_does_not_leak():
    config = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=2, max_seq_len=16)
    model = Transformer(config).eval()
    model.init_weights(0)
    ids = torch.randint(0, 50, (1, 10))
    padded = torch.cat([ids, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        assert torch.allclose(model(ids), model(padded)[:, :10], atol=1e-5)
        changed = ids.clone()
        changed[0, 7] = (changed[0, 7] + 1) % 50
        assert torch.allclose(model(ids)[:, :7], model(changed)[:, :7], atol=1e-5)
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        model(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize(("layers", "expansion"), [(1, 2.0), (3, 2.6667), (5, 4.0)])
def test_stored_shapes_from_the_config_are_the_modules_own(tie, layers, expansion):
    """The loader checks files against the config's arithmetic: it must be the real module's."""
    config = ModelConfig(vocab_size=300, d_model=32, n_layers=layers, n_heads=4, glu_expansion=expansion,
                         max_seq_len=64, tie_embeddings=tie)
    with torch.device("meta"):
        module = Transformer(config)
    real = {key: tuple(value.shape) for key, value in module.stored_state_dict().items()}
    assert list(config.stored_shapes().items()) == list(real.items())
