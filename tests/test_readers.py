"""Readers of the four real data sets, checked on tiny fixtures written in the published formats."""

from __future__ import annotations

import logging
import shutil

import cv2
import fixtures_datasets as fx
import numpy as np
import pytest

from lgh_tf.data import registry, schema
from lgh_tf.data.dexter import load_dexter
from lgh_tf.data.freihand import load_freihand
from lgh_tf.data.rhd import load_rhd
from lgh_tf.data.stb import load_stb

ATOL_M = 1e-5  # float32 round trip of metres
ATOL_PX = 1e-3


def assert_records_well_formed(records: schema.Records) -> None:
    n = len(records)
    assert records.uv.shape == (n, 21, 2) and records.uv.dtype == np.float32
    assert records.xyz.shape == (n, 21, 3) and records.xyz.dtype == np.float32
    assert records.K.shape == (n, 3, 3) and records.K.dtype == np.float32
    assert records.visible.shape == (n, 21) and records.visible.dtype == bool
    assert records.flip.shape == (n,) and records.flip.dtype == bool


def assert_projects_onto_uv(records: schema.Records, joints_mask=None, tol_px: float = 0.5) -> None:
    """xyz projected with K lands on uv within ``tol_px`` on the selected joints."""
    mask = np.ones(records.visible.shape, bool) if joints_mask is None else joints_mask
    xyz = records.xyz.astype(np.float64)
    for i in range(len(records)):
        sel = mask[i]
        if not sel.any():
            continue
        projected = fx.pinhole(xyz[i][sel], records.K[i].astype(np.float64))
        np.testing.assert_array_less(np.abs(projected - records.uv[i][sel]), tol_px)


def by_path(records: schema.Records) -> dict:
    return {str(p): i for i, p in enumerate(records.image_path)}


# ---------------------------------------------------------------------------------------------
# RHD
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def rhd(tmp_path):
    root = tmp_path / "RHD_published_v2"
    train = fx.write_rhd(root, "training", dominant=("left", "right", "left", "right"),
                         corrupt={4: "nan_xyz", 5: "bad_uv_shape"})
    evaluation = fx.write_rhd(root, "evaluation", dominant=("right", "left"), seed=7)
    return root, train, evaluation


def test_rhd_joint_order_units_handedness_and_intrinsics(rhd, tmp_path, caplog):
    root, train, _ = rhd
    with caplog.at_level(logging.WARNING):
        records = load_rhd(root, "train", cache_dir=tmp_path / "cache")
    assert_records_well_formed(records)
    assert len(records) == 4
    rows = by_path(records)
    assert set(rows) == set(train["expected"])
    for path, want in train["expected"].items():
        i = rows[path]
        np.testing.assert_allclose(records.xyz[i], want["xyz"], atol=ATOL_M)  # metres, our order
        np.testing.assert_allclose(records.uv[i], want["uv"], atol=ATOL_PX)
        np.testing.assert_allclose(records.K[i], want["K"], rtol=1e-6)
        np.testing.assert_array_equal(records.visible[i], want["visible"])
        assert records.flip[i] == want["flip"]
        assert records.mask_path[i] == want["mask"]
        assert fx.chirality(records.xyz[i]) == fx.chirality(want["xyz"])  # always a right hand
    # Left hands were mirrored: flip set, cx mirrored, fx != fy and cx != cy kept apart.
    assert records.flip.tolist() == [True, False, True, False]
    assert np.all(records.K[:, 0, 0] != records.K[:, 1, 1])
    assert_projects_onto_uv(records)
    # Corrupt entries 4 (NaN) and 5 (wrong shape) are counted and named.
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "skipped 2 corrupt" in warning and "4 (" in warning and "5 (" in warning


def test_rhd_eval_split_and_no_mirroring_option(rhd, tmp_path):
    root, _, evaluation = rhd
    records = load_rhd(root, "eval", cache_dir=tmp_path / "cache")
    assert len(records) == 2 and records.flip.tolist() == [False, True]
    assert_projects_onto_uv(records)
    unmirrored = load_rhd(root, "evaluation", cache_dir=None, mirror_left=False)
    assert not unmirrored.flip.any()
    assert fx.chirality(unmirrored.xyz[1]) == -fx.chirality(records.xyz[1])  # the raw left hand


def test_rhd_hand_choice_is_cached(rhd, tmp_path):
    root, _, _ = rhd
    cache = tmp_path / "cache"
    first = load_rhd(root, "train", cache_dir=cache)
    assert len(list(cache.glob("rhd_*.npz"))) == 1
    # Blank every mask: a fresh count would now pick the right hand everywhere.
    for mask in (root / "training" / "mask").glob("*.png"):
        cv2.imwrite(str(mask), np.zeros((320, 320), np.uint8))
    cached = load_rhd(root, "train", cache_dir=cache)
    np.testing.assert_array_equal(cached.flip, first.flip)
    recounted = load_rhd(root, "train", cache_dir=None)
    assert not recounted.flip.any()


def test_rhd_missing_files(rhd, tmp_path):
    root, _, _ = rhd
    with pytest.raises(registry.DatasetNotFoundError, match="RHD_missing"):
        load_rhd(tmp_path / "RHD_missing", "train")
    (root / "training" / "anno_training.pickle").unlink()
    with pytest.raises(registry.DatasetNotFoundError) as error:
        load_rhd(root, "train", cache_dir=None)
    message = str(error.value)
    assert "anno_training.pickle" in message and "Expected layout" in message
    assert "Zimmermann & Brox" in message  # where it is published


# ---------------------------------------------------------------------------------------------
# STB
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def stb(tmp_path):
    root = tmp_path / "STB"
    truth = fx.write_stb(root, frames=2, nan_frame=("B1Random", 1))
    return root, truth


def _stb_expected(truth, camera_key, sequences):
    return [hand for seq in sequences for hand in truth[camera_key][seq]]


def test_stb_bb_left_published_intrinsics_order_units_handedness(stb, caplog):
    root, truth = stb
    with caplog.at_level(logging.WARNING):
        records = load_stb(root, "eval")
    assert_records_well_formed(records)
    # B1 only; B1Random frame 1 is NaN -> skipped and named.
    assert len(records) == 3
    assert "B1Random:1" in caplog.text and "skipped 1 corrupt" in caplog.text
    expected = _stb_expected(truth, "BB", ("B1Counting", "B1Random"))[:3]
    np.testing.assert_allclose(records.xyz, np.stack(expected), atol=ATOL_M)  # wrist restored
    assert records.flip.all()
    for xyz in records.xyz:
        assert fx.chirality(xyz) == fx.chirality(expected[0])
    # Published Bumblebee intrinsics, cx mirrored; cy != cx catches a u0-for-v0 mix-up.
    K = fx.flipped_K(fx.K_matrix(**fx.STB_BB), 640)
    np.testing.assert_allclose(records.K, np.broadcast_to(K, (3, 3, 3)), rtol=1e-6)
    for i, hand in enumerate(expected):
        uv_left = fx.pinhole(fx.mirror_x(hand), fx.K_matrix(**fx.STB_BB))
        np.testing.assert_allclose(records.uv[i, :, 0], 639 - uv_left[:, 0], atol=ATOL_PX)
        np.testing.assert_allclose(records.uv[i, :, 1], uv_left[:, 1], atol=ATOL_PX)
    assert_projects_onto_uv(records)
    assert all(p.endswith(f"BB_left_{i}.png") for p, i in zip(records.image_path, (0, 1, 0)))


def test_stb_intrinsics_override_keeps_fx_fy_cx_cy_apart(stb):
    root, truth = stb
    custom = dict(fx=800.0, fy=845.0, cx=300.5, cy=260.25)
    records = load_stb(root, "train", intrinsics=custom)
    assert len(records) == 20
    expected = _stb_expected(truth, "BB", fx.STB_SEQUENCES[2:])
    K = fx.K_matrix(**custom)
    for i, hand in enumerate(expected):
        uv_left = fx.pinhole(fx.mirror_x(hand), K)
        np.testing.assert_allclose(records.uv[i, :, 0], 639 - uv_left[:, 0], atol=ATOL_PX)
        np.testing.assert_allclose(records.uv[i, :, 1], uv_left[:, 1], atol=ATOL_PX)
    assert_projects_onto_uv(records)


def test_stb_sk_color_moves_depth_frame_labels_to_colour_camera(stb):
    root, truth = stb
    records = load_stb(root, "eval", camera="SK_color")
    assert len(records) == 4
    expected = np.stack(_stb_expected(truth, "SK", ("B1Counting", "B1Random")))
    np.testing.assert_allclose(records.xyz, expected, atol=ATOL_M)
    K = fx.flipped_K(fx.K_matrix(**fx.STB_SK_COLOR), 640)
    np.testing.assert_allclose(records.K[0], K, rtol=1e-6)
    assert records.K[0, 0, 0] != records.K[0, 1, 1]
    assert all("SK_color_" in p for p in records.image_path)
    assert_projects_onto_uv(records)


def test_stb_wrist_rules(stb):
    root, truth = stb
    hand = fx.mirror_x(_stb_expected(truth, "BB", ("B1Counting",))[0])  # left, as labelled
    palm_left = 0.5 * (hand[0] + hand[fx.idx("middle_mcp")])
    palm = load_stb(root, "eval", wrist_rule="palm", mirror_left=False)
    np.testing.assert_allclose(palm.xyz[0, 0], palm_left, atol=ATOL_M)
    ge = load_stb(root, "eval", wrist_rule="ge2019", mirror_left=False)
    ring = hand[fx.idx("ring_mcp")]
    np.testing.assert_allclose(ge.xyz[0, 0], ring + 2.0 * (palm_left - ring), atol=ATOL_M)
    k = load_stb(root, "eval", wrist_rule=0.5, mirror_left=False)
    mid = hand[fx.idx("middle_mcp")]
    np.testing.assert_allclose(k.xyz[0, 0], palm_left + 0.5 * (palm_left - mid), atol=ATOL_M)
    np.testing.assert_allclose(ge.xyz[0, 1:], palm.xyz[0, 1:])  # only joint 0 changes
    with pytest.raises(ValueError, match="wrist_rule"):
        load_stb(root, "eval", wrist_rule="nope")


def test_stb_missing_files(stb, tmp_path):
    root, _ = stb
    with pytest.raises(registry.DatasetNotFoundError, match="nowhere"):
        load_stb(tmp_path / "nowhere", "train")
    (root / "labels" / "B3Random_BB.mat").unlink()
    with pytest.raises(registry.DatasetNotFoundError, match="B3Random_BB.mat") as error:
        load_stb(root, "train")
    assert "ICIP 2017" in str(error.value)
    load_stb(root, "eval")  # the eval split does not need B3
    shutil.rmtree(root / "images" / "B1Counting")
    with pytest.raises(registry.DatasetNotFoundError, match="B1Counting"):
        load_stb(root, "eval")


# ---------------------------------------------------------------------------------------------
# FreiHAND
# ---------------------------------------------------------------------------------------------

def test_freihand_train_versions_order_units(tmp_path, caplog):
    root = tmp_path / "FreiHAND_pub_v2"
    truth = fx.write_freihand(root, n_train=3, bad_K_id=1)
    with caplog.at_level(logging.WARNING):
        records = load_freihand(root, "train")
    assert_records_well_formed(records)
    assert "skipped 1 corrupt" in caplog.text and "00000001" in caplog.text
    # Samples 0 and 2 survive, in each of the 4 colour versions: ids i + k * 3.
    names = [p.rsplit("/", 1)[1] for p in records.image_path]
    assert names == [f"{i + k * 3:08d}.jpg" for k in range(4) for i in (0, 2)]
    assert [m.rsplit("/", 1)[1] for m in records.mask_path] == [f"{i:08d}.jpg" for i in (0, 2)] * 4
    for row, i in enumerate([0, 2] * 4):
        hand, K = truth["training"][i]
        np.testing.assert_allclose(records.xyz[row], hand, atol=ATOL_M)
        np.testing.assert_allclose(records.K[row], K, rtol=1e-6)
        np.testing.assert_allclose(records.uv[row], fx.pinhole(hand, K), atol=ATOL_PX)
    assert not records.flip.any() and records.visible.all()
    assert_projects_onto_uv(records)
    gs_only = load_freihand(root, "train", versions=("gs",))
    assert len(gs_only) == 2


def test_freihand_eval_with_and_without_labels(tmp_path, caplog):
    root = tmp_path / "FreiHAND_pub_v2"
    truth = fx.write_freihand(root, n_train=2, n_eval=2, eval_labels=True)
    labelled = load_freihand(root, "eval")
    assert len(labelled) == 2
    for row, (hand, K) in enumerate(truth["evaluation"]):
        np.testing.assert_allclose(labelled.xyz[row], hand, atol=ATOL_M)
        np.testing.assert_allclose(labelled.K[row], K, rtol=1e-6)
    assert_projects_onto_uv(labelled)
    (root / "evaluation_xyz.json").unlink()
    with caplog.at_level(logging.INFO):
        unlabelled = load_freihand(root, "eval")
    assert len(unlabelled) == 2 and "unlabelled" in caplog.text
    assert np.isnan(unlabelled.xyz).all() and np.isnan(unlabelled.uv).all()
    assert not unlabelled.visible.any()
    np.testing.assert_allclose(unlabelled.K, labelled.K)
    with pytest.raises(registry.DatasetNotFoundError, match="evaluation_xyz.json"):
        load_freihand(root, "eval", require_eval_labels=True)


def test_freihand_missing_files(tmp_path):
    root = tmp_path / "FreiHAND_pub_v2"
    fx.write_freihand(root, n_train=1, n_eval=1)
    (root / "training_xyz.json").unlink()
    with pytest.raises(registry.DatasetNotFoundError, match="training_xyz.json") as error:
        load_freihand(root, "train")
    assert "FreiHAND" in str(error.value) and "Expected layout" in str(error.value)
    shutil.rmtree(root / "evaluation" / "rgb")
    with pytest.raises(registry.DatasetNotFoundError, match="rgb"):
        load_freihand(root, "eval")


# ---------------------------------------------------------------------------------------------
# Dexter+Object
# ---------------------------------------------------------------------------------------------

def test_dexter_fingertips_frame_units_handedness(tmp_path, caplog):
    root = tmp_path / "dexter+object"
    truth = fx.write_dexter(root, frames=3, missing_tip=("Grasp2", 0, 3),
                            corrupt_line=("Rigid", 1), empty_frame=("Pinch", 2))
    with caplog.at_level(logging.INFO):
        records = load_dexter(root, "eval")
    assert_records_well_formed(records)
    assert len(records) == 6 * 3 - 2  # one corrupt line skipped, one unannotated frame dropped
    assert "Rigid:1" in caplog.text and "skipped 1 corrupt" in caplog.text
    assert "dropped 1 frames" in caplog.text
    rows = by_path(records)
    tips = [fx.idx(n) for n in fx.DEXTER_TIPS]
    others = [j for j in range(21) if j not in tips]
    for seq, frames in truth.items():
        for index, (path, right, uv_left) in enumerate(frames):
            if (seq, index) in (("Rigid", 1), ("Pinch", 2)):
                assert path not in rows
                continue
            i = rows[path]
            visible = np.ones(5, bool)
            if (seq, index) == ("Grasp2", 0):
                visible[3] = False  # ring tip marked 32001
            np.testing.assert_array_equal(records.visible[i, tips], visible)
            assert not records.visible[i, others].any()
            np.testing.assert_allclose(records.xyz[i, tips][visible], right[tips][visible],
                                       atol=ATOL_M)
            np.testing.assert_allclose(records.uv[i, tips, 0][visible], 639 - uv_left[visible, 0],
                                       atol=ATOL_PX)
            np.testing.assert_allclose(records.uv[i, tips, 1][visible], uv_left[visible, 1],
                                       atol=ATOL_PX)
    assert records.flip.all()
    assert np.isfinite(records.xyz).all() and np.isfinite(records.uv).all()
    assert (records.xyz[~records.visible] == 0).all() and (records.uv[~records.visible] == 0).all()
    np.testing.assert_allclose(records.K[0], fx.flipped_K(fx.DEXTER_K, 640), rtol=1e-6)
    assert_projects_onto_uv(records, records.visible)
    with pytest.raises(ValueError, match="split"):
        load_dexter(root, "train")


def test_dexter_missing_files_and_frame_count_mismatch(tmp_path):
    root = tmp_path / "dexter+object"
    fx.write_dexter(root, frames=2)
    (root / "data" / "Rotate" / "annotations" / "Rotate3D.txt").unlink()
    with pytest.raises(registry.DatasetNotFoundError, match="Rotate3D.txt") as error:
        load_dexter(root)
    assert "ECCV 2016" in str(error.value)
    load_dexter(root, sequences=("Grasp1",))
    (root / "data" / "Grasp1" / "color" / "Color_0001.bmp").unlink()
    with pytest.raises(ValueError, match="Grasp1"):
        load_dexter(root, sequences=("Grasp1",))


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

def test_registry_load_default_dirs_and_env_override(rhd, tmp_path, monkeypatch):
    root, _, _ = rhd
    assert set(registry.DATASETS) == {"rhd", "stb", "freihand", "dexter"}
    for name, info in registry.DATASETS.items():
        assert info.reader.__name__ == f"load_{name}"
        assert info.default_dir.startswith("~/datasets/")
        assert info.layout and info.publisher
    assert registry.DATASETS["rhd"].sizes == {"train": 41258, "eval": 2728}
    records = registry.load("rhd", root, "train", cache_dir=None)
    assert len(records) == 4 and records.name == "rhd/train"
    monkeypatch.setenv("LGH_TF_RHD_DIR", str(root))
    assert len(registry.load("rhd", split="eval", cache_dir=None)) == 2
    monkeypatch.setenv("LGH_TF_STB_DIR", str(tmp_path / "no_stb_here"))
    with pytest.raises(registry.DatasetNotFoundError, match="LGH_TF_STB_DIR"):
        registry.load("stb", split="eval")
    with pytest.raises(KeyError):
        registry.load("nyu")
    with pytest.raises(ValueError, match="split"):
        registry.load("rhd", root, "validation")


def test_load_sources_honours_cache_dir_and_stb_options(rhd, stb, tmp_path, monkeypatch):
    """The CLI path (lgh_tf.data.sources, --cache_dir, --stb_camera, --stb_wrist_rule): RHD's
    hand-choice cache goes to cache_dir, never to the home directory; STB's camera and wrist rule
    reach the reader."""
    from lgh_tf.data.sources import load_sources

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = rhd[0]
    [(records, _)] = load_sources("rhd", "train", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    assert len(records) and list((tmp_path / "cache").glob("rhd_*.npz"))
    assert not (tmp_path / "home").exists()

    root, _ = stb
    default = load_sources("stb", "train", data_dir=str(root))[0][0]
    [(records, _)] = load_sources("stb", "train", data_dir=str(root),
                                  reader_options={"stb": {"camera": "SK_color", "wrist_rule": "1.5"}})
    assert all("SK_color_" in path for path in records.image_path)
    assert all("BB_left_" in path for path in default.image_path)
    direct = load_stb(root, "train", camera="SK_color", wrist_rule=1.5)
    np.testing.assert_array_equal(records.xyz, direct.xyz)
    assert not np.allclose(records.xyz[:, 0], load_stb(root, "train", camera="SK_color").xyz[:, 0])


def test_main_maps_the_stb_flags():
    import main

    main.FLAGS(["main.py", "--stb_camera=SK_color", "--stb_wrist_rule=ge2019"])
    try:
        assert main.reader_options()["stb"] == {"camera": "SK_color", "wrist_rule": "ge2019"}
        main.FLAGS.stb_wrist_rule = "elbow"
        with pytest.raises(SystemExit) as exit_info:
            main.reader_options()
        assert exit_info.value.code == 2
    finally:
        main.FLAGS.unparse_flags()
