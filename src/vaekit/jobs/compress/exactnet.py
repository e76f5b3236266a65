"""The VAE's encoder and decoder evaluated exactly: the same output bits for any batch size, thread count or device.

A float64 copy of the networks has every weight rounded to 2^-16 and every bias to 2^-32; forward hooks round
each activation correctly to 2^-16 (:func:`~vaekit.jobs.compress.fixedpoint.activation`) and check, before each
Linear/Conv layer, that max|a|·max_o Σ_i|W_oi| + max|b| < 2^21 (and, on the construction probe, that its input
lies on the 2^-16 grid). Then every
product is a multiple of 2^-32 below 2^21 in magnitude, every partial sum is exactly representable in float64
(53 bits), and a matrix product is exact whatever its summation order: y = W·a + b holds with no rounding at all.
The posterior's log-variance squash λ = lo + softplus(hi − softplus(hi − r) − lo) uses the same correctly rounded
softplus. At construction the exact networks are compared with the float model on a probe batch, so an
architecture whose forward applies an operation the hooks do not see is refused rather than coded inexactly.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from vaekit.errors import VaekitError
from vaekit.jobs.compress import fixedpoint as fx

W_BITS, A_BITS = 16, 16
SUM_LIMIT = 2.0 ** (53 - W_BITS - A_BITS)
_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
_ACTS = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.ELU: "elu", nn.GELU: "gelu", nn.Softplus: "softplus", nn.SiLU: "silu"}
_PASS = (nn.Sequential, nn.Identity, nn.Flatten, nn.Unflatten)


def check_supported(model: Any) -> None:
    """Refuse (one line) models this coder does not handle: flows, other priors, conditions."""
    cfg = model.config
    if getattr(cfg, "posterior", "gaussian") != "gaussian" or cfg.prior != "standard_normal":
        raise VaekitError("bits-back coding supports VAEs with Gaussian posteriors and the N(0, I) prior (of the top "
                          f"layer); this model has {getattr(cfg, 'stochastic_layers', 1)} stochastic layer(s), "
                          f"posterior {getattr(cfg, 'posterior', 'gaussian')!r}, prior {cfg.prior!r}")
    if cfg.n_conditions:
        raise VaekitError("bits-back coding of a conditional model is not supported (labels are not coded)")


def _name(m: nn.Module) -> str:
    for cls, name in _ACTS.items():
        if type(m) is cls:
            ok = (not isinstance(m, nn.ELU) or m.alpha == 1.0) and (not isinstance(m, nn.GELU) or m.approximate ==
                                                                  "none") and (not isinstance(m, nn.Softplus)
                                                                               or m.beta == 1.0)
            if ok:
                return name
    raise VaekitError(f"bits-back coding cannot evaluate a {type(m).__name__} layer exactly")


class ExactNet:
    """Exact float64 evaluation of ``model.encoder`` → ``to_posterior`` and of ``model.decoder``; for a
    hierarchical (ladder) VAE also of the bottom-up layers and of each layer's prior p(z_i | z_{i+1}) and
    posterior q(z_i | z_{i+1}, x) (:mod:`vaekit.core.hierarchical`)."""

    def __init__(self, model: Any, device: str | torch.device = "cpu") -> None:
        check_supported(model)
        self.device = torch.device(device)
        self.cfg = model.config
        self.checking = True  # grid checks while probing; the bound check always
        self.encoder = self._exact(model.encoder)
        self.head = self._exact(model.to_posterior)
        self.decoder = self._exact(model.decoder)
        self.layers = int(getattr(self.cfg, "stochastic_layers", 1))
        ladder, topdown = (model.ladder, model.prior.topdown) if self.layers > 1 else (None, None)
        self.up = [self._exact(m) for m in ladder.up] if ladder is not None else []
        self.q_heads = [self._exact(m) for m in ladder.q_heads] if ladder is not None else []
        self.down = [self._exact(m) for m in topdown.down] if topdown is not None else []
        self.p_heads = [self._exact(m) for m in topdown.p_heads] if topdown is not None else []
        self._probe(model)
        self.checking = False

    # --- construction ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _exact(self, module: nn.Module) -> nn.Module:
        m = copy.deepcopy(module).double().to(self.device).eval().requires_grad_(False)
        for sub in m.modules():
            if isinstance(sub, _LAYERS):
                with torch.no_grad():
                    sub.weight.copy_(torch.round(sub.weight * 2.0 ** W_BITS) * 2.0 ** -W_BITS)
                    if sub.bias is not None:
                        sub.bias.copy_(torch.round(sub.bias * 2.0 ** (W_BITS + A_BITS)) * 2.0 ** -(W_BITS + A_BITS))
                dims = (1,) if isinstance(sub, nn.Linear) else ((1, 2, 3) if isinstance(sub, nn.Conv2d) else (0, 2, 3))
                l1 = float(sub.weight.abs().sum(dims).max()) if sub.weight.numel() else 0.0
                b = float(sub.bias.abs().max()) if sub.bias is not None and sub.bias.numel() else 0.0
                sub.register_forward_pre_hook(_grid_check(self, l1, b, type(sub).__name__))
            elif type(sub) in _ACTS:
                sub.register_forward_hook(_exact_activation(_name(sub)))
            elif isinstance(sub, (*_PASS, nn.Dropout)):
                continue
            elif list(sub.parameters(recurse=False)) or list(sub.buffers(recurse=False)) or not list(sub.children()):
                raise VaekitError(f"bits-back coding cannot evaluate a {type(sub).__name__} layer exactly "
                                  "(supported: Linear, Conv2d, ConvTranspose2d and the registered activations)")
        return m

    def _probe(self, model: Any) -> None:
        """The exact networks must agree with the float model (to the weight rounding) on a probe batch."""
        g = torch.Generator().manual_seed(0)
        d = int(np.prod(self.cfg.input_shape))
        x = torch.rand(4, d, generator=g, dtype=torch.float64)
        z = torch.randn(4, self.cfg.latent_dim, generator=g, dtype=torch.float64)
        xq, zq = torch.round(x * 2.0 ** A_BITS) * 2.0 ** -A_BITS, torch.round(z * 2.0 ** A_BITS) * 2.0 ** -A_BITS
        ref = copy.deepcopy(model).double().eval().cpu()
        errs = []
        with torch.no_grad():
            mu_r, lv_r = ref.encode(xq)
            p_r = ref.decoder(zq) if self.layers > 1 else ref.decode(zq)
            mu, lv, hs = self.bottom_up(xq.numpy())
            errs += [mu - mu_r.numpy(), lv - lv_r.numpy(), self.decode(zq.numpy()) - p_r.numpy()]
            if self.layers > 1:
                hs_r = ref._bottom_up(xq, None)
                for i in range(self.layers - 1):
                    t, mp_r, lp_r = ref.prior.conditional(i, zq)
                    mq_r, lq_r = ref._head(ref.ladder.q_heads[i], torch.cat([hs_r[i], t], -1))
                    got = self.step_down(i, zq.numpy(), hs[i])
                    errs += [g - r.numpy() for g, r in zip(got, (mp_r, lp_r, mq_r, lq_r))]
        err = max(float(np.abs(e).max()) for e in errs)
        if not np.isfinite(err) or err > 1e-2:
            raise VaekitError(f"bits-back coding cannot evaluate this {self.cfg.arch!r} model exactly (its forward "
                              f"differs from the exact evaluation by {err:.3g}); supported: MLP/conv VAEs")

    # --- evaluation ---------------------------------------------------------------------------------------------------
    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=self.device)

    def _gaussian(self, raw: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(μ, λ) from a head's output [μ, r]: λ = lo + softplus(hi − softplus(hi − r) − lo), correctly rounded."""
        mu, r = raw.chunk(2, dim=-1)
        lo, hi = float(self.cfg.logvar_min), float(self.cfg.logvar_max)
        inner = hi - fx.softplus(hi - r, A_BITS)
        lv = lo + fx.softplus(inner - lo, A_BITS)
        return mu.cpu().numpy(), lv.cpu().numpy()

    def bottom_up(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(μ, λ) of the top layer's q(z_L|x) and the features h_1 … h_{L−1} of the lower layers (none for L = 1),
        for model-space inputs x (N, D) on the 2^-16 grid, exactly (float64)."""
        with torch.no_grad(), _plain_kernels():
            hs = [self.encoder(self._tensor(x))]
            for up in self.up:
                hs.append(up(hs[-1]))
            mu, lv = self._gaussian(self.head(hs[-1]))
        return mu, lv, [h.cpu().numpy() for h in hs[:-1]]

    def step_down(self, i: int, z_above: np.ndarray, h: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """(μ_p, λ_p) of p(z_i | z̄_{i+1}) and, given the features h_i, (μ_q, λ_q) of q(z_i | z̄_{i+1}, x), exactly
        (layer i = 0 is the bottom; z̄ on the 2^-16 grid)."""
        t, *prior = self.prior_step(i, z_above)
        return (*prior,) if h is None else (*prior, *self.posterior_step(i, t, h))

    def prior_step(self, i: int, z_above: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, μ_p, λ_p): the top-down features t = down_i(z̄_{i+1}) and p(z_i | z̄_{i+1}), exactly."""
        with torch.no_grad(), _plain_kernels():
            t = self.down[i](self._tensor(z_above))
            return (t.cpu().numpy(), *self._gaussian(self.p_heads[i](t)))

    def posterior_step(self, i: int, t: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(μ_q, λ_q) of q(z_i | z̄_{i+1}, x) = head_i([h_i, t]) from the features of :meth:`prior_step`, exactly."""
        with torch.no_grad(), _plain_kernels():
            return self._gaussian(self.q_heads[i](torch.cat([self._tensor(h), self._tensor(t)], -1)))

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Decoder parameters θ(z̄) (N, P, D) for latents z̄ (N, d) on the 2^-16 grid, exactly (float64)."""
        with torch.no_grad(), _plain_kernels():
            return self.decoder(self._tensor(z)).cpu().numpy()


@contextlib.contextmanager
def _plain_kernels() -> Iterator[None]:
    """Convolutions as plain sums of products (im2col), never cuDNN's FFT/Winograd algorithms, whose rounding would
    break exactness; on CPU, float64 convolutions take that path anyway (oneDNN has no float64 convolution)."""
    with torch.backends.cudnn.flags(enabled=False):
        yield


def model_input(x: np.ndarray, likelihood: Any) -> np.ndarray:
    """Symbols → model space (``symbols_to_model``) rounded to the 2^-16 activation grid (exact IEEE steps)."""
    return np.rint(likelihood.symbols_to_model(x) * 2.0 ** A_BITS) * 2.0 ** -A_BITS


def _grid_check(net: ExactNet, l1: float, bias: float, what: str) -> Any:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        a = inputs[0]
        if net.checking and not bool(torch.equal(a * 2.0 ** A_BITS, torch.round(a * 2.0 ** A_BITS))):
            raise VaekitError(f"bits-back coding: a {what} layer receives values off the 2^-16 grid (the model "
                              "applies an operation the exact evaluation does not see)")
        bound = _absmax(a) * l1 + bias
        if not bound < SUM_LIMIT:
            raise VaekitError(f"bits-back coding: a {what} layer's sums may reach {bound:.3g} ≥ 2^21, too large to "
                              "evaluate exactly (weights or activations far outside the usual range)")
    return hook


def _absmax(a: torch.Tensor) -> float:
    """max|a| in one pass without a temporary (0 for an empty tensor)."""
    if not a.numel():
        return 0.0
    lo, hi = torch.aminmax(a)
    return max(-float(lo), float(hi))


def _exact_activation(name: str) -> Any:
    fn, ref = fx.ACTIVATIONS[name]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        approx = fn(inputs[0]) if name == "softplus" else output  # nn.Softplus returns x itself above 20
        return fx.round_correctly_torch(approx, inputs[0], ref, A_BITS)
    return hook
