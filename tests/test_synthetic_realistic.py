"""Tests of the realistic synthetic world (lgh_tf.data.synthetic.realistic and .anatomy)."""

import os

import cv2
import numpy as np
import pytest

from lgh_tf.data import schema, synthetic
from lgh_tf.data.synthetic import anatomy, realistic

SIZE = 320
K = np.array([[300.0, 0.0, 160.0], [0.0, 300.0, 160.0], [0.0, 0.0, 1.0]])  # (160, 160) on the axis


@pytest.fixture(scope="module")
def samples():
    return [synthetic.render_sample(0, index, SIZE, world="realistic") for index in range(24)]


def test_same_seed_and_index_give_identical_samples():
    first = synthetic.render_sample(3, 5, SIZE, world="realistic")
    second = synthetic.render_sample(3, 5, SIZE, world="realistic")
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    other = synthetic.render_sample(3, 6, SIZE, world="realistic")
    assert not np.array_equal(first["image"], other["image"])
    coded = synthetic.render_sample(3, 5, SIZE)
    assert not np.array_equal(first["image"], coded["image"])


def test_uv_is_the_projection_of_xyz_and_shapes(samples):
    assert {s["flip"] for s in samples} == {False, True}
    for sample in samples:
        assert sample["image"].shape == (SIZE, SIZE, 3) and sample["image"].dtype == np.uint8
        for key in ("self_occluded", "object_occluded", "visible"):
            assert sample[key].shape == (schema.NUM_JOINTS,) and sample[key].dtype == bool
        projected = synthetic.project(sample["xyz"].astype(np.float64), sample["K"].astype(np.float64))
        np.testing.assert_allclose(sample["uv"], projected, atol=1e-3)
        assert (sample["xyz"][:, 2] > 0.1).all()


def _hue_degrees(rgb):
    hsv = cv2.cvtColor(np.uint8(rgb).reshape(1, -1, 3), cv2.COLOR_RGB2HSV_FULL)[0].astype(float)
    angle = hsv[:, 0] * 2 * np.pi / 256
    return np.degrees(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean())) % 360  # circular mean


def _finger_hues(sample):
    """{finger: mean hue of its pixels (eroded by 1 px)} for fingers with >= 30 such pixels."""
    hues = {}
    for finger, label in synthetic.PART_FINGER.items():
        region = cv2.erode((sample["part_labels"] == label).astype(np.uint8), np.ones((3, 3), np.uint8))
        if region.sum() >= 30:
            hues[finger] = _hue_degrees(sample["image"][region.astype(bool)])
    return hues


def _hue_spread(hues):
    values = np.array(list(hues.values()))
    gaps = np.abs((values[:, None] - values[None] + 180) % 360 - 180)
    return gaps.max()


def test_no_per_finger_colour_code(samples):
    spreads = [_hue_spread(h) for h in map(_finger_hues, samples) if len(h) >= 3]
    assert len(spreads) >= 10
    assert np.median(spreads) < 8.0 and max(spreads) < 25.0, spreads
    # The same measure sees the coded world's colour code (so this test can fail).
    coded = [_hue_spread(h) for h in (_finger_hues(synthetic.render_sample(0, i, SIZE)) for i in range(8))
             if len(h) >= 3]
    assert np.median(coded) > 60.0, coded


def test_zbuffer_keeps_the_nearer_of_two_crossing_capsules_whatever_the_order():
    near = ((-0.05, 0.0, 0.4), (0.05, 0.0, 0.4))  # horizontal, 10 cm nearer
    far = ((0.0, -0.05, 0.5), (0.0, 0.05, 0.5))  # vertical
    for order in ((near, 1), (far, 2)), ((far, 2), (near, 1)):
        zbuffer = realistic.ZBuffer(SIZE, SIZE)
        for (a, b), ident in order:
            zbuffer.capsule(a, b, 0.01, 0.01, K, ident)
        centre = zbuffer.ident[160, 160]  # both cover the principal point: the near one wins
        assert centre == 1
        # On the axis the surface is the axis depth minus the radius (hand computed: 0.4 - 0.01).
        assert zbuffer.depth[160, 160] == pytest.approx(0.39, abs=1e-4)
        np.testing.assert_allclose(zbuffer.normal[160, 160], (0.0, 0.0, -1.0), atol=0.05)
        # Above the near capsule only the far one is there: 3 cm above the centre, 22 px at 0.4 m.
        assert zbuffer.ident[160 - 25, 160] == 2
        assert zbuffer.depth[160 - 25, 160] == pytest.approx(0.49, abs=1e-3)
        assert zbuffer.ident[10, 10] == -1 and np.isinf(zbuffer.depth[10, 10])


def _bone_id(parent, child):
    return realistic.BONE_BASE + schema.BONES.index((parent, child))


def test_occlusion_flags_of_a_hand_made_scene():
    """The index PIP (6) at the principal point on its two bones; a ball in front of it, then the
    middle finger's bone in front of it; the index tip (5) elsewhere, never covered."""
    pip, tip = schema.FINGER_JOINTS["index"][2], schema.FINGER_JOINTS["index"][0]
    dip, mcp = schema.FINGER_JOINTS["index"][1], schema.FINGER_JOINTS["index"][3]
    xyz = np.full((schema.NUM_JOINTS, 3), (5.0, 5.0, 0.5))  # the other joints far outside the image
    xyz[mcp], xyz[pip], xyz[dip], xyz[tip] = (0, 0.04, 0.5), (0, 0, 0.5), (0, -0.025, 0.5), (0, -0.045, 0.5)
    uv = synthetic.project(xyz, K)

    def scene(occluder=None):
        zbuffer = realistic.ZBuffer(SIZE, SIZE)
        for parent, child in ((mcp, pip), (pip, dip), (dip, tip)):
            zbuffer.capsule(xyz[parent], xyz[child], 0.009, 0.008, K, _bone_id(parent, child))
        if occluder is not None:
            zbuffer.capsule(*occluder)
        return realistic.joint_occlusion(zbuffer, uv)

    self_occluded, object_occluded = scene()
    assert not self_occluded.any() and not object_occluded.any()
    ball = ((0.0, 0.0, 0.42), (0.0, 0.0, 0.42), 0.012, 0.012, K, realistic.ID_OBJECT)
    self_occluded, object_occluded = scene(ball)
    assert np.flatnonzero(object_occluded).tolist() == [pip] and not self_occluded.any()
    middle = schema.FINGER_JOINTS["middle"]
    across = ((-0.03, 0.0, 0.45), (0.03, 0.0, 0.45), 0.008, 0.008, K, _bone_id(middle[2], middle[1]))
    self_occluded, object_occluded = scene(across)
    assert np.flatnonzero(self_occluded).tolist() == [pip] and not object_occluded.any()
    behind = ((-0.03, 0.0, 0.6), (0.03, 0.0, 0.6), 0.008, 0.008, K, _bone_id(middle[2], middle[1]))
    self_occluded, object_occluded = scene(behind)
    assert not self_occluded.any() and not object_occluded.any()


def test_rendered_flags_agree_with_the_part_under_each_joint(samples):
    """A joint inside the image and not flagged shows the hand at its pixel; an object-occluded one
    shows the object. Across the samples some joints are hidden by the hand and some by objects."""
    hidden_by_hand = hidden_by_object = 0
    for sample in samples:
        uv = sample["uv"].copy()
        if sample["flip"]:
            uv[:, 0] = SIZE - 1 - uv[:, 0]
        for joint in np.flatnonzero(sample["visible"]):
            col, row = np.round(uv[joint]).astype(int)
            label = sample["part_labels"][row, col]
            if sample["object_occluded"][joint]:
                assert label == realistic.PART_OBJECT
            elif not sample["self_occluded"][joint]:
                assert label in (synthetic.PART_PALM, *synthetic.PART_FINGER.values())
        hidden_by_hand += sample["self_occluded"].sum()
        hidden_by_object += sample["object_occluded"].sum()
    assert hidden_by_hand > 0 and hidden_by_object > 0
    assert hidden_by_hand < 0.5 * len(samples) * schema.NUM_JOINTS


def _flexion_degrees(xyz, a, b, c):
    first, second = xyz[b] - xyz[a], xyz[c] - xyz[b]
    cosine = first @ second / np.linalg.norm(first) / np.linalg.norm(second)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def test_anatomical_couplings_and_limits():
    """Measured from the joint positions of 400 poses: the ring and little PIPs bend together,
    the index's barely with the little's; DIP ~ 2/3 PIP; PIP flexion within 0-110 degrees."""
    rng = np.random.default_rng(0)
    pips = {finger: [] for finger in ("index", "middle", "ring", "little")}
    dip_over_pip = []
    for _ in range(400):
        xyz = anatomy.sample_anatomical_pose(rng).joints
        for finger in pips:
            tip, dip, pip, mcp = schema.FINGER_JOINTS[finger]
            pips[finger].append(_flexion_degrees(xyz, mcp, pip, dip))
            angle_dip = _flexion_degrees(xyz, pip, dip, tip)
            if pips[finger][-1] > 40:
                dip_over_pip.append(angle_dip / pips[finger][-1])
    corr = {f: np.corrcoef(pips[f], pips["little"])[0, 1] for f in ("index", "middle", "ring")}
    assert corr["ring"] > 0.85 and corr["index"] < 0.35 and corr["index"] < corr["middle"] < corr["ring"], corr
    assert 0.55 < np.median(dip_over_pip) < 0.8
    all_pips = np.concatenate(list(pips.values()))
    assert all_pips.min() >= 0.0 and all_pips.max() <= 110.0 + 1e-6


def test_thumb_opposition_turns_the_thumb_across_the_palm():
    """Full opposition brings the thumb metacarpal's axis towards the little finger and out of the
    palm plane (hand frame: +x ulnar, -z palmar)."""
    rest, opposed = anatomy.thumb_frame(0.0), anatomy.thumb_frame(1.0)
    assert opposed[0, 1] > rest[0, 1]  # forward axis swung towards +x (ulnar)
    assert opposed[2, 1] < rest[2, 1] < 0  # and further palmar
    for frame in (rest, opposed):
        np.testing.assert_allclose(frame.T @ frame, np.eye(3), atol=1e-9)
        assert np.linalg.det(frame) == pytest.approx(1.0)


def test_cache_directory_names_the_world_and_stores_the_occlusion_flags(tmp_path):
    records = synthetic.load_synthetic(tmp_path, "test", num_samples=3, seed=1, world="realistic")
    directory = os.path.dirname(records.image_path[0])
    version, key = synthetic.WORLDS["realistic"][1], synthetic.dataset.fingerprint("realistic")
    assert os.path.basename(directory) == f"test_s1_n3_{SIZE}px_realistic_v{version}-{key}"
    assert os.path.basename(synthetic.split_directory(tmp_path, "test", 3, 1, SIZE)) == (
        f"test_s1_n3_320px_coded_v2-{synthetic.dataset.fingerprint('coded')}")
    with np.load(os.path.join(directory, synthetic.ANNOTATIONS_FILE)) as archive:
        assert archive["meta_world"].item() == "realistic"
        for index in range(3):
            sample = synthetic.render_sample(1, index, SIZE, "test", "realistic")
            for key in ("self_occluded", "object_occluded", "uv", "xyz", "visible", "flip"):
                np.testing.assert_array_equal(archive[key][index], sample[key], err_msg=key)
    stored = cv2.cvtColor(cv2.imread(str(records.image_path[2])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(stored, synthetic.render_sample(1, 2, SIZE, "test", "realistic")["image"])
    with pytest.raises(ValueError, match="world"):
        synthetic.load_synthetic(tmp_path, "test", num_samples=3, world="cartoon")


def test_sources_pass_the_world_to_the_generator(tmp_path):
    from lgh_tf.data.sources import load_sources

    [(records, weight)] = load_sources("synthetic", "eval", cache_dir=tmp_path, seed=2,
                                       synthetic_counts={"test": 2}, synthetic_world="realistic")
    assert records.name == "synthetic_realistic_test" and weight == 1.0
    np.testing.assert_array_equal(records.xyz[1], synthetic.render_sample(2, 1, SIZE, "test", "realistic")["xyz"])
    [(coded, _)] = load_sources("synthetic", "eval", cache_dir=tmp_path, seed=2, synthetic_counts={"test": 2})
    assert coded.name == "synthetic_test" and not np.array_equal(coded.xyz, records.xyz)


def _cached_uv(tmp_path):
    records = synthetic.load_synthetic(tmp_path, "test", num_samples=2, seed=1, image_size=64, world="realistic")
    return os.path.dirname(records.image_path[0]), records.uv


def test_a_changed_generator_parameter_misses_the_cache(tmp_path, monkeypatch):
    """A cache made before a generator change is not served (issue 33: the realistic-world cache of
    before 277d42a kept its name and was served with the old poses)."""
    before_dir, before_uv = _cached_uv(tmp_path)
    assert _cached_uv(tmp_path)[0] == before_dir  # unchanged generator: the cache is used
    monkeypatch.setattr(anatomy, "FINGER_LIMITS", {**anatomy.FINGER_LIMITS, "pip": (0.0, 60.0)})
    after_dir, after_uv = _cached_uv(tmp_path)
    assert after_dir != before_dir and os.path.isdir(before_dir)
    assert not np.allclose(after_uv, before_uv)  # generated anew with the changed limits
    np.testing.assert_array_equal(
        after_uv[1], synthetic.render_sample(1, 1, 64, "test", "realistic")["uv"].astype(np.float32))


def test_a_changed_generator_code_misses_the_cache(tmp_path, monkeypatch):
    """A code change in a generator module (here: one coefficient of anatomy.py's source, as in
    277d42a) changes the cache key without a version bump; a comment or docstring does not."""
    from lgh_tf.data.synthetic import dataset

    source = dataset.inspect.getsource(anatomy)
    key, coded_key = dataset.fingerprint("realistic"), dataset.fingerprint("coded")
    directory = synthetic.split_directory(tmp_path, "test", 2, 1, 64, "realistic")

    def patched(text):
        monkeypatch.setattr(dataset.inspect, "getsource",
                            lambda module: text if module is anatomy else source_of(module))
        dataset._code_digest.cache_clear()

    source_of = dataset.inspect.getsource
    try:
        patched(source.replace('"""', '"""Edited docstring. ', 1) + "\n# a comment\n")
        assert dataset.fingerprint("realistic") == key
        assert "rng.normal(0.0, 0.15)" in source
        patched(source.replace("rng.normal(0.0, 0.15)", "rng.normal(0.0, 0.2)", 1))
        assert dataset.fingerprint("realistic") != key
        assert synthetic.split_directory(tmp_path, "test", 2, 1, 64, "realistic") != directory
        assert dataset.fingerprint("coded") == coded_key  # anatomy does not draw the coded world
    finally:
        monkeypatch.undo()
        dataset._code_digest.cache_clear()
    assert dataset.fingerprint("realistic") == key


def test_a_cache_with_another_fingerprint_is_regenerated(tmp_path, monkeypatch):
    """The key is also in the annotations: a directory renamed by hand to the current name is not served."""
    from lgh_tf.data.synthetic import dataset

    old_dir, _ = _cached_uv(tmp_path)
    monkeypatch.setattr(dataset, "fingerprint", lambda world="coded": "000000000000")
    new_dir = synthetic.split_directory(tmp_path, "test", 2, 1, 64, "realistic")
    os.rename(old_dir, new_dir)
    assert dataset._load_annotations(new_dir, "test", 2, 1, 64, "realistic") is None
