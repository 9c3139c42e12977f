"""Tests of the embedded synthetic hand data set (lgh_tf.data.synthetic)."""

import colorsys
import os

import cv2
import numpy as np
import pytest

from lgh_tf.data import schema, synthetic

SIZE = 320
NUM_SAMPLES = 8


@pytest.fixture(scope="module")
def samples():
    """The first 24 training samples of seed 0 (renders are ~10 ms each)."""
    return [synthetic.render_sample(0, index, SIZE) for index in range(24)]


def _bone_lengths(xyz):
    return {
        (parent, child): np.linalg.norm(xyz[..., parent, :] - xyz[..., child, :], axis=-1)
        for parent, child in schema.BONES
    }


def _stored_frame(sample):
    """uv in the frame of the stored PNG (the raw render, before the pipeline's flip)."""
    uv, _, _ = synthetic.flip_annotations(sample["uv"], sample["xyz"], sample["K"], SIZE)
    return uv if sample["flip"] else sample["uv"]


def _pixel(uv):
    u, v = np.round(uv).astype(int)
    return v, u


def _shows_part(labels, pixel, label):
    """True when the 3x3 patch around ``pixel`` is all ``label`` (clear of anti-aliased edges)."""
    row, col = pixel
    return bool(np.all(labels[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] == label))


def _hue_degrees(rgb):
    hue, _, _ = colorsys.rgb_to_hsv(*(np.asarray(rgb, float) / 255.0))
    return 360.0 * hue


def _nearest_finger_by_hue(rgb):
    hue = _hue_degrees(rgb)
    distances = {
        finger: min(abs(hue - _hue_degrees(color)), 360.0 - abs(hue - _hue_degrees(color)))
        for finger, color in synthetic.FINGER_COLORS.items()
    }
    return min(distances, key=distances.get)


def _handedness_score(xyz):
    """> 0 for most right hands: fingertips lie on the palm side of the (index x little) normal.

    A flat hand is its own mirror image up to a rotation, so this is a majority signal only.
    """
    normal = np.cross(xyz[8] - xyz[0], xyz[20] - xyz[0])
    normal /= np.linalg.norm(normal)
    tips_and_bases = [(joints[0], joints[3]) for joints in schema.FINGER_JOINTS.values()]
    return sum(np.dot(normal, xyz[tip] - xyz[base]) for tip, base in tips_and_bases)


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------
def test_same_seed_and_index_give_identical_samples():
    first, second = synthetic.render_sample(3, 5, SIZE), synthetic.render_sample(3, 5, SIZE)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_different_index_seed_or_split_give_different_samples():
    reference = synthetic.render_sample(3, 5, SIZE)
    others = [
        synthetic.render_sample(3, 6, SIZE),
        synthetic.render_sample(4, 5, SIZE),
        synthetic.render_sample(3, 5, SIZE, split="test"),
    ]
    for other in others:
        assert not np.array_equal(reference["image"], other["image"])
        assert not np.allclose(reference["xyz"], other["xyz"])


def test_dtypes_and_shapes(samples):
    sample = samples[0]
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (SIZE, SIZE, 3)
    assert sample["uv"].dtype == np.float32 and sample["uv"].shape == (schema.NUM_JOINTS, 2)
    assert sample["xyz"].dtype == np.float32 and sample["xyz"].shape == (schema.NUM_JOINTS, 3)
    assert sample["K"].dtype == np.float32 and sample["K"].shape == (3, 3)
    assert sample["visible"].dtype == bool and sample["visible"].shape == (schema.NUM_JOINTS,)
    assert sample["mask"].shape == sample["part_labels"].shape == (SIZE, SIZE)


def test_image_size_scales_intrinsics():
    small = synthetic.render_sample(0, 1, 128)
    assert small["image"].shape == (128, 128, 3)
    np.testing.assert_allclose(small["uv"], synthetic.project(small["xyz"], small["K"]), atol=1e-3)
    assert 300 * 128 / 320 * 0.97 < small["K"][0, 0] < 350 * 128 / 320 * 1.03


# ---------------------------------------------------------------------------------------------
# Annotations
# ---------------------------------------------------------------------------------------------
def test_uv_is_the_projection_of_xyz(samples):
    for sample in samples:
        K = sample["K"].astype(np.float64)
        projected = synthetic.project(sample["xyz"].astype(np.float64), K)
        np.testing.assert_allclose(sample["uv"], projected, atol=1e-3)
        assert K[0, 1] == K[1, 0] == K[2, 0] == K[2, 1] == 0 and K[2, 2] == 1


def test_camera_and_depth_ranges(samples):
    for sample in samples:
        K, xyz = sample["K"], sample["xyz"]
        assert 300 * 0.97 < K[0, 0] < 350 * 1.03 and 300 * 0.97 < K[1, 1] < 350 * 1.03
        assert abs(K[0, 2] - (SIZE - 1) / 2) < 30 and abs(K[1, 2] - (SIZE - 1) / 2) < 30
        low, high = synthetic.DEPTH_RANGE
        assert low - 1e-6 <= xyz[schema.ROOT, 2] <= high + 1e-6
        assert np.all(xyz[:, 2] > 0.1)


def test_bone_lengths_are_plausible(samples):
    xyz = np.stack([sample["xyz"] for sample in samples]).astype(np.float64)
    lengths = _bone_lengths(xyz)
    for (parent, child), length in lengths.items():
        if parent == 0:  # wrist to thumb CMC / finger MCP
            low, high = (0.02, 0.045) if child == 4 else (0.055, 0.105)
        else:  # metacarpal of the thumb or a phalanx
            low, high = 0.014, 0.052
        assert np.all((length > low) & (length < high)), (parent, child, length.min(), length.max())
    scale = np.linalg.norm(xyz[:, schema.SCALE_BONE[0]] - xyz[:, schema.SCALE_BONE[1]], axis=-1)
    assert np.all(scale > 0.035) and np.all(scale < 0.055)
    assert np.ptp(scale) > 0.003, "hand sizes should vary between samples"


def test_joints_are_mostly_inside_the_image(samples):
    visible = np.stack([sample["visible"] for sample in samples])
    uv = np.stack([sample["uv"] for sample in samples])
    inside = np.all((uv >= 0) & (uv <= SIZE - 1), axis=-1)
    np.testing.assert_array_equal(visible, inside)
    assert visible.mean() > 0.9
    assert np.mean(visible.all(axis=1)) > 0.75


def test_both_hands_occur_and_annotations_are_right_hands(samples):
    flips = np.array([sample["flip"] for sample in samples])
    assert 0 < flips.sum() < len(flips)
    for group in (flips, ~flips):
        scores = [_handedness_score(s["xyz"].astype(np.float64))
                  for s, in_group in zip(samples, group) if in_group]
        assert np.mean(np.array(scores) > 0) >= 0.7
    # The raw (unflipped) geometry of the flipped samples is that of left hands.
    left_scores = [
        _handedness_score(synthetic.flip_annotations(s["uv"], s["xyz"], s["K"], SIZE)[1])
        for s in samples if s["flip"]
    ]
    assert np.mean(np.array(left_scores) < 0) >= 0.7


# ---------------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------------
def test_every_joint_inside_the_image_lies_on_the_drawn_hand(samples):
    for sample in samples:
        for uv, visible in zip(_stored_frame(sample), sample["visible"]):
            if visible:
                assert sample["mask"][_pixel(uv)] == 1


def test_fingertip_pixels_show_their_finger_colour(samples):
    """The pose can be read from the pixels: fingertips have their finger's hue."""
    matches, unoccluded_matches, unoccluded = 0, 0, 0
    tips = 0
    for sample in samples:
        uv = _stored_frame(sample)
        for finger, joints in schema.FINGER_JOINTS.items():
            tip = joints[0]
            if not sample["visible"][tip]:
                continue
            pixel = _pixel(uv[tip])
            tips += 1
            is_match = _nearest_finger_by_hue(sample["image"][pixel]) == finger
            matches += is_match
            if _shows_part(sample["part_labels"], pixel, synthetic.PART_FINGER[finger]):
                unoccluded += 1
                unoccluded_matches += is_match
    assert matches / tips > 0.6  # chance level is 0.2
    assert unoccluded / tips > 0.6
    assert unoccluded_matches == unoccluded


def test_hand_silhouette_contrasts_with_its_surroundings(samples):
    """Mean colour just inside the hand outline differs from just outside it."""
    kernel = np.ones((3, 3), np.uint8)
    contrasts = []
    for sample in samples:
        mask, image = sample["mask"], sample["image"].astype(np.float64)
        assert 0.003 < mask.mean() < 0.5
        inner = mask & ~cv2.erode(mask, kernel, iterations=2)
        outer = cv2.dilate(mask, kernel, iterations=3) & ~cv2.dilate(mask, kernel, iterations=1)
        difference = image[inner == 1].mean(axis=0) - image[outer == 1].mean(axis=0)
        contrasts.append(np.abs(difference).max())
    assert np.median(contrasts) > 25


# ---------------------------------------------------------------------------------------------
# Flip convention
# ---------------------------------------------------------------------------------------------
def test_flip_annotations_is_an_exact_involution(samples):
    sample = next(s for s in samples if s["flip"])
    uv, xyz, K = (sample[key].astype(np.float64) for key in ("uv", "xyz", "K"))
    raw_uv, raw_xyz, raw_K = synthetic.flip_annotations(uv, xyz, K, SIZE)
    np.testing.assert_allclose(synthetic.project(raw_xyz, raw_K), raw_uv, atol=1e-3)
    np.testing.assert_array_equal(raw_uv[:, 0], SIZE - 1 - uv[:, 0])
    np.testing.assert_array_equal(raw_xyz[:, 1:], xyz[:, 1:])
    back = synthetic.flip_annotations(raw_uv, raw_xyz, raw_K, SIZE)
    for original, restored in zip((uv, xyz, K), back):
        np.testing.assert_allclose(restored, original, atol=1e-9)


def test_flipped_image_agrees_with_flipped_annotations(samples):
    flipped = [s for s in samples if s["flip"]]
    assert flipped
    for sample in flipped:
        image = sample["image"][:, ::-1]
        mask = sample["mask"][:, ::-1]
        labels = sample["part_labels"][:, ::-1]
        np.testing.assert_allclose(
            synthetic.project(sample["xyz"], sample["K"]), sample["uv"], atol=1e-2)
        for joint in np.flatnonzero(sample["visible"]):
            assert mask[_pixel(sample["uv"][joint])] == 1
        for finger, joints in schema.FINGER_JOINTS.items():
            pixel = _pixel(sample["uv"][joints[0]])
            label = synthetic.PART_FINGER[finger]
            if sample["visible"][joints[0]] and _shows_part(labels, pixel, label):
                assert _nearest_finger_by_hue(image[pixel]) == finger


def test_pixel_centres_are_integer_coordinates_so_flip_maps_u_to_w_minus_1_minus_u():
    """A disc drawn the way the renderer draws, at sub-pixel u, lands at W - 1 - u once flipped."""
    u, v = 100.4375, 57.8125  # multiples of 1/16, the renderer's sub-pixel step
    canvas = np.zeros((SIZE, SIZE), np.uint8)  # OpenCV anti-aliases 8-bit images only
    centre = tuple(int(c) for c in synthetic._fixed_point(np.array([u, v])))
    cv2.circle(canvas, centre, int(6 * synthetic._SUBPIXEL), 255, -1, cv2.LINE_AA,
               synthetic._SUBPIXEL_BITS)
    flipped = canvas[:, ::-1].astype(np.float64)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    centroid_u = (flipped * cols).sum() / flipped.sum()
    centroid_v = (flipped * rows).sum() / flipped.sum()
    assert abs(centroid_u - (SIZE - 1 - u)) < 0.05
    assert abs(centroid_v - v) < 0.05


# ---------------------------------------------------------------------------------------------
# The cached data set
# ---------------------------------------------------------------------------------------------
def _records_equal(first, second):
    for field in ("uv", "xyz", "K", "visible", "flip", "image_path"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field), err_msg=field)


def test_load_synthetic_writes_rgb_pngs_and_matching_records(tmp_path):
    records = synthetic.load_synthetic(tmp_path, "train", num_samples=NUM_SAMPLES, seed=0)
    assert isinstance(records, schema.Records) and len(records) == NUM_SAMPLES
    assert records.uv.dtype == np.float32 and records.flip.dtype == bool
    for index in (0, NUM_SAMPLES - 1):
        sample = synthetic.render_sample(0, index, SIZE, "train")
        stored = cv2.cvtColor(cv2.imread(str(records.image_path[index])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(stored, sample["image"])
        for key in ("uv", "xyz", "K", "visible", "flip"):
            np.testing.assert_array_equal(getattr(records, key)[index], sample[key], err_msg=key)
    assert os.path.isabs(records.image_path[0])


def test_samples_do_not_depend_on_the_number_generated(tmp_path):
    few = synthetic.load_synthetic(tmp_path, "test", num_samples=3, seed=7)
    more = synthetic.load_synthetic(tmp_path, "test", num_samples=5, seed=7)
    np.testing.assert_array_equal(few.xyz, more.xyz[:3])
    np.testing.assert_array_equal(cv2.imread(few.image_path[2]), cv2.imread(more.image_path[2]))
    train = synthetic.load_synthetic(tmp_path, "train", num_samples=3, seed=7)
    assert not np.allclose(train.xyz, few.xyz)


def test_multiprocessing_matches_serial_generation(tmp_path):
    serial = synthetic.load_synthetic(tmp_path / "serial", "test", 4, seed=1, num_workers=1)
    parallel = synthetic.load_synthetic(tmp_path / "parallel", "test", 4, seed=1, num_workers=2)
    for field in ("uv", "xyz", "K", "visible", "flip"):
        np.testing.assert_array_equal(getattr(serial, field), getattr(parallel, field))
    for first, second in zip(serial.image_path, parallel.image_path):
        np.testing.assert_array_equal(cv2.imread(first), cv2.imread(second))


def test_cache_is_reused_when_complete(tmp_path, monkeypatch):
    records = synthetic.load_synthetic(tmp_path, "test", num_samples=4, seed=2)
    directory = os.path.dirname(records.image_path[0])
    annotations = os.path.join(directory, synthetic.ANNOTATIONS_FILE)
    mtimes = {path: os.stat(path).st_mtime_ns for path in [annotations, *records.image_path]}

    def fail(*args, **kwargs):
        raise AssertionError("the cached split was regenerated")

    monkeypatch.setattr(synthetic.dataset, "_generate_split", fail)
    again = synthetic.load_synthetic(tmp_path, "test", num_samples=4, seed=2)
    _records_equal(records, again)
    assert mtimes == {path: os.stat(path).st_mtime_ns for path in mtimes}


def test_an_interrupted_generation_resumes_after_its_finished_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic.dataset, "CHUNK", 3)
    straight = synthetic.load_synthetic(tmp_path / "straight", "test", num_samples=8, seed=4, num_workers=1)
    real, calls = synthetic.dataset._generate_one, []

    def interrupted(job):  # stopped (Ctrl-C, a kill) while rendering sample 4, in the second part
        calls.append(job[3])
        if job[3] == 4:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(synthetic.dataset, "_generate_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        synthetic.load_synthetic(tmp_path / "resumed", "test", num_samples=8, seed=4, num_workers=1)
    (directory,) = (tmp_path / "resumed").iterdir()
    assert sorted(p.name for p in directory.glob("annotations*")) == ["annotations.part000000-000003.npz"]

    calls.clear()
    monkeypatch.setattr(synthetic.dataset, "_generate_one", lambda job: calls.append(job[3]) or real(job))
    resumed = synthetic.load_synthetic(tmp_path / "resumed", "test", num_samples=8, seed=4, num_workers=1)
    assert calls == [3, 4, 5, 6, 7]  # samples 0-2 were finished: not rendered again
    for field in ("uv", "xyz", "K", "visible", "flip"):
        np.testing.assert_array_equal(getattr(resumed, field), getattr(straight, field), err_msg=field)
    for first, second in zip(straight.image_path, resumed.image_path):
        np.testing.assert_array_equal(cv2.imread(first), cv2.imread(second))
    assert sorted(p.name for p in directory.glob("annotations*")) == ["annotations.npz"]  # parts merged

    # A part that is there but not a part (a key missing) is rendered again, not merged.
    os.remove(directory / "annotations.npz")
    np.savez(directory / "annotations.part000003-000006.npz", uv=straight.uv[3:6])
    np.savez(directory / "annotations.part000000-000003.npz", uv=straight.uv[:3], xyz=straight.xyz[:3],
             K=straight.K[:3], visible=straight.visible[:3], flip=straight.flip[:3])
    calls.clear()
    again = synthetic.load_synthetic(tmp_path / "resumed", "test", num_samples=8, seed=4, num_workers=1)
    assert calls == [3, 4, 5, 6, 7]
    np.testing.assert_array_equal(again.xyz, straight.xyz)


@pytest.mark.parametrize("damage", ["truncate_npz", "delete_npz", "delete_png"])
def test_incomplete_cache_is_regenerated(tmp_path, damage):
    records = synthetic.load_synthetic(tmp_path, "test", num_samples=4, seed=3)
    directory = os.path.dirname(records.image_path[0])
    annotations = os.path.join(directory, synthetic.ANNOTATIONS_FILE)
    if damage == "truncate_npz":
        with open(annotations, "rb") as file:
            content = file.read()
        with open(annotations, "wb") as file:
            file.write(content[: len(content) // 2])
    elif damage == "delete_npz":
        os.remove(annotations)
    else:
        os.remove(records.image_path[2])

    regenerated = synthetic.load_synthetic(tmp_path, "test", num_samples=4, seed=3)
    _records_equal(records, regenerated)
    assert all(os.path.exists(path) for path in regenerated.image_path)
    with np.load(annotations) as archive:
        assert archive["uv"].shape == (4, schema.NUM_JOINTS, 2)
    assert not [name for name in os.listdir(directory) if ".tmp" in name]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        synthetic.load_synthetic("/nonexistent", split="validation")
    with pytest.raises(ValueError):
        synthetic.load_synthetic("/nonexistent", num_samples=0)
