"""Tests of lgh_tf.evaluation.metrics against hand-computed values and independent scipy solutions.

Pure numpy/scipy; no TensorFlow.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from lgh_tf.data.schema import JOINT_NAMES, NUM_JOINTS
from lgh_tf.evaluation import metrics as M

# An offset of (6, 8, 0) mm has length exactly 10 mm in floating point.
OFFSET_10MM = np.array([6.0, 8.0, 0.0])


def random_poses(n, seed=0, joints=NUM_JOINTS):
    """Hand-sized random point sets in mm: ~40 mm spread around a point 500 mm from the camera.

    Whole millimetres, so that adding OFFSET_10MM gives errors of exactly 10 mm.
    """
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(scale=40.0, size=(n, joints, 3))) + np.array([0.0, 0.0, 500.0])


def assert_perfect_curve(pck, area, thresholds):
    """Errors of ~1e-13 after an exact alignment: PCK 1 from the first positive threshold on.

    At threshold 0 such round-off residues may or may not count (error <= 0), so the AUC lies
    between 1 minus half of the first trapezoid and 1.
    """
    np.testing.assert_array_equal(pck[1:], 1.0)
    first = 0.5 * (thresholds[1] - thresholds[0]) / (thresholds[-1] - thresholds[0])
    assert 1.0 - first - 1e-12 <= area <= 1.0 + 1e-12


def similarity(points, scale, rotation, translation):
    """scale * R @ p + t for every point of a (J, 3) pose."""
    return scale * points @ rotation.T + translation


# ---------------------------------------------------------------------------------------------
# EPE, PCK, AUC by hand
# ---------------------------------------------------------------------------------------------


def test_constant_10mm_error_mean_median_and_pck():
    gt = random_poses(4)
    pred = gt + OFFSET_10MM
    errors = M.epe(pred, gt)
    assert errors.shape == (4, NUM_JOINTS)
    np.testing.assert_allclose(errors, 10.0, atol=1e-9)
    assert M.mean_epe(errors) == pytest.approx(10.0)
    assert M.median_epe(errors) == pytest.approx(10.0)

    thresholds = np.array([0.0, 5.0, 9.999, 10.0, 15.0, 20.0])
    np.testing.assert_array_equal(M.pck_curve(errors, thresholds), [0, 0, 0, 1, 1, 1])


def test_auc_by_hand_small_threshold_set():
    # All errors 10 mm on thresholds 0, 5, 10, 15, 20 -> PCK 0, 0, 1, 1, 1.
    # Trapezoids: 0 + (0 + 1) / 2 * 5 + 5 + 5 = 12.5 over a range of 20 -> 0.625.
    errors = np.full((3, NUM_JOINTS), 10.0)
    thresholds = np.array([0.0, 5.0, 10.0, 15.0, 20.0])
    pck = M.pck_curve(errors, thresholds)
    np.testing.assert_array_equal(pck, [0, 0, 1, 1, 1])
    assert M.auc(thresholds, pck) == pytest.approx(0.625)


def test_auc_of_perfect_prediction_is_one():
    gt = random_poses(3)
    result = M.rhd_stb_3d_protocol(gt.copy(), gt)
    assert result["mean_epe_mm"] == 0.0
    assert result["median_epe_mm"] == 0.0
    np.testing.assert_array_equal(result["pck"], 1.0)  # error 0 <= threshold 0 counts
    assert result["auc_0_50"] == pytest.approx(1.0)
    assert result["auc_20_50"] == pytest.approx(1.0)


def test_auc_normalises_by_threshold_range_not_count():
    thresholds = np.array([20.0, 30.0, 50.0])
    pck = np.array([0.2, 0.6, 1.0])
    # (0.2 + 0.6) / 2 * 10 + (0.6 + 1.0) / 2 * 20 = 4 + 16 = 20, over a range of 30.
    assert M.auc(thresholds, pck) == pytest.approx(20.0 / 30.0)


def test_rhd_stb_protocol_thresholds_and_auc_slices():
    thresholds = M.RHD_STB_THRESHOLDS_MM
    assert thresholds.shape == (20,)
    assert thresholds[0] == 0.0 and thresholds[-1] == 50.0
    kept = thresholds[M.AUC_20_50_FIRST_INDEX :]
    assert kept[0] == pytest.approx(21.0526, abs=1e-4)
    assert kept.size == 12

    gt = random_poses(5, seed=1)
    result = M.rhd_stb_3d_protocol(gt + OFFSET_10MM, gt)
    assert result["mean_epe_mm"] == pytest.approx(10.0)
    assert result["median_epe_mm"] == pytest.approx(10.0)
    # Step h = 50 / 19: thresholds 0..3 (<= 7.9 mm) give 0, 4 on (>= 10.5 mm) give 1.
    h = 50.0 / 19.0
    expected_pck = (np.arange(20) >= 4).astype(float)
    np.testing.assert_array_equal(result["pck"], expected_pck)
    assert result["auc_0_50"] == pytest.approx((h / 2 + (50.0 - 4 * h)) / 50.0)
    assert result["auc_20_50"] == pytest.approx(1.0)
    np.testing.assert_allclose(result["thresholds_mm"], np.linspace(0, 50, 20))
    assert result["num_samples"] == 5
    assert result["num_joints_counted"] == 5 * NUM_JOINTS
    assert result["per_joint_mean_epe_mm"]["middle_mcp"] == pytest.approx(10.0)


def test_auc_20_50_uses_sub_range_normaliser():
    # A curve that is 0 below 30 mm and 1 from 30 mm on, on the protocol's 20 thresholds.
    thresholds = np.array(M.RHD_STB_THRESHOLDS_MM)
    errors = np.full((2, NUM_JOINTS), 30.0)
    pck = M.pck_curve(errors, thresholds)
    k = M.AUC_20_50_FIRST_INDEX
    t = thresholds[k:]
    p = pck[k:]
    by_hand = sum((t[i + 1] - t[i]) * (p[i] + p[i + 1]) / 2 for i in range(t.size - 1))
    assert M.auc(t, p) == pytest.approx(by_hand / (50.0 - t[0]))


# ---------------------------------------------------------------------------------------------
# Visibility and the per-keypoint convention
# ---------------------------------------------------------------------------------------------


def test_invisible_joints_are_ignored_and_may_be_nan():
    gt = random_poses(3, seed=2)
    pred = gt + OFFSET_10MM
    visible = np.ones((3, NUM_JOINTS), dtype=bool)
    visible[0, :5] = False
    visible[2, 12] = False
    pred[~visible] += 1000.0  # huge errors where not visible
    gt[0, 3] = np.nan  # and an unannotated ground truth
    errors = M.epe(pred, gt, visible)
    assert np.isnan(errors[~visible]).all()
    np.testing.assert_allclose(errors[visible], 10.0)
    result = M.rhd_stb_3d_protocol(pred, gt, visible)
    assert result["mean_epe_mm"] == pytest.approx(10.0)
    assert result["num_joints_counted"] == int(visible.sum())


def test_float_visibility_mask_and_broadcast_mask():
    gt = random_poses(2, seed=3)
    pred = gt + OFFSET_10MM
    pred[:, 0] += 100.0
    as_float = np.ones((2, NUM_JOINTS))
    as_float[:, 0] = 0.0
    per_joint = np.arange(NUM_JOINTS) != 0  # (J,) mask, same for every sample
    for visible in (as_float, per_joint):
        assert M.mean_epe(M.epe(pred, gt, visible)) == pytest.approx(10.0)


def test_per_keypoint_versus_pooled_averaging():
    # Joint 0: one counted sample, error 0. Joint 1: three counted samples, error 10 each.
    errors = np.array([[0.0, 10.0], [np.nan, 10.0], [np.nan, 10.0]])
    assert M.mean_epe(errors) == pytest.approx(5.0)  # mean of per-keypoint means (0, 10)
    assert M.mean_epe(errors, pooled=True) == pytest.approx(7.5)  # 30 / 4
    assert M.median_epe(errors) == pytest.approx(5.0)  # mean of per-keypoint medians (0, 10)
    assert M.median_epe(errors, pooled=True) == pytest.approx(10.0)  # median of 0, 10, 10, 10
    thresholds = [5.0]
    np.testing.assert_allclose(M.pck_curve(errors, thresholds), [0.5])  # (1 + 0) / 2
    np.testing.assert_allclose(M.pck_curve(errors, thresholds, pooled=True), [0.25])  # 1 / 4


def test_per_keypoint_convention_matches_a_loop_over_keypoints():
    """Independent, loop-based restatement of Zimmermann & Brox's per-keypoint statistics."""
    rng = np.random.default_rng(4)
    errors = rng.gamma(2.0, 6.0, size=(40, NUM_JOINTS))
    visible = rng.random((40, NUM_JOINTS)) > 0.3
    visible[:, 7] = False  # a keypoint never counted is skipped
    thresholds = np.linspace(0.0, 50.0, 20)

    means, medians, curves = [], [], []
    for j in range(NUM_JOINTS):
        data = errors[visible[:, j], j]
        if data.size == 0:
            continue
        means.append(data.mean())
        medians.append(np.median(data))
        curves.append([np.mean(data <= t) for t in thresholds])
    curve = np.mean(curves, axis=0)

    assert M.mean_epe(errors, visible) == pytest.approx(np.mean(means))
    assert M.median_epe(errors, visible) == pytest.approx(np.mean(medians))
    np.testing.assert_allclose(M.pck_curve(errors, thresholds, visible), curve)
    per_keypoint_auc = [
        np.trapezoid(c, thresholds) / (thresholds[-1] - thresholds[0]) for c in curves
    ]
    assert M.auc(thresholds, curve) == pytest.approx(np.mean(per_keypoint_auc))

    per_joint = M.per_joint_epe(errors, visible)
    assert list(per_joint) == list(JOINT_NAMES)
    assert per_joint[JOINT_NAMES[7]] is None
    assert per_joint[JOINT_NAMES[0]] == pytest.approx(errors[visible[:, 0], 0].mean())


# ---------------------------------------------------------------------------------------------
# Procrustes
# ---------------------------------------------------------------------------------------------


def test_procrustes_recovers_rotated_scaled_shifted_copy():
    gt = random_poses(6, seed=5)
    rotations = Rotation.random(6, random_state=5).as_matrix()
    pred = np.stack(
        [
            similarity(g, 0.5 + i * 0.3, r.T, np.array([10.0 * i, -20.0, 300.0]))
            for i, (g, r) in enumerate(zip(gt, rotations))
        ]
    )
    aligned, (s, rot, t) = M.procrustes_align(pred, gt, return_transform=True)
    np.testing.assert_allclose(aligned, gt, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
    for i in range(6):  # the inverse transform of the one applied
        np.testing.assert_allclose(rot[i], rotations[i], atol=1e-12)
        np.testing.assert_allclose(s[i], 1.0 / (0.5 + i * 0.3), rtol=1e-12)
    reapplied = s[:, None, None] * pred @ rot.transpose(0, 2, 1) + t[:, None]
    np.testing.assert_allclose(reapplied, gt, atol=1e-9)


def test_procrustes_single_pose_input():
    gt = random_poses(1, seed=6)[0]
    rot = Rotation.from_euler("xyz", [30, -60, 100], degrees=True).as_matrix()
    pred = similarity(gt, 2.5, rot, np.array([-5.0, 7.0, 1.0]))
    aligned = M.procrustes_align(pred, gt)
    assert aligned.shape == gt.shape
    np.testing.assert_allclose(aligned, gt, atol=1e-9)


def test_procrustes_reflection_handling():
    gt = random_poses(1, seed=7)[0]
    mirror = np.diag([1.0, 1.0, -1.0])
    rot = Rotation.from_euler("zyx", [10, 20, 30], degrees=True).as_matrix()
    pred = similarity(gt, 1.3, rot @ mirror, np.array([1.0, 2.0, 3.0]))  # improper transform

    proper, (_, r_proper, _) = M.procrustes_align(pred, gt, return_transform=True)
    assert np.linalg.det(r_proper) == pytest.approx(1.0)
    assert np.abs(proper - gt).max() > 1.0  # a mirror image cannot be rotated onto the original

    improper, (_, r_improper, _) = M.procrustes_align(
        pred, gt, allow_reflection=True, return_transform=True
    )
    assert np.linalg.det(r_improper) == pytest.approx(-1.0)
    np.testing.assert_allclose(improper, gt, atol=1e-9)

    # det = +1 solution equals an independent proper-rotation fit: scipy's Kabsch
    # (Rotation.align_vectors only returns proper rotations) plus the optimal scale by hand.
    pc, gc = pred - pred.mean(0), gt - gt.mean(0)
    kabsch, _ = Rotation.align_vectors(gc, pc)
    r = kabsch.as_matrix()
    s = np.sum(gc * (pc @ r.T)) / np.sum(pc * pc)
    np.testing.assert_allclose(proper, s * pc @ r.T + gt.mean(0), atol=1e-9)


def scipy_similarity_fit(pred, gt):
    """Independent similarity fit of one pose: scipy's orthogonal Procrustes, scale/shift by hand.

    Unlike ``procrustes_align``'s default, the rotation may be improper (det -1).
    """
    mu_p, mu_g = pred.mean(0), gt.mean(0)
    pc, gc = pred - mu_p, gt - mu_g
    r, singular_value_sum = orthogonal_procrustes(pc, gc)  # pc @ r ~ gc, any det
    scale = singular_value_sum / np.sum(pc * pc)
    return scale * pc @ r + mu_g, r


@pytest.mark.parametrize("seed", [8, 9, 10])
def test_procrustes_matches_scipy_orthogonal_procrustes(seed):
    rng = np.random.default_rng(seed)
    gt = random_poses(4, seed=seed)
    rotations = Rotation.random(4, random_state=seed).as_matrix()
    noisy = np.stack(
        [similarity(g, 0.8, r, rng.normal(size=3) * 50) for g, r in zip(gt, rotations)]
    ) + rng.normal(scale=8.0, size=gt.shape)
    unrelated = random_poses(4, seed=seed + 100)  # may well prefer a reflection

    improper_cases = 0
    for pred in (noisy, unrelated):
        ours_any = M.procrustes_align(pred, gt, allow_reflection=True)
        ours_proper, (_, r_proper, _) = M.procrustes_align(pred, gt, return_transform=True)
        for i in range(4):
            expected, r = scipy_similarity_fit(pred[i], gt[i])
            np.testing.assert_allclose(ours_any[i], expected, atol=1e-9)
            np.testing.assert_allclose(np.linalg.det(r_proper[i]), 1.0, atol=1e-12)
            if np.linalg.det(r) > 0:  # scipy's optimum is proper: the det = +1 fit is the same
                np.testing.assert_allclose(ours_proper[i], expected, atol=1e-9)
            else:  # the constrained fit is a different, worse (never better) solution
                improper_cases += 1
                residual_proper = np.sum((ours_proper[i] - gt[i]) ** 2)
                assert residual_proper > np.sum((expected - gt[i]) ** 2)
    if seed in (8, 9):
        assert improper_cases > 0  # these seeds exercise the reflection branch


def test_procrustes_fits_on_visible_joints_only():
    gt = random_poses(2, seed=11)
    rot = Rotation.from_euler("x", 40, degrees=True).as_matrix()
    pred = np.stack([similarity(g, 1.7, rot, np.array([3.0, 4.0, 5.0])) for g in gt])
    visible = np.ones((2, NUM_JOINTS), dtype=bool)
    visible[:, [2, 9, 20]] = False
    pred[~visible] = np.nan  # unpredicted joints do not disturb the fit
    aligned = M.procrustes_align(pred, gt, visible)
    np.testing.assert_allclose(aligned[visible], gt[visible], atol=1e-9)
    assert np.isnan(aligned[~visible]).all()


# ---------------------------------------------------------------------------------------------
# Dexter+Object and FreiHAND
# ---------------------------------------------------------------------------------------------


def test_dexter_alignment_recovers_translated_scaled_pose():
    gt = random_poses(5, seed=12)
    pred = 0.7 * gt + np.array([30.0, -12.0, 80.0])  # wrong root and hand size, right shape
    gt_tips_only = np.full_like(gt, np.nan)
    tips = list(M.FINGERTIPS)
    gt_tips_only[:, tips] = gt[:, tips]  # Dexter+Object annotates only the fingertips

    aligned = M.align_scale_translation(pred, gt, np.isin(np.arange(NUM_JOINTS), tips))
    np.testing.assert_allclose(aligned, gt, atol=1e-9)

    result = M.dexter_protocol(pred, gt_tips_only)
    assert result["mean_epe_mm"] == pytest.approx(0.0, abs=1e-9)
    assert_perfect_curve(result["pck"], result["auc_0_50"], result["thresholds_mm"])
    assert result["num_joints_counted"] == 5 * 5
    assert set(result["per_joint_mean_epe_mm"]) == {JOINT_NAMES[j] for j in tips}

    unaligned = M.dexter_protocol(pred, gt_tips_only, align="none")
    assert unaligned["mean_epe_mm"] > 10.0


def test_dexter_alignment_is_least_squares():
    rng = np.random.default_rng(13)
    gt = random_poses(1, seed=13)
    pred = 1.2 * gt + rng.normal(scale=5.0, size=gt.shape) + 40.0
    aligned = M.align_scale_translation(pred, gt)
    # Independent least squares in (s, tx, ty, tz): [p_x 1 0 0; p_y 0 1 0; p_z 0 0 1] x = g.
    p, g = pred[0].reshape(-1), gt[0].reshape(-1)
    design = np.column_stack([p, np.tile(np.eye(3), (NUM_JOINTS, 1))])
    x, *_ = np.linalg.lstsq(design, g, rcond=None)
    np.testing.assert_allclose(aligned[0].reshape(-1), design @ x, atol=1e-9)


def test_dexter_missing_fingertip_and_translation_mode():
    gt = random_poses(2, seed=14)
    pred = gt + np.array([5.0, 5.0, 5.0])
    visible = np.zeros((2, NUM_JOINTS), dtype=bool)
    visible[:, list(M.FINGERTIPS)] = True
    visible[1, 9] = False  # middle tip not annotated in frame 1
    gt[1, 9] = np.nan
    result = M.dexter_protocol(pred, gt, visible, align="translation")
    assert result["mean_epe_mm"] == pytest.approx(0.0, abs=1e-9)
    assert result["num_joints_counted"] == 9


def test_freihand_protocol_aligned_and_unaligned():
    gt = random_poses(3, seed=15)
    rotations = Rotation.random(3, random_state=15).as_matrix()
    shift = np.array([2.0, 0.0, -4.0])
    pred = np.stack([similarity(g, 1.1, r, shift) for g, r in zip(gt, rotations)])
    result = M.freihand_protocol(pred, gt)
    assert result["thresholds_mm"].shape == (100,)
    assert result["pa_mean_epe_mm"] == pytest.approx(0.0, abs=1e-9)
    assert_perfect_curve(result["pa_pck"], result["pa_auc_0_50"], result["thresholds_mm"])
    assert result["mean_epe_mm"] > 10.0
    assert result["mean_epe_cm"] == pytest.approx(result["mean_epe_mm"] / 10.0)

    offset = M.freihand_protocol(gt + OFFSET_10MM, gt)
    assert offset["mean_epe_cm"] == pytest.approx(1.0)  # 10 mm = 1 cm
    assert offset["pa_mean_epe_cm"] == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# 2D
# ---------------------------------------------------------------------------------------------


def test_pck_2d_and_protocol_2d():
    rng = np.random.default_rng(16)
    gt = rng.integers(0, 320, size=(3, NUM_JOINTS, 2)).astype(float)
    pred = gt + np.array([3.0, 4.0])  # 5 px
    visible = np.ones((3, NUM_JOINTS), dtype=bool)
    visible[0, 0] = False
    pred[0, 0] += 100.0
    np.testing.assert_array_equal(M.pck_2d(pred, gt, [4.0, 5.0, 6.0], visible), [0, 1, 1])
    result = M.protocol_2d(pred, gt, visible)
    assert result["mean_epe_px"] == pytest.approx(5.0)
    assert result["median_epe_px"] == pytest.approx(5.0)
    np.testing.assert_allclose(result["thresholds_px"], np.linspace(0, 30, 20))
    np.testing.assert_allclose(list(result["per_joint_mean_epe_px"].values()), 5.0)


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def test_summarize_is_json_serialisable():
    gt = random_poses(2, seed=17)
    result = M.rhd_stb_3d_protocol(gt + OFFSET_10MM, gt)
    summary = M.summarize(result)
    assert "pck" not in summary and "thresholds_mm" not in summary
    assert isinstance(summary["mean_epe_mm"], float)
    json.dumps(summary, allow_nan=False)
    with_curves = M.summarize(result, curves=True)
    assert len(with_curves["pck"]) == 20 and all(isinstance(v, float) for v in with_curves["pck"])
    json.dumps(with_curves, allow_nan=False)
    freihand = M.summarize(M.freihand_protocol(gt, gt), curves=True)
    json.dumps(freihand, allow_nan=False)


def test_format_table_paper_layout():
    rows = {
        "Baseline": {"mean_epe_mm": 11.534, "median_epe_mm": 8.885, "auc_20_50": 0.951},
        "Learned + Fuse": M.summarize(
            {"mean_epe_mm": 10.653, "median_epe_mm": 8.2, "auc_20_50": 0.96, "auc_0_50": 0.8}
        ),
    }
    table = M.format_table(rows)
    lines = table.splitlines()
    assert lines[0].split("  ")[0].strip() == "Method"
    for header in ("Mean EPE [mm]", "Median EPE [mm]", "AUC [20-50]", "AUC [0-50]"):
        assert header in lines[0]
    assert lines[0].index("Mean EPE") < lines[0].index("Median EPE") < lines[0].index("AUC [20")
    assert lines[2].split() == ["Baseline", "11.534", "8.885", "0.951", "-"]
    assert lines[3].split() == ["Learned", "+", "Fuse", "10.653", "8.200", "0.960", "0.800"]
    freihand = M.format_table(
        [("ours", {"pa_mean_epe_cm": 0.856, "pa_auc_0_50": 0.831})], M.FREIHAND_COLUMNS
    )
    assert "Mean EPE [cm]" in freihand and "0.856" in freihand


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_nan_in_ground_truth_names_the_sample():
    gt = random_poses(5, seed=18)
    gt[3, 5, 0] = np.nan
    with pytest.raises(ValueError, match=r"gt.* sample 3, joint 5 \(index_tip\)"):
        M.epe(gt, gt)
    with pytest.raises(ValueError, match="sample 3"):
        M.rhd_stb_3d_protocol(random_poses(5), gt)
    with pytest.raises(ValueError, match="sample 3"):
        M.procrustes_align(random_poses(5), gt)


def test_nan_in_prediction_is_rejected():
    gt = random_poses(2, seed=19)
    pred = gt.copy()
    pred[1, 0, 2] = np.inf
    with pytest.raises(ValueError, match=r"pred.* sample 1"):
        M.freihand_protocol(pred, gt)


@pytest.mark.parametrize(
    "pred_shape, gt_shape, match",
    [
        ((2, 21, 3), (2, 20, 3), "same shape"),
        ((3, 21, 3), (2, 21, 3), "same shape"),
        ((21, 3), (21, 3), r"\(N, J, D\)"),
        ((2, 21, 2), (2, 21, 2), "3 coordinates"),
        ((2, 20, 3), (2, 20, 3), "21 joints"),
    ],
)
def test_shape_errors(pred_shape, gt_shape, match):
    with pytest.raises(ValueError, match=match):
        M.rhd_stb_3d_protocol(np.zeros(pred_shape), np.ones(gt_shape))


def test_other_bad_inputs():
    gt = random_poses(2, seed=20)
    with pytest.raises(ValueError, match="visible must have shape"):
        M.epe(gt, gt, np.ones((2, 20), dtype=bool))
    with pytest.raises(ValueError, match="nothing to evaluate"):
        M.mean_epe(M.epe(gt, gt, np.zeros((2, NUM_JOINTS), dtype=bool)))
    with pytest.raises(ValueError, match="strictly increasing"):
        M.auc([0.0, 10.0, 5.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="shape of thresholds"):
        M.auc([0.0, 10.0], [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="at least two"):
        M.auc([1.0], [1.0])
    with pytest.raises(ValueError, match=r"errors must have shape \(N, J\)"):
        M.pck_curve(np.zeros(5), [1.0])
    with pytest.raises(ValueError, match="align must be"):
        M.dexter_protocol(gt, gt, align="rotation")
    with pytest.raises(ValueError, match="2 coordinates"):
        M.pck_2d(gt, gt, [1.0])


def test_metres_instead_of_millimetres_warns():
    gt_m = random_poses(3, seed=21) / 1000.0
    with pytest.warns(UserWarning, match="millimetres"):
        M.rhd_stb_3d_protocol(gt_m, gt_m)


def test_metrics_module_does_not_import_tensorflow():
    code = (
        "import sys, lgh_tf.evaluation.metrics; "
        "sys.exit(1 if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
