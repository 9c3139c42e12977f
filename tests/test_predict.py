"""lgh_tf.predict and main.py --mode=predict: crop geometry by hand, 3D lift, outputs, bad input."""

import json
import os

import cv2
import numpy as np
import pytest
from conftest import run_main

from lgh_tf import predict
from lgh_tf.data import schema, synthetic


def fake_predictor(uv_crop, depth, input_size=64):
    """A Predictor whose network always answers ``uv_crop`` (21, 2) and ``depth`` (21,)."""
    uv_crop, depth = np.asarray(uv_crop, np.float64), np.asarray(depth, np.float64)

    def run(images):
        assert images.shape[1:] == (input_size, input_size, 3) and images.dtype == np.float32
        assert 0.0 <= images.min() and images.max() <= 1.0
        n = len(images)
        return np.repeat(uv_crop[None], n, 0), np.repeat(depth[None], n, 0)

    return predict.Predictor([run], input_size, "fake")


@pytest.fixture(scope="module")
def sample_png(tmp_path_factory):
    """A rendered synthetic right hand (flip False, so its labels describe the file) as a PNG."""
    for index in range(20):
        sample = synthetic.render_sample(seed=5, index=index, image_size=320, split="test")
        if not sample["flip"] and sample["visible"].all():
            break
    path = tmp_path_factory.mktemp("predict") / "hand.png"
    assert cv2.imwrite(str(path), sample["image"][..., ::-1])
    return path, sample


def test_box_crop_maps_back_by_hand():
    # Box (100, 50, 40, 80): centre (100 + 39/2, 50 + 79/2) = (119.5, 89.5), side 80 * 1.2 = 96,
    # zoom 64 / 96 = 2/3. Crop pixel (31.5, 31.5) is the centre; crop (0, 0) is 31.5 / (2/3) =
    # 47.25 px up-left of it; crop (63, 10) is (119.5 + 31.5 * 1.5, 89.5 - 21.5 * 1.5).
    uv_crop = np.zeros((21, 2))
    uv_crop[0] = (31.5, 31.5)
    uv_crop[1] = (0.0, 0.0)
    uv_crop[2] = (63.0, 10.0)
    image = np.zeros((200, 300, 3), np.uint8)
    result = predict.predict_image(fake_predictor(uv_crop, np.zeros(21)), image, box=(100, 50, 40, 80),
                                   assume_camera=False)
    uv = np.array(result["uv"])
    np.testing.assert_allclose(uv[0], (119.5, 89.5), atol=1e-9)
    np.testing.assert_allclose(uv[1], (72.25, 42.25), atol=1e-9)
    np.testing.assert_allclose(uv[2], (166.75, 57.25), atol=1e-9)
    assert result["crop"]["side"] == pytest.approx(96.0)
    assert result["xyz"] is None and not result["crop"]["whole_image"]

    # No box, one search pass: the whole 300x200 image padded to a 300 px square about
    # (149.5, 99.5), zoom 64/300.
    result = predict.predict_image(fake_predictor(uv_crop, np.zeros(21)), image, iterations=1)
    uv = np.array(result["uv"])
    np.testing.assert_allclose(uv[0], (149.5, 99.5), atol=1e-9)
    np.testing.assert_allclose(uv[1], (149.5 - 31.5 * 300 / 64, 99.5 - 31.5 * 300 / 64), atol=1e-9)
    assert result["crop"]["whole_image"] and any("whole 300x200 image" in n for n in result["notes"])


@pytest.mark.parametrize("shape, box", [((200, 300), (100, 50, 40, 80)), ((1500, 2000), None)])
def test_rendered_crop_agrees_with_the_matrix(shape, box):
    # A bright blob at a known pixel lands where crop_from_image says (bilinear and area paths).
    image = np.zeros(shape + (3,), np.uint8)
    centre = (117, 92) if box else (1234, 777)
    radius = 2 if box else 20
    cv2.circle(image, centre, radius, (255, 255, 255), -1)
    matrix, _, _ = predict.crop_for_box(box, shape[1], shape[0], 64)
    crop = predict.render_crop(image, matrix, 64).astype(np.float64)[..., 0]
    rows, cols = np.mgrid[:64, :64]
    found = np.array([(crop * cols).sum(), (crop * rows).sum()]) / crop.sum()
    expected = predict.map_points(matrix, np.array(centre, np.float64))
    np.testing.assert_allclose(found, expected, atol=0.3)


def test_3d_from_intrinsics_scale_and_root(sample_png):
    path, sample = sample_png
    uv_gt, xyz = sample["uv"].astype(np.float64), sample["xyz"].astype(np.float64)
    K = sample["K"].astype(np.float64)
    box = (60, 40, 200, 210)
    matrix, _, _ = predict.crop_for_box(predict.check_box(box, 320, 320), 320, 320, 64)
    child, parent = schema.SCALE_BONE
    scale = float(np.linalg.norm(xyz[child] - xyz[parent]))
    root = float(xyz[schema.ROOT, 2])
    depth = (xyz[:, 2] - root) / scale
    oracle = fake_predictor(predict.map_points(matrix, uv_gt), depth)
    intrinsics = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])

    result = predict.predict_image(oracle, str(path), intrinsics=intrinsics, box=box, scale=scale,
                                   root_depth=root)
    np.testing.assert_allclose(result["uv"], uv_gt, atol=1e-4)
    np.testing.assert_allclose(result["xyz"], xyz, atol=1e-5)
    assert result["root_depth_source"] == "given"

    # Without the root depth it is estimated from the scale: the same hand.
    result = predict.predict_image(oracle, str(path), intrinsics=intrinsics, box=box, scale=scale)
    assert result["root_depth_source"] == "estimated from the scale"
    assert result["root_depth"] == pytest.approx(root, abs=1e-4)
    np.testing.assert_allclose(result["xyz"], xyz, atol=1e-4)


def test_outputs_are_written(sample_png, tmp_path):
    path, sample = sample_png
    oracle = fake_predictor(np.full((21, 2), 30.0) + np.arange(21)[:, None], np.linspace(-1, 1, 21))
    for name, kwargs in (("flat", dict(assume_camera=False)),
                         ("full", dict(intrinsics=(300, 300, 160, 160), scale=0.04, root_depth=0.5))):
        result = predict.predict_image(oracle, str(path), **kwargs)
        paths = predict.write_outputs(result, tmp_path / name)
        data = json.loads(open(paths["json"]).read())
        assert len(data["uv"]) == 21 and len(data["depth_relative"]) == 21
        assert (data["xyz"] is None) == (name == "flat")
        for key in ("skeleton", "3d"):
            picture = cv2.imread(paths[key])
            assert picture is not None and picture.shape[2] == 3
        assert cv2.imread(paths["skeleton"]).shape[:2] == (320, 320)
        assert min(cv2.imread(paths["3d"]).shape[:2]) >= 200


def test_non_finite_output_never_half_writes(sample_png, tmp_path):
    """A non-finite prediction is an error before writing; a failing write keeps the old files."""
    path, _ = sample_png
    good = fake_predictor(np.full((21, 2), 30.0) + np.arange(21)[:, None], np.linspace(-1, 1, 21))
    result = predict.predict_image(good, str(path))
    paths = predict.write_outputs(result, tmp_path)
    before = {key: open(p, "rb").read() for key, p in paths.items()}

    broken = fake_predictor(np.full((21, 2), np.nan), np.zeros(21))
    with pytest.raises(ValueError, match="non-finite joints.*nothing written"):
        predict.predict_image(broken, str(path))
    # A result that reaches the writer with a non-finite value (lifted by hand here): the JSON
    # fails, and the previous run's files stay whole, with no temporary file left behind.
    result["xyz"] = np.full((21, 3), np.inf).tolist()
    with pytest.raises(ValueError):
        predict.write_outputs(result, tmp_path)
    assert {key: open(p, "rb").read() for key, p in paths.items()} == before
    json.loads(before["json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        os.path.basename(p) for p in paths.values())


def test_bad_inputs_give_clear_errors(tmp_path):
    oracle = fake_predictor(np.zeros((21, 2)), np.zeros(21))
    rgb = np.zeros((100, 120, 3), np.uint8)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image")
    cases = [
        (dict(image=str(garbage)), "image: cannot read"),
        (dict(image=str(tmp_path / "missing.png")), "image: no such file"),
        (dict(image=np.zeros((10, 10, 2), np.uint8)), "2 channels"),
        (dict(image=np.zeros((10, 10, 5), np.uint8)), "5 channels"),
        (dict(image=rgb, intrinsics=(500, 500, 60)), "intrinsics: expected 4 numbers"),
        (dict(image=rgb, intrinsics=("fx", 500, 60, 50)), "intrinsics: .* is not 4 numbers"),
        (dict(image=rgb, intrinsics=(-5, 500, 60, 50)), "intrinsics: focal lengths must be positive"),
        (dict(image=rgb, intrinsics=(500, 500, np.nan, 50)), "intrinsics: .* non-finite"),
        (dict(image=rgb, box=(200, 10, 20, 20)), "box: .* lies outside the 120x100 image"),
        (dict(image=rgb, box=(-50, 10, 40, 20)), "box: .* lies outside"),
        (dict(image=rgb, box=(10, 10, 0, 20)), "box: width and height must be positive"),
        (dict(image=rgb, box=(10, 10, 20)), "box: expected 4 numbers"),
        (dict(image=rgb, scale=-1.0), "scale: must be a positive number"),
    ]
    for kwargs, message in cases:
        image = kwargs.pop("image")
        with pytest.raises(ValueError, match=message):
            predict.predict_image(oracle, image, **kwargs)


def test_box_and_intrinsics_text_is_parsed_by_the_command_line():
    """The library takes numbers; the flags' text "x,y,w,h" / "fx,fy,cx,cy" is parsed on the CLI side."""
    from flags.lgh_flags import parse_numbers

    assert parse_numbers("60,40, 200 210", 4, "box", "x,y,w,h") == [60.0, 40.0, 200.0, 210.0]
    assert parse_numbers("", 4, "box", "x,y,w,h") is None and parse_numbers("  ", 4, "box", "") is None
    for text, message in (("500,500,60", "intrinsics: expected 4 numbers fx,fy,cx,cy, got 3 in '500,500,60'"),
                          ("fx,500,60,50", "intrinsics: cannot parse 'fx,500,60,50' as 4 numbers"),
                          ("500,500,nan,50", "intrinsics: '500,500,nan,50' has a non-finite value")):
        with pytest.raises(ValueError, match=message):
            parse_numbers(text, 4, "intrinsics", "fx,fy,cx,cy")
    with pytest.raises(TypeError, match="box: expected 4 numbers x,y,w,h, got the text"):
        predict.predict_image(fake_predictor(np.zeros((21, 2)), np.zeros(21)), np.zeros((10, 10, 3), np.uint8),
                              box="1,1,5,5")


def test_rgba_and_grey_are_accepted(tmp_path):
    oracle = fake_predictor(np.zeros((21, 2)), np.zeros(21))
    rgba = np.zeros((50, 60, 4), np.uint8)
    rgba[..., 2] = 200  # red in BGRA
    rgba[..., 3] = 128
    path = tmp_path / "rgba.png"
    assert cv2.imwrite(str(path), rgba)
    result = predict.predict_image(oracle, str(path))
    assert result["_image"].shape == (50, 60, 3) and result["_image"][0, 0].tolist() == [200, 0, 0]
    assert any("alpha channel dropped" in n for n in result["notes"])
    grey = tmp_path / "grey.png"
    assert cv2.imwrite(str(grey), np.full((40, 30), 77, np.uint8))
    result = predict.predict_image(oracle, str(grey))
    assert result["_image"].shape == (40, 30, 3) and any("grey" in n for n in result["notes"])


def test_saved_model_directory_is_used_through_predict_float(tmp_path):
    import tensorflow as tf

    class Exported(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 64, 64, 3), tf.float32, name="images")])
        def predict_float(self, images):
            mean = tf.reduce_mean(images, axis=[1, 2, 3])  # (N,)
            uv = tf.tile(mean[:, None, None] * 100.0, [1, 21, 2])
            return {"uv": uv, "depth": tf.zeros_like(uv[..., 0]), "heatmaps": images[..., :1]}

    module = Exported()
    tf.saved_model.save(module, str(tmp_path / "lgh" / "1"),
                        signatures={"predict_float": module.predict_float.get_concrete_function()})
    predictor = predict.load_predictor(str(tmp_path / "lgh"))  # TF Serving base dir: version 1
    assert predictor.input_size == 64
    image = np.full((64, 64, 3), 51, np.uint8)  # 0.2 after /255
    result = predict.predict_image(predictor, image, iterations=1)
    np.testing.assert_allclose(result["uv_crop"], np.full((21, 2), 20.0), atol=1e-4)


def test_main_predict_end_to_end(sample_png, trained_run, tmp_path):
    """--mode=predict on the shared training directory (the README's --checkpoint=runs/...)."""
    path, sample = sample_png
    K = sample["K"]
    out = tmp_path / "out"
    base = ["--mode=predict", f"--checkpoint={trained_run.model_dir}", f"--image={path}", f"--output_dir={out}"]
    result = run_main(*base, f"--intrinsics={K[0, 0]},{K[1, 1]},{K[0, 2]},{K[1, 2]}", "--box=60,40,200,210",
                      "--scale=0.04", "--root_depth=0.5")
    data = json.loads((out / "hand.json").read_text())
    assert np.isfinite(np.array(data["uv"])).all() and np.array(data["uv"]).shape == (21, 2)
    assert np.array(data["xyz"]).shape == (21, 3) and np.isfinite(np.array(data["xyz"])).all()
    assert data["crop"]["box"] == [60.0, 40.0, 200.0, 210.0] and data["input_size"] == 64
    assert cv2.imread(str(out / "hand_skeleton.png")).shape[:2] == (320, 320)
    assert cv2.imread(str(out / "hand_3d.png")) is not None
    assert "wrote json" in result.stdout

    # Bad input: a clear message and exit status 2 (before any model is loaded).
    result = run_main(*base, "--box=400,400,10,10", check=False)
    assert result.returncode == 2
    assert "error: box:" in result.stderr and "outside the 320x320 image" in result.stderr
    result = run_main(*base, "--intrinsics=fx,600,160,160", check=False)
    assert result.returncode == 2 and "error: intrinsics: cannot parse 'fx,600,160,160'" in result.stderr
