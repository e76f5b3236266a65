import numpy as np
import pytest
import torch

from vaekit.core.config import ModelConfig
from vaekit.core.model import VAE
from vaekit.errors import VaekitError
from vaekit.jobs.explore import latent as explore


def _model(latent=3):
    torch.manual_seed(0)
    return VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=latent, hidden=(16,))).eval()


def test_encode_returns_mean_unless_asked_to_sample():
    m = _model()
    x = torch.rand(5, 16)
    mu, _ = m.encode(x)
    assert torch.equal(explore.encode(m, x), mu)
    assert not torch.equal(explore.encode(m, x, sample=True, generator=torch.Generator().manual_seed(0)), mu)


def test_slerp_keeps_norm_between_equal_norm_endpoints_and_hits_endpoints():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = explore.slerp(z0, z1, torch.linspace(0, 1, 5))
    assert torch.allclose(path.norm(dim=1), torch.full((5,), 3.0), atol=1e-5)
    assert torch.allclose(path[0], z0, atol=1e-6) and torch.allclose(path[-1], z1, atol=1e-6)
    lin = 0.5 * (z0 + z1)
    assert path[2].norm() > lin.norm()  # spherical path does not cut through the low-density centre


def test_interpolation_endpoints_are_reconstructions():
    m = _model()
    x = torch.rand(2, 16)
    path = explore.interpolate(m, x[0], x[1], steps=6, method="linear")
    rec = m.reconstruct(x)
    assert path.shape == (6, 16)
    assert torch.allclose(path[0], rec[0], atol=1e-6) and torch.allclose(path[-1], rec[1], atol=1e-6)
    with pytest.raises(VaekitError, match="steps"):
        explore.interpolate(m, x[0], x[1], steps=1)


def test_traversal_changes_only_along_the_chosen_dimension():
    m = _model()
    out = explore.traverse(m, dims=[1], values=[-2, 0, 2])
    assert out.shape == (1, 3, 16)
    assert torch.allclose(out[0, 1], explore.decode(m, torch.zeros(1, 3))[0], atol=1e-6)
    assert not torch.allclose(out[0, 0], out[0, 2])
    with pytest.raises(VaekitError, match="latent dimensions"):
        explore.traverse(m, dims=[5])


def test_latent_map_and_embedding_shapes():
    m = _model()
    assert explore.latent_map(m, grid=4).shape == (4, 4, 16)
    with pytest.raises(VaekitError):
        explore.latent_map(_model(latent=1))
    emb = explore.embed(np.random.default_rng(0).normal(size=(30, 5)))
    assert emb.shape == (30, 2)


def test_attribute_vector_moves_codes_towards_the_group():
    z = torch.cat([torch.zeros(10, 3), torch.ones(10, 3)])
    v = explore.attribute_vector(z, np.r_[np.zeros(10), np.ones(10)].astype(bool))
    assert torch.allclose(v, torch.ones(3))
    with pytest.raises(VaekitError):
        explore.attribute_vector(z, np.ones(20, bool))
    out = explore.apply_attribute(_model(), torch.rand(2, 16), torch.ones(3), alphas=(0, 1))
    assert out.shape == (2, 2, 16)


def test_kl_per_dimension_flags_inactive_units():
    m = _model()
    with torch.no_grad():  # make dimension 2 ignore the input: its posterior mean is constant
        m.to_posterior.weight[2].zero_()
    info = explore.kl_per_dimension(m, torch.rand(100, 16))
    assert info["active"][2] is False and len(info["kl"]) == 3


def test_mig_is_high_for_disentangled_and_low_for_entangled_codes():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 5, size=(2000, 2))
    z_good = f + 0.05 * rng.normal(size=f.shape)
    mixed = np.c_[f[:, 0] + f[:, 1], f[:, 0] + f[:, 1]] + 0.05 * rng.normal(size=f.shape)
    assert explore.mig(z_good, f) > 0.8
    assert explore.mig(mixed, f) < 0.2


def test_sample_near_stays_close_and_gif(tmp_path):
    m = _model()
    x = torch.rand(1, 16)
    near = explore.sample_near(m, x, n=8, scale=0.0)
    assert torch.allclose(near, m.reconstruct(x).expand(8, -1), atol=1e-6)
    frames = (np.random.default_rng(0).random((4, 4, 4)) * 255).astype(np.uint8)
    explore.gif(tmp_path / "a.gif", frames)
    from PIL import Image

    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 6


def test_latent_cli_commands_write_their_pictures(tmp_path, capsys):
    import json as _json

    from tests.helpers import run_cli

    rng = np.random.default_rng(0)
    protos = rng.random((3, 36)) < 0.4

    def make(n):
        y = rng.integers(0, 3, n)
        return (protos[y] ^ (rng.random((n, 36)) < 0.05)).reshape(n, 6, 6).astype(np.uint8) * 255, y

    (xtr, ytr), (xte, yte) = make(300), make(60)
    d, run = tmp_path / "d.npz", tmp_path / "run"
    np.savez(d, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    code, _, err = run_cli(capsys, "train", "--data", d, "--out", run, "--epochs", 3, "--latent-dim", 3, "--hidden", 32,
                           "--no-progress")
    assert code == 0, err
    for name, args in (("i.png", ["interpolate", run, "--data", d]), ("t.png", ["traverse", run]),
                       ("m.png", ["map", run]), ("e.png", ["embed", run, "--data", d]),
                       ("n.png", ["near", run, "--data", d, "--n", 5, "--index", 2]),
                       ("a.png", ["attribute", run, "--data", d, "--with-label", 1, "--n", 3])):
        code, out, err = run_cli(capsys, "latent", *args, "-o", tmp_path / name)
        assert code == 0 and (tmp_path / name).stat().st_size > 0, (name, err)
    assert (tmp_path / "i.gif").is_file()
    first = (tmp_path / "n.png").read_bytes()
    run_cli(capsys, "latent", "near", run, "--data", d, "--n", 5, "--index", 2, "-o", tmp_path / "n2.png")
    assert (tmp_path / "n2.png").read_bytes() == first  # seeded
    code, out, _ = run_cli(capsys, "latent", "kl", run, "--data", d)
    res = _json.loads(out)
    assert code == 0 and len(res["kl"]) == 3 and 0 <= res["mig"] <= 1
    np.save(tmp_path / "nolabels.npy", xte)
    code, _, err = run_cli(capsys, "latent", "attribute", run, "--data", tmp_path / "nolabels.npy", "--with-label", 1,
                           "-o", tmp_path / "b.png")
    assert code == 2 and "need labels" in err
    code, _, err = run_cli(capsys, "latent", "attribute", run, "--data", d, "--with-label", 7, "-o", tmp_path / "b.png")
    assert code == 2 and "no examples with label 7" in err
