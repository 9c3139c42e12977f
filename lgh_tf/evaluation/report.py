"""The evaluation's report: the paper's table layout (text) and ``results.json``, PCK curves,
per-joint errors, ``predictions.npz`` and, for FreiHAND, ``pred.json`` in an output directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from lgh_tf import files
from lgh_tf.evaluation import freihand_io, metrics

# What one evaluation writes; results.json last (a report whose results.json is new is new throughout).
REPORT_FILES = ("pck_curves.png", "per_joint_errors.png", "predictions.npz", "pred.json", "results.json")

TABLE_COLUMNS = {
    "rhd_stb_3d": metrics.RHD_STB_COLUMNS,
    "dexter": metrics.DEXTER_COLUMNS,
    "freihand": metrics.FREIHAND_COLUMNS,
}


def results_table(rows: Mapping[str, Mapping[str, Any]], *, precision: int = 3) -> str:
    """The paper's table layout for ``{row name: scoring.score(...) result}`` (one protocol), plus the
    2D figures (mean EPE in px, AUC over 0-30 px, mean EPE as % of the network's crop side)."""
    rows = dict(rows)
    protocols = {r["protocol"] for r in rows.values()}
    if len(protocols) != 1:
        raise ValueError(f"one protocol per table, got {sorted(protocols)}")
    columns = tuple(TABLE_COLUMNS[protocols.pop()]) + (
        ("2D EPE [px]", "epe_2d_px"), ("2D AUC [0-30px]", "auc_2d"), ("2D EPE [% crop]", "epe_2d_crop_pct"))
    flat = {}
    for name, result in rows.items():
        cells = dict(result.get("3d") or {})
        if result.get("2d"):
            cells["epe_2d_px"] = result["2d"].get("mean_epe_px")
            cells["auc_2d"] = result["2d"].get("auc")
        if result.get("2d_crop"):
            cells["epe_2d_crop_pct"] = result["2d_crop"].get("mean_epe_percent_of_crop")
        flat[name] = cells
    return metrics.format_table(flat, columns, precision=precision)


def write_report(
    results: Mapping[str, Any],
    out_dir: str,
    *,
    predictions: Mapping[str, Any] | None = None,
    gt: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, str]:
    """Writes the evaluation into ``out_dir``; returns ``{what: path}``.

    ``results.json`` (every figure of ``results``, curves and per-joint errors included),
    ``pck_curves.png`` (3D and 2D PCK curves), ``per_joint_errors.png`` (when 3D was scored),
    ``predictions.npz`` (when ``predictions`` are given) and, for FreiHAND with predictions,
    ``pred.json`` for the evaluation server, rows in the order of the evaluation images.
    """
    from lgh_tf import visualize

    submission = None
    if predictions is not None and results.get("dataset") == "freihand":
        submission = freihand_io.submission_rows(results, predictions, gt)  # checked before anything is written
    files.require_directory(out_dir, "output_dir")
    # Written as a whole or not at all: a full disk midway leaves the previous report complete.
    with files.staged_outputs(out_dir, REPORT_FILES) as staging:
        paths = {}
        title = title or f"{results.get('dataset', '')}: {results.get('protocol', '')}"
        path = os.path.join(staging, "results.json")
        files.write_json(path, files.to_jsonable(results))
        paths["results"] = path

        panels = []
        r3, r2 = results.get("3d"), results.get("2d")
        if r3:
            curves = [("PCK", r3["thresholds_mm"], r3["pck"], r3.get("auc_0_50"))]
            if "pa_pck" in r3:
                curves = [("Procrustes aligned", r3["thresholds_mm"], r3["pa_pck"], r3.get("pa_auc_0_50")),
                          ("unaligned", r3["thresholds_mm"], r3["pck"], r3.get("auc_0_50"))]
            panels.append(("3D PCK", "error threshold [mm]", curves))
        if r2:
            panels.append(("2D PCK", f"error threshold [px, {results['units']['2d']}]",
                           [("PCK", r2["thresholds_px"], r2["pck"], r2.get("auc"))]))
        if panels:
            path = os.path.join(staging, "pck_curves.png")
            files.write_png(path, visualize.pck_curves_figure(panels, title))
            paths["pck_curves"] = path
        if r3:
            per_joint = r3.get("per_joint_mean_epe_mm") or r3.get("pa_per_joint_mean_epe_mm") or {}
            label = "mean error [mm]" + (" (aligned)" if "pa_per_joint_mean_epe_mm" in r3 else "")
            if per_joint:
                path = os.path.join(staging, "per_joint_errors.png")
                files.write_png(path, visualize.per_joint_error_figure(per_joint, label, title))
                paths["per_joint_errors"] = path

        if predictions is not None:
            path = os.path.join(staging, "predictions.npz")
            arrays = {f"pred_{k}": np.asarray(v) for k, v in predictions.items()}
            if gt is not None:
                arrays.update({f"gt_{k}": np.asarray(v) for k, v in gt.items()})
            files.save_npz(path, **arrays)
            paths["predictions"] = path
            if submission is not None:
                path = os.path.join(staging, "pred.json")
                freihand_io.write_freihand_submission(path, submission)
                paths["freihand_submission"] = path
    return {what: os.path.join(out_dir, os.path.basename(path)) for what, path in paths.items()}
