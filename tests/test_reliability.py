"""What an adversarial but ordinary user does (issue 24): two runs on one folder, kill -9 of the
lock holder, damaged annotation files, a pickle that runs code, read-only and full output folders,
bad flags, training longer, damaged media. Each case asserts the exit status, the one-line
message (naming the file or flag) and that nothing earlier was lost."""

import contextlib
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import cv2
import fixtures_datasets as fx
import numpy as np
import pytest
import tensorflow as tf
from conftest import EAGER, REPO, TINY_TRAIN, run_main
from test_robustness import train as loop_train

from lgh_tf import files, predict, video
from lgh_tf.data import registry, safe_pickle
from lgh_tf.data.dexter import load_dexter
from lgh_tf.data.freihand import load_freihand
from lgh_tf.data.rhd import load_rhd
from lgh_tf.data.stb import load_stb


def error_line(result, *named):
    """The one `error: ...` line of ``result`` (exit 2, no traceback), checked to name ``named``."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    for text in named:
        assert str(text) in lines[0], lines[0]
    return lines[0]


def stb_args(root, model_dir, *extra):
    return ["--mode=train", "--dataset=stb", f"--data_dir={root}", f"--model_dir={model_dir}",
            f"--cache_dir={model_dir.parent / 'cache'}", *TINY_TRAIN, EAGER, *extra]


# ---------------------------------------------------------------------------------------------
# 1. One writer per run folder; kill -9 of the holder; eval and groups while it trains
# ---------------------------------------------------------------------------------------------


def test_two_runs_on_one_folder_then_kill_minus_9_then_resume(tmp_path):
    """A training process holds the folder; a second run (another network) stops at once naming
    the folder and the holder's PID and writes nothing; eval and groups read the folder's complete
    checkpoints meanwhile; after kill -9 of the holder a new run takes the folder and resumes."""
    fx.write_stb(tmp_path / "STB", frames=2)
    model_dir = tmp_path / "run"
    command = [sys.executable, str(REPO / "main.py"), *stb_args(tmp_path / "STB", model_dir, "--steps=400")]
    holder = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        state = model_dir / "checkpoints" / "checkpoint"
        deadline = time.time() + 500
        while not (state.exists() and "ckpt-" in state.read_text()) and holder.poll() is None \
                and time.time() < deadline:
            time.sleep(0.1)
        assert holder.poll() is None, "the first run ended before its first checkpoint"
        config_before = (model_dir / "config.json").read_text()

        second = run_main(*stb_args(tmp_path / "STB", model_dir, "--num_groups=2", "--nofusion"), check=False)
        line = error_line(second, model_dir, f"PID {holder.pid}", "in use by another run")
        assert (model_dir / "config.json").read_text() == config_before  # the holder's network, untouched

        # The folder being trained is read through its complete checkpoints only.
        groups = run_main("--mode=groups", f"--checkpoint={model_dir}", f"--model_dir={tmp_path / 'groups'}",
                          check=False)
        assert groups.returncode == 0, groups.stderr[-3000:]
        evaluation = run_main("--mode=eval", "--dataset=stb", f"--data_dir={tmp_path / 'STB'}",
                              f"--checkpoint={model_dir}", f"--output_dir={tmp_path / 'eval'}", "--batch_size=2",
                              check=False)
        assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    reached = int(tf.train.latest_checkpoint(str(model_dir / "checkpoints")).rsplit("-", 1)[1])
    resumed = run_main(*stb_args(tmp_path / "STB", model_dir, f"--steps={reached + 2}"))
    assert f"Trained to step {reached + 2}" in resumed.stdout
    assert f"resumed from {model_dir / 'checkpoints' / f'ckpt-{reached}'}" in resumed.stderr
    print(line)


def test_lock_is_released_by_the_kernel_and_reentrant(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lgh_tf import files\n"
         "with files.run_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(600)", str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(files.RunFolderBusyError, match=f"PID {holder.pid}"):
            with files.run_lock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with files.run_lock(tmp_path):  # no stale lock after kill -9
        with files.run_lock(tmp_path):  # stage 1 inside stage 2: the same process may enter again
            assert (tmp_path / files.LOCK_NAME).read_text().strip() == str(os.getpid())


# ---------------------------------------------------------------------------------------------
# 2. Every reader fails in one line naming the file; 8. a pickle stays data
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def rhd_eval(tmp_path):
    root = tmp_path / "RHD_published_v2"
    fx.write_rhd(root, split_dir="evaluation")
    return root


@pytest.mark.parametrize("how", ["truncate", "empty", "garbage", "list"])
def test_damaged_rhd_pickle_is_named(rhd_eval, how):
    path = rhd_eval / "evaluation" / "anno_evaluation.pickle"
    if how == "list":
        fx.write_rhd_pickle(rhd_eval, [1, 2, 3])
    else:
        fx.damage(path, how)
    with pytest.raises(registry.DatasetReadError, match=f"^rhd: cannot read {path}: ") as error:
        load_rhd(rhd_eval, "eval", cache_dir=None)
    assert "\n" not in str(error.value)


def test_rhd_pickle_that_runs_code_is_refused_and_never_run(rhd_eval, tmp_path):
    marker = tmp_path / "code_ran"
    annotations = pickle.load(open(rhd_eval / "evaluation" / "anno_evaluation.pickle", "rb"))
    path = fx.write_rhd_pickle(rhd_eval, {**annotations, "payload": fx.RunsCode(marker)})
    with open(path, "rb") as f:  # the stand-in payload does run under a plain pickle.load
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    result = run_main("--mode=eval", "--dataset=rhd", f"--data_dir={rhd_eval}", "--checkpoint=unused",
                      f"--output_dir={tmp_path / 'eval'}", f"--cache_dir={tmp_path / 'cache'}", check=False)
    error_line(result, f"rhd: cannot read {path}", "pathlib.Path.touch", "not plain data")
    assert not marker.exists()


def test_restricted_unpickler_reads_what_the_release_holds():
    """Every pickle protocol of the published structure (a dict of dicts of float arrays, Python 2
    style str keys) is read back equal."""
    data = {7: {"uv_vis": np.arange(126.0).reshape(42, 3), "xyz": np.ones((42, 3), np.float32),
                "K": np.eye(3), "name": "a", "tags": ("x", 1, 2.5, None, True), "scalar": np.float64(2)}}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        loaded = safe_pickle.loads(pickle.dumps(data, protocol=protocol))
        assert loaded[7]["tags"] == data[7]["tags"] and loaded[7]["scalar"] == 2.0
        for key in ("uv_vis", "xyz", "K"):
            np.testing.assert_array_equal(loaded[7][key], data[7][key])
            assert loaded[7][key].dtype == data[7][key].dtype


def test_unreadable_rhd_mask_is_named(tmp_path):
    root = tmp_path / "RHD_published_v2"
    fx.write_rhd(root, split_dir="evaluation")
    mask = root / "evaluation" / "mask" / "00001.png"
    fx.damage(mask, "garbage")
    with pytest.raises(registry.DatasetReadError, match=f"^rhd: cannot read {mask}: not a readable image"):
        load_rhd(root, "eval", cache_dir=None)


@pytest.mark.parametrize("how", ["truncate", "empty", "garbage"])
def test_damaged_stb_mat_is_named(tmp_path, how):
    fx.write_stb(tmp_path / "STB", frames=2)
    path = fx.damage(tmp_path / "STB" / "labels" / "B1Counting_BB.mat", how)
    with pytest.raises(registry.DatasetReadError, match=f"^stb: cannot read {path}: "):
        load_stb(tmp_path / "STB", "eval")


@pytest.mark.parametrize("split, damage", [("eval", "truncate"), ("eval", "shape"), ("train", "shape")])
def test_damaged_freihand_json_is_named(tmp_path, split, damage):
    root = tmp_path / "FreiHAND_pub_v2"
    fx.write_freihand(root, n_train=2, n_eval=2)
    path = root / ("evaluation_xyz.json" if split == "eval" else "training_xyz.json")
    if damage == "truncate":
        fx.damage(path)
    else:
        path.write_text(json.dumps([[1.0, 2.0, 3.0]] * 2))  # a list of the right length, wrong shape
    with pytest.raises(registry.DatasetReadError, match=f"^freihand: cannot read {path}: "):
        load_freihand(root, split)


def test_garbled_dexter_annotation_is_named(tmp_path):
    fx.write_dexter(tmp_path / "dexter", frames=2)
    path = fx.damage(tmp_path / "dexter" / "data" / "Pinch" / "annotations" / "Pinch3D.txt", "garbage")
    with pytest.raises(registry.DatasetReadError, match=f"^dexter: cannot read {path}: "):
        load_dexter(tmp_path / "dexter")


def test_damaged_annotations_stop_train_and_eval_in_one_line(tmp_path):
    """The command line, train and eval alike: exit 2, `error: <dataset>: cannot read <file>: ...`;
    a damaged held-out split stops training too (it used to be a warning naming no file)."""
    fx.write_stb(tmp_path / "STB", frames=2)
    held_out = fx.damage(tmp_path / "STB" / "labels" / "B1Counting_BB.mat")
    result = run_main(*stb_args(tmp_path / "STB", tmp_path / "run"), check=False)
    error_line(result, f"stb: cannot read {held_out}")
    assert not (tmp_path / "run" / "checkpoints").exists()

    root = tmp_path / "FreiHAND_pub_v2"
    fx.write_freihand(root, n_train=2, n_eval=2)
    path = fx.damage(root / "evaluation_xyz.json")
    result = run_main("--mode=eval", "--dataset=freihand", f"--data_dir={root}", "--checkpoint=unused",
                      f"--output_dir={tmp_path / 'eval'}", check=False)
    error_line(result, f"freihand: cannot read {path}")


# ---------------------------------------------------------------------------------------------
# 2. Every output write: read-only and full folders
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def mounted_tmpfs(path, options):
    """A tmpfs at ``path`` (root only); skips the test with the reason where it cannot mount."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'mount failed'}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_folder_is_one_line_in_every_mode_that_writes(tmp_path):
    fx.write_stb(tmp_path / "STB", frames=2)
    image = tmp_path / "hand.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as read_only:
        cases = [
            stb_args(tmp_path / "STB", read_only / "run"),
            ["--mode=eval", "--dataset=stb", f"--data_dir={tmp_path / 'STB'}", "--checkpoint=unused",
             f"--output_dir={read_only / 'eval'}"],
            ["--mode=predict", "--checkpoint=unused", f"--image={image}", f"--output_dir={read_only}"],
            ["--mode=predict", "--checkpoint=unused", f"--images={tmp_path}", f"--output_dir={read_only / 'v'}"],
            ["--mode=export", "--checkpoint=unused", f"--export_dir={read_only / 'lgh'}"],
            ["--mode=groups", "--checkpoint=unused", f"--model_dir={read_only / 'groups'}"],
        ]
        for args in cases:
            line = error_line(run_main(*args, check=False), str(read_only), "Read-only file system")
            assert line.startswith("error: --")  # names the flag of the folder, too
        assert os.listdir(read_only) == []


def test_full_disk_mid_run_keeps_the_earlier_checkpoint(tmp_path):
    """A run folder on a small tmpfs, filled up after its first run: the resumed run stops in one
    line naming what it could not write; ckpt-2 and train_results.json are as they were."""
    fx.write_stb(tmp_path / "STB", frames=2)
    with mounted_tmpfs(tmp_path / "disk", "size=8m") as disk:
        model_dir = disk / "run"
        run_main(*stb_args(tmp_path / "STB", model_dir))
        results = (model_dir / "train_results.json").read_text()
        before = {p.name: p.read_bytes() for p in (model_dir / "checkpoints").iterdir()}
        filler = disk / "filler"
        with open(filler, "wb") as f:  # fill the disk, then free just enough for the start-up
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        with open(filler, "r+b") as f:
            f.truncate(max(0, os.path.getsize(filler) - 40_000))
        result = run_main(*stb_args(tmp_path / "STB", model_dir, "--steps=4"), check=False)
        line = error_line(result, str(disk), "No space left on device")
        assert "(the disk is full)" in line or "--model_dir" in line
        assert (model_dir / "train_results.json").read_text() == results
        for name, data in before.items():
            assert (model_dir / "checkpoints" / name).read_bytes() == data, name
        filler.unlink()
        assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-2")


def test_failed_atomic_write_names_the_path_and_keeps_the_old_file(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "size=64k") as disk:
        target = disk / "result.json"
        files.write_json(target, {"old": True})
        with pytest.raises(files.OutputError, match=f"cannot write {target}: No space left on device"):
            files.write_bytes(target, b"x" * 200_000)
        assert json.loads(target.read_text()) == {"old": True}
        assert sorted(os.listdir(disk)) == ["result.json"]  # no temporary left behind


def test_video_on_a_full_disk_is_named_and_keeps_the_earlier_video(tmp_path):
    """OpenCV's encoder fails silently on a full disk; the overlay video is checked before it
    replaces an earlier one."""
    rng = np.random.default_rng(0)
    with mounted_tmpfs(tmp_path / "disk", "size=256k") as disk:
        target = disk / "clip_overlay.mp4"
        target.write_bytes(b"earlier video")
        writer = video._VideoWriter(str(target), 10.0)
        for _ in range(20):
            writer.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        with pytest.raises(files.OutputError, match=f"cannot write {target}: the encoder stored"):
            writer.close()
        assert target.read_bytes() == b"earlier video"
        assert sorted(os.listdir(disk)) == ["clip_overlay.mp4"]


# ---------------------------------------------------------------------------------------------
# 4. Every numeric flag checked where it is parsed
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [
    "--steps=0", "--steps=-5", "--checkpoint_every=0", "--keep_checkpoints=0", "--synthetic_train=0",
    "--batch_size=0", "--lr_rest=-1e-4", "--lr_selector=nan", "--temperature_initial=0",
    "--temperature_floor=0", "--beta=nan", "--beta=inf", "--field_of_view=0", "--field_of_view=180",
    "--max_frames=-1", "--num_groups=22", "--min_confidence=2", "--fps=0", "--scale=-1",
])
def test_bad_flag_is_named_before_any_work(tmp_path, flag):
    result = run_main("--mode=train", f"--model_dir={tmp_path / 'run'}", flag, check=False)
    error_line(result, flag.split("=")[0] + "=")
    assert not (tmp_path / "run").exists()


def test_flag_table_covers_every_numeric_flag():
    """A numeric flag added without a row in FLAG_CHECKS fails here."""
    from absl import flags

    from flags import lgh_flags

    numeric = {name for name, flag in flags.FLAGS._flags().items()
               if flag.flag_type() in ("int", "float") and flags.FLAGS.find_module_defining_flag(name)
               in ("flags.lgh_flags", lgh_flags.__name__)}
    assert "steps" in numeric and "field_of_view" in numeric
    assert numeric <= set(lgh_flags.FLAG_CHECKS), sorted(numeric - set(lgh_flags.FLAG_CHECKS))


# ---------------------------------------------------------------------------------------------
# 5. Training longer
# ---------------------------------------------------------------------------------------------


def test_train_longer_continues_and_stretches_the_cosine(tmp_path):
    """2 steps of a 2-step cosine, then --steps=4: the run continues from step 2 and the rate there
    is the 4-step schedule's (half the base rate), as if 4 steps had been planned from the start.
    What cannot change is refused first, naming its flag, with the folder as it was."""
    from test_robustness import checkpoint_arrays

    model_dir = tmp_path / "run"
    loop_train(model_dir, steps=2, lr_decay_steps=2)
    config = (model_dir / "config.json").read_text()
    with pytest.raises(ValueError, match=r"--lr_decay: 'cosine' -> 'none'"):
        loop_train(model_dir, steps=4)
    with pytest.raises(ValueError, match=r"--checkpoint_every: 2 -> 1"):
        loop_train(model_dir, steps=4, every=1, lr_decay_steps=4)
    assert (model_dir / "config.json").read_text() == config
    at_2 = checkpoint_arrays(str(model_dir / "checkpoints" / "ckpt-2"))
    task, results = loop_train(model_dir, steps=4, lr_decay_steps=4)
    assert results["start_step"] == 2 and results["step"] == 4
    schedule = task.scheduled_rate("rest")
    assert float(schedule(2)) == pytest.approx(0.5 * 1e-4, rel=1e-5)
    assert float(task.optimizers["rest"].learning_rate) == pytest.approx(0.0, abs=1e-12)  # at step 4 of 4
    assert json.loads((model_dir / "config.json").read_text())["optim"]["lr_decay_steps"] == 4
    # Steps 3 and 4 trained (with the old 2-step horizon the rate would be 0 and nothing would move).
    at_4 = checkpoint_arrays(str(model_dir / "checkpoints" / "ckpt-4"))
    moved = [name for name in at_2 if name.startswith("network/") and "backbone" in name
             and np.issubdtype(at_2[name].dtype, np.floating) and not np.array_equal(at_2[name], at_4[name])]
    assert moved


# ---------------------------------------------------------------------------------------------
# 3. Nothing silent: damaged media, TFLite input
# ---------------------------------------------------------------------------------------------


def test_video_cut_short_says_how_many_frames_it_read(tmp_path):
    path = fx.damage(fx.write_video(tmp_path / "clip.avi", frames=10))
    source = video.open_frames(str(path))
    read = [index for index, _, _ in source.frames]
    assert 0 < len(read) < 10
    assert source.problems == [f"{path}: read {len(read)} of the 10 frames its container declares "
                               f"({10 - len(read)} could not be decoded: the file is damaged or cut short)"]
    assert len(source.skipped) == 10 - len(read)


def test_partly_decoded_image_is_marked(tmp_path):
    path = tmp_path / "hand.jpg"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), cv2.resize(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), (256, 256),
                                      interpolation=cv2.INTER_NEAREST))
    assert predict.load_inputs(path)["warnings"] == []
    fx.damage(path)
    inputs = predict.load_inputs(path)  # OpenCV decodes what is there
    assert inputs["rgb"].shape == (256, 256, 3)
    assert len(inputs["warnings"]) == 1 and "JPEG without end-of-image marker" in inputs["warnings"][0]
    directory = run_main("--mode=predict", "--checkpoint=unused", f"--image={tmp_path}", check=False)
    error_line(directory, f"{tmp_path} is a directory")


def test_tflite_runner_normalises_uint8_and_refuses_non_finite(tmp_path):
    from lgh_tf.export import tflite

    runner = tflite.TFLiteRunner.__new__(tflite.TFLiteRunner)  # the input handling, without a model
    runner.path, runner.input_size = "model.tflite", 2
    runner.runner = lambda images: {"images": images}
    crops = np.full((1, 2, 2, 3), 255, np.uint8)
    np.testing.assert_array_equal(runner(crops)["images"], np.ones((1, 2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="NaN or inf"):
        runner(np.full((1, 2, 2, 3), math.nan, np.float32))
    with pytest.raises(ValueError, match="int32"):
        runner(np.ones((1, 2, 2, 3), np.int32))
    damaged = tmp_path / "model.tflite"
    damaged.write_bytes(b"TFL3" + b"\0" * 50)
    with pytest.raises(ValueError, match=f"{damaged}: not a readable TFLite model"):
        tflite.load_interpreter(damaged)


# ---------------------------------------------------------------------------------------------
# 6. Data sets as released
# ---------------------------------------------------------------------------------------------


def test_bmp_frames_decode_and_a_cut_bmp_is_named(tmp_path):
    from lgh_tf.data import pipeline

    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    path = tmp_path / "Color_0000.bmp"
    cv2.imwrite(str(path), rgb[..., ::-1])
    np.testing.assert_array_equal(pipeline.read_image(tf.constant(str(path))).numpy(), rgb)
    assert pipeline.image_file_problem(str(path)) is None
    shutil.copy(path, tmp_path / "cut.bmp")
    fx.damage(tmp_path / "cut.bmp")
    assert pipeline.image_file_problem(str(tmp_path / "cut.bmp")).startswith("image file truncated: BMP")


def test_dexter_corrected_annotations_by_flag(tmp_path):
    root = tmp_path / "dexter"
    fx.write_dexter(root, frames=2, corrected=True)
    original = load_dexter(root)
    corrected = load_dexter(root, corrected_annotations=True)
    np.testing.assert_array_equal(original.xyz, corrected.xyz)
    assert all(path.endswith(".bmp") for path in corrected.image_path)
    (root / "data" / "Rigid" / "annotations" / "my_Rigid3D.txt").unlink()
    with pytest.raises(registry.DatasetNotFoundError, match="my_Rigid3D.txt"):
        load_dexter(root, corrected_annotations=True)
