"""VAE anomaly detection as a scikit-learn estimator with PyOD's conventions.

The score kind is the ``score_type`` parameter (not ``score``: scikit-learn reserves that name for a method).
``fit(X)`` trains ``n_models`` VAEs (seeds ``random_state + i``) on every row, each keeping its best training-loss
round, and scores the training rows (with ``validation_fraction`` > 0 each member holds out its own share of X and
keeps its best epoch on it instead; the held-out ELBO of a learned-variance decoder peaks in the first epochs, so
that kept barely trained members: ADBench mean ROC-AUC development 88.92 vs 89.47, held-out 86.26 vs 88.45 without
it; ``benchmarks/detector_patience.py``); ``decision_function`` is higher for more abnormal rows;
``predict`` gives 1 = outlier, 0 = inlier; ``score_samples`` = −decision_function (scikit-learn's sign).

Scores (mean over the ensemble; z_l = μ(x) + σ(x)·ε_l with ONE fixed set of draws ε_1..ε_k per model, shared by
all rows, so a row's score does not depend on the batch it is scored in, nor on the call):

* ``elbo``: −[ (1/k) Σ_l log p(x|z_l) − KL(q(z|x) ‖ p(z)) ]  (negative ELBO)
* ``nll``: −log (1/k) Σ_l p(x|z_l) p(z_l) / q(z_l|x)  (importance-sampled negative log-likelihood)
* ``recon_prob``: −log (1/k) Σ_l p(x|z_l)  (An & Cho 2015 reconstruction probability, in nats)
* ``recon_error``: Σ_j (x_j − E[x_j|z=μ(x)])²  (per column; Brier score for categorical columns)

Per-column terms t_j: −E_w[log p(x_j|z)] with the score's own weights (uniform for ``elbo``, normalised importance
weights for ``nll``/``recon_prob``), or the squared error. ``feature_contributions`` returns the share of each
column in the excess over the training median: e_j = max(0, t_j − median_train t_j), share_j = e_j / Σ e.

Observation model (``likelihood='auto'``/``'mixed'``): a continuous column is standardised on the training rows
(``column_transform``) and modelled as p(x_j|z) = N(μ_j(z), σ_j²(z)), log σ_j²(z) a decoder output clamped to
[``obs_logvar_min``, ``obs_logvar_max``] = [−7, 5] by default (``obs_logvar_max=None``: the library's ceiling 5).
``obs_logvar_max=0`` keeps the predicted variance within the column's training variance (σ_j ≤ 1 standardised
unit), so the decoder cannot explain a badly reconstructed row away with a wide variance: chosen on the ADBench
development sets it raised their mean ROC-AUC from 88.92 to 89.85, but lowered the held-out sets' from 86.39 to
85.17, so it is an option, not the default (README, "Anomaly detection").

``contamination``: a float c in (0, 0.5] puts the threshold at the (1 − c) quantile of the training scores (as
PyOD); ``'auto'`` uses a robust rule: threshold = median + 3 · 1.4826 · MAD of the training scores (the standard
deviation replaces the MAD when the MAD is 0), i.e. "more than 3 robust standard deviations above typical".

Unseen categories at score time (``unknown_category``): ``'abnormal'`` (default) scores the value as maximally
unlikely: its column's term is t_j = max(log(n + 1), the worst training term of column j) for the likelihood scores
(n = training rows; at most 1/(n + 1) of the mass for a category never seen in n rows), the largest possible squared
error (2 categorical, 1 binary) for ``recon_error``; the rest of the row is scored with that entry masked, so
``top_columns`` names that column. ``'error'`` refuses such rows (DataError naming the column and value);
``'missing'`` scores them as if the value were missing (which makes them look *normal*).

Missing values (``allow_missing``; ``missing_score``): ``'per_observed'`` (default) scales a row's score and terms by
C / C_obs (C columns, C_obs observed), i.e. the score per observed column times the number of columns, so a row is
not made more normal by having fewer columns scored; ``'observed'`` sums the observed columns only (the raw
−log p(x_obs): rows with many missing values score lowest). Rows with nothing missing are unaffected either way.

Models (``prior``, ``posterior``, ``stochastic_layers``): any model of the zoo — a mixture-of-Gaussians or VampPrior
prior, an IAF posterior, a hierarchical VAE — scored by the same rules, its draws z_l through the model's own
``draw_latents`` (exact log p(z_l) and log q(z_l|x)); where KL has no closed form, ``elbo`` uses (1/k) Σ_l
[log q(z_l|x) − log p(z_l)]. The default is the single-layer Gaussian VAE with an N(0, I) prior.

Fitting needs at least 2 rows.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from vaekit.core.budget import scaled_steps
from vaekit.core.config import ModelConfig, TrainConfig, estimator_zoo, is_whole
from vaekit.core.inference import log_mean_exp
from vaekit.core.likelihoods import make_likelihood
from vaekit.core.model import VAE
from vaekit.core.objectives import ELBO, LossOutput
from vaekit.core.trainer import Trainer
from vaekit.data.tabular import Column, TabularSchema, named
from vaekit.errors import DataError, VaekitError
from vaekit.jobs.anomaly.folder import load_detector, save_detector
from vaekit.options import MAX_K
from vaekit.runtime import resolve_device, resolve_threads, threads

SCORES = ("elbo", "nll", "recon_prob", "recon_error")
LIKELIHOODS = ("auto", "mixed", "bernoulli", "gaussian", "gaussian_learned")
AUTO_K = 3.0  # contamination='auto': median + AUTO_K · robust sd
MIN_STEPS_PER_EPOCH = 20
MIN_ROWS = 2  # rows needed to fit
UNKNOWN_CATEGORY = ("abnormal", "error", "missing")
MISSING_SCORES = ("per_observed", "observed")


class TrimmedELBO(ELBO):
    """L = mean of −[log p(x|z) − β·KL] over the (1 − trim) best-explained rows of each batch (robust to outliers)."""

    def __init__(self, trim: float, beta: float = 1.0) -> None:
        super().__init__(beta)
        self.trim = trim

    def __call__(self, model: VAE, x: torch.Tensor, c: torch.Tensor | None = None,
                 epoch_progress: float = math.inf) -> LossOutput:
        out = model(x, c)
        log_px = model.log_px(out.params, x)
        kl_d = model.analytic_kl(out.mu, out.logvar)  # closed form where there is one, else log q − log p of the draw
        kl = kl_d.sum(-1) if kl_d is not None else out.log_qz - out.log_pz
        per_row = -(log_px - self.beta * kl)
        kept = torch.topk(per_row, max(1, math.ceil((1 - self.trim) * len(per_row))), largest=False).values
        return LossOutput(kept.mean(), -log_px.mean().detach(), kl.mean().detach(), (log_px - kl).mean().detach())


def member_terms(model: VAE, x: torch.Tensor, eps: torch.Tensor | None,
                 score_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One member's (score (N,), per-column terms (N, C)) of rows x; ε (k, N, noise_dim), unused for recon_error.

    The one kernel of the detector's scores (the ONNX score graph calls it too): any zoo model, its draws z_l, log p(z_l)
    and log q(z_l|x) through ``draw_latents``."""
    state = model.posterior_state(x)
    lik = model.likelihood
    if score_type == "recon_error":  # z at ε = 0: μ(x) (top-down means for a hierarchical model)
        z0, _, _ = model.draw_latents(state, x.new_zeros(len(x), model.noise_dim))
        cols = lik.sq_error_dims(model.decode(z0), x)
        return cols.sum(-1), cols
    assert eps is not None
    z, log_pz, log_qz = model.draw_latents(state, eps)
    lpd = lik.log_prob_dims(model.decode(z), x)  # (k, N, C)
    log_px = lpd.sum(-1)
    if score_type == "elbo":
        kl_d = model.analytic_kl(state.mu, state.logvar)  # closed form where there is one, else Monte Carlo
        kl = kl_d.sum(-1) if kl_d is not None else (log_qz - log_pz).mean(0)
        return -(log_px.mean(0) - kl), -lpd.mean(0)
    lw = log_px + log_pz - log_qz if score_type == "nll" else log_px  # nll | recon_prob
    w = torch.softmax(lw, 0).unsqueeze(-1)
    return -log_mean_exp(lw, 0), -(w * lpd).sum(0)


def _is_frame(X: Any) -> bool:
    import pandas as pd

    return isinstance(X, pd.DataFrame)


class VAEAnomalyDetector(OutlierMixin, BaseEstimator):
    """Unsupervised outlier detector scoring rows by how poorly a VAE explains them (see the module docstring).

    Fitted attributes: ``decision_scores_`` (training scores), ``threshold_``, ``labels_`` (== predict(X_train)),
    ``models_`` (the VAEs), ``schema_`` (the :class:`TabularSchema`, for the mixed likelihood), ``columns_``,
    ``feature_baseline_`` (training median of each column's term), ``feature_worst_`` (its training maximum),
    ``n_features_in_``.

    Training budget per member, sized to the data (n = training rows after the hold-out, b = ``batch_size``):
    steps = min(max_steps, max(100, ⌈max_steps · min(1, n/b)²⌉)) — the full ``max_steps`` once the rows fill a
    batch (n ≥ 128 by default), ~100 steps for a 30-row table. ``device`` ('auto' | 'cpu' | 'cuda' | 'cuda:N' |
    'mps') is where training and scoring run (the fitted models are kept on the CPU); ``n_threads`` (None =
    automatic: ``OMP_NUM_THREADS``, else 1 thread for models under 250k parameters) applies inside fit and scoring
    only. PyOD's detector API: ``predict(X, return_confidence)``, ``predict_proba(X, method, return_confidence)``,
    ``predict_confidence(X)``, ``fit_predict(X)``.
    """

    def __init__(self, score_type: str = "nll", k: int = 16, contamination: float | str = 0.1, latent_dim: int = 16,
                 hidden: Sequence[int] = (64, 64), activation: str = "tanh", epochs: int = 1000,
                 batch_size: int = 128, lr: float = 2e-3, beta: float = 1.0, obs_logvar_min: float = -7.0,
                 obs_logvar_max: float | None = None, obs_variance: str = "decoder", trim: float = 0.2,
                 validation_fraction: float = 0.0, early_stopping: int = 0, max_steps: int = 1000,
                 n_models: int = 5, likelihood: str = "auto", column_transform: str = "standard",
                 allow_missing: bool | Sequence[str] = False, unknown_category: str = "abnormal",
                 missing_score: str = "per_observed", column_kinds: Mapping[str, str] | None = None,
                 prior: str = "standard_normal", posterior: str = "gaussian", stochastic_layers: int = 1,
                 random_state: int | None = None, verbose: bool = False, device: str = "auto", n_threads: int | None = None) -> None:
        self.score_type = score_type
        self.k = k
        self.contamination = contamination
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.beta = beta
        self.obs_logvar_min = obs_logvar_min
        self.obs_logvar_max = obs_logvar_max
        self.obs_variance = obs_variance
        self.trim = trim
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.max_steps = max_steps
        self.n_models = n_models
        self.likelihood = likelihood
        self.column_transform = column_transform
        self.allow_missing = allow_missing
        self.unknown_category = unknown_category
        self.missing_score = missing_score
        self.column_kinds = column_kinds
        self.prior = prior
        self.posterior = posterior
        self.stochastic_layers = stochastic_layers
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.n_threads = n_threads

    # --- parameters and tags -----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        c = self.contamination
        if not (c == "auto" or (isinstance(c, (int, float)) and not isinstance(c, bool) and 0 < c <= 0.5)):
            raise VaekitError(f"contamination must be 'auto' or a float in (0, 0.5], got {c!r}")
        if self.score_type not in SCORES:
            raise VaekitError(f"score_type {self.score_type!r} is not one of {list(SCORES)}")
        if self.likelihood not in LIKELIHOODS:
            raise VaekitError(f"likelihood {self.likelihood!r} is not one of {list(LIKELIHOODS)}")
        if self.unknown_category not in UNKNOWN_CATEGORY:
            raise VaekitError(f"unknown_category must be one of {list(UNKNOWN_CATEGORY)}, got {self.unknown_category!r}")
        if self.missing_score not in MISSING_SCORES:
            raise VaekitError(f"missing_score must be one of {list(MISSING_SCORES)}, got {self.missing_score!r}")
        counts = (self.k, self.n_models, self.epochs, self.max_steps)
        if not all(is_whole(v) for v in counts):
            raise VaekitError("k, n_models, epochs and max_steps must be integers >= 1")
        if self.k > MAX_K:
            raise VaekitError(f"k must be at most {MAX_K} (latent samples per row), got {self.k}")
        if not 0 <= self.validation_fraction < 1:
            raise VaekitError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        estimator_zoo(self)
        resolve_device(self.device)  # a name that is not a device, or a GPU that is not there → VaekitError
        resolve_threads(self.n_threads)

    def _device(self) -> torch.device:
        """Where to score: the ``device`` (float64 scoring; MPS has no float64, so scoring stays on the CPU there)."""
        dev = resolve_device(self.device)
        return torch.device("cpu") if dev.type == "mps" else dev

    def _threads(self) -> int:
        n_params = sum(p.numel() for p in self.models_[0].parameters()) if getattr(self, "models_", None) else 0
        return resolve_threads(self.n_threads, n_params)

    def training_steps(self, n_train: int) -> int:
        """Optimizer steps per member for ``n_train`` training rows (see the class docstring)."""
        return scaled_steps(n_train, int(self.batch_size), int(self.max_steps))

    @property
    def _obs_logvar_max(self) -> float:
        """The ceiling of the decoder's log σ²: ``obs_logvar_max``, or for None the library's ceiling 5 (the
        ModelConfig default, so member config.json files stay as they were before the parameter)."""
        if self.obs_logvar_max is not None:
            return float(self.obs_logvar_max)
        return 5.0

    @property
    def _mixed(self) -> bool:
        return self.likelihood in ("auto", "mixed")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._mixed and self.allow_missing is not False
        return tags

    # --- data → model space ------------------------------------------------------------------------------------
    def _encode(self, X: Any, reset: bool) -> torch.Tensor:
        """Validate X (array or DataFrame) and map it to the model's encoded rows (N, D) float32."""
        return self._encode_rows(X, reset)[0]

    def _encode_rows(self, X: Any, reset: bool) -> tuple[torch.Tensor, np.ndarray | None]:
        """(encoded rows as :meth:`_encode`, where unseen categories were (N, C) for ``unknown_category='abnormal'``)."""
        import pandas as pd

        frame_fit = self._mixed and (_is_frame(X) if reset else getattr(self, "_input", "") == "frame")
        if frame_fit:
            if not _is_frame(X):  # an array for a model fitted on a DataFrame: columns by position
                arr = np.asarray(X, dtype=object)
                if arr.ndim != 2:
                    raise DataError(f"X: expected a 2-D table (rows × columns), got an array of shape {arr.shape}")
                if arr.shape[1] != self.n_features_in_:
                    raise DataError(f"X has {arr.shape[1]} features, but {type(self).__name__} is expecting "
                                    f"{self.n_features_in_} features as input")
                validate_data(self, arr, skip_check_array=True, reset=False)  # warns: no feature names
                X = pd.DataFrame(arr, columns=self.schema_.names).infer_objects()
            elif not reset:
                X = named(X)
                self.schema_._check_columns(X, "X")
                X = X[self.schema_.names]
                validate_data(self, X, skip_check_array=True, reset=False)
            if reset:
                if len(X) < MIN_ROWS:
                    raise DataError(f"X: the table has {len(X)} row(s) ({len(X)} sample(s)); at least {MIN_ROWS} "
                                    "are required to fit")
                if X.shape[1] == 0:
                    raise DataError("X: the table has no columns left to model (all were ignored or dropped)")
                validate_data(self, X, skip_check_array=True, reset=True)
                self.schema_ = TabularSchema.infer(X, self.column_kinds, self.column_transform, self.allow_missing,
                                                   source="X").fit(X, "X")
                self._input = "frame"
            return self._rows(X)
        allow_nan = self._mixed and self.allow_missing is not False
        try:
            arr = validate_data(self, X, reset=reset, dtype=np.float64,
                                ensure_all_finite="allow-nan" if allow_nan else True)
        except ValueError as e:
            raise DataError(" ".join(str(e).split())) from None
        if reset:
            if len(arr) < MIN_ROWS:
                raise DataError(f"X: {len(arr)} sample(s) (rows); at least {MIN_ROWS} are required to fit")
            self._input = "array"
            if self._mixed:
                names = [f"x{j}" for j in range(arr.shape[1])]
                miss = set(names) if self.allow_missing is True else set(self.allow_missing or ())
                cols = [Column(n, "continuous", self.column_transform, n in miss) for n in names]
                self.schema_ = TabularSchema(cols).fit(pd.DataFrame(arr, columns=names), "X")
            else:
                self.schema_ = None
        if self._mixed:
            return self._rows(arr)
        lik = make_likelihood(self.likelihood, logvar_min=self.obs_logvar_min, logvar_max=self._obs_logvar_max)
        return lik.prepare(arr.astype(np.float32), "X"), None

    def _rows(self, X: Any) -> tuple[torch.Tensor, np.ndarray | None]:
        x, unseen = self.schema_.encode_rows(X, "X", self.unknown_category)
        return torch.from_numpy(x), unseen if self.unknown_category == "abnormal" and unseen.any() else None

    # --- fitting -----------------------------------------------------------------------------------------------
    def _model_config(self, x: torch.Tensor) -> ModelConfig:
        if self._mixed:
            return ModelConfig(input_shape=(x.shape[1],), latent_dim=int(self.latent_dim), hidden=tuple(self.hidden),
                               activation=self.activation, likelihood="mixed", obs_logvar_min=self.obs_logvar_min,
                               obs_logvar_max=self._obs_logvar_max, obs_variance=self.obs_variance,
                               column_kinds=self.schema_.column_kinds, column_sizes=self.schema_.column_sizes,
                               **estimator_zoo(self))
        return ModelConfig(input_shape=(x.shape[1],), latent_dim=int(self.latent_dim), hidden=tuple(self.hidden),
                           activation=self.activation, likelihood=self.likelihood, obs_logvar_min=self.obs_logvar_min,
                           obs_logvar_max=self._obs_logvar_max,
                           obs_variance=self.obs_variance if self.likelihood == "gaussian_learned" else "decoder",
                           **estimator_zoo(self))

    def _fit_member(self, x: torch.Tensor, mcfg: ModelConfig, seed: int) -> VAE:
        n = len(x)
        rng = np.random.default_rng(seed)
        n_val = int(round(self.validation_fraction * n)) if n >= 50 else 0
        perm = torch.from_numpy(rng.permutation(n))
        x_va, x_tr = (x[perm[:n_val]], x[perm[n_val:]]) if n_val else (None, x)
        bs = max(1, min(int(self.batch_size), len(x_tr)))
        reps = math.ceil(MIN_STEPS_PER_EPOCH * bs / len(x_tr))
        if reps > 1:  # small data: an "epoch" is several passes, so validation runs every ~20 steps, not every step
            x_tr = x_tr.repeat(reps, 1)
        steps = self.training_steps(n - n_val)
        epochs = max(1, min(int(self.epochs), steps // math.ceil(len(x_tr) / bs)))
        tcfg = TrainConfig(epochs=epochs, batch_size=bs, lr=self.lr, beta=self.beta, schedule="cosine", objective="elbo",
                           warmup_epochs=0.0, precision="fp32",
                           early_stopping=int(self.early_stopping) if n_val else 0, seed=seed, nan_policy="rollback",
                           device=str(resolve_device(self.device)), num_threads=int(self.n_threads or 0))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = VAE(mcfg)
            trainer = Trainer(model, tcfg, progress=bool(self.verbose))
            if self.trim > 0:
                trainer.objective = TrimmedELBO(float(self.trim), float(self.beta))
            trainer.fit(x_tr, x_va)
        # kept on the CPU (moved to the device to score); float64: a row's score is the same whatever batch it is in
        return model.cpu().eval().double()

    def fit(self, X: Any, y: Any = None) -> "VAEAnomalyDetector":
        """Fit on X (labels unused): train the VAEs, score X, set ``threshold_`` and ``labels_``."""
        self._check_params()
        x = self._encode(X, reset=True)
        base = self.random_state if self.random_state is not None else int(np.random.randint(0, 2**31 - 1 - 1000))
        mcfg = self._model_config(x)
        self._seeds = [int(base) + i for i in range(int(self.n_models))]
        self.models_ = [self._fit_member(x, mcfg, s) for s in self._seeds]
        self.columns_ = self.schema_.names if self.schema_ is not None else [f"x{j}" for j in range(x.shape[1])]
        with threads(self._threads()):
            scores, cols = self._score_encoded(x)
        self.decision_scores_ = scores
        self.feature_baseline_ = np.median(cols, axis=0)
        self.feature_worst_ = cols.max(axis=0)  # the unseen-category term's floor (unknown_category='abnormal')
        self.threshold_ = self._threshold(scores)
        self.labels_ = (scores > self.threshold_).astype(int)
        return self

    def _threshold(self, s: np.ndarray) -> float:
        if self.contamination == "auto":
            med = float(np.median(s))
            sd = 1.4826 * float(np.median(np.abs(s - med)))
            return med + AUTO_K * (sd if sd > 0 else float(s.std()))
        return float(np.percentile(s, 100.0 * (1.0 - float(self.contamination))))

    # --- scoring -----------------------------------------------------------------------------------------------
    def _eps(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self._seeds[i] + 7919)
        return torch.randn(int(self.k), int(self.models_[i].noise_dim), generator=g, dtype=torch.float64)

    @torch.no_grad()
    def _terms(self, model: VAE, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(score (N,), per-column terms (N, C)) for one model and one batch; ``eps`` (k, noise_dim), shared by the
        rows (see the module docstring)."""
        return member_terms(model, x, eps[:, None, :].expand(len(eps), len(x), eps.shape[-1]), self.score_type)

    def _score_encoded(self, x: torch.Tensor, memory_mb: float = 128.0,
                       unseen: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean of scores and per-column terms, in row batches of bounded memory; then the unseen-category
        and missing-value rules of the module docstring (``unseen``: (N, C) from :meth:`_encode_rows`)."""
        if len(x) == 0:
            return np.zeros(0), np.zeros((0, len(self.columns_)))
        observed = x[:, self.schema_.value_dim:].cpu().numpy() > 0.5 if self._per_observed else None
        m0 = self.models_[0]
        width = max(m0.decoder.n_params * m0.decoder.data_dim, x.shape[1], *m0.config.hidden)
        k = 1 if self.score_type == "recon_error" else int(self.k)
        # float64 working set ≈ 4 live (k, rows, width) tensors (hidden activations, decoder output, per-column terms)
        rows = max(32, int(memory_mb * 2**20 / (8 * 4 * k * width)))
        score = np.zeros(len(x), dtype=np.float64)
        cols: np.ndarray | None = None
        dev = self._device()
        x = x.double().to(dev)
        for i, model in enumerate(self.models_):
            eps = self._eps(i).to(dev)
            model.to(dev)
            try:
                for a in range(0, len(x), rows):
                    s, c = self._terms(model, x[a:a + rows], eps)
                    if cols is None:
                        cols = np.zeros((len(x), c.shape[1]), dtype=np.float64)
                    score[a:a + rows] += s.cpu().numpy()
                    cols[a:a + rows] += c.cpu().numpy()
            finally:
                model.cpu()
        assert cols is not None
        m = len(self.models_)
        return self._adjust(score / m, cols / m, observed, unseen)

    @property
    def _per_observed(self) -> bool:
        return self._mixed and self.allow_missing is not False and self.missing_score == "per_observed"

    def _unseen_penalty(self) -> np.ndarray:
        """Per column, the term of a value of an unseen category (see the module docstring)."""
        cols = self.schema_.columns
        if self.score_type == "recon_error":
            return np.array([2.0 if c.kind == "categorical" else 1.0 for c in cols])
        floor = np.full(len(cols), math.log(len(self.decision_scores_) + 1.0))
        worst = getattr(self, "feature_worst_", None)
        return floor if worst is None else np.maximum(floor, worst)

    def _adjust(self, score: np.ndarray, cols: np.ndarray, observed: np.ndarray | None,
                unseen: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Unseen categories: their column's term added; ``missing_score='per_observed'``: rows with missing values
        scaled by C / C_obs. Rows with neither are returned untouched."""
        if unseen is not None and unseen.any():
            add = np.where(unseen, self._unseen_penalty()[None, :], 0.0)
            score, cols = score + add.sum(1), cols + add
        if observed is not None:
            n_obs = (observed if unseen is None else observed | unseen).sum(1)
            part = n_obs < observed.shape[1]
            if part.any():
                f = np.where(part, observed.shape[1] / np.maximum(n_obs, 1), 1.0)
                score, cols = np.where(part, score * f, score), np.where(part[:, None], cols * f[:, None], cols)
        return score, cols

    def _details(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "models_")
        x, unseen = self._encode_rows(X, reset=False)
        with threads(self._threads()):
            return self._score_encoded(x, unseen=unseen)

    def score_details(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N,), per-column terms (N, C)) in one pass: ``decision_function`` and
        ``feature_contributions(relative=False)`` together (``shares`` turns the terms into shares)."""
        return self._details(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score per row, higher = more abnormal (PyOD convention)."""
        return self._details(X)[0]

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's sign: higher = more normal (= −decision_function)."""
        return -self.decision_function(X)

    def predict(self, X: Any, return_confidence: bool = False) -> Any:
        """1 = outlier (score > threshold_), 0 = inlier (PyOD convention); with ``return_confidence`` also
        :meth:`predict_confidence` → (labels, confidence)."""
        s = self.decision_function(X)
        labels = (s > self.threshold_).astype(int)
        return (labels, self._confidence(s)) if return_confidence else labels

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit on X and return the training labels ``labels_`` (1 = outlier, 0 = inlier)."""
        return self.fit(X, y).labels_.copy()

    def predict_proba(self, X: Any, method: str = "linear", return_confidence: bool = False) -> Any:
        """(N, 2) [p(inlier), p(outlier)] in [0, 1], as PyOD: p = clip((s − min) / (max − min), 0, 1) over the
        training scores (``'linear'``), or p = clip(erf((s − mean) / (sd·√2)), 0, 1) (``'unify'``, Kriegel et al.
        2011); with ``return_confidence`` also :meth:`predict_confidence` → (probabilities, confidence)."""
        from scipy.special import erf

        if method not in ("linear", "unify"):
            raise ValueError(f"method must be 'linear' or 'unify', got {method!r}")
        check_is_fitted(self, "models_")
        s, train = self.decision_function(X), self.decision_scores_
        if method == "linear":
            lo, span = float(train.min()), float(train.max() - train.min())
            p = (s - lo) / (span if span > 0 else 1.0)
        else:
            sd = float(train.std())
            p = erf((s - float(train.mean())) / ((sd if sd > 0 else 1.0) * math.sqrt(2)))
        p = np.clip(p, 0.0, 1.0)
        probs = np.column_stack([1.0 - p, p])
        return (probs, self._confidence(s)) if return_confidence else probs

    def predict_confidence(self, X: Any) -> np.ndarray:
        """PyOD's confidence in each label (Perini et al. 2020), in [0, 1]: how surely the same label would come out
        of a slightly different training set. With n training scores, m of them <= s and contamination c:
        p = (1 + m) / (2 + n) (posterior outlier probability), conf = P[Binomial(n, p) > n − ⌊n·c⌋]
        (1 − that for rows labelled inliers; for ``contamination='auto'`` c is the flagged share of the training rows).
        """
        return self._confidence(self.decision_function(X))

    def _confidence(self, s: np.ndarray) -> np.ndarray:
        from scipy.special import bdtr

        train = np.sort(self.decision_scores_)
        n = len(train)
        m = np.searchsorted(train, s, side="right")
        post = (1.0 + m) / (2.0 + n)
        c = float(self.labels_.mean()) if self.contamination == "auto" else float(self.contamination)
        n_out = int(n * c)  # as PyOD computes it (for 'auto' this can round one below the flagged count)
        conf = 1.0 - bdtr(n - n_out, n, post)  # 1 − P[Binomial(n, p) <= n − n_out]
        labels = s > self.threshold_
        return np.where(labels, conf, 1.0 - conf)

    def shares(self, cols: np.ndarray) -> np.ndarray:
        """Per-column terms → shares of the excess over the training median (rows sum to 1, or 0 if none)."""
        excess = np.maximum(cols - self.feature_baseline_, 0.0)
        tot = excess.sum(1, keepdims=True)
        return np.divide(excess, tot, out=np.zeros_like(excess), where=tot > 0)

    def feature_contributions(self, X: Any, relative: bool = True) -> Any:
        """Which columns made a row abnormal: shares e_j / Σ e (``relative``) or the raw per-column terms t_j.

        The raw terms sum to the reconstruction part of the score (for ``elbo``: score = Σ_j t_j + KL).
        Returns a DataFrame with the column names when X is a DataFrame, else an array (N, C).
        """
        _, cols = self._details(X)
        out = self.shares(cols) if relative else cols
        if _is_frame(X):
            import pandas as pd

            return pd.DataFrame(out, columns=self.columns_, index=X.index)
        return out

    def top_columns(self, X: Any, n: int = 3) -> list[list[str]]:
        """The n columns with the largest shares per row (columns with a zero share left out)."""
        _, cols = self._details(X)
        return top_names(self.shares(cols), self.columns_, n)

    # --- persistence -------------------------------------------------------------------------------------------
    def save(self, directory: Any) -> Any:
        """Model folder: detector.json, schema.json, member_i/ (config.json + model.safetensors); no pickle."""
        return save_detector(self, directory)

    @classmethod
    def load(cls, directory: Any) -> "VAEAnomalyDetector":
        return load_detector(directory, cls)


def top_names(shares: np.ndarray, names: Sequence[str], n: int) -> list[list[str]]:
    """Names of the n largest positive shares per row, largest first."""
    if n <= 0 or shares.size == 0:
        return [[] for _ in range(len(shares))]
    idx = np.argsort(-shares, axis=1, kind="stable")[:, :n]
    return [[names[j] for j in row if shares[i, j] > 0] for i, row in enumerate(idx)]
