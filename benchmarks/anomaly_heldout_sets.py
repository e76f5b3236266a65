"""HELD-OUT anomaly-detection sets: never used to choose vaekit's defaults.

The 11 shared ADBench "Classical" sets (../shared/data/anomaly) chose the defaults of ``VAEAnomalyDetector``: they
are the DEVELOPMENT set. The sets below were fixed (this list, their recipes and the generation seed) before any
method was run on them. Every set is built from data that ships inside an installed package (scikit-learn) or is
generated (ADBench's "realistic synthetic" recipes, PyOD's generator); nothing is downloaded. Do not use them to
choose defaults: a default chosen on them would make them development data too.
Change of 2026-12-02 (no method's result looked at): the GMM-based sets' Gaussians are drawn through their
Cholesky factors instead of numpy's SVD-based ``multivariate_normal``, whose draws differed between CPUs (a machine
without AVX-512 built other rows from the same seed, see :func:`_gmm_sample`); same recipe, seed and counts, new
rows; the held-out results were re-run on them. Change of the same day: the fitted mixture itself is committed
(``anomaly_heldout_gmm.npz``) and drawn from with elementwise arithmetic, since EM's fit also differed in the last
bits between CPUs (then the same rows up to ~1e-16; now the same bits everywhere).

Each builder returns ``X`` (n, d) float64 and ``y`` (n,) int64 (1 = anomaly). All rows are finally put in one fixed
random order (``np.random.default_rng(0).permutation``), because ADBench's semi-supervised split takes the first
half of the normal rows in stored order and scikit-learn's wine table and GaussianMixture samples are sorted by
class/component.

    python benchmarks/anomaly_heldout_sets.py            # build all, print shapes, write anomaly_heldout_sets.json
    python benchmarks/anomaly_heldout_sets.py --refit-mixtures   # only after a recipe change: refit the GMM
"""
from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0        # the one generation seed of every set below (fixed with the list)
ALPHA = 5       # ADBench: scale of covariances (local) and of means (cluster)
PERCENTAGE = 0.1  # ADBench: global anomalies uniform in [min·(1+p), max·(1+p)] per feature

Arrays = tuple[np.ndarray, np.ndarray]


def _order(X: np.ndarray, y: np.ndarray) -> Arrays:
    p = np.random.default_rng(SEED).permutation(len(y))
    return np.asarray(X, dtype=np.float64)[p], np.asarray(y, dtype=np.int64)[p]


def _downsample(X: np.ndarray, normal: np.ndarray, anomaly: np.ndarray, n_anomalies: int) -> Arrays:
    rng = np.random.default_rng(SEED)
    picked = np.sort(rng.choice(np.flatnonzero(anomaly), n_anomalies, replace=False))
    idx = np.concatenate([np.flatnonzero(normal), picked])
    return _order(X[idx], np.r_[np.zeros(normal.sum(), np.int64), np.ones(n_anomalies, np.int64)])


def wdbc() -> Arrays:
    """ADBench's WDBC (#43: 367 rows, 30 features, 10 anomalies): scikit-learn's Wisconsin *Diagnostic* breast
    cancer table, the 357 benign rows as normal + 10 malignant rows drawn without replacement (seed 0)."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return _downsample(d.data, d.target == 1, d.target == 0, 10)


def wine() -> Arrays:
    """ADBench's wine (#45, from ODDS: 129 rows, 13 features, 10 anomalies): scikit-learn's wine table, classes 1
    and 2 (71 + 48 rows) as normal, 10 rows drawn from class 0 (59 rows; seed 0) as anomalies."""
    from sklearn.datasets import load_wine

    d = load_wine()
    return _downsample(d.data, d.target != 0, d.target == 0, 10)


def digits() -> Arrays:
    """After ADBench's optdigits (#26, ODDS: digits 1-9 normal, digit 0 down-sampled to 150 of 5,216 rows = 2.88%):
    scikit-learn's 8×8 digits (1,797 rows, 64 features, values 0..16), digits 1-9 (1,619 rows) as normal, 48 rows of
    digit 0 (of 178; seed 0) as anomalies — round(1619 · 150 / 5066) = 48, the same 2.88%."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _downsample(d.data, d.target != 0, d.target == 0, 48)


# --- ADBench "realistic synthetic" anomalies (Han et al. 2022, §3.2 / adbench/datasets/data_generator.py,
# DataGenerator.generate_realistic_synthetic), generated from the normal rows of a base set -----------------------

MIXTURES = Path(__file__).with_name("anomaly_heldout_gmm.npz")  # the committed fits (see fit_mixtures)


@dataclass(frozen=True)
class Mixture:
    """A fitted full-covariance Gaussian mixture as the sets draw from it: weights π, means μ_k, Cholesky factors
    L_k (Σ_k = L_k L_kᵀ) and the sampling seed."""
    weights: np.ndarray
    means: np.ndarray
    chol: np.ndarray
    random_state: int


def _fit(base: Callable[[], Arrays], seed: int) -> Mixture:
    """ADBench: GaussianMixture with n_components in 1..9 chosen by BIC (random_state = seed), refitted on the
    normal rows of ``base``."""
    from sklearn.mixture import GaussianMixture

    X, y = base()
    X = X[y == 0]
    bic = [GaussianMixture(n_components=k, random_state=seed).fit(X).bic(X) for k in range(1, 10)]
    gm = GaussianMixture(n_components=int(np.argmin(bic)) + 1, random_state=seed).fit(X)
    return Mixture(gm.weights_.copy(), gm.means_.copy(), np.linalg.cholesky(gm.covariances_), seed)


def fit_mixtures(path: Path = MIXTURES) -> None:
    """Refit the mixtures behind the GMM-based sets and write them to ``path`` (what is committed). Run only when a
    recipe changes: EM's last bits depend on the CPU's BLAS kernels, so a refit elsewhere gives other rows."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        m = _fit(digits, SEED)
    np.savez(path, digits_weights=m.weights, digits_means=m.means, digits_chol=m.chol,
             digits_random_state=np.int64(m.random_state))


@functools.lru_cache(maxsize=4)
def _gmm(base: Callable[[], Arrays], seed: int) -> Mixture:
    """The committed fit of ``base``'s normal rows (see :func:`_fit`), read from ``anomaly_heldout_gmm.npz``, not
    refitted: GaussianMixture's EM goes another way in the last bits on other BLAS kernels (a CPU with or without
    AVX-512), and those bits changed the drawn rows."""
    name = base.__name__
    with np.load(MIXTURES, allow_pickle=False) as f:
        m = Mixture(f[f"{name}_weights"], f[f"{name}_means"], f[f"{name}_chol"], int(f[f"{name}_random_state"]))
    if m.random_state != seed:
        raise ValueError(f"{MIXTURES.name} holds the {name} mixture for seed {m.random_state}, not {seed}")
    return m


def _gmm_sample(m: Mixture, n: int, mean_scale: float = 1.0, cov_scale: float = 1.0) -> np.ndarray:
    """``n`` draws of the mixture with means ×mean_scale and covariances ×cov_scale, drawn as sklearn's
    ``GaussianMixture.sample`` orders them (a fresh RandomState(random_state): component counts by ``multinomial``,
    then each component's rows), each row μ + √cov_scale·L·ε with ε from ``standard_normal``. L·ε is summed column
    by column with elementwise numpy operations (each one correctly rounded IEEE arithmetic, the same on every CPU),
    not by a BLAS product, whose summation order depends on the kernel; numpy's SVD-based ``multivariate_normal`` is
    not used either (the digits covariances have many equal eigenvalues, so its basis, and every draw, changed with
    the last bits of Σ). So the rows are the same bits on every machine."""
    rng = np.random.RandomState(m.random_state)
    counts = rng.multinomial(n, m.weights)
    rows = []
    for mean, L, c in zip(m.means, m.chol, counts):
        eps = rng.standard_normal((int(c), len(mean)))
        Lt = L.T * np.sqrt(cov_scale)
        acc = np.zeros_like(eps)
        for j in range(len(mean)):
            acc += eps[:, j:j + 1] * Lt[j]
        rows.append(mean * mean_scale + acc)
    return np.vstack(rows)


class _KDE1:
    """One feature's Gaussian KDE (scipy's, Scott's bandwidth, as copulas' GaussianKDE); a constant column stays
    constant (as copulas' univariate models do)."""

    def __init__(self, x: np.ndarray):
        from scipy.stats import gaussian_kde

        self.x = np.asarray(x, dtype=np.float64)
        self.const = bool(np.ptp(self.x) == 0)
        if not self.const:
            self.kde = gaussian_kde(self.x)
            h = float(np.sqrt(self.kde.covariance[0, 0]))
            from scipy.special import ndtr

            self.grid = np.linspace(self.x.min() - 5 * h, self.x.max() + 5 * h, 512)
            self.cdf = np.maximum.accumulate(ndtr((self.grid[:, None] - self.x[None, :]) / h).mean(1))

    def sample(self, n: int, rs: np.random.RandomState) -> np.ndarray:
        return np.full(n, self.x[0]) if self.const else self.kde.resample(n, seed=rs)[0]

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return np.full(len(u), self.x[0]) if self.const else np.interp(u, self.cdf, self.grid)


def synthetic(base: Callable[[], Arrays], mode: str, seed: int = SEED) -> Arrays:
    """ADBench's four anomaly types from the NORMAL rows of ``base`` (its anomalies are dropped; counts kept):

    - local: normal = samples of a GMM fitted to the normal rows; anomalies = the same GMM with covariances ×α (α=5);
    - cluster: normal as local; anomalies = the GMM with means ×α;
    - global: normal as local; anomalies uniform per feature in [min·1.1, max·1.1] of the synthetic normal data
      (ADBench's formula; for a feature with min ≥ 0 this shifts the lower end up rather than widening);
    - dependency: (ADBench samples 50 of > 50 features first, as here) normal = samples of a copula fitted to the
      normal rows, anomalies = each feature drawn independently from its own Gaussian KDE, so the marginals match
      and only the dependence is broken. **Deviation**: ADBench fits a C-vine copula with the ``copulas`` package,
      which is not installed here; this uses a Gaussian copula (normal scores of the ranks, their correlation) over
      the same per-feature KDE marginals. **Deviation** (local/cluster/global): the GMM is the committed fit
      (:func:`_gmm`), not refitted, and its Gaussians are drawn through their Cholesky factors with elementwise
      arithmetic (:func:`_gmm_sample`), not sklearn's ``sample``, so the rows do not depend on the machine.
    """
    X, y = base()
    X = X[y == 0]
    pts_n, pts_a = int((y == 0).sum()), int((y == 1).sum())
    rs = np.random.RandomState(seed)  # ADBench's np.random.seed(seed) global stream
    if mode in ("local", "cluster", "global"):
        gm = _gmm(base, seed)
        Xn = _gmm_sample(gm, pts_n)
        if mode == "local":
            Xa = _gmm_sample(gm, pts_a, cov_scale=ALPHA)
        elif mode == "cluster":
            Xa = _gmm_sample(gm, pts_a, mean_scale=ALPHA)
        else:
            Xa = np.array([rs.uniform(low=Xn[:, i].min() * (1 + PERCENTAGE), high=Xn[:, i].max() * (1 + PERCENTAGE),
                                      size=pts_a) for i in range(Xn.shape[1])]).T
    elif mode == "dependency":
        from scipy.stats import norm, rankdata

        if X.shape[1] > 50:
            X = X[:, rs.choice(np.arange(X.shape[1]), 50, replace=False)]
        kdes = [_KDE1(X[:, i]) for i in range(X.shape[1])]
        var = np.array([not k.const for k in kdes])
        z = norm.ppf(rankdata(X[:, var], axis=0) / (len(X) + 1))
        corr = np.corrcoef(z, rowvar=False)
        Z = rs.multivariate_normal(np.zeros(var.sum()), corr, size=pts_n)
        U = np.full((pts_n, X.shape[1]), 0.5)
        U[:, var] = norm.cdf(Z)
        Xn = np.column_stack([k.ppf(U[:, i]) for i, k in enumerate(kdes)])
        Xa = np.column_stack([k.sample(pts_a, rs) for k in kdes])
    else:
        raise ValueError(f"unknown synthetic mode {mode!r}")
    return _order(np.vstack([Xn, Xa]), np.r_[np.zeros(pts_n, np.int64), np.ones(pts_a, np.int64)])


def pyod_clusters() -> Arrays:
    """PyOD's generator of clustered data with low-density and global outliers (PyOD ships no real data set):
    ``pyod.utils.data.generate_data_clusters(n_train=1000, n_test=500, n_clusters=3, n_features=5,
    contamination=0.1, size='different', density='different', random_state=0)``, train and test parts joined."""
    from pyod.utils.data import generate_data_clusters

    Xtr, Xte, ytr, yte = generate_data_clusters(n_train=1000, n_test=500, n_clusters=3, n_features=5,
                                                contamination=0.1, size="different", density="different",
                                                random_state=SEED)
    return _order(np.vstack([Xtr, Xte]), np.r_[ytr, yte].astype(np.int64))


# name → (builder, documented (n, d, anomalies))
HELDOUT: dict[str, tuple[Callable[[], Arrays], tuple[int, int, int]]] = {
    "wdbc": (wdbc, (367, 30, 10)),
    "wine": (wine, (129, 13, 10)),
    "digits": (digits, (1667, 64, 48)),
    "digits_local": (lambda: synthetic(digits, "local"), (1667, 64, 48)),
    "digits_cluster": (lambda: synthetic(digits, "cluster"), (1667, 64, 48)),
    "digits_global": (lambda: synthetic(digits, "global"), (1667, 64, 48)),
    "digits_dependency": (lambda: synthetic(digits, "dependency"), (1667, 50, 48)),
    "pyod_clusters": (pyod_clusters, (1500, 5, 150)),
}
RECIPES = {
    "wdbc": wdbc.__doc__, "wine": wine.__doc__, "digits": digits.__doc__, "pyod_clusters": pyod_clusters.__doc__,
    **{f"digits_{m}": f"ADBench realistic-synthetic '{m}' anomalies (alpha={ALPHA}, percentage={PERCENTAGE}, seed "
                      f"{SEED}) from the 1,619 normal rows of 'digits', 48 anomalies; see synthetic()."
       for m in ("local", "cluster", "global", "dependency")},
}


def load(name: str) -> Arrays:
    if name not in HELDOUT:
        raise KeyError(f"{name!r} is not a held-out set; known: {list(HELDOUT)}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # BLAS at one thread: its summation order, and so the last bits, depend on threads
        return HELDOUT[name][0]()


def digest(X: np.ndarray, y: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes()
                          + np.ascontiguousarray(y, dtype=np.int64).tobytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    if "--refit-mixtures" in (sys.argv[1:] if argv is None else argv):
        fit_mixtures()
        print(f"wrote {MIXTURES}", file=sys.stderr)
    out = []
    for name, (_, shape) in HELDOUT.items():
        X, y = load(name)
        got = (X.shape[0], X.shape[1], int(y.sum()))
        assert got == shape, (name, got, shape)
        out.append({"name": name, "n": got[0], "d": got[1], "anomalies": got[2],
                    "anomaly_pct": round(100 * got[2] / got[0], 2), "recipe": " ".join(RECIPES[name].split()),
                    "sha256_float64_X_then_int64_y": digest(X, y), "sum_X": float(X.sum()),
                    "sum_abs_X": float(np.abs(X).sum()), "sum_X_anomalies": float(X[y == 1].sum())})
        print(f"{name:18s} n={got[0]:5d} d={got[1]:3d} anomalies={got[2]:4d} ({out[-1]['anomaly_pct']}%)")
    import sklearn

    doc = {"purpose": "held-out evaluation sets for anomaly detection; never used to choose defaults",
           "development_sets": "the 11 ADBench Classical sets in ../shared/data/anomaly",
           "generation_seed": SEED, "sklearn": sklearn.__version__, "numpy": np.__version__, "sets": out}
    path = Path(__file__).with_suffix(".json")
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
