"""Comparing joint groupings: the adjusted Rand index (Hubert & Arabie 1985) between two partitions.

Used to ask whether two training runs (e.g. two seeds) learned the same joint groups: 1 for the
same partition (whatever the group numbering), about 0 for groupings no more alike than chance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt


def _pairs(counts):
    counts = np.asarray(counts, dtype=np.float64)
    return counts * (counts - 1.0) / 2.0


def adjusted_rand_index(labels_a: npt.ArrayLike, labels_b: npt.ArrayLike) -> float:
    """ARI of two labelings of the same items (any hashable labels; numbering does not matter).

    ARI = (sum_ij C(n_ij, 2) - E) / (M - E), with n_ij the contingency table,
    E = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(n, 2) and M = (sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2.
    Two identical partitions with M = E (every item alone, or all in one group) give 1.
    """
    labels_a, labels_b = np.asarray(labels_a), np.asarray(labels_b)
    if labels_a.shape != labels_b.shape or labels_a.ndim != 1:
        raise ValueError(f"need two 1-D labelings of the same length, got {labels_a.shape} and {labels_b.shape}")
    _, a = np.unique(labels_a, return_inverse=True)
    _, b = np.unique(labels_b, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)
    index = _pairs(table).sum()
    rows, cols = _pairs(table.sum(axis=1)).sum(), _pairs(table.sum(axis=0)).sum()
    expected = rows * cols / _pairs(len(a))
    maximum = (rows + cols) / 2.0
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))

