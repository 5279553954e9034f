"""The faster k-means++ seeding picks what scikit-learn's picks."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus

from aeep_core.strategies.greedy import _seeds
from aeep_core.strategies.seeding import kmeans_plusplus


def _blobs(n: int, d: int, seed: int, dtype=np.float32) -> np.ndarray:
    """Unit rows around 12 centres, as embeddings look (a few hundred per class)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, d))
    rows = centres[rng.integers(0, 12, n)] + 0.4 * rng.standard_normal((n, d))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("n, d, k", [(3000, 128, 80), (2500, 16, 5), (1200, 600, 30)])
@pytest.mark.parametrize("trials", [None, 1])
def test_same_seeds_as_scikit_learn(n, d, k, trials):
    for seed in range(3):
        X = _blobs(n, d, seed)
        X -= X.mean(axis=0)  # KMeans seeds the centred data
        theirs = sklearn_kmeans_plusplus(X, k, random_state=seed, n_local_trials=trials)
        ours = kmeans_plusplus(X, k, random_state=seed, n_local_trials=trials)
        np.testing.assert_array_equal(ours[1], theirs[1])
        np.testing.assert_array_equal(ours[0], theirs[0])


def test_same_seeds_in_float64():
    X = _blobs(2000, 64, 7, np.float64)
    theirs = sklearn_kmeans_plusplus(X, 40, random_state=3)
    np.testing.assert_array_equal(kmeans_plusplus(X, 40, random_state=3)[1], theirs[1])


def test_kmeans_seeded_by_it_clusters_as_scikit_learn():
    X = _blobs(4000, 128, 1)
    theirs = KMeans(n_clusters=150, n_init=1, random_state=11).fit(X)
    ours = KMeans(n_clusters=150, init=_seeds, n_init=1, random_state=11).fit(X)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_array_equal(ours.cluster_centers_, theirs.cluster_centers_)


def test_seeds_are_distinct_rows_of_the_data():
    X = _blobs(500, 8, 2)
    centres, rows = kmeans_plusplus(X, 20, random_state=0)
    assert len(set(rows.tolist())) == 20
    np.testing.assert_array_equal(centres, X[rows])
