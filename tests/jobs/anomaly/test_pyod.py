"""VAEAnomalyDetector against PyOD's detector contract (pyod.models.base.BaseDetector) and combination tools."""
import copy

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from vaekit import VAEAnomalyDetector

pyod = pytest.importorskip("pyod")
from pyod.models.base import BaseDetector  # noqa: E402

SMALL = dict(epochs=5, n_models=1, k=4, hidden=(16,), latent_dim=2, max_steps=150, random_state=0)


def _blobs(n=300, d=5, n_out=15, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(2, d))
    inl = rng.normal(size=(n, 2)) @ w + 0.1 * rng.normal(size=(n, d))
    return np.vstack([inl, rng.normal(size=(n_out, d)) * 3]), np.r_[np.zeros(n), np.ones(n_out)]


@pytest.fixture(scope="module")
def data():
    X, y = _blobs()
    return X, y, _blobs(n=100, n_out=5, seed=1)[0]


@pytest.fixture(scope="module", params=[0.1, "auto"], ids=["contamination=0.1", "contamination=auto"])
def fitted(request, data):
    X, _, _ = data
    return VAEAnomalyDetector(contamination=request.param, **SMALL).fit(X)


def _pyod_view(det):
    """A copy carrying the attributes PyOD's BaseDetector methods read (they call our decision_function)."""
    ref = copy.copy(det)
    ref._classes, ref._mu, ref._sigma = 2, float(np.mean(det.decision_scores_)), float(np.std(det.decision_scores_))
    if det.contamination == "auto":  # PyOD's branch for a non-numeric contamination: the flagged training share
        ref.contamination = type("Thresholder", (), {"predict": lambda self, s: (s > det.threshold_).astype(int)})()
    return ref


@pytest.mark.parametrize("method", ["linear", "unify"])
def test_predict_proba_matches_pyod(fitted, data, method):
    _, _, X_new = data
    probs = fitted.predict_proba(X_new, method=method)
    assert probs.shape == (len(X_new), 2) and probs.min() >= 0 and probs.max() <= 1
    assert np.allclose(probs.sum(1), 1)
    ref = BaseDetector.predict_proba(_pyod_view(fitted), X_new, method=method)
    np.testing.assert_allclose(probs, ref, rtol=0, atol=1e-12)
    probs2, conf = fitted.predict_proba(X_new, method=method, return_confidence=True)
    assert np.array_equal(probs, probs2) and conf.shape == (len(X_new),)


def test_predict_proba_rejects_other_methods(fitted, data):
    with pytest.raises(ValueError, match="linear"):
        fitted.predict_proba(data[2], method="softmax")


def test_predict_confidence_matches_pyod(fitted, data):
    X, _, X_new = data
    for Z in (X, X_new):
        conf = fitted.predict_confidence(Z)
        assert conf.shape == (len(Z),) and conf.min() >= 0 and conf.max() <= 1
        ref = BaseDetector.predict_confidence(_pyod_view(fitted), Z)
        np.testing.assert_allclose(conf, ref, rtol=0, atol=1e-9)


def test_predict_with_confidence_and_fit_predict(fitted, data):
    X, _, X_new = data
    labels, conf = fitted.predict(X_new, return_confidence=True)
    assert np.array_equal(labels, fitted.predict(X_new)) and set(np.unique(labels)) <= {0, 1}
    assert np.allclose(conf, fitted.predict_confidence(X_new))
    # far-off rows are outliers with high confidence; the most typical training rows are inliers with high confidence
    s = fitted.decision_scores_
    assert conf[labels == 1].size == 0 or conf[labels == 1].max() <= 1
    assert fitted.predict_confidence(X[np.argsort(s)[:10]]).min() > 0.9
    assert np.array_equal(clone(fitted).fit_predict(X), fitted.labels_)


def test_clone_gives_an_unfitted_copy_with_the_same_params(fitted):
    c = clone(fitted)
    assert c.get_params() == fitted.get_params() and not hasattr(c, "models_")
    assert clone(VAEAnomalyDetector(device="cpu", n_threads=1)).get_params()["n_threads"] == 1


def test_member_of_pyod_lscp(data):
    from pyod.models.lscp import LSCP

    X, y, _ = data
    members = [VAEAnomalyDetector(**{**SMALL, "random_state": s}) for s in (0, 1)]
    lscp = LSCP(members, local_region_size=30, random_state=0).fit(X)
    s = lscp.decision_function(X[:40])
    assert s.shape == (40,) and np.isfinite(s).all()
    assert roc_auc_score(y, lscp.decision_scores_) > 0.8
    assert all(hasattr(m, "models_") for m in lscp.detector_list)


def test_base_estimator_of_pyod_feature_bagging(data):
    """FeatureBagging clones the detector (sklearn.base.clone), sets random_state, fits it on feature subsets."""
    pytest.importorskip("combo", reason="pyod.models.feature_bagging needs the 'combo' package")
    from pyod.models.feature_bagging import FeatureBagging

    X, y, X_new = data
    fb = FeatureBagging(VAEAnomalyDetector(**SMALL), n_estimators=2, random_state=0).fit(X)
    assert len(fb.estimators_) == 2 and all(isinstance(e, VAEAnomalyDetector) for e in fb.estimators_)
    assert roc_auc_score(y, fb.decision_scores_) > 0.8
    assert fb.decision_function(X_new).shape == (len(X_new),)
    probs = fb.predict_proba(X_new)
    assert probs.shape == (len(X_new), 2) and probs.min() >= 0 and probs.max() <= 1


def test_scores_combine_with_other_detectors_like_pyod_combination(data):
    """pyod.models.combination needs the optional 'combo' package; its average/maximization are these two lines."""
    from pyod.models.iforest import IForest
    from pyod.utils.utility import standardizer

    X, y, X_new = data
    dets = [VAEAnomalyDetector(**SMALL), IForest(random_state=0)]
    train = np.column_stack([d.fit(X).decision_scores_ for d in dets])
    test = np.column_stack([d.decision_function(X_new) for d in dets])
    train_n, test_n = standardizer(train, test)
    for comb in (train_n.mean(1), train_n.max(1)):
        assert comb.shape == (len(X),) and roc_auc_score(y, comb) > 0.8
    assert test_n.mean(1).shape == (len(X_new),)
    try:
        from pyod.models.combination import aom, average
    except ImportError:
        return
    assert np.allclose(average(train_n), train_n.mean(1)) and aom(train_n, n_buckets=2).shape == (len(X),)

