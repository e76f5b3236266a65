"""Model zoo: mixture and VampPrior priors, IAF posterior, hierarchical (ladder) VAE, ResNet arch.

Each model: shapes, a finite IWAE loss that decreases, the save/load round trip, importance-sampled NLL checked
against exact quadrature on a 2-D latent (so a wrong log q or log-determinant fails), densities checked against
torch.distributions / autograd, per-layer KL terms, free bits, config refusals and the CLI flags.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from tests.helpers import run_cli
from vaekit.core.checkpoint import load_model, save_model
from vaekit.core.config import ModelConfig, parameter_estimate
from vaekit.core.evaluate import evaluate
from vaekit.core.hierarchical import HierarchicalVAE
from vaekit.core.inference import log_weights, shared_eps, sir, snis
from vaekit.core.model import VAE
from vaekit.core.objectives import make_objective
from vaekit.errors import VaekitError
from vaekit.jobs.explore import latent as explore
from vaekit.jobs.impute.inpaint import inpaint

D = 16  # data dimension (4×4 binary images)
ZOO = {
    "mog": dict(prior="mog", prior_components=3),
    "vampprior": dict(prior="vampprior", prior_components=4),
    "iaf": dict(posterior="iaf", flow_steps=2, flow_hidden=12),
    "hvae": dict(stochastic_layers=2),
    "hvae3_vamp": dict(stochastic_layers=3, prior="vampprior", prior_components=3),
    "resnet": dict(arch="resnet", channels=(4,), resnet_blocks=1),
    "resnet_hvae_iaf_free": dict(arch="resnet", channels=(4, 4), stochastic_layers=2, prior="mog"),
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # tiny models: one thread is the fastest on a shared 2-core machine


def _data(n: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    protos = (torch.rand(2, D, generator=g) < 0.5).float()
    x = protos[torch.randint(0, 2, (n,), generator=g)]
    flip = (torch.rand(n, D, generator=g) < 0.1).float()
    return (x - flip).abs()


def _model(name: str, latent_dim: int = 3, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(ModelConfig(input_shape=(1, 4, 4), latent_dim=latent_dim, hidden=(16,), **ZOO[name]))


def _train(model: VAE, x: torch.Tensor, steps: int, objective: str = "iwae", **kw: float) -> list[float]:
    obj = make_objective(objective, k=4, warmup=0.0, **kw)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    model.train()
    for _ in range(steps):
        out = obj(model, x, None)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    model.eval()
    return losses


@pytest.mark.parametrize("name", list(ZOO))
def test_shapes_loss_decreases_and_round_trip(name: str, tmp_path: Path) -> None:
    model, x = _model(name), _data()
    L = model.config.stochastic_layers
    out = model(x, k=5)
    assert out.params.shape == (5, len(x), 1, D)
    assert out.z.shape == (5, len(x), 3 * L) and out.mu.shape[-2:] == out.logvar.shape[-2:] == (len(x), 3 * L)
    assert out.log_pz.shape == out.log_qz.shape == (5, len(x))
    assert model.encode(x)[0].shape == (len(x), 3)  # the top layer / the flow's Gaussian summary
    losses = _train(model, x, 30)
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses
    save_model(model, tmp_path / "m")
    again, _ = load_model(tmp_path / "m")
    assert type(again) is type(model) and again.config == model.config
    with torch.no_grad():
        a = model(x, k=3, generator=torch.Generator().manual_seed(1))
        b = again(x, k=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.params, b.params) and torch.equal(a.log_qz, b.log_qz) and torch.equal(a.log_pz, b.log_pz)
    n_weights = sum(t.numel() for t in model.state_dict().values())
    assert n_weights <= parameter_estimate(model.config)[0]  # the bound load_model enforces on weights files
    assert again.sample(4).shape == (4, D) and again.reconstruct(x[:2]).shape == (2, D)


def _grid_log_px(model: VAE, x: torch.Tensor, lim: float = 7.0, n: int = 201) -> torch.Tensor:
    """log p(x) by quadrature over a 2-D latent: log Σ_grid p(x|z) p(z) Δ² (for a ladder: z = (z_1, z_2))."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    z = torch.cartesian_prod(g, g).float()  # (G, 2)
    with torch.no_grad():
        log_pz = model.prior.log_prob(z).double()
        params = model.decode(z)
        log_px = model.likelihood.log_prob(params[:, None].expand(-1, len(x), -1, -1), x).double()  # (G, N)
    return torch.logsumexp(log_px + log_pz[:, None], 0) + 2 * math.log(float(g[1] - g[0]))


@pytest.mark.parametrize("name,latent", [("mog", 2), ("vampprior", 2), ("iaf", 2), ("hvae", 1)])
def test_is_nll_matches_quadrature_and_bounds(name: str, latent: int) -> None:
    """IS-NLL (k large) equals −log p(x) by quadrature; two seeds agree; it is ≤ −ELBO (k = 1) on other draws."""
    model, x = _model(name, latent_dim=latent), _data(8)
    _train(model, x, 40)
    exact = -_grid_log_px(model, x)
    a = evaluate(model, x, k=2000, batch_size=8, seed=1)
    b = evaluate(model, x, k=2000, batch_size=8, seed=2)
    assert abs(a["nll"] - b["nll"]) < 0.05
    assert abs(a["nll"] - float(exact.mean())) < 0.05, (a["nll"], float(exact.mean()))
    lw, _, _ = log_weights(model, x, 400, generator=torch.Generator().manual_seed(3))
    neg_elbo = float(-lw.mean())  # E_q[−log w], k = 1, averaged over 400 independent draws
    assert a["nll"] <= neg_elbo + 1e-3 and a["elbo"] <= -a["nll"] + 1e-3


@pytest.mark.parametrize("name,latent", [("mog", 2), ("vampprior", 2), ("iaf", 2), ("hvae", 1)])
def test_snis_and_inpainting_weight_every_zoo_model_exactly(name: str, latent: int) -> None:
    """The SNIS kernel behind imputation and inpainting: with every entry observed, log (1/L) Σ w_l is the IS
    estimate of log p(x) — it must match quadrature (a kernel that ignores the flow's log-det or the lower layers
    does not); SIR and inpainting run on the same draws."""
    model, x = _model(name, latent_dim=latent), _data(8)
    _train(model, x, 40)
    exact = -_grid_log_px(model, x)
    lik = model.likelihood
    eps = shared_eps(3000, model.noise_dim, seed=4)
    mean, log_w = snis(model, x, lambda p, sl: lik.log_prob(p, x[sl]), lambda p, sl: lik.mean(p), eps)
    nll = -(torch.logsumexp(log_w, 0) - math.log(len(eps)))
    assert torch.allclose(nll.double(), exact, atol=0.03), (nll, exact)  # top layer only: 0.054 off for hvae
    with torch.no_grad():  # the proposal is the model's own q (flow, every layer), not a Gaussian on its summary
        z, log_pz, log_qz = model.draw_latents(model.posterior_state(x), eps[:, None].expand(-1, len(x), -1))
        assert torch.allclose(log_w, lik.log_prob(model.decode(z), x) + log_pz - log_qz, atol=1e-4)
    assert mean.shape == (len(x), D) and torch.isfinite(mean).all()
    draws = sir(model, x, log_w, eps, 5, lambda p, sl: lik.sample(p), torch.Generator().manual_seed(0))
    assert draws.shape == (5, len(x), D)
    observed = torch.ones_like(x, dtype=torch.bool)
    observed[:, :4] = False
    filled, ess = inpaint(model, x, observed, n_samples=200)
    assert torch.equal(filled[:, 4:], x[:, 4:]) and ((filled[:, :4] > 0) & (filled[:, :4] < 1)).all()
    assert ess.shape == (len(x),) and (ess >= 1).all()
    with pytest.raises(VaekitError, match="noise width"):
        snis(model, x, lambda p, sl: lik.log_prob(p, x[sl]), lambda p, sl: lik.mean(p), eps[:, :1] if
             model.noise_dim > 1 else torch.cat([eps, eps], 1))


def test_iaf_log_det_matches_autograd_jacobian() -> None:
    model = _model("iaf", latent_dim=3)
    _train(model, _data(), 10)  # move the flow away from its near-identity initialisation
    flow, h = model.flow, torch.randn(1, model.encoder.out_dim)
    mu, logvar = torch.randn(1, 3), torch.randn(1, 3) * 0.3

    def f(z0: torch.Tensor) -> torch.Tensor:
        return flow(z0[None], mu, logvar, h)[0][0]

    z0 = torch.randn(3)
    jac = torch.autograd.functional.jacobian(f, z0)
    _, _, _, log_det = flow(z0[None], mu, logvar, h)
    assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, log_det[0], atol=1e-5)
    assert abs(float(torch.linalg.slogdet(jac).logabsdet)) > 1e-3  # not the identity
    # the effective Gaussian carries the exact density: log N(z; μ_T, σ²_T) = log q(z⁰) − log |det J|
    z, mu_t, lv_t, _ = flow(z0[None], mu, logvar, h)
    q0 = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z0[None])
    qt = Independent(Normal(mu_t, torch.exp(0.5 * lv_t)), 1).log_prob(z)
    assert torch.allclose(qt, q0 - log_det, atol=1e-5)


@pytest.mark.parametrize("name", ["mog", "vampprior"])
def test_mixture_log_prob_matches_torch_distributions(name: str) -> None:
    model = _model(name, latent_dim=3)
    _train(model, _data(), 5)
    means, logvars, lw = model.prior.components()
    ref = MixtureSameFamily(Categorical(logits=lw), Independent(Normal(means, torch.exp(0.5 * logvars)), 1))
    z = torch.randn(7, 5, 3) * 2
    with torch.no_grad():  # evaluation path (float64)
        assert torch.allclose(model.prior.log_prob(z), ref.log_prob(z), atol=1e-4)
    assert torch.allclose(model.prior.log_prob(z), ref.log_prob(z), atol=1e-3)  # training path (float32)
    s = model.prior.sample(2000, torch.Generator().manual_seed(0))
    assert s.shape == (2000, 3) and float(ref.log_prob(s).mean()) > float(ref.log_prob(z.reshape(-1, 3)).mean())
    if name == "vampprior":  # the components are the encoder at the pseudo-inputs
        mu, _ = model.encode(model.prior.pseudo_inputs)
        assert torch.allclose(means, mu)


def test_hierarchical_kl_terms_per_layer() -> None:
    model = _model("hvae3_vamp")
    assert isinstance(model, HierarchicalVAE)
    x = _data(6)
    with torch.no_grad():
        out = model(x, k=4, generator=torch.Generator().manual_seed(0))
    groups = model.kl_groups(out)
    assert len(groups) == 3  # bottom first: two Gaussian conditionals per dimension, the VampPrior top per layer
    assert [g[0].shape for g in groups] == [(4, 6, 3), (4, 6, 3), (4, 6, 1)] and [g[1] for g in groups] == [1, 1, 3]
    total = sum(v.sum(-1) for v, _ in groups)
    assert torch.allclose(total, out.log_qz - out.log_pz, atol=1e-4)
    zs, mus, lvs = out.z.split(3, -1), out.mu.split(3, -1), out.logvar.split(3, -1)
    with torch.no_grad():
        for i in range(2):  # layer i: log q(z_i | z_{i+1}, x) − log p(z_i | z_{i+1}), per dimension
            _, mu_p, lv_p = model.prior.conditional(i, zs[i + 1])
            q = Normal(mus[i], torch.exp(0.5 * lvs[i])).log_prob(zs[i])
            p = Normal(mu_p, torch.exp(0.5 * lv_p)).log_prob(zs[i])
            assert torch.allclose(groups[i][0], q - p, atol=1e-4)
        top = Independent(Normal(mus[2], torch.exp(0.5 * lvs[2])), 1).log_prob(zs[2]) - model.prior.top.log_prob(zs[2])
        assert torch.allclose(groups[2][0][..., 0], top, atol=1e-4)
        # the joint prior from z alone and log q from (z, μ, σ²): what the trainer's validation uses
        assert torch.allclose(model.prior.log_prob(out.z), out.log_pz, atol=1e-4)
        assert torch.allclose(model.log_q(out.z, out.mu, out.logvar), out.log_qz, atol=1e-4)
    assert [float(t.mean()) for t in model.kl_per_layer(out)] == [float(v.sum(-1).mean()) for v, _ in groups]


def test_free_bits_per_group_and_warm_up() -> None:
    model, x = _model("hvae"), _data()
    torch.manual_seed(0)
    plain = make_objective("iwae", k=4)(model, x)
    torch.manual_seed(0)
    freed = make_objective("iwae", k=4, free_bits=50.0)(model, x)  # every KL term below its floor
    assert torch.allclose(plain.loss, freed.loss)  # the bound's value is kept …
    g_plain = torch.autograd.grad(plain.loss, model.ladder.q_heads[0].weight)[0]
    g_freed = torch.autograd.grad(freed.loss, model.ladder.q_heads[0].weight)[0]
    assert not torch.allclose(g_plain, g_freed)  # … the KL's pull on q is gone
    torch.manual_seed(0)
    elbo = make_objective("elbo", free_bits=50.0)(model, x)
    assert float(elbo.loss) == pytest.approx(float(elbo.recon) + 50.0 * 2 * 3, rel=1e-5)  # Σ floors: λ·L·d
    torch.manual_seed(0)
    warm = make_objective("iwae", k=4, warmup=10.0)(model, x, None, 5.0)  # half-way through the warm-up: β = ½
    torch.manual_seed(0)
    half = make_objective("iwae", k=4, beta=0.5)(model, x)
    assert torch.equal(warm.loss, half.loss) and not torch.allclose(warm.loss, plain.loss)


def test_explore_uses_the_top_layer_and_mixture_kl() -> None:
    x = _data()
    for name in ("hvae3_vamp", "mog", "iaf"):
        model = _model(name)
        _train(model, x, 5)
        info = explore.kl_per_dimension(model, x)
        assert len(info["kl"]) == 3 and all(math.isfinite(v) for v in info["kl"])
        z = explore.encode(model, x[:2])
        assert z.shape == (2, 3) and explore.decode(model, z).shape == (2, D)
        assert explore.interpolate(model, x[0], x[1], steps=3).shape == (3, D)


@pytest.mark.parametrize("kw,needle", [
    (dict(prior="nope"), "prior 'nope' is not one of"),
    (dict(posterior="made"), "posterior 'made' is not one of"),
    (dict(posterior="iaf", stochastic_layers=2), "posterior 'iaf' applies to one stochastic layer"),
    (dict(prior="vampprior", n_conditions=3), "prior 'vampprior' cannot be combined with a conditional model"),
    (dict(arch="resnet", input_shape=(16,)), "arch 'resnet' needs input_shape (C, H, W)"),
    (dict(stochastic_layers=0), "stochastic_layers must be an integer in 1..16"),
    (dict(prior_components=5), "prior_components applies to the mixture priors"),
])
def test_bad_combinations_are_refused_in_one_line(kw: dict, needle: str) -> None:
    args = dict(input_shape=(1, 4, 4), latent_dim=3, hidden=(8,))
    args.update(kw)
    with pytest.raises(VaekitError) as e:
        ModelConfig(**args)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_default_config_document_is_unchanged() -> None:
    """Zoo fields at their defaults stay out of config.json: older folders' checksums and fingerprints hold."""
    d = ModelConfig().to_dict()
    assert not {"stochastic_layers", "posterior", "prior_components", "flow_steps", "flow_hidden",
                "resnet_blocks"} & set(d)
    cfg = ModelConfig(stochastic_layers=2, prior="vampprior")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["stochastic_layers"] == 2


@pytest.mark.parametrize("flags,kind,expect", [
    (["--prior", "vampprior", "--prior-components", "5", "--stochastic-layers", "2"], HierarchicalVAE,
     dict(prior="vampprior", prior_components=5, stochastic_layers=2)),
    (["--posterior", "iaf", "--flow-steps", "1", "--prior", "mog"], VAE,
     dict(posterior="iaf", flow_steps=1, prior="mog")),
])
def test_cli_flags_build_the_model(flags: list[str], kind: type, expect: dict, tiny_npz: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--data", tiny_npz, "--out", out, "--epochs", "1", "--latent-dim", "2",
                           "--hidden", "8", "--no-progress", *flags)
    assert code == 0, err
    model, _ = load_model(out / "model")
    assert type(model) is kind
    for key, value in expect.items():
        assert getattr(model.config, key) == value
    doc = json.loads((out / "model" / "config.json").read_text())
    assert all(doc["model"][k] == v for k, v in expect.items())
    code, _, err = run_cli(capsys, "train", "--data", tiny_npz, "--out", tmp_path / "bad", "--posterior", "iaf",
                           "--stochastic-layers", "2")
    assert code == 2 and "posterior 'iaf' applies to one stochastic layer" in err


def test_vampprior_cache_follows_optimizer_steps() -> None:
    """The no-grad evaluation cache of the pseudo-input encodings must not survive a training step (fused Adam on
    CPU does not bump parameter versions): validation during training used to score with a stale prior."""
    torch.manual_seed(0)
    m = VAE(ModelConfig(input_shape=(16,), latent_dim=2, hidden=(8,), prior="vampprior", prior_components=4))
    z = torch.randn(5, 2)
    opt = torch.optim.Adam(m.parameters(), lr=0.1, fused=True)
    m.eval()
    with torch.no_grad():
        before = m.prior.log_prob(z)
    m.train()
    x = (torch.rand(8, 16) < 0.5).float()
    loss = -m.log_px(m(x).params, x).mean() - m.prior.log_prob(z).mean()
    loss.backward()
    opt.step()
    m.eval()
    with torch.no_grad():
        cached = m.prior.log_prob(z)
    fresh = m.prior.log_prob(z)  # grad enabled: computed anew
    assert not torch.allclose(before, fresh) and torch.allclose(cached, fresh.detach())


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_model_trains_and_scores_on_cuda_like_on_the_cpu(name: str, tmp_path: Path) -> None:
    """The Trainer fits each zoo model on CUDA (bf16 autocast), the best weights load back, and the IS-NLL of the
    same weights on the GPU and on the CPU agree (same draws: the evaluation's generator lives on the CPU)."""
    from vaekit.core.config import TrainConfig
    from vaekit.core.trainer import Trainer

    model, x = _model(name), _data(200)
    cfg = TrainConfig(epochs=3, batch_size=50, objective="iwae", iwae_k=4, warmup_epochs=1.0, precision="bf16",
                      device="cuda", seed=0)
    hist = Trainer(model, cfg, out_dir=tmp_path / "run", progress=False).fit(x, x[:50])
    assert len(hist.epochs) == 3 and all(math.isfinite(r["train_loss"]) for r in hist.epochs)
    best, _ = load_model(tmp_path / "run" / "model")
    on_gpu = evaluate(best.to("cuda"), x[:40].to("cuda"), k=64, batch_size=20, seed=3)
    on_cpu = evaluate(best.to("cpu"), x[:40], k=64, batch_size=20, seed=3)
    assert math.isfinite(on_gpu["nll"]) and abs(on_gpu["nll"] - on_cpu["nll"]) < 1e-3 * abs(on_cpu["nll"]) + 1e-3
    assert best.sample(3).shape == (3, D)
