"""Tests of lgh_tf.data.pipeline on tiny fixture images written into tmp_path."""

import logging
import math

import cv2
import numpy as np
import pytest
import tensorflow as tf

from lgh_tf.data import pipeline, schema

HEIGHT, WIDTH = 96, 128
OUTPUT_SIZE = 128
FOCAL = 120.0
# Principal point deliberately off-centre and fractional.
INTRINSICS = np.array(
    [[FOCAL, 0.0, 61.25], [0.0, FOCAL * 1.05, 49.5], [0.0, 0.0, 1.0]], np.float32
)
# Joints that carry the red, green and blue markers.
MARKER_JOINTS = (4, 10, 17)
NO_AUGMENT = pipeline.AugmentConfig(
    scale_range=(1.0, 1.0), max_rotation=0.0, max_translation=0.0, max_hue_delta=0.0
)
GEOMETRY_ONLY = pipeline.AugmentConfig(max_hue_delta=0.0)


def hand_xyz(shift=(0.0, 0.0), depth=0.45) -> np.ndarray:
    """A plausible right hand in RHD order, metres, root (middle MCP) at ``(shift, depth)``."""
    wrist = np.array([0.0, 0.07, 0.01])
    joints = np.zeros((schema.NUM_JOINTS, 3))
    joints[0] = wrist
    for finger, angle in enumerate((-1.0, -0.35, 0.0, 0.3, 0.6)):
        direction = np.array([math.sin(angle), -math.cos(angle), 0.0])
        mcp = wrist + 0.07 * direction if finger else wrist + np.array([-0.03, -0.02, 0.0])
        for k, length in enumerate((0.0, 0.035, 0.06, 0.08)):  # mcp, pip, dip, tip
            joint = mcp + length * direction + np.array([0.0, 0.0, 0.004 * k * (finger - 2)])
            joints[4 + 4 * finger - k] = joint
    joints -= joints[schema.ROOT]
    joints += np.array([shift[0], shift[1], depth])
    return joints.astype(np.float32)


def project(xyz: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    uvw = xyz @ intrinsics.T
    return (uvw[:, :2] / uvw[:, 2:]).astype(np.float32)


def marker_image(uv: np.ndarray, sigma: float = 1.0, background=0) -> np.ndarray:
    """RGB uint8 image with Gaussian red/green/blue markers centred exactly at MARKER_JOINTS.

    Pixel (row r, column c) has its centre at (u, v) = (c, r).
    """
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    image = np.full((HEIGHT, WIDTH, 3), float(background))
    for channel, joint in enumerate(MARKER_JOINTS):
        u, v = uv[joint]
        blob = np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * sigma**2))
        image[..., channel] = np.maximum(image[..., channel], 255.0 * blob)
    return np.round(image).astype(np.uint8)


def write_rgb(path, rgb: np.ndarray) -> str:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))  # cv2 writes BGR
    return str(path)


def make_records(paths, xyz, flip=None, name="fixture") -> schema.Records:
    n = len(paths)
    xyz = np.asarray(xyz, np.float32)
    intrinsics = np.repeat(INTRINSICS[None], n, axis=0)
    return schema.Records(
        image_path=np.array(paths, dtype=str),
        uv=np.stack([project(x, INTRINSICS) for x in xyz]).astype(np.float32),
        xyz=xyz,
        K=intrinsics,
        visible=np.ones((n, schema.NUM_JOINTS), bool),
        flip=np.zeros(n, bool) if flip is None else np.asarray(flip, bool),
        name=name,
    )


def marker_records(tmp_path, count=4, flip=False) -> schema.Records:
    """``count`` marker images of slightly different hand positions."""
    paths, poses = [], []
    for i in range(count):
        xyz = hand_xyz(shift=(0.01 * (i - 1), -0.005 * i), depth=0.45 + 0.02 * i)
        rgb = marker_image(project(xyz, INTRINSICS))
        if flip:  # the file holds the mirror image; the labels describe the flipped one
            rgb = rgb[:, ::-1]
        paths.append(write_rgb(tmp_path / f"marker_{i}.png", rgb))
        poses.append(xyz)
    return make_records(paths, poses, flip=[flip] * count)


def first_batch(records, **kwargs):
    kwargs.setdefault("output_size", OUTPUT_SIZE)
    kwargs.setdefault("batch_size", len(records))
    kwargs.setdefault("repeat", False)
    kwargs.setdefault("shuffle", False)
    kwargs.setdefault("drop_remainder", False)
    batch = next(iter(pipeline.make_dataset(records, **kwargs)))
    return {key: value.numpy() for key, value in batch.items()}


def marker_centres(image: np.ndarray, radius: int = 5):
    """Per channel: (argmax (u, v), intensity-weighted centroid (u, v)) of the marker."""
    found = []
    for channel in range(3):
        plane = image[..., channel]
        row, col = np.unravel_index(np.argmax(plane), plane.shape)
        r0, r1 = max(row - radius, 0), min(row + radius + 1, plane.shape[0])
        c0, c1 = max(col - radius, 0), min(col + radius + 1, plane.shape[1])
        window = plane[r0:r1, c0:c1]
        rows, cols = np.mgrid[r0:r1, c0:c1]
        centroid = np.array([(window * cols).sum(), (window * rows).sum()]) / window.sum()
        found.append((np.array([col, row], float), centroid))
    return found


def assert_markers_at_uv(batch, margin=6.0):
    """Every marker fully inside the crop is where the uv target says; returns how many."""
    checked = 0
    for image, uv in zip(batch["image"], batch["uv"]):
        for (argmax, centroid), joint in zip(marker_centres(image), MARKER_JOINTS):
            target = uv[joint]
            if not np.all((target > margin) & (target < OUTPUT_SIZE - 1 - margin)):
                continue
            # The crop magnifies ~2x, so the bilinear peak can sit on a 2-pixel plateau: the
            # brightest pixel is within ~1 px, the intensity centroid within a quarter pixel (a
            # half-pixel convention error would move it by ~0.5 px).
            np.testing.assert_allclose(argmax, target, atol=1.5)
            np.testing.assert_allclose(centroid, target, atol=0.25)
            checked += 1
    return checked


@pytest.mark.parametrize("jit_compile", [True, False])
def test_plain_crop_puts_markers_at_uv_and_matches_hand_crop_rule(tmp_path, jit_compile):
    records = marker_records(tmp_path)
    batch = first_batch(records, training=False, jit_compile=jit_compile)
    assert assert_markers_at_uv(batch) == 3 * len(records)

    # The crop rule, by hand: square on the keypoint box, side 1.2 * 2 * max per-axis root offset.
    uv = records.uv[0]
    side = 1.2 * 2 * np.abs(uv - uv[schema.ROOT]).max()
    assert side < min(HEIGHT, WIDTH)
    centre = 0.5 * (uv.min(0) + uv.max(0))
    centre = np.clip(centre, side / 2, np.array([WIDTH, HEIGHT]) - 1 - side / 2)
    expected = (uv - centre) * OUTPUT_SIZE / side + (OUTPUT_SIZE - 1) / 2
    np.testing.assert_allclose(batch["uv"][0], expected, atol=1e-3)
    assert OUTPUT_SIZE / side > 1.8  # magnified: a half-pixel convention error would show


def test_border_rule_shifts_inside_then_pads(tmp_path):
    grey = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)
    near_edge = hand_xyz(shift=(-0.17, 0.10))  # box reaches past the left and bottom edges
    too_big = hand_xyz(depth=0.3)  # crop side > image height
    paths = [write_rgb(tmp_path / f"grey_{i}.png", grey) for i in range(2)]
    records = make_records(paths, [near_edge, too_big])
    batch = first_batch(records, training=False, output_size=64)

    # Shifted inside the image: no black border although the joint box leaves the image.
    uv = records.uv[0]
    assert uv[:, 0].min() < 0 and uv[:, 1].max() > HEIGHT - 1
    assert batch["image"][0].min() > 0.99 * 120 / 255
    side = 1.2 * 2 * np.abs(uv - uv[schema.ROOT]).max()
    corner = np.array([0.0, HEIGHT - 1 - side])  # left / bottom edges of the shifted square
    np.testing.assert_allclose(batch["uv"][0], (uv - corner) * 64 / side - 0.5, atol=1e-3)

    # Larger than the image vertically: centred on the image there, zero rows above and below.
    uv = records.uv[1]
    side = 1.2 * 2 * np.abs(uv - uv[schema.ROOT]).max()
    assert HEIGHT < side < WIDTH
    rows_lit = np.flatnonzero(batch["image"][1].max(axis=(1, 2)) > 0.01)
    dark = 64 * (side - (HEIGHT - 1)) / side / 2  # zero-filled rows on each side
    assert abs(rows_lit[0] - dark) <= 1.5 and abs(63 - rows_lit[-1] - dark) <= 1.5
    np.testing.assert_allclose(
        batch["uv"][1, :, 1], (uv[:, 1] - (HEIGHT - 1) / 2) * 64 / side + 31.5, atol=1e-3
    )


@pytest.mark.parametrize("seed, jit_compile", [(0, True), (1, True), (2, False)])
def test_augmented_markers_land_at_transformed_uv(tmp_path, seed, jit_compile):
    records = marker_records(tmp_path)
    batch = first_batch(
        records, training=True, seed=seed, augmentation=GEOMETRY_ONLY, jit_compile=jit_compile
    )
    assert assert_markers_at_uv(batch) >= 6
    # The augmentation really rotated: the crop intrinsics are no longer upper triangular.
    assert np.abs(batch["K"][:, 1, 0]).max() > 1.0


def test_flipped_file_gives_markers_at_mirrored_position(tmp_path):
    records = marker_records(tmp_path, flip=True)
    plain = first_batch(records, training=False)
    assert assert_markers_at_uv(plain) == 3 * len(records)
    augmented = first_batch(records, training=True, seed=3, augmentation=GEOMETRY_ONLY)
    assert assert_markers_at_uv(augmented) >= 6


def test_crop_intrinsics_reproject_xyz_and_eq3_recovers_it(tmp_path):
    records = marker_records(tmp_path)
    batch = first_batch(records, training=True, seed=7)
    for uv, xyz, intrinsics, depth, scale, root in zip(
        batch["uv"], batch["xyz"], batch["K"], batch["depth"], batch["scale"], batch["root_depth"]
    ):
        np.testing.assert_allclose(intrinsics[2], [0.0, 0.0, 1.0], atol=1e-6)
        np.testing.assert_allclose(project(xyz, intrinsics), uv, atol=0.5)
        # Paper Eq. 3: xyz = (s0 * z_rel + z_root) K^-1 [u, v, 1].
        z = scale * depth + root
        homogeneous = np.concatenate([uv, np.ones((21, 1))], axis=1)
        recovered = z[:, None] * homogeneous @ np.linalg.inv(intrinsics).T
        np.testing.assert_allclose(recovered, xyz, atol=1e-4)


def test_depth_scale_root_and_visibility_targets(tmp_path):
    records = marker_records(tmp_path)
    records.visible[1, 5] = False
    batch = first_batch(records, training=True, seed=1)
    for i in range(len(records)):
        xyz = records.xyz[i].astype(np.float64)
        scale = np.linalg.norm(xyz[12] - xyz[11])
        np.testing.assert_allclose(batch["scale"][i], scale, rtol=1e-5)
        np.testing.assert_allclose(batch["root_depth"][i], xyz[12, 2], rtol=1e-6)
        np.testing.assert_allclose(batch["depth"][i], (xyz[:, 2] - xyz[12, 2]) / scale, atol=1e-5)
        np.testing.assert_array_equal(batch["xyz"][i], records.xyz[i])
    assert batch["depth"][:, schema.ROOT].tolist() == [0.0] * len(records)
    assert batch["visible"].dtype == np.float32 and batch["visible"][1, 5] == 0.0
    assert batch["visible"].sum() == 21 * len(records) - 1


def test_output_structure_any_size(tmp_path):
    records = marker_records(tmp_path, count=3)
    dataset = pipeline.make_dataset(records, output_size=72, batch_size=2, seed=0)
    batch = next(iter(dataset))
    shapes = {key: tuple(value.shape) for key, value in batch.items()}
    assert shapes == {
        "image": (2, 72, 72, 3), "uv": (2, 21, 2), "depth": (2, 21), "xyz": (2, 21, 3),
        "K": (2, 3, 3), "scale": (2,), "root_depth": (2,), "visible": (2, 21),
    }
    assert all(value.dtype == tf.float32 for value in batch.values())
    assert 0.0 <= float(tf.reduce_min(batch["image"])) and float(tf.reduce_max(batch["image"])) <= 1
    assert dataset.element_spec["image"].shape.as_list() == [2, 72, 72, 3]  # static for Keras


def test_same_seed_same_batches_and_eval_is_plain(tmp_path):
    records = marker_records(tmp_path)

    def batches(**kwargs):
        dataset = pipeline.make_dataset(records, output_size=64, batch_size=3, **kwargs)
        return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(3)]

    first, second = batches(seed=11), batches(seed=11)
    for a, b in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    other = batches(seed=12)
    assert not np.allclose(first[0]["uv"], other[0]["uv"])

    plain = first_batch(records, output_size=64, training=True, augment=False)
    evaluation = first_batch(records, output_size=64, training=False, seed=5)
    evaluation_again = first_batch(records, output_size=64, training=False, seed=6)
    for key in plain:
        np.testing.assert_array_equal(evaluation[key], plain[key])
        np.testing.assert_array_equal(evaluation_again[key], plain[key])


def test_data_config_is_passed_whole_and_overridden_per_call(tmp_path):
    records = marker_records(tmp_path)
    config = pipeline.DataConfig(output_size=64, batch_size=3, seed=11, augmentation=GEOMETRY_ONLY)

    def batches(*args, **kwargs):
        dataset = pipeline.make_dataset(records, *args, **kwargs)
        return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(2)]

    whole = batches(config)
    loose = batches(output_size=64, batch_size=3, seed=11, augmentation=GEOMETRY_ONLY)
    for a, b in zip(whole, loose):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    # A per-call override (a replica's share of the batch) changes only that setting.
    halves = batches(config, batch_size=1)
    assert halves[0]["image"].shape[0] == 1
    np.testing.assert_array_equal(halves[0]["uv"][0], whole[0]["uv"][0])
    with pytest.raises(TypeError):
        pipeline.make_dataset(records, config, augment_config=GEOMETRY_ONLY)  # not a DataConfig field
    with pytest.raises(ValueError, match="batch_size"):
        pipeline.make_dataset(records, config, batch_size=0)


def test_start_sample_resumes_the_same_stream(tmp_path):
    records = marker_records(tmp_path, count=3)
    sources = [(records, 1.0), (records.subset(slice(0, 1)), 0.5)]

    def batches(start_sample=0):
        dataset = pipeline.make_mixed_dataset(
            sources, output_size=32, batch_size=2, seed=5, start_sample=start_sample
        )
        return [b["uv"].numpy() for b in dataset.take(5)]

    full, resumed = batches(), batches(start_sample=4)
    np.testing.assert_array_equal(np.stack(resumed[:3]), np.stack(full[2:]))


def test_hue_jitter_changes_colour_not_geometry(tmp_path):
    xyz = hand_xyz()
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[20:70, 30:100] = (200, 60, 40)  # a reddish patch
    paths = [write_rgb(tmp_path / f"patch_{i}.png", rgb) for i in range(4)]
    records = make_records(paths, [xyz] * 4)
    geometry = GEOMETRY_ONLY
    with_hue = pipeline.AugmentConfig(max_hue_delta=0.1)
    plain = first_batch(records, training=True, seed=4, augmentation=geometry)
    jittered = first_batch(records, training=True, seed=4, augmentation=with_hue)
    for key in ("uv", "K", "depth", "xyz"):
        np.testing.assert_array_equal(plain[key], jittered[key])
    # Same pixels lit (geometry), different colours; hue keeps each pixel's max and min channel.
    np.testing.assert_array_equal(plain["image"].max(-1) > 0.05, jittered["image"].max(-1) > 0.05)
    np.testing.assert_allclose(plain["image"].max(-1), jittered["image"].max(-1), atol=0.02)
    np.testing.assert_allclose(plain["image"].min(-1), jittered["image"].min(-1), atol=0.02)
    assert np.abs(plain["image"] - jittered["image"]).max() > 0.05


def test_xla_warp_matches_projective_transform_op():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8))
    warp = tf.function(pipeline.warp_image_affine, jit_compile=True)
    for angle, zoom, shift in ((0.0, 1.0, (0.0, 0.0)), (0.7, 0.6, (-9.3, 14.2)),
                               (-2.5, 1.7, (30.0, -12.5)), (3.1, 0.9, (-60.0, 5.0))):
        cos, sin = zoom * math.cos(angle), zoom * math.sin(angle)
        source_from_crop = tf.constant(
            [[cos, -sin, shift[0]], [sin, cos, shift[1]], [0.0, 0.0, 1.0]], tf.float32
        )
        expected = pipeline.warp_image_projective(image, source_from_crop, 48).numpy()
        actual = warp(image, source_from_crop, 48).numpy()
        np.testing.assert_allclose(actual, expected, atol=0.05)  # grey levels of 255


def test_shift_hue_matches_adjust_hue():
    rgb = tf.random.stateless_uniform([32, 32, 3], seed=[1, 2])
    rgb = tf.concat([rgb, tf.fill([4, 32, 3], 0.5), tf.zeros([4, 32, 3])], axis=0)  # greys too
    shift = tf.function(pipeline.shift_hue, jit_compile=True)
    for delta in (-0.1, -0.03, 0.0, 0.05, 0.1, 0.45):
        np.testing.assert_allclose(
            shift(rgb, tf.constant(delta)).numpy(), tf.image.adjust_hue(rgb, delta).numpy(),
            atol=1e-5,
        )


def write_bad_fixtures(tmp_path):
    """Five good samples (root depths 0.40..0.44 m) plus one bad sample of each kind.

    Every sample has its own file, named after its case, so a log line naming the path names the
    case. Returns (records, good root depths, number of good samples).
    """
    rgb = marker_image(project(hand_xyz(), INTRINSICS), background=20)
    good_depths = [0.40 + 0.01 * i for i in range(5)]
    cases = [(f"good_{i}", hand_xyz(depth=depth)) for i, depth in enumerate(good_depths)]
    bad_cases = ("nan_uv", "nan_xyz", "zero_scale", "behind_camera", "missing", "truncated",
                 "text", "empty")
    cases += [(name, hand_xyz(depth=0.9)) for name in bad_cases]
    paths = [str(tmp_path / f"{name}.png") for name, _ in cases]
    for path, (name, _) in zip(paths, cases):
        if name != "missing":
            write_rgb(path, rgb)
    png_bytes = (tmp_path / "truncated.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(png_bytes[: len(png_bytes) // 2])
    (tmp_path / "text.png").write_text("this is not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")

    records = make_records(paths, [xyz for _, xyz in cases])
    row = {name: i for i, (name, _) in enumerate(cases)}
    records.uv[row["nan_uv"], 7] = np.nan
    records.xyz[row["nan_xyz"], 3] = np.nan
    records.xyz[row["zero_scale"], 11] = records.xyz[row["zero_scale"], 12]
    records.xyz[row["behind_camera"], :, 2] *= -1.0
    return records, good_depths, len(good_depths)


def test_bad_samples_are_counted_skipped_and_named(tmp_path, caplog):
    records, good_depths, num_good = write_bad_fixtures(tmp_path)
    with caplog.at_level(logging.WARNING, logger=pipeline.__name__):
        problems = pipeline.find_invalid_samples(records)
        valid = pipeline.validate_records(records)
    assert len(valid) == num_good and len(problems) == len(records) - num_good
    reasons = {str(records.image_path[i]).rsplit("/", 1)[-1]: r for i, r in problems.items()}
    assert reasons == {
        "nan_uv.png": "missing joints: uv is NaN/inf at joints [7]",
        "nan_xyz.png": "missing joints: xyz is NaN/inf at joints [3]",
        "zero_scale.png": "bad hand scale: |xyz[12] - xyz[11]| = 0",
        "behind_camera.png": "non-positive root depth: z[12] = -0.9",
        "missing.png": "image file missing: no such file",
        "truncated.png": "image file truncated: PNG without IEND trailer",
        "text.png": "image file not PNG/JPEG/BMP: unknown magic bytes",
        "empty.png": "image file empty: 0 bytes",
    }
    per_sample = [r.getMessage() for r in caplog.records if "skipping sample" in r.getMessage()]
    assert len(per_sample) == len(problems)
    for index, reason in problems.items():
        assert any(str(records.image_path[index]) in m and reason in m for m in per_sample)
    summary = f"skipped {len(problems)} of {len(records)}"
    assert any(summary in r.getMessage() for r in caplog.records)

    # Training batches hold only good samples (5 good, batch 4, partial batch dropped).
    dataset = pipeline.make_dataset(records, output_size=64, batch_size=4, seed=0, repeat=False)
    depths = np.concatenate([b["root_depth"].numpy() for b in dataset])
    assert len(depths) == 4
    assert np.isclose(depths[:, None], np.array(good_depths)[None]).any(axis=1).all()


def test_png_damaged_in_the_middle_is_counted_and_named(tmp_path, caplog):
    """Signature and IEND trailer intact, bytes in the image data overwritten: the decoder fails
    on it, so the up-front check must find it (chunk CRC) and name and count it."""
    rgb = marker_image(project(hand_xyz(), INTRINSICS), background=20)
    paths = [str(tmp_path / "good.png"), str(tmp_path / "damaged.png")]
    for path in paths:
        write_rgb(path, rgb)
    data = bytearray((tmp_path / "damaged.png").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(255 - b for b in data[middle:middle + 16])
    (tmp_path / "damaged.png").write_bytes(bytes(data))
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_png(tf.io.read_file(paths[1])).numpy()  # what ignore_errors would drop unnamed
    records = make_records(paths, [hand_xyz()] * 2)
    with caplog.at_level(logging.WARNING, logger=pipeline.__name__):
        valid = pipeline.validate_records(records)
    assert list(valid.image_path) == paths[:1]
    problems = pipeline.find_invalid_samples(records)
    assert list(problems) == [1] and problems[1].startswith("image file corrupt: PNG chunk IDAT at byte ")
    assert problems[1].endswith("fails its CRC")
    messages = [r.getMessage() for r in caplog.records]
    assert any(paths[1] in m and "fails its CRC" in m for m in messages)
    assert any("skipped 1 of 2 samples (1 x image file corrupt)" in m for m in messages)


def test_validation_log_is_capped(tmp_path, caplog):
    xyz = hand_xyz()
    records = make_records([str(tmp_path / f"gone_{i}.png") for i in range(30)], [xyz] * 30)
    with caplog.at_level(logging.WARNING, logger=pipeline.__name__):
        assert len(pipeline.validate_records(records, max_logged=20)) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("skipping sample" in m for m in messages) == 20
    assert any("10 more invalid samples" in m for m in messages)
    assert any("skipped 30 of 30" in m for m in messages)


def test_decode_errors_are_skipped_at_run_time_without_validation(tmp_path):
    records, good_depths, num_good = write_bad_fixtures(tmp_path)
    names = [str(p).rsplit("/", 1)[-1] for p in records.image_path]
    corrupt = [i for i, n in enumerate(names) if n in ("truncated.png", "text.png", "empty.png")]
    subset = records.subset(np.array(list(range(num_good)) + corrupt))
    dataset = pipeline.make_dataset(
        subset, output_size=64, batch_size=16, training=False, validate_records=False
    )
    depths = np.concatenate([b["root_depth"].numpy() for b in dataset])
    np.testing.assert_allclose(depths, good_depths, rtol=1e-6)


def test_mixed_dataset_follows_weights(tmp_path):
    first = marker_records(tmp_path, count=2)
    rgb = marker_image(project(hand_xyz(depth=0.8), INTRINSICS))
    second = make_records(
        [write_rgb(tmp_path / "second.png", rgb)], [hand_xyz(depth=0.8)], name="second"
    )
    dataset = pipeline.make_mixed_dataset(
        [(first, 3.0), (second, 1.0)], output_size=32, batch_size=50, seed=0
    )
    depths = np.concatenate([b["root_depth"].numpy() for b in dataset.take(4)])
    from_second = np.mean(np.isclose(depths, 0.8))
    assert 0.15 < from_second < 0.35
    again = pipeline.make_mixed_dataset(
        [(first, 3.0), (second, 1.0)], output_size=32, batch_size=50, seed=0
    )
    np.testing.assert_array_equal(
        depths, np.concatenate([b["root_depth"].numpy() for b in again.take(4)])
    )
