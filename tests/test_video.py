"""Localisation without a box, handedness, tracking, One Euro smoothing, EXIF and the video outputs,
on synthetic sequences (``hand_sequences``) with an oracle that reads the joints off the pixels.

Figures are printed (``pytest -s``) and asserted with margins; they are the ones in docs/in-the-wild.md."""

import json
import os

import cv2
import numpy as np
import pytest
from conftest import run_main, small_config
from hand_sequences import MarkerOracle, jitter_and_lag, render_sequence

from lgh_tf import geometry, localize, predict, video


def joint_error(uv, truth, size=(640, 480)):
    """Mean 2D distance over the joints inside the frame (a joint outside it is nobody's to find)."""
    inside = np.all((truth >= 0) & (truth <= np.array(size) - 1), axis=-1)
    return float(np.mean(np.linalg.norm(np.asarray(uv) - truth, axis=-1)[inside]))


@pytest.fixture(scope="module")
def sequence():
    # 48 frames of one loop (the hand crosses the frame and scales 240 -> 140 px), no hand in 3.
    return render_sequence(48, seed=0, absent=(20, 21, 40))


def test_search_without_a_box_is_as_good_as_the_true_box(sequence):
    frames, truth, _ = sequence
    errors = {"search": [], "true box": [], "whole image only": []}
    passes = []
    for k in range(0, 48, 4):
        if truth[k] is None:
            continue
        low, high = truth[k].min(axis=0), truth[k].max(axis=0)
        box = (*low, *(high - low + 1))
        oracle = MarkerOracle(256, noise_px=1.5, seed=k)
        found = localize.localize(oracle, frames[k])
        passes.append(found["iterations"])
        assert found["detected"] and found["source"] == "search"
        errors["search"].append(joint_error(found["uv"], truth[k]))
        errors["true box"].append(joint_error(localize.localize(oracle, frames[k], box=box)["uv"], truth[k]))
        errors["whole image only"].append(joint_error(localize.localize(oracle, frames[k], iterations=1)["uv"],
                                                      truth[k]))
    means = {k: float(np.mean(v)) for k, v in errors.items()}
    print(f"\nmean 2D error [px] over {len(passes)} frames: " + ", ".join(f"{k} {v:.2f}" for k, v in means.items())
          + f"; search passes {np.mean(passes):.1f} (max {max(passes)})")
    assert means["search"] < 1.25 * means["true box"] + 0.5
    assert means["whole image only"] > 2.0 * means["search"]  # the refinement is what makes it work
    assert max(passes) <= localize.SEARCH_ITERATIONS


def test_no_hand_or_a_tiny_hand_is_reported_not_found(sequence):
    frames, truth, _ = sequence
    oracle = MarkerOracle(256)
    empty = localize.localize(oracle, frames[20], hand="auto")
    assert truth[20] is None and not empty["detected"] and empty["status"] == "low confidence"
    assert empty["confidence"] < 0.02  # a flat heatmap: pi 2^2 / 64^2 = 0.003
    tiny = cv2.resize(frames[0], (80, 60), interpolation=cv2.INTER_AREA)  # the hand ~25 px across
    result = localize.localize(oracle, tiny)
    assert not result["detected"] and result["status"] in ("low confidence", "too small")
    found = localize.localize(oracle, frames[0])
    assert found["detected"] and found["confidence"] > 0.3


def test_auto_handedness_finds_mirrored_hands(sequence):
    frames, truth, _ = sequence
    left_frames, left_truth, _ = render_sequence(48, seed=0, absent=(20, 21, 40), mirrored=True)
    chosen = {"right": [], "left": []}
    errors = []
    for k in range(0, 48, 6):
        if truth[k] is None:
            continue
        for name, frame in (("right", frames[k]), ("left", left_frames[k])):
            result = localize.localize(MarkerOracle(256, seed=k), frame, hand="auto")
            chosen[name].append(result["hand"])
            assert result["handedness"]["mode"] == "auto" and set(result["handedness"]) == {"mode", "right", "left"}
            if name == "left":
                errors.append(joint_error(result["uv"], left_truth[k]))
    print(f"\nauto on right hands: {chosen['right']}; on mirrored (left) hands: {chosen['left']}; "
          f"left-hand 2D error {np.mean(errors):.2f} px")
    assert chosen["right"] == ["right"] * len(chosen["right"])
    assert chosen["left"] == ["left"] * len(chosen["left"])
    assert np.mean(errors) < 3.0  # the mirrored crop's joints are mapped back to the image
    # Forced: "left" on a left hand is as good; "right" on it is less confident.
    k = 8
    as_left = localize.localize(MarkerOracle(256), left_frames[k], hand="left")
    as_right = localize.localize(MarkerOracle(256), left_frames[k], hand="right")
    assert joint_error(as_left["uv"], left_truth[k]) < 3.0 and as_right["confidence"] < as_left["confidence"]


def test_tracking_keeps_the_hand_through_the_sequence(sequence):
    frames, truth, _ = sequence
    oracle = MarkerOracle(256, noise_px=1.0)
    records = list(video.track(oracle, video.array_source(frames), hand="auto", smoothing=False))
    present = [t is not None for t in truth]
    assert [r["detected"] for r in records] == present
    relocalised = [r["frame"] for r in records if r["relocalised"]]
    # Searched again only where the hand vanished (20, 40), stayed away (21) and came back (22, 41).
    assert relocalised == [20, 21, 22, 40, 41]
    assert all(r["source"] == "prior" for r in records if r["detected"] and r["frame"] not in (0, 22, 41))
    errors = [joint_error(r["uv"], t) for r, t in zip(records, truth) if t is not None]
    print(f"\ntracked {sum(present)}/{len(present)} hand frames, mean 2D error {np.mean(errors):.2f} px "
          f"(max {np.max(errors):.2f}), network calls {oracle.calls} for {len(frames)} frames")
    assert np.max(errors) < 8.0 and all(r["hand"] == "right" for r in records if r["detected"])
    # Unknown camera: 65 degrees across 640 px -> f = 320 / tan(32.5 deg) = 502.3 px, centre (319.5, 239.5);
    # the raw 3D joints project back onto the raw 2D ones through it.
    K = geometry.default_intrinsics(640, 480)
    assert K[0, 0] == pytest.approx(502.3, abs=0.05)
    for r in records:
        assert set(r["assumptions"]) >= {"intrinsics", "scale"} and "502.3 px" in r["assumptions"]["intrinsics"]
        if r["detected"]:
            xyz = np.array(r["xyz_raw"])
            assert xyz.shape == (21, 3) and np.all(xyz[:, 2] > 0)
            np.testing.assert_allclose(geometry.project(xyz, K), r["uv_raw"], atol=1e-6)
            bone = np.linalg.norm(xyz[12] - xyz[11])
            assert bone == pytest.approx(0.04, rel=1e-6)  # the assumed scale (Iqbal et al.'s root depth)


def test_one_euro_lowers_jitter_at_a_small_lag():
    # A slow part of a loop (about 4 px per frame at 30 fps) and a noisy oracle (2 crop px).
    frames, truth, _ = render_sequence(60, seed=3, period=360)
    records = list(video.track(MarkerOracle(256, noise_px=2.0, seed=1), video.array_source(frames)))
    assert all(r["detected"] for r in records)
    truth = np.array(truth)
    raw_jitter, raw_lag = jitter_and_lag([r["uv_raw"] for r in records], truth)
    jitter, lag = jitter_and_lag([r["uv"] for r in records], truth)
    raw_3d = np.array([r["xyz_raw"] for r in records])
    smooth_3d = np.array([r["xyz"] for r in records])
    step = lambda x: np.sqrt(np.mean(np.sum(np.diff(x, 2, axis=0) ** 2, axis=-1)))  # noqa: E731
    config = video.OneEuroConfig()
    print(f"\nOne Euro (min_cutoff {config.min_cutoff} Hz, beta {config.beta}, d_cutoff {config.d_cutoff} Hz): "
          f"2D jitter {raw_jitter:.2f} -> {jitter:.2f} px ({raw_jitter / jitter:.2f}x lower), lag {raw_lag:.2f} -> "
          f"{lag:.2f} frames; 3D second difference {1000 * step(raw_3d):.2f} -> {1000 * step(smooth_3d):.2f} mm")
    assert raw_jitter / jitter > 1.8 and raw_lag <= 0.1 and lag < 2.5
    assert step(smooth_3d) < 0.6 * step(raw_3d)


def test_one_euro_filter_by_hand():
    f = video.OneEuroFilter(video.OneEuroConfig(min_cutoff=1.0, beta=0.0, d_cutoff=1.0))
    assert f(np.array([[0.0, 0.0]]), 0.0)[0, 0] == 0.0  # the first sample passes
    # beta 0: a first-order low-pass at 1 Hz; dt = 0.1 s -> a = 1 / (1 + 1 / (2 pi 0.1)) = 0.3858.
    alpha = 1.0 / (1.0 + 1.0 / (2 * np.pi * 1.0 * 0.1))
    np.testing.assert_allclose(f(np.array([[1.0, 2.0]]), 0.1), [[alpha, 2 * alpha]])
    f.reset()
    np.testing.assert_allclose(f(np.array([[5.0, 5.0]]), 0.2), [[5.0, 5.0]])


def write_jpeg_with_orientation(path, rgb, orientation):
    from PIL import Image

    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, quality=95, exif=exif)


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image, ImageOps

    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :10] = (255, 0, 0)  # red at the stored top-left
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.jpg"
        write_jpeg_with_orientation(path, stored, orientation)
        rgb, notes = predict.read_image(path)
        with Image.open(path) as image:
            expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        assert rgb.shape == expected.shape
        assert np.abs(rgb.astype(int) - expected).max() <= 2
        assert any("EXIF orientation" in n for n in notes) == (orientation != 1)
    # 6 = "rotate 90 degrees clockwise to display": 60 rows x 40 columns, red at the top-right.
    rgb, _ = predict.read_image(tmp_path / "o6.jpg")
    assert rgb.shape == (60, 40, 3) and rgb[2, 37, 0] > 200 and rgb[2, 2, 0] < 50


def test_exif_photo_joints_are_in_displayed_pixels(sequence, tmp_path):
    frames, truth, _ = sequence
    k = 4
    # Store the displayed frame rotated, tagged 8 ("rotate 90 degrees counter-clockwise to display").
    stored = np.ascontiguousarray(np.rot90(frames[k], -1))
    path = tmp_path / "phone.png"
    write_jpeg_with_orientation(str(path), stored, 8)  # PNG with an eXIf chunk (lossless)
    result = predict.predict_image(MarkerOracle(256), str(path))
    assert result["image_size"] == [640, 480] and result["detected"]
    assert joint_error(result["uv"], truth[k]) < 3.0


def test_detector_boxes_from_json_lines(sequence, tmp_path):
    frames, truth, _ = sequence
    low, high = truth[0].min(axis=0), truth[0].max(axis=0)
    path = tmp_path / "boxes.jsonl"
    path.write_text(json.dumps({"image": "a/hand.png", "boxes": [[500, 20, 60, 60], [*low, *(high - low)]]}) + "\n"
                    + "\n" + json.dumps({"frame": 3, "boxes": [[1, 2, 3, 4]]}) + "\n")
    table = predict.read_detections(path)
    assert set(table) == {"hand.png", 3} and len(table["hand.png"]) == 2
    result = predict.predict_image(MarkerOracle(256), frames[0], boxes=table["hand.png"])
    assert result["crop"]["box"] == pytest.approx([*low, *(high - low)]) and result["detected"]
    assert joint_error(result["uv"], truth[0]) < 3.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "x.png", "boxes": [[1, 2, 3, 4]]}\n{"image": "y.png", "boxes": [[1, 2]]}\n')
    with pytest.raises(ValueError, match="bad.jsonl line 2"):
        predict.read_detections(bad)


def test_video_outputs(sequence, tmp_path):
    frames, truth, _ = sequence
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(10):
        cv2.imwrite(str(folder / f"{k:04d}.png"), frames[k][..., ::-1])
    (folder / "0010.png").write_bytes(b"not a png")  # counted and named, not fatal
    source = video.open_frames(images=str(folder), fps=10)
    summary = video.run(MarkerOracle(256), source, str(tmp_path / "out"), view_3d=True, progress=False, hand="auto")
    assert summary["frames"] == 10 and summary["detected"] == 10 and summary["hands"] == {"right": 10, "left": 0}
    assert [s["name"] for s in summary["skipped"]] == ["0010.png"]
    lines = open(summary["paths"]["jsonl"]).read().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(10))
    for r, t in zip(records, truth):
        assert r["hand"] == "right" and 0 < r["confidence"] <= 1 and len(r["joint_confidence"]) == 21
        assert joint_error(r["uv_raw"], t) < 3.0
    for what in ("overlay", "3d"):
        capture = cv2.VideoCapture(summary["paths"][what])
        count = 0
        while capture.read()[0]:
            count += 1
        assert count == 10, what
    sheet = cv2.imread(summary["paths"]["contact_sheet"])
    assert sheet is not None and sheet.shape[1] > 1000
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".")]  # no temporary left
    with pytest.raises(ValueError, match="video: no such file"):
        video.open_frames(str(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match="images: no image files"):
        video.open_frames(images=str(tmp_path / "out" / ".."))


def test_main_predict_video_with_a_tflite_model(sequence, tmp_path):
    """--mode=predict --video on an mp4 with the float32 TFLite file of a tiny random network:
    the wiring from flags to outputs (a random network finds no hand, which is reported)."""
    import tensorflow as tf

    from lgh_tf.export import saved_model, tflite
    from lgh_tf.model.network import LearnableGroupsNet

    frames, _, _ = sequence
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for frame in frames[:4]:
        writer.write(frame[..., ::-1].copy())
    writer.release()
    tf.keras.utils.set_random_seed(0)
    model = LearnableGroupsNet(small_config()).build_for_input()
    version = saved_model.export_saved_model(model, str(tmp_path / "lgh"))
    path = tflite.convert(version, "float32")
    out = tmp_path / "out"
    result = run_main("--mode=predict", f"--checkpoint={path}", f"--video={clip}", f"--output_dir={out}", "--hand=auto")
    assert "4 frames" in result.stdout and "frames/s" in result.stdout
    records = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(0 <= r["confidence"] <= 1 for r in records)
    assert (out / "clip_overlay.mp4").stat().st_size > 0 and (out / "clip_summary.json").exists()
    # Bad input: one line, exit status 2.
    result = run_main("--mode=predict", f"--checkpoint={path}", f"--video={tmp_path / 'none.mp4'}", check=False)
    assert result.returncode == 2 and "error: video: no such file" in result.stderr
