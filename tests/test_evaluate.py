"""lgh_tf.evaluation.evaluate and main.py --mode=eval: end to end from a checkpoint trained here,
ensembles, the eval geometry, Dexter+Object and FreiHAND (pred.json) on the on-disk fixtures."""

import json
import math

import cv2
import fixtures_datasets as fx
import numpy as np
import pytest
from conftest import REPO, run_main

from lgh_tf.data import pipeline, schema, synthetic
from lgh_tf.data.freihand import OURS_FROM_FREIHAND
from lgh_tf.evaluation import evaluate


def all_finite(value):
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def oracle(dataset, xyz_by_index):
    """A stand-in network answering each batch's true crop uv and relative depth, in order."""
    answers = []
    for batch in dataset:
        K, index = batch["K"].numpy().astype(np.float64), batch["index"].numpy()
        xyz = np.asarray(xyz_by_index, np.float64)[index]
        projected = np.einsum("nab,njb->nja", K, xyz)
        child, parent = schema.SCALE_BONE
        scale = np.linalg.norm(xyz[:, child] - xyz[:, parent], axis=-1)
        depth = (xyz[..., 2] - xyz[:, schema.ROOT, 2:3]) / scale[:, None]
        answers.append({"uv": projected[..., :2] / projected[..., 2:], "depth": depth})
    answers = iter(answers)
    return lambda images: next(answers)


def test_main_eval_synthetic_and_ensemble(trained_run, tmp_path):
    model_dir, cache = trained_run.model_dir, tmp_path / "cache"
    out = tmp_path / "eval"
    result = run_main("--mode=eval", "--dataset=synthetic", f"--checkpoint={model_dir}",
                      f"--cache_dir={cache}", "--synthetic_test=8", "--batch_size=4",
                      f"--output_dir={out}")
    assert "Mean EPE [mm]" in result.stdout and "AUC [20-50]" in result.stdout
    assert "LGH " in result.stdout and "2D EPE [px]" in result.stdout and "2D EPE [% crop]" in result.stdout
    report = json.loads((out / "results.json").read_text())
    assert report["dataset"] == "synthetic" and report["protocol"] == "rhd_stb_3d"
    assert report["num_samples"] == 8 and report["checkpoints"] == [str(model_dir)]
    assert report["root_depth"] == "ground truth"
    for key in ("mean_epe_mm", "median_epe_mm", "auc_20_50", "auc_0_50"):
        assert math.isfinite(report["3d"][key]) and report["3d"][key] >= 0
    assert len(report["3d"]["pck"]) == 20 and len(report["3d"]["per_joint_mean_epe_mm"]) == 21
    assert len(report["2d"]["pck"]) == 20 and math.isfinite(report["2d"]["mean_epe_px"])
    assert all_finite(report)
    # The run trained on STB (its config.json says so): the synthetic evaluation says so too (issue 33).
    note = f"{model_dir} was trained on stb, evaluated here on the coded synthetic world"
    assert f"note: {note}" in result.stdout.splitlines() and note in report["notes"]
    for name in ("pck_curves.png", "per_joint_errors.png"):
        picture = cv2.imread(str(out / name))
        assert picture is not None and picture.shape[0] >= 200 and picture.shape[1] >= 300

    # An ensemble of the same checkpoint twice equals the single model.
    from lgh_tf.model.io import load_model

    model = load_model(str(model_dir))
    records = synthetic.load_synthetic(cache, "test", num_samples=8, seed=0)
    dataset = evaluate.make_eval_dataset("synthetic", records, output_size=64, batch_size=4)
    single, gt = evaluate.predict_dataset(model, dataset)
    double, _ = evaluate.predict_dataset([model, model], dataset)
    for key in ("uv_px", "depth", "xyz_mm", "uv_image_px"):
        np.testing.assert_allclose(double[key], single[key], rtol=0, atol=1e-9)
    assert double["num_models"] == 2 and single["num_models"] == 1
    a, b = evaluate.evaluate("synthetic", single, gt), evaluate.evaluate("synthetic", double, gt)
    assert a["3d"] == b["3d"] and a["2d"] == b["2d"]
    # ... and both reproduce the CLI's figures (the checkpoint restores every weight).
    for key in ("mean_epe_mm", "median_epe_mm", "auc_20_50", "auc_0_50"):
        assert a["3d"][key] == pytest.approx(report["3d"][key], abs=1e-3)
    assert a["2d"]["mean_epe_px"] == pytest.approx(report["2d"]["mean_epe_px"], abs=1e-3)
    # The 2D error in the network's 64-px crop, as the training logs report it, and its share.
    crop_epe = np.linalg.norm(single["uv_px"] - gt["uv_px"], axis=-1).mean()
    assert report["2d_crop"]["crop_size_px"] == 64
    assert report["2d_crop"]["mean_epe_px"] == pytest.approx(crop_epe, abs=1e-3)
    assert report["2d_crop"]["mean_epe_percent_of_crop"] == pytest.approx(100 * crop_epe / 64, abs=1e-3)


def test_eval_inputs_match_the_pipeline_and_lift_exactly(tmp_path):
    records = synthetic.load_synthetic(tmp_path, "test", num_samples=6, seed=3)
    ours = evaluate.make_eval_dataset("synthetic", records, output_size=64, batch_size=3)
    reference = pipeline.make_dataset(records, output_size=64, batch_size=3, training=False, seed=0)
    for a, b in zip(ours, reference):
        for key in ("uv", "K", "scale", "root_depth", "xyz"):
            np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-5, atol=1e-4)
        assert np.mean(np.abs(a["image"].numpy() - b["image"].numpy())) < 1e-3
    # Ground-truth uv and depth lift back onto xyz exactly; the crop maps back to the image.
    predictions, gt = evaluate.predict_dataset(oracle(ours, records.xyz), ours)
    assert not predictions["root_estimated"].any()
    np.testing.assert_allclose(predictions["xyz_mm"], gt["xyz_mm"], atol=1e-3)
    np.testing.assert_allclose(predictions["uv_image_px"], gt["uv_image_px"], atol=1e-3)
    results = evaluate.evaluate("synthetic", predictions, gt)
    assert results["3d"]["mean_epe_mm"] < 1e-3 and min(results["3d"]["pck"][1:]) == 1.0
    assert results["2d"]["mean_epe_px"] < 1e-3 and results["2d_crop"]["mean_epe_px"] < 1e-3
    # A uv off by (3, 4) crop pixels: 5 px, 7.8125% of the 64-px crop.
    shifted = dict(predictions, uv_px=predictions["uv_px"] + np.array([3.0, 4.0]))
    crop = evaluate.evaluate("synthetic", shifted, gt)["2d_crop"]
    assert crop["mean_epe_px"] == pytest.approx(5.0) and crop["mean_epe_percent_of_crop"] == pytest.approx(7.8125)
    # Without the root depth it is recovered from the scale.
    np.testing.assert_allclose(
        evaluate.root_depth_from_scale(predictions["uv_px"], predictions["depth"], gt["K"],
                                       gt["scale_mm"] / 1000.0),
        gt["root_depth_mm"] / 1000.0, rtol=1e-5)


def test_dexter_scores_fingertips_after_fitting_root_and_scale(tmp_path):
    truth = fx.write_dexter(tmp_path / "dexter", frames=1, missing_tip=("Grasp2", 0, 3))
    records, scales = evaluate.load_eval_records("dexter", data_dir=str(tmp_path / "dexter"))
    assert scales is None and len(records) == 6
    right = {path: xyz for rows in truth.values() for path, xyz, _ in rows}
    xyz = np.stack([right[str(p)] for p in records.image_path])
    dataset = evaluate.make_eval_dataset("dexter", records, output_size=64, batch_size=4)
    predictions, gt = evaluate.predict_dataset(oracle(dataset, xyz), dataset)
    tips = list(evaluate.metrics.FINGERTIPS)
    visible = gt["visible"][:, tips]
    assert visible.sum() == 6 * 5 - 1
    inside = gt["uv_px"][:, tips][visible]
    assert inside.min() > 0 and inside.max() < 63  # the fingertip box holds the fingertips
    results = evaluate.evaluate("dexter", predictions, gt)
    assert results["protocol"] == "dexter" and results["3d"]["num_joints_counted"] == 29
    assert results["3d"]["mean_epe_mm"] < 1e-2
    assert set(results["3d"]["per_joint_mean_epe_mm"]) == {schema.JOINT_NAMES[j] for j in tips}
    assert results["2d"]["num_joints_counted"] == 29 and results["2d"]["mean_epe_px"] < 1e-2


@pytest.mark.parametrize("labelled", [True, False])
def test_freihand_eval_and_pred_json(tmp_path, labelled):
    root = tmp_path / "FreiHAND_pub_v2"
    truth = fx.write_freihand(root, n_train=1, n_eval=3, eval_labels=labelled)
    records, scales = evaluate.load_eval_records("freihand", data_dir=str(root))
    hands = np.stack([hand for hand, _ in truth["evaluation"]])
    np.testing.assert_allclose(scales, np.linalg.norm(hands[:, 12] - hands[:, 11], axis=-1), rtol=1e-6)
    dataset = evaluate.make_eval_dataset("freihand", records, output_size=64, batch_size=2,
                                         scales=scales)
    predictions, gt = evaluate.predict_dataset(oracle(dataset, hands), dataset)
    assert predictions["root_estimated"].all() != labelled
    results = evaluate.evaluate("freihand", predictions, gt)
    results["num_records"] = len(records)
    paths = evaluate.write_report(results, tmp_path / "report", predictions=predictions, gt=gt)
    if labelled:
        assert results["3d"]["pa_mean_epe_cm"] < 1e-4 and results["3d"]["mean_epe_cm"] < 1e-4
        assert results["root_depth"] == "ground truth"
        assert cv2.imread(paths["pck_curves"]) is not None
    else:
        assert results["3d"] is None and results["2d"] is None and results["notes"]
        assert results["root_depth"].startswith("estimated")
    submission = json.loads(open(paths["freihand_submission"]).read())
    assert len(submission) == 2 and len(submission[0]) == len(submission[1]) == 3
    assert all(np.array(v).shape == (778, 3) for v in submission[1])
    # xyz in metres and FreiHAND's joint order: the fixture's raw annotation, written by name.
    for row, hand in zip(submission[0], hands):
        np.testing.assert_allclose(row, fx.to_raw(hand, fx.FREIHAND_NAMES), atol=1e-5)


def test_freihand_joint_order_round_trip():
    ours = np.random.default_rng(0).normal(size=(2, 21, 3))
    theirs = evaluate.to_freihand_order(ours)
    np.testing.assert_array_equal(theirs[0], fx.to_raw(ours[0], fx.FREIHAND_NAMES))
    assert fx.FREIHAND_NAMES[1] == "thumb_mcp" and np.array_equal(theirs[:, 1], ours[:, 4])
    assert fx.FREIHAND_NAMES[20] == "little_tip" and np.array_equal(theirs[:, 20], ours[:, 17])
    np.testing.assert_array_equal(evaluate.from_freihand_order(theirs), ours)
    np.testing.assert_array_equal(theirs[:, list(OURS_FROM_FREIHAND)], ours)  # the reader's table


def test_pred_json_needs_every_image_and_finite_values(tmp_path):
    results = {"dataset": "freihand", "protocol": "freihand", "3d": None, "2d": None,
               "num_records": 3, "units": {"2d": "px"}}
    predictions = {"xyz_mm": np.ones((2, 21, 3)) * 500.0}
    with pytest.raises(ValueError, match="1 could not be read .first: image 00000001"):
        evaluate.write_report(results, tmp_path / "out", predictions=predictions,
                              gt={"index": np.array([0, 2])})
    assert not (tmp_path / "out").exists()  # checked before anything is written
    with pytest.raises(ValueError, match="image 00000000 is not finite"):
        evaluate.write_freihand_submission(tmp_path / "p.json", np.full((1, 21, 3), np.nan))
    assert not (tmp_path / "p.json").exists()


def test_freihand_eval_entry_with_nan_intrinsics_fails_naming_it(tmp_path):
    """A corrupt evaluation row must not be dropped: pred.json is read by position."""
    root = tmp_path / "FreiHAND_pub_v2"
    fx.write_freihand(root, n_train=1, n_eval=3, eval_labels=False, nan_eval_K_id=1)
    with pytest.raises(ValueError, match="evaluation sample 00000001: K has non-finite values"):
        evaluate.load_eval_records("freihand", data_dir=str(root))


def test_rhd_stb_mix_is_not_an_eval_set():
    with pytest.raises(ValueError, match="--dataset=rhd and --dataset=stb"):
        evaluate.load_eval_records("rhd+stb")


ABLATIONS = {  # flagfile: (K, fusion, grouping), paper Tables 2 and 3 (RHD)
    "k1_baseline": (1, False, "learned"),
    "manual": (3, False, "manual"),
    "manual_fusion": (3, True, "manual"),
    "learned": (3, False, "learned"),
    "learned_fusion": (3, True, "learned"),
    "k2": (2, False, "learned"),
    "k3": (3, False, "learned"),
    "k4": (4, False, "learned"),
    "k5": (5, False, "learned"),
    "k21": (21, False, "learned"),
}


def test_ablation_flagfiles_parse_on_top_of_rhd():
    from absl import flags

    from flags import lgh_flags  # noqa: F401  (defines the flags)
    from lgh_tf.config import ModelConfig

    F, parsed = flags.FLAGS, {}
    try:
        for name in sorted(ABLATIONS):
            F.unparse_flags()
            F(["main.py", "--dataset=rhd", "--flagfile=flags/rhd.cfg", f"--flagfile=flags/ablations/{name}.cfg"])
            ModelConfig(num_groups=F.num_groups, fusion=F.fusion, grouping=F.grouping).validate()
            parsed[name] = [F.num_groups, F.fusion, F.grouping, F.dataset, F.input_size, F.lr_rest, F.model_dir]
    finally:
        F.unparse_flags()
    for name, (k, fusion, grouping) in ABLATIONS.items():
        assert parsed[name][:3] == [k, fusion, grouping], name
        assert parsed[name][3:6] == ["rhd", 256, 1e-4], name  # the paper's RHD settings
        assert parsed[name][6] == f"runs/rhd_{name}"
        first = (REPO / "flags" / "ablations" / f"{name}.cfg").read_text().splitlines()[0]
        assert first == "--flagfile=flags/rhd.cfg"


def test_main_eval_stops_at_once_on_bad_input(tmp_path):
    result = run_main("--mode=eval", "--dataset=stb", f"--data_dir={tmp_path / 'nowhere'}",
                      f"--checkpoint={tmp_path / 'run'}", check=False)
    assert result.returncode == 2 and "nowhere" in result.stderr and "STB" in result.stderr
    result = run_main("--mode=eval", "--dataset=synthetic", f"--cache_dir={tmp_path / 'cache'}",
                      "--synthetic_test=2", f"--checkpoint={tmp_path / 'missing'}", check=False)
    assert result.returncode == 2
    assert "error: checkpoint:" in result.stderr and "does not exist" in result.stderr
