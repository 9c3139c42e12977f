"""Reporting of protocol results: a JSON-ready copy (``summarize``) and the paper's table layout
(``format_table`` with the column sets of each protocol)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# format_table columns: (header, result key). The paper's Tables 2/3 plus AUC [0-50] (Fig. 3).
RHD_STB_COLUMNS = (
    ("Mean EPE [mm]", "mean_epe_mm"),
    ("Median EPE [mm]", "median_epe_mm"),
    ("AUC [20-50]", "auc_20_50"),
    ("AUC [0-50]", "auc_0_50"),
)
# The paper's Table 1 (aligned figures; FreiHAND reports the mean EPE in cm), then unaligned ones.
FREIHAND_COLUMNS = (
    ("Mean EPE [cm]", "pa_mean_epe_cm"),
    ("AUC [0-50]", "pa_auc_0_50"),
    ("Mean EPE [cm] unaligned", "mean_epe_cm"),
    ("AUC [0-50] unaligned", "auc_0_50"),
)
DEXTER_COLUMNS = (
    ("Mean EPE [mm]", "mean_epe_mm"),
    ("Median EPE [mm]", "median_epe_mm"),
    ("AUC [0-50]", "auc_0_50"),
)


def _plain_scalar(value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def summarize(result: Mapping[str, Any], *, curves: bool = False) -> dict[str, Any]:
    """A JSON-serialisable copy of a protocol result: Python floats/ints, nested dicts kept.

    Arrays (PCK curves, thresholds) are dropped unless ``curves=True``, which turns them into
    lists of floats. NaN/inf become None, so ``json.dumps(..., allow_nan=False)`` works.
    """
    out = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            out[str(key)] = summarize(value, curves=curves)
        elif isinstance(value, (np.ndarray, list, tuple)):
            if curves:
                out[str(key)] = [_plain_scalar(v) for v in np.asarray(value).ravel().tolist()]
        else:
            out[str(key)] = _plain_scalar(value)
    return out


def format_table(
    results: Mapping[str, Mapping[str, Any]] | Sequence[tuple[str, Mapping[str, Any]]],
    columns: Sequence[tuple[str, str]] = RHD_STB_COLUMNS,
    *,
    name_header: str = "Method",
    precision: int = 3,
) -> str:
    """Render results as a plain-text table in the paper's layout; returns the string to print.

    Args:
      results: ``{row name: result dict}`` (a protocol result or its ``summarize``), or a
        sequence of ``(row name, result dict)`` pairs, in display order.
      columns: ``(header, key)`` pairs. ``RHD_STB_COLUMNS`` (default) gives the paper's
        "Mean EPE [mm] | Median EPE [mm] | AUC [20-50]" plus "AUC [0-50]";
        ``FREIHAND_COLUMNS`` and ``DEXTER_COLUMNS`` suit the other protocols.
      precision: decimals (the paper prints 3). A missing or None value prints as "-".
    """
    rows = list(results.items()) if isinstance(results, Mapping) else list(results)
    header = [name_header] + [title for title, _ in columns]
    body = []
    for name, result in rows:
        cells = [str(name)]
        for _, key in columns:
            value = result.get(key) if isinstance(result, Mapping) else None
            cells.append("-" if value is None else f"{float(value):.{precision}f}")
        body.append(cells)
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:]))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(cells) for cells in body])
