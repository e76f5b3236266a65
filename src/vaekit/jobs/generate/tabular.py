"""Synthetic table rows from a (conditional) VAE: :class:`TabularGenerator`, estimator-style (``fit`` / ``sample``).

Model: the ``mixed`` likelihood over a :class:`~vaekit.data.tabular.TabularSchema` of the generated columns
(continuous: N(μ_j(z, c), σ_j²(z, c)) on the transformed value t_j(x), learned σ; binary: Bernoulli; categorical:
softmax), trained on the ELBO  E_q log p(x|z, c) − β KL(q(z|x, c) ‖ N(0, I)).  With ``condition_columns`` it is a
conditional VAE: c = those columns encoded (categorical one-hot, binary 0/1, continuous (v − m)/s) enters encoder
and decoder, so rows for given condition values come from p(x | c) directly, without rejection sampling.

Sampling at temperature T: z ~ N(0, T² I); continuous x_j = t_j⁻¹(μ_j + T σ_j ε); binary/categorical values are
drawn from softmax(l / T). Condition columns the caller does not fix are drawn from the training rows
(:mod:`vaekit.jobs.generate.tables`). Output rows carry the training table's column order and dtypes; continuous values
are clipped to the training range (``clip``) and integer columns rounded.

Column kinds follow the rule every job shares (:func:`vaekit.data.tabular.infer_kinds`: junk in a numeric column
is refused with the column and value named); generated continuous values are rounded to their column's resolution
at fit time (its decimals).

Training: Adam, cosine decay, min(``epochs``, steps / steps per epoch) epochs and at most ``time_limit_min``
minutes; the weights with the best ELBO on a held-out ``validation_fraction`` of the rows are kept, and training
stops once ``early_stopping`` epochs (each ≥ 20 steps) in a row have not bettered it (0 = never). The step budget
is sized to the data (n training rows, b = ``batch_size``): steps = min(max_steps, max(100, ⌈max_steps · min(1, n/b)²⌉)),
i.e. ``max_steps`` once the rows fill a batch, far fewer for a table of a few dozen rows.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from vaekit.core.budget import scaled_steps
from vaekit.core.config import ModelConfig, TrainConfig, estimator_zoo, is_whole
from vaekit.core.likelihoods import MixedTabular
from vaekit.core.model import VAE
from vaekit.core.trainer import Trainer
from vaekit.data.tabular import TabularSchema, named
from vaekit.errors import DataError, VaekitError
from vaekit.jobs.generate.folder import load_generator, save_generator
from vaekit.jobs.generate.tables import (
    column_info,
    complete,
    frame_to_table,
    given_values,
    restore,
)
from vaekit.runtime import resolve_device, resolve_threads, threads

MIN_STEPS_PER_EPOCH = 20
MIN_ROWS = 2  # rows needed to fit
CHUNK = 8192


def tempered(lik: MixedTabular, params: torch.Tensor, temperature: float) -> torch.Tensor:
    """Decoder parameters with σ_j → T·σ_j (log σ² + 2 log T) and logits l → l / T."""
    if temperature == 1.0:
        return params
    p = params.clone()
    v = p[..., 0, :]
    if len(lik.cont_out):
        v[..., lik.cont_out + 1] += 2 * math.log(temperature)
    if len(lik.bin_out):
        v[..., lik.bin_out] /= temperature
    for _, o, k in lik.cats:
        v[..., o:o + k] /= temperature
    return p


class TabularGenerator(BaseEstimator):
    """Fit a VAE on a table and draw new rows (see the module docstring).

    Fitted attributes: ``model_`` (the VAE), ``schema_`` (generated columns), ``condition_schema_`` (condition
    columns, or None), ``condition_table_`` (training condition values: floats / category codes), ``columns_``,
    ``dtypes_``, ``ranges_`` (training [min, max] of continuous columns), ``category_orders_``, ``history_``,
    ``n_features_in_``.

    ``time_limit_min``: stop training after this many minutes (0 = none). ``device`` ('auto' | 'cpu' | 'cuda' |
    'cuda:N' | 'mps'): where training and sampling run (the fitted model is kept on the CPU; the random draws are
    made on the CPU, so a seed gives the same rows on any device up to the decoder's rounding). ``n_threads``
    (None = automatic: ``OMP_NUM_THREADS``, else 1 thread for models under 250k parameters) applies inside fit and
    sample only. Steps: see the module docstring.
    """

    def __init__(self, condition_columns: Sequence[str] = (), column_kinds: Mapping[str, str] | None = None,
                 column_transform: str = "quantile", latent_dim: int = 16, hidden: Sequence[int] = (256, 256),
                 activation: str = "tanh", beta: float = 1.0, epochs: int = 300, max_steps: int = 4000,
                 batch_size: int = 128, lr: float = 2e-3, obs_logvar_min: float = -7.0,
                 validation_fraction: float = 0.1, early_stopping: int = 30, time_limit_min: float = 0.0,
                 clip: bool = True, prior: str = "standard_normal", posterior: str = "gaussian",
                 stochastic_layers: int = 1,
                 random_state: int | None = None, verbose: bool = False, device: str = "auto",
                 n_threads: int | None = None) -> None:
        self.condition_columns = condition_columns
        self.column_kinds = column_kinds
        self.column_transform = column_transform
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.beta = beta
        self.epochs = epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.obs_logvar_min = obs_logvar_min
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.time_limit_min = time_limit_min
        self.clip = clip
        self.prior = prior
        self.posterior = posterior
        self.stochastic_layers = stochastic_layers
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.n_threads = n_threads

    # --- checks ------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        ints = {"latent_dim": self.latent_dim, "epochs": self.epochs, "max_steps": self.max_steps,
                "batch_size": self.batch_size}
        bad = [k for k, v in ints.items() if not is_whole(v)]
        if bad:
            raise VaekitError(f"{', '.join(bad)} must be integers >= 1")
        if not is_whole(self.early_stopping, lo=0):
            raise VaekitError(f"early_stopping must be an integer >= 0 (epochs; 0 = off), got {self.early_stopping!r}")
        if not 0 <= self.validation_fraction < 1 or not self.lr > 0 or not self.beta > 0 \
                or not self.time_limit_min >= 0:
            raise VaekitError("validation_fraction must be in [0, 1), lr > 0, beta > 0 and time_limit_min >= 0")
        if isinstance(self.condition_columns, str):
            raise VaekitError("condition_columns must be a list of column names, not one string")
        estimator_zoo(self)
        resolve_device(self.device)  # a name that is not a device, or a GPU that is not there → VaekitError
        resolve_threads(self.n_threads)

    def _frame(self, X: Any) -> Any:
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            df = named(X).reset_index(drop=True)
        else:
            from scipy import sparse

            if sparse.issparse(X):
                raise DataError("X: sparse input is not supported; pass a dense array or a DataFrame")
            arr = np.asarray(X)
            if arr.ndim != 2:
                raise DataError(f"X: expected a 2-D table (rows × columns), got an array of shape {arr.shape}")
            if arr.dtype.kind == "c":
                raise DataError("X: Complex data not supported (complex numbers in the array)")
            if arr.dtype == object:  # numbers stored as objects are numbers; strings stay (categorical columns)
                try:
                    arr = arr.astype(np.float64)
                except ValueError:
                    pass
                except TypeError as e:  # a dict, a list… in a cell
                    raise TypeError(f"X: a cell is neither a string nor a number ({e})") from None
            df = pd.DataFrame(arr, columns=[f"x{j}" for j in range(arr.shape[1])]).infer_objects()
        if 0 in df.shape:
            what = "sample" if len(df) == 0 else "feature"
            raise DataError(f"X: the table is empty: 0 {what}(s) (shape={df.shape}) while a minimum of 1 is required.")
        if len(set(df.columns)) != df.shape[1]:
            raise DataError("X: duplicate column names")
        return df

    # --- fitting -----------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "TabularGenerator":
        """Learn p(x | c) (or p(x)) from the rows of X (at least 2); NaN is not allowed (impute first:
        :class:`~vaekit.jobs.impute.imputer.VAEImputer`, ``vaekit impute``)."""
        self._check_params()
        df = self._frame(X)
        if len(df) < MIN_ROWS:
            raise DataError(f"X: {len(df)} sample(s) (rows); TabularGenerator needs at least {MIN_ROWS} to fit")
        na = df.isna().sum()
        if na.any():
            raise DataError(f"X: column(s) {[str(c) for c in na[na > 0].index]} have missing values (NaN/empty); "
                            "TabularGenerator needs a complete table (impute them first with VAEImputer, or drop those rows)")
        cond = [str(c) for c in self.condition_columns]
        unknown = [c for c in cond if c not in df.columns]
        if unknown:
            raise DataError(f"X: condition column(s) {unknown} not in the table (columns: {list(df.columns)})")
        if len(set(cond)) != len(cond):
            raise DataError(f"X: condition_columns lists a column twice: {cond}")
        data_cols = [c for c in df.columns if c not in set(cond)]
        if not data_cols:
            raise DataError("X: every column is a condition column; at least one column must be generated")
        kinds = {str(k): v for k, v in (self.column_kinds or {}).items()}
        bad = sorted(set(kinds) - set(df.columns))
        if bad:
            raise DataError(f"X: column_kinds names column(s) {bad} that the table does not have")
        part = {c: kinds[c] for c in data_cols if c in kinds}
        self.schema_ = TabularSchema.infer(df[data_cols], part, self.column_transform, source="X")
        self.schema_.fit(df[data_cols], "X")
        x = torch.from_numpy(self.schema_.encode(df[data_cols], "X"))
        c = None
        self.condition_schema_: TabularSchema | None = None
        self.condition_table_: dict[str, np.ndarray] = {}
        if cond:
            ck = {k: kinds[k] for k in cond if k in kinds}
            self.condition_schema_ = TabularSchema.infer(df[cond], ck, "standard", source="X").fit(df[cond], "X")
            c = torch.from_numpy(self.condition_schema_.encode(df[cond], "X")[:, :self.condition_schema_.value_dim])
            self.condition_table_ = frame_to_table(self.condition_schema_, df[cond])
        self.columns_ = [str(k) for k in df.columns]
        self.n_features_in_ = len(self.columns_)
        self.dtypes_, self.ranges_, self.category_orders_ = column_info(df, self.schema_)
        self.n_train_ = len(df)
        self._seed = int(self.random_state if self.random_state is not None else np.random.randint(0, 2**31 - 100))
        self.model_ = self._train(x, c)
        return self

    def _model_config(self) -> ModelConfig:
        s = self.schema_
        n_cond = self.condition_schema_.value_dim if self.condition_schema_ is not None else 0
        return ModelConfig(input_shape=(s.input_dim,), latent_dim=int(self.latent_dim),
                           hidden=tuple(int(h) for h in self.hidden), activation=self.activation, likelihood="mixed",
                           obs_logvar_min=float(self.obs_logvar_min), column_kinds=s.column_kinds,
                           column_sizes=s.column_sizes, n_conditions=n_cond, **estimator_zoo(self))

    def _train(self, x: torch.Tensor, c: torch.Tensor | None) -> VAE:
        """ELBO with keep-best on the held-out rows; small tables repeat so an epoch has ≥ 20 steps."""
        n = len(x)
        rng = np.random.default_rng(self._seed)
        n_val = int(round(self.validation_fraction * n)) if n >= 50 else 0
        perm = torch.from_numpy(rng.permutation(n))
        va, tr = perm[:n_val], perm[n_val:]
        x_tr, x_va = x[tr], (x[va] if n_val else None)
        c_tr, c_va = (None, None) if c is None else (c[tr], c[va] if n_val else None)
        bs = max(1, min(int(self.batch_size), len(x_tr)))
        reps = math.ceil(MIN_STEPS_PER_EPOCH * bs / len(x_tr))
        if reps > 1:
            x_tr = x_tr.repeat(reps, 1)
            c_tr = None if c_tr is None else c_tr.repeat(reps, 1)
        steps = scaled_steps(len(tr), int(self.batch_size), int(self.max_steps))
        epochs = max(1, min(int(self.epochs), steps // math.ceil(len(x_tr) / bs)))
        tcfg = TrainConfig(epochs=epochs, batch_size=bs, lr=float(self.lr), beta=float(self.beta), schedule="cosine", objective="elbo",
                           warmup_epochs=0.0, precision="fp32",
                           early_stopping=int(self.early_stopping) if n_val else 0,
                           seed=self._seed, time_limit_min=float(self.time_limit_min), nan_policy="rollback",
                           device=str(resolve_device(self.device)), num_threads=int(self.n_threads or 0))
        with torch.random.fork_rng():
            torch.manual_seed(self._seed)
            model = VAE(self._model_config())
            trainer = Trainer(model, tcfg, progress=bool(self.verbose))
            self.history_ = trainer.fit(x_tr, x_va, c_train=c_tr, c_valid=c_va)
        return model.cpu().eval()

    # --- sampling ----------------------------------------------------------------------------------------------
    def sample(self, n: int, conditions: Mapping[str, Any] | None = None, temperature: float = 1.0,
               random_state: int | None = None) -> Any:
        """n new rows (DataFrame, training columns and dtypes). ``conditions``: {column: value or n values}."""
        import pandas as pd

        check_is_fitted(self, "model_")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise VaekitError(f"n must be an integer >= 1, got {n!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0 \
                or not math.isfinite(temperature):
            raise VaekitError(f"temperature must be a positive number, got {temperature!r}")
        if conditions is not None and not isinstance(conditions, Mapping):
            raise VaekitError("conditions must be a mapping {column: value}")
        seed = int(random_state) if random_state is not None else int(np.random.default_rng().integers(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        n = int(n)
        cs = self.condition_schema_
        given = given_values(cs if cs is not None else TabularSchema([]), conditions or {}, n, self.columns_)
        cond = complete(cs, self.condition_table_, given, n, rng) if cs is not None else None
        c = None
        if cond is not None:
            c = torch.from_numpy(cs.encode(cond.infer_objects(), "conditions")[:, :cs.value_dim])
        parts = []
        model, lik = self.model_, self.model_.likelihood
        assert isinstance(lik, MixedTabular)
        dev = resolve_device(self.device)
        n_params = sum(p.numel() for p in model.parameters())
        with torch.no_grad(), threads(resolve_threads(self.n_threads, n_params)):
            model.to(dev)
            try:  # draws on the CPU (the seed's stream), the decoder on the device
                for a in range(0, n, CHUNK):
                    m = min(CHUNK, n - a)
                    z = model.sample_latents(m, gen, float(temperature))
                    cc = None if c is None else c[a:a + m].to(dev)
                    params = model.decode(z.to(dev), cc).cpu()
                    parts.append(lik.sample(tempered(lik, params, float(temperature)), gen)[:, :self.schema_.value_dim])
            finally:
                model.cpu()
        rows = self.schema_.decode(torch.cat(parts).cpu().numpy())
        if cond is not None:
            rows = pd.concat([rows, cond.reset_index(drop=True)], axis=1)
        return restore(rows[self.columns_], self.dtypes_, self.ranges_, bool(self.clip), self.category_orders_)

    # --- persistence -------------------------------------------------------------------------------------------
    def save(self, directory: Any) -> Any:
        """Model folder: generator.json, schema.json, [condition_schema.json, condition_table.safetensors], model/."""
        return save_generator(self, directory)

    @classmethod
    def load(cls, directory: Any) -> "TabularGenerator":
        return load_generator(directory, cls)
