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



def partition_from_affinity(affinity: npt.ArrayLike, num_groups: int) -> np.ndarray:
    """Average-linkage clustering of a symmetric (N, N) affinity (larger = more alike) into at most
    ``num_groups`` groups: (N,) labels 0..num_groups-1."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    affinity = np.asarray(affinity, np.float64)
    if affinity.ndim != 2 or affinity.shape[0] != affinity.shape[1] or not np.all(np.isfinite(affinity)):
        raise ValueError(f"need a finite square affinity matrix, got shape {affinity.shape}")
    symmetric = 0.5 * (affinity + affinity.T)
    distance = symmetric.max() - symmetric
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    labels = fcluster(tree, num_groups, criterion="maxclust") - 1
    return np.unique(labels, return_inverse=True)[1]


def match_groups_to_branches(labels: npt.ArrayLike, branch_errors: npt.ArrayLike) -> np.ndarray:
    """Renumbers the groups of ``labels`` (N,) so that each goes to the branch whose summed error
    over its joints is lowest, one group per branch (Hungarian). branch_errors: (K, N)."""
    from scipy.optimize import linear_sum_assignment

    labels, branch_errors = np.asarray(labels), np.asarray(branch_errors, np.float64)
    num_branches = branch_errors.shape[0]
    cost = np.zeros((num_branches, num_branches))
    for group in range(num_branches):
        cost[group] = branch_errors[:, labels == group].sum(axis=1)
    rows, cols = linear_sum_assignment(cost)
    mapping = np.empty(num_branches, int)
    mapping[rows] = cols
    return mapping[labels]


def align_groups(groups: list[list[int]], reference: list[list[int]]) -> list[list[int]]:
    """``groups`` reordered so that group k shares the most joints with ``reference``'s group k
    (Hungarian; shorter lists padded with empty groups), e.g. to draw the same partition of two
    runs in the same colours. The partition itself is unchanged."""
    from scipy.optimize import linear_sum_assignment

    count, size = len(groups), max(len(groups), len(reference))
    if not size:
        return []
    padded = [list(g) for g in groups] + [[] for _ in range(size - count)]
    targets = [set(g) for g in reference] + [set() for _ in range(size - len(reference))]
    overlap = np.array([[len(target & set(g)) for g in padded] for target in targets])
    rows, cols = linear_sum_assignment(-overlap)
    aligned = [padded[c] for _, c in sorted(zip(rows, cols))]
    return aligned[:count] if not any(aligned[count:]) else aligned


def co_assignment(labelings: npt.ArrayLike) -> np.ndarray:
    """(N, N) share of the labelings (R, N) that put items i and j in the same group."""
    labelings = np.asarray(labelings)
    return np.mean(labelings[:, :, None] == labelings[:, None, :], axis=0)


def consensus_partition(labelings: npt.ArrayLike, num_groups: int) -> np.ndarray:
    """The consensus grouping of several runs: average linkage on how often two joints share a group."""
    return partition_from_affinity(co_assignment(labelings), num_groups)
