"""Hierarchical VAE with top-down inference: L ≥ 2 stochastic layers z_1 (bottom) … z_L (top), latent_dim each.

    p(x, z) = p(x | z_1) · Π_{i<L} p(z_i | z_{i+1}) · p(z_L),     q(z | x) = q(z_L | x) · Π_{i<L} q(z_i | z_{i+1}, x)

p(z_L) is the configured prior (standard normal, mixture or VampPrior on the top layer); the networks are in
:mod:`vaekit.core.nn.ladder`. The latent space of ``encode``/``decode``/``prior.sample`` (what exploration, the
jobs and the CLI see) is the top layer z_L; a full draw concatenates the layers bottom first (…, N, L·d): that is
what ``forward``, ``draw_latents`` and ``decode`` of a full draw use. ``decode(z_L)`` runs the top-down pass
with every lower layer at its prior mean. KL terms: per layer, log q − log p per dimension (Monte Carlo).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vaekit.core.config import ModelConfig
from vaekit.core.model import MODEL_FAMILIES, VAE, KLGroup, PosteriorState, VAEOutput, noise, soft_logvar
from vaekit.core.nn.ladder import BottomUp, TopDown
from vaekit.core.priors import LOG_2PI, Prior, gaussian_log_prob, gaussian_log_prob_dims
from vaekit.errors import VaekitError


class HierarchicalPrior(Prior):
    """p(z) = p(z_L) Π_{i<L} p(z_i | z_{i+1}); ``log_prob``/``kl``/``sample`` of a top-layer z (…, d) are the top
    prior's, ``log_prob`` of a full draw (…, L·d) is the joint."""

    def __init__(self, top: Prior, cfg: ModelConfig, width: int) -> None:
        super().__init__(cfg.latent_dim)
        self.top = top
        self.topdown = TopDown(cfg.stochastic_layers, cfg.latent_dim, width, cfg.activation)
        self.layers, self.lo, self.hi = cfg.stochastic_layers, cfg.logvar_min, cfg.logvar_max

    def bind(self, model: Any) -> None:
        self.top.bind(model)

    def conditional(self, i: int, z_above: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t_i, μ_p, log σ²_p) of p(z_i | z_{i+1}) for layer i (0 = bottom)."""
        t = self.topdown.down[i](z_above)
        mu, raw = self.topdown.p_heads[i](t).chunk(2, -1)
        return t, mu, soft_logvar(raw, self.lo, self.hi)

    def _split(self, z: torch.Tensor) -> list[torch.Tensor]:
        d = self.latent_dim
        if z.shape[-1] != self.layers * d:
            raise VaekitError(f"a hierarchical latent has {d} (top layer) or {self.layers * d} (all layers) "
                              f"dimensions, got {z.shape[-1]}")
        return list(z.split(d, -1))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] == self.latent_dim:
            return self.top.log_prob(z)
        zs = self._split(z.to(self.topdown.p_heads[0].weight.dtype))  # e.g. a bf16 draw made under autocast
        total = self.top.log_prob(zs[-1])
        for i in range(self.layers - 2, -1, -1):
            _, mu, logvar = self.conditional(i, zs[i + 1])
            total = total + gaussian_log_prob(zs[i], mu, logvar)
        return total

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        return self.top.kl(mu, logvar) if mu.shape[-1] == self.latent_dim else None

    def kl_dims(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        return self.top.kl_dims(mu, logvar) if mu.shape[-1] == self.latent_dim else None

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """z_L ~ p(z_L) (the top layer, the space of ``encode``)."""
        return self.top.sample(n, generator, temperature)

    @torch.no_grad()
    def sample_full(self, n: int, generator: torch.Generator | None = None,
                    temperature: float = 1.0) -> torch.Tensor:
        """Ancestral draw z_L ~ p(z_L), z_i ~ p(z_i | z_{i+1}) (each scaled by temperature) → (n, L·d), bottom first."""
        dev = next(self.topdown.parameters()).device
        zs = [self.top.sample(n, generator, temperature).to(dev)]
        for i in range(self.layers - 2, -1, -1):
            _, mu, logvar = self.conditional(i, zs[0])
            zs.insert(0, mu + temperature * torch.exp(0.5 * logvar) * noise(mu.shape, mu, generator))
        return torch.cat(zs, -1)


@MODEL_FAMILIES.register("hierarchical")
class HierarchicalVAE(VAE):
    """Ladder VAE: bottom-up features h_1 … h_L, then top-down z_L ~ q(z_L|x), z_i ~ q(z_i | z_{i+1}, x)."""

    prior: HierarchicalPrior

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)  # encoder, top-layer head (to_posterior), decoder p(x|z_1), top prior
        if self.flow is not None:
            raise VaekitError("a hierarchical model has Gaussian layers: posterior 'iaf' is not available")
        width = self.encoder.out_dim
        self.ladder = BottomUp(config.stochastic_layers, config.latent_dim, width, config.activation)
        self.prior = HierarchicalPrior(self.prior, config, width)
        self.prior.bind(self)
        self.layers = config.stochastic_layers

    # --- inference ------------------------------------------------------------------------------
    def _bottom_up(self, x: torch.Tensor, c: torch.Tensor | None) -> list[torch.Tensor]:
        hs = [self.encoder(self._with_condition(x.flatten(1), c))]
        for up in self.ladder.up:
            hs.append(up(hs[-1]))
        return hs

    def _head(self, layer: nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = layer(h).chunk(2, -1)
        return mu, soft_logvar(raw, self.config.logvar_min, self.config.logvar_max)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of the top layer's q(z_L | x)."""
        return self._head(self.to_posterior, self._bottom_up(x, c)[-1])

    def posterior_state(self, x: torch.Tensor, c: torch.Tensor | None = None) -> PosteriorState:
        hs = self._bottom_up(x, c)
        mu, logvar = self._head(self.to_posterior, hs[-1])
        return PosteriorState(mu, logvar, tuple(hs[:-1]))

    @property
    def noise_dim(self) -> int:
        return self.layers * self.config.latent_dim

    def _top_down(self, state: PosteriorState, eps: torch.Tensor) -> VAEOutput:
        """All layers from ε (…, N, L·d): z, q's parameters, log p, log q and the per-layer KL terms (no decoding)."""
        d, hs = self.config.latent_dim, state.context
        es = list(eps.split(d, -1))
        mu_l, lv_l = state.mu.expand_as(es[-1]), state.logvar.expand_as(es[-1])
        z = mu_l + torch.exp(0.5 * lv_l) * es[-1]
        lq_dims = -0.5 * (es[-1].pow(2) + lv_l + LOG_2PI)
        top = self.prior.top
        if top.factorized:
            lp_dims = top.log_prob_dims(z)
            groups: list[KLGroup] = [(lq_dims - lp_dims, 1)]
            log_p = lp_dims.sum(-1)
        else:
            log_p = top.log_prob(z)
            groups = [((lq_dims.sum(-1) - log_p).unsqueeze(-1), d)]
        log_q = lq_dims.sum(-1)
        zs, mus, lvs = [z], [mu_l], [lv_l]
        for i in range(self.layers - 2, -1, -1):
            t, mu_p, lv_p = self.prior.conditional(i, zs[0])
            h = hs[i].expand(*t.shape[:-1], hs[i].shape[-1])
            mu_q, lv_q = self._head(self.ladder.q_heads[i], torch.cat([h, t], -1))
            z = mu_q + torch.exp(0.5 * lv_q) * es[i]
            lq = -0.5 * (es[i].pow(2) + lv_q + LOG_2PI)
            lp = gaussian_log_prob_dims(z, mu_p, lv_p)
            groups.insert(0, (lq - lp, 1))
            log_q, log_p = log_q + lq.sum(-1), log_p + lp.sum(-1)
            zs.insert(0, z)
            mus.insert(0, mu_q)
            lvs.insert(0, lv_q)
        z_all = torch.cat(zs, -1)
        return VAEOutput(z_all, z_all, torch.cat(mus, -1), torch.cat(lvs, -1), log_p, log_q, groups)

    def draw_latents(self, state: PosteriorState,
                     eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self._top_down(state, eps)
        assert out.log_pz is not None and out.log_qz is not None
        return out.z, out.log_pz, out.log_qz

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 0,
                generator: torch.Generator | None = None) -> VAEOutput:
        """Top-down draw of every layer (k > 0: k per row); ``kl_layers`` = per layer (bottom first) log q − log p
        per dimension."""
        state = self.posterior_state(x, c)
        shape = (k, len(state.mu), self.noise_dim) if k else (len(state.mu), self.noise_dim)
        out = self._top_down(state, noise(shape, state.mu, generator))
        out.params = self.decode(out.z, c)
        return out

    def analytic_kl(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        return None

    def kl_per_layer(self, out: VAEOutput) -> list[torch.Tensor]:
        """Monte-Carlo KL of each layer (bottom first), per draw (…, N): log q(z_i | ·) − log p(z_i | ·)."""
        return [values.sum(-1) for values, _ in self.kl_groups(out)]

    # --- generation ---------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """θ(z_1) from a full draw (…, L·d), or from a top-layer z_L (…, d) with the lower layers at their
        prior means."""
        d = self.config.latent_dim
        if z.shape[-1] == d:
            for i in range(self.layers - 2, -1, -1):
                _, z, _ = self.prior.conditional(i, z)
        else:
            z = self.prior._split(z)[0]
        return self.decoder(self._with_condition(z, c))

    @torch.no_grad()
    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       temperature: float = 1.0) -> torch.Tensor:
        """Every layer drawn top-down from the prior, (n, L·d): ``sample`` then decodes p(x | z_1)."""
        return self.prior.sample_full(n, generator, temperature)


__all__ = ["HierarchicalPrior", "HierarchicalVAE"]
