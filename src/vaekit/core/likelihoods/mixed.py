"""The ``mixed`` likelihood of tables: continuous, binary and categorical columns side by side."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vaekit.data.tabular import KINDS as COLUMN_KINDS
from vaekit.errors import DataError, VaekitError
from vaekit.core.likelihoods.base import LIKELIHOODS, LOG_2PI, Likelihood, _finite, _up


@LIKELIHOODS.register("mixed")
class MixedTabular(Likelihood):
    """log p(x|z) = Σ_j m_j · log p_j(x_j | θ_j(z)), per column j: N(μ, σ²) (learned σ) / Bernoulli / categorical.

    Data layout (see :mod:`vaekit.data.tabular`): per column its value (continuous: transformed value; binary: 0/1;
    categorical: one-hot over K), then one observed-mask bit m_j per column. Decoder layout: per column (μ, log σ²),
    one logit, or K logits; log σ² is clamped to [logvar_min, logvar_max]. ``log_prob_dims`` returns the per-column
    terms (0 where m_j = 0).
    """

    name = "mixed"
    supports_column_variance = True

    def __init__(self, column_kinds: tuple[str, ...], column_sizes: tuple[int, ...], logvar_min: float = -9.0,
                 logvar_max: float = 5.0) -> None:
        self.kinds, self.sizes, self.logvar_min = tuple(column_kinds), tuple(column_sizes), float(logvar_min)
        self.logvar_max = float(logvar_max)
        self.n_cols = len(self.kinds)
        cont_in, cont_out, bin_in, bin_out, self.cats = [], [], [], [], []
        order_cont, order_bin, order_cat = [], [], []
        i = o = 0
        for j, (kind, size) in enumerate(zip(self.kinds, self.sizes)):
            if kind == "continuous":
                cont_in.append(i), cont_out.append(o), order_cont.append(j)
                i, o = i + 1, o + 2
            elif kind == "binary":
                bin_in.append(i), bin_out.append(o), order_bin.append(j)
                i, o = i + 1, o + 1
            else:
                self.cats.append((i, o, size))
                order_cat.append(j)
                i, o = i + size, o + size
        self.in_dim, self.out_dim = i, o
        self.cont_in, self.cont_out = torch.tensor(cont_in, dtype=torch.long), torch.tensor(cont_out, dtype=torch.long)
        self.bin_in, self.bin_out = torch.tensor(bin_in, dtype=torch.long), torch.tensor(bin_out, dtype=torch.long)
        self.inverse = torch.argsort(torch.tensor(order_cont + order_bin + order_cat, dtype=torch.long))

    @classmethod
    def from_config(cls, cfg: Any) -> Likelihood:
        return cls(cfg.column_kinds, cfg.column_sizes, cfg.obs_logvar_min, getattr(cfg, "obs_logvar_max", 5.0))

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Mixed tables: one input per continuous/binary column, K per categorical one, plus one mask bit per column."""
        super().check_config(cfg)
        kinds, sizes = cfg.column_kinds, cfg.column_sizes
        if not kinds or len(kinds) != len(sizes):
            raise VaekitError("likelihood 'mixed' needs column_kinds and column_sizes of equal, non-zero length")
        bad = sorted({k for k in kinds if k not in COLUMN_KINDS})
        if bad:
            raise VaekitError(f"column kind(s) {bad} not in {list(COLUMN_KINDS)}")
        if any(n < 2 for k, n in zip(kinds, sizes) if k == "categorical"):
            raise VaekitError("likelihood 'mixed': every categorical column needs column_sizes >= 2")
        if cfg.arch != "mlp":
            raise VaekitError("likelihood 'mixed' needs arch 'mlp'")
        expected = sum(n if k == "categorical" else 1 for k, n in zip(kinds, sizes)) + len(kinds)
        if tuple(cfg.input_shape) != (expected,):
            raise VaekitError(f"likelihood 'mixed': input_shape must be ({expected},) for these columns "
                              f"(values + one mask bit per column), got {tuple(cfg.input_shape)}")

    def _per_kind(self, params: torch.Tensor, x: torch.Tensor, fc: Any, fb: Any, fk: Any) -> torch.Tensor:
        """Apply per-kind column functions and put the columns back in schema order, masked → (…, N, C)."""
        p = _up(params[..., 0, :])
        parts = []
        if len(self.cont_in):
            mu, lv = p[..., self.cont_out], p[..., self.cont_out + 1].clamp(self.logvar_min, self.logvar_max)
            parts.append(fc(x[:, self.cont_in], mu, lv))
        if len(self.bin_in):
            parts.append(fb(x[:, self.bin_in], p[..., self.bin_out]))
        for i, o, k in self.cats:
            parts.append(fk(x[:, i:i + k], p[..., o:o + k]).unsqueeze(-1))
        cols = torch.cat(parts, -1)[..., self.inverse]
        return cols * x[:, self.in_dim:]

    def log_prob_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._per_kind(
            params, x, lambda v, mu, lv: -0.5 * ((v - mu) ** 2 * torch.exp(-lv) + lv + LOG_2PI),
            lambda v, logit: v * logit - F.softplus(logit),
            lambda onehot, logits: (onehot * torch.log_softmax(logits, -1)).sum(-1))

    log_prob_columns = log_prob_dims

    def logvar_mask(self, width: int) -> torch.Tensor:
        mask = torch.zeros(1, self.out_dim, dtype=torch.bool)
        mask[0, self.cont_out + 1] = True
        return mask

    def sq_error_dims(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per column: (x − μ)², (x − p)², or the Brier score Σ_k (onehot_k − p_k)²; 0 where unobserved."""
        return self._per_kind(params, x, lambda v, mu, lv: (v - mu) ** 2,
                              lambda v, logit: (v - torch.sigmoid(logit)) ** 2,
                              lambda onehot, logits: ((onehot - torch.softmax(logits, -1)) ** 2).sum(-1))

    def _values(self, params: torch.Tensor, draw: bool, generator: torch.Generator | None) -> torch.Tensor:
        p = _up(params[..., 0, :])
        out = p.new_zeros(*p.shape[:-1], self.in_dim + self.n_cols)
        out[..., self.in_dim:] = 1.0
        if len(self.cont_in):
            mu = p[..., self.cont_out]
            if draw:
                sd = torch.exp(0.5 * p[..., self.cont_out + 1].clamp(self.logvar_min, self.logvar_max))
                mu = mu + sd * torch.randn(mu.shape, generator=generator)
            out[..., self.cont_in] = mu
        if len(self.bin_in):
            prob = torch.sigmoid(p[..., self.bin_out])
            out[..., self.bin_in] = (torch.rand(prob.shape, generator=generator) < prob).float() if draw else prob
        for i, o, k in self.cats:
            prob = torch.softmax(p[..., o:o + k], -1)
            if draw:
                idx = torch.multinomial(prob.reshape(-1, k), 1, generator=generator).reshape(prob.shape[:-1])
                prob = F.one_hot(idx, k).float()
            out[..., i:i + k] = prob
        return out

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x|z] in the encoded layout: means, probabilities, category probabilities; mask bits 1."""
        return self._values(params, False, None)

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._values(params, True, generator)

    def prepare(self, x: np.ndarray, source: str) -> torch.Tensor:
        _finite(x, source)
        if x.ndim != 2 or x.shape[1] != self.in_dim + self.n_cols:
            raise DataError(f"{source}: the mixed likelihood needs encoded rows of {self.in_dim + self.n_cols} values "
                            f"(use vaekit.data.tabular.TabularSchema.encode), got shape {x.shape}")
        m = x[:, self.in_dim:]
        if x.size and not np.isin(m, (0, 1)).all():
            raise DataError(f"{source}: the last {self.n_cols} values of each row are mask bits and must be 0 or 1")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
