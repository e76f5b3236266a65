import json

import pytest
import torch

from vaekit.core.config import ModelConfig, TrainConfig
from vaekit.core.model import VAE
from vaekit.errors import VaekitError


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 13, 17), (1, 8, 8)])
def test_conv_vae_shapes_any_image_size(shape):
    cfg = ModelConfig(input_shape=shape, arch="conv", latent_dim=4, hidden=(32,), channels=(8, 16),
                      likelihood="logistic")
    m = VAE(cfg)
    x = torch.rand(3, cfg.data_dim) * 2 - 1
    out = m(x)
    assert out.params.shape == (3, 2, cfg.data_dim)
    assert m(x, k=5).params.shape == (5, 3, 2, cfg.data_dim)


def test_logvar_stays_in_range_even_for_extreme_inputs():
    m = VAE(ModelConfig(input_shape=(10,), latent_dim=3, hidden=(8,), logvar_min=-6, logvar_max=2))
    with torch.no_grad():
        m.to_posterior.bias.fill_(1e4)
        _, lv_hi = m.encode(torch.rand(4, 10))
        m.to_posterior.bias.fill_(-1e4)
        _, lv_lo = m.encode(torch.rand(4, 10))
    assert lv_hi.max() <= 2 + 1e-3 and lv_lo.min() >= -6 - 1e-3  # soft clamp: within 1e-3


def test_configs_round_trip_through_json():
    m = ModelConfig(input_shape=(1, 28, 28), arch="conv", hidden=(64,), channels=(4, 8), likelihood="gaussian_learned")
    assert ModelConfig.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    t = TrainConfig(objective="iwae", iwae_k=7, free_bits=0.1, warmup_epochs=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    with pytest.raises(VaekitError, match="unknown key"):
        ModelConfig.from_dict({"latent_dimm": 3})
    with pytest.raises(VaekitError, match="likelihood"):
        ModelConfig(likelihood="poisson")


def test_conditional_model_uses_condition():
    m = VAE(ModelConfig(input_shape=(6,), latent_dim=2, hidden=(8,), n_conditions=3))
    z = torch.zeros(1, 2)
    a = m.decode(z, torch.tensor([0]))
    b = m.decode(z, torch.tensor([2]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="conditional"):
        m.decode(z)


def test_config_before_data_takes_the_arch_rank_from_the_registry() -> None:
    """The CLI builds the model settings before reading the data: the stand-in shape comes from the encoder's
    registry entry (no switch on the arch name), bad names are refused at once, and the real shape replaces it."""
    from dataclasses import replace

    from vaekit.core.nn.blocks import ENCODERS
    from vaekit.errors import VaekitError

    for arch in ("mlp", "conv", "resnet"):
        cfg = ModelConfig.before_data(arch=arch, latent_dim=4)
        assert cfg.input_shape == ENCODERS.get(arch).example_shape
        assert len(cfg.input_shape) == (3 if arch != "mlp" else 1)
    shaped = replace(ModelConfig.before_data(arch="conv"), input_shape=(3, 16, 16))
    assert VAE(shaped).encode(torch.zeros(2, 3, 16, 16))[0].shape == (2, shaped.latent_dim)
    with pytest.raises(VaekitError, match="arch"):
        ModelConfig.before_data(arch="transformer")
    with pytest.raises(VaekitError, match="prior"):
        ModelConfig.before_data(prior="nope")
