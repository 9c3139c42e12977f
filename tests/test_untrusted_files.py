"""Crafted files (issue 33): an RHD annotation pickle made by an attacker, with only the names a
numpy pickle uses, must end in one `error: ...` line, never in a segmentation fault, a memory
bomb or a quadratic dict; each file here is written opcode by opcode."""

import json
import pickle
import re
import shutil
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import cv2
import fixtures_datasets as fx
import numpy as np
import pytest
from conftest import run_main
from test_reliability import error_line

from lgh_tf import predict
from lgh_tf.data import registry, safe_pickle
from lgh_tf.data.rhd import load_rhd
from lgh_tf.model import io

# ---------------------------------------------------------------------------------------------
# Pickle opcodes, by hand (pickletools names)
# ---------------------------------------------------------------------------------------------

MARK, TUPLE, TUPLE1, REDUCE, BUILD, STOP = b"(", b"t", b"\x85", b"R", b"b", b"."
NONE, TRUE, FALSE, EMPTY_DICT, EMPTY_LIST, SETITEM, SETITEMS = b"N", b"\x88", b"\x89", b"}", b"]", b"s", b"u"
PROTO3 = b"\x80\x03"


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(value):  # BINUNICODE
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def int32(value):  # BININT
    return b"J" + struct.pack("<i", value)


def long(value):  # LONG1
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def raw(data):  # BINBYTES
    return b"B" + struct.pack("<I", len(data)) + data


def float64(value):  # BINFLOAT
    return b"G" + struct.pack(">d", value)


def dtype(typestr, state=None):
    """numpy.dtype(typestr, False, True), then BUILD ``state`` (numpy's dtype state tuple)."""
    made = glob("numpy", "dtype") + MARK + text(typestr) + FALSE + TRUE + TUPLE + REDUCE
    return made if state is None else made + MARK + state + TUPLE + BUILD


def plain_state(order="<"):
    return int32(3) + text(order) + NONE * 3 + int32(-1) + int32(-1) + int32(0)


def array(shape, descr, data):
    """What numpy writes for an array: _reconstruct(ndarray, (0,), b'b') then BUILD (1, shape, dtype,
    False, raw bytes)."""
    return (glob("numpy.core.multiarray", "_reconstruct") + MARK + glob("numpy", "ndarray")
            + MARK + int32(0) + TUPLE + raw(b"b") + TUPLE + REDUCE
            + MARK + int32(1) + MARK + b"".join(int32(n) for n in shape) + TUPLE + descr + FALSE + raw(data)
            + TUPLE + BUILD)


def rhd_file(value):
    """{0: {'uv_vis': value}}: RHD's layout around the crafted value."""
    return PROTO3 + EMPTY_DICT + int32(0) + EMPTY_DICT + text("uv_vis") + value + SETITEM + SETITEM + STOP


# A structured dtype with one object field whose flags (0) deny the objects: numpy trusts the flags
# and reads the raw bytes as pointers.
OBJECT_FIELD = dtype("V8", int32(3) + text("|") + NONE + MARK + text("x") + TUPLE
                     + EMPTY_DICT + text("x") + MARK + dtype("O8", int32(3) + text("|") + NONE * 3 + int32(-1)
                                                                 + int32(-1) + int32(63))
                     + int32(0) + TUPLE + SETITEM + int32(8) + int32(1) + int32(0))
POINTERS = b"\x41" * 8


def nested_tuples(depth):
    return PROTO3 + EMPTY_DICT + b")" + TUPLE1 * depth + int32(1) + SETITEM + STOP


def int_keys(keys, entry=NONE):
    return PROTO3 + EMPTY_DICT + MARK + b"".join(long(k) + entry for k in keys) + SETITEMS + STOP


def shared_lists(levels):
    """l0 = [None]; l_i = [l_(i-1), l_(i-1)]: 10 bytes a level, 2**levels items expanded."""
    out = PROTO3 + EMPTY_LIST + NONE + b"a" + b"q\x00" + b"0"
    for level in range(1, levels + 1):
        previous = b"h" + bytes([level - 1])
        out += EMPTY_LIST + MARK + previous + previous + b"e" + b"q" + bytes([level]) + b"0"
    return out + b"h" + bytes([levels]) + STOP


def hex_chain(links):
    """_codecs.encode(..._codecs.encode(b'ab', 'hex')..., 'hex'): the bytes double with every link."""
    out = raw(b"ab")
    for _ in range(links):
        out = glob("_codecs", "encode") + MARK + out + text("hex") + TUPLE + REDUCE
    return PROTO3 + out + STOP


CRAFTED = {
    # name: (bytes, what the one-line refusal says)
    "object field, array": (rhd_file(array((1,), OBJECT_FIELD, POINTERS)), "'V8' is not a plain numeric dtype"),
    "object field, scalar": (rhd_file(glob("numpy.core.multiarray", "scalar") + MARK + OBJECT_FIELD + raw(POINTERS)
                                      + TUPLE + REDUCE), "'V8' is not a plain numeric dtype"),
    "fields by BUILD": (rhd_file(array((1,), dtype("f8", int32(3) + text("|") + NONE + MARK + text("x") + TUPLE
                                                        + EMPTY_DICT + int32(8) + int32(1) + int32(0)), POINTERS)),
                        "a numpy dtype with fields"),
    "1M nested tuples as a key": (nested_tuples(1_000_000), "nested deeper than 32"),
    "ndarray((2**27,), 'O')": (PROTO3 + glob("numpy", "ndarray") + MARK + MARK + int32(2**27) + TUPLE + text("O")
                               + TUPLE + REDUCE + STOP, "a call of numpy.ndarray"),
    "hex chain": (hex_chain(30), "_codecs.encode other than of a str to latin-1"),
    "20000 int keys hashing to 0": (int_keys([k * (2**61 - 1) for k in range(1, 20_001)]), "an integer of 9 bytes"),
    "int keys of 61 bits hashing to 0": (int_keys([2**61 - 1, 2 * (2**61 - 1)]), "an int dict key of 61 bits"),
    "float keys 0 and 0.5": (PROTO3 + EMPTY_DICT + int32(0) + NONE + SETITEM + float64(0.5) + NONE + SETITEM + STOP,
                             "a dict key that is a float (0.5)"),
    "shared lists, 2**40 expanded": (shared_lists(40), "expand to"),
    "list inside itself": (PROTO3 + EMPTY_LIST + b"q\x00" + b"h\x00" + b"a" + STOP, "changed after it was placed"),
    "shape (2**30,) of 8 bytes": (rhd_file(array((2**30,), dtype("f8", plain_state()), POINTERS)),
                                  "needs 8589934592 bytes, the file gives 8"),
    "a 2**31-bit integer": (PROTO3 + b"\x8b" + struct.pack("<i", 2**28) + STOP, "an integer of 268435456 bytes"),
    "key twice": (PROTO3 + EMPTY_DICT + MARK + int32(1) + NONE + int32(1) + TRUE + SETITEMS + STOP,
                  "the dict key 1 twice"),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_pickle_is_refused_in_one_line_with_bounded_memory(name):
    data, message = CRAFTED[name]
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(safe_pickle.UnsafePickleError) as error:
            safe_pickle.loads(data)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value).startswith("refused: ") and message in str(error.value), str(error.value)
    assert "\n" not in str(error.value)
    # Bounded by the file: a few dozen Python objects per byte at most, whatever the file claims.
    assert peak < 64 * len(data) + (1 << 20), (name, peak, len(data))
    assert seconds < 2.0, (name, seconds)
    print(f"{name}: {len(data)} bytes, refused in {seconds * 1e3:.1f} ms, peak {peak / 2**20:.2f} MiB")


def test_crafted_object_field_crashes_a_plain_reader_and_is_one_line_here(tmp_path):
    """The file is the real attack (a plain pickle.load + the reader's conversion dies of SIGSEGV);
    the command line answers it in one line naming the file."""
    root = tmp_path / "RHD_published_v2"
    fx.write_rhd(root, split_dir="evaluation", dominant=("right",))
    path = root / "evaluation" / "anno_evaluation.pickle"
    path.write_bytes(CRAFTED["object field, array"][0])
    plain = subprocess.run([sys.executable, "-c", "import pickle, sys, numpy as np; "
                            "np.asarray(pickle.load(open(sys.argv[1], 'rb'))[0]['uv_vis'], np.float64)", str(path)],
                           capture_output=True, timeout=60)
    assert plain.returncode < 0, plain  # killed by a signal: memory corruption driven by the file
    result = run_main("--mode=eval", "--dataset=rhd", f"--data_dir={root}", "--checkpoint=unused",
                      f"--output_dir={tmp_path / 'eval'}", f"--cache_dir={tmp_path / 'cache'}", check=False)
    error_line(result, f"rhd: cannot read {path}: UnsafePickleError: refused: numpy dtype 'V8'")


def test_release_format_still_reads_python_2_and_every_protocol():
    """A Python 2 pickle (raw bytes as a str, SHORT_BINSTRING keys) of RHD's structure, written by
    hand, reads back with the values and dtype it encodes; big-endian data is converted."""
    values = np.arange(6, dtype="<f4").reshape(2, 3)
    py2_str = b"U" + bytes([len(values.tobytes())]) + values.tobytes()  # SHORT_BINSTRING
    py2_array = (glob("numpy.core.multiarray", "_reconstruct") + MARK + glob("numpy", "ndarray") + MARK + int32(0)
                 + TUPLE + b"U\x01b" + TUPLE + REDUCE + MARK + int32(1) + MARK + int32(2) + int32(3) + TUPLE
                 + dtype("f4", int32(3) + b"U\x01<" + NONE * 3 + int32(-1) + int32(-1) + int32(0)) + FALSE + py2_str
                 + TUPLE + BUILD)
    big = np.arange(3, dtype=">f8")
    data = (b"\x80\x02" + EMPTY_DICT + int32(7) + EMPTY_DICT + b"U\x06uv_vis" + py2_array
            + SETITEM + b"U\x03xyz" + array((3,), dtype("f8", plain_state(">")), big.tobytes()) + SETITEM
            + SETITEM + STOP)
    loaded = safe_pickle.loads(data)
    np.testing.assert_array_equal(loaded[7]["uv_vis"], [[0, 1, 2], [3, 4, 5]])
    assert loaded[7]["uv_vis"].dtype == np.float32
    np.testing.assert_array_equal(loaded[7]["xyz"], [0.0, 1.0, 2.0])


def test_rhd_keys_that_are_no_sample_id_are_counted_and_named(tmp_path, caplog):
    """A str "00001" beside the int 1, a negative id: skipped and named, never a second record."""
    root = tmp_path / "RHD_published_v2"
    fx.write_rhd(root, split_dir="evaluation", dominant=("right", "left"))
    path = root / "evaluation" / "anno_evaluation.pickle"
    annotations = pickle.loads(path.read_bytes())
    fx.write_rhd_pickle(root, {**annotations, "00001": annotations[1], -3: annotations[0]})
    records = load_rhd(root, "eval", cache_dir=None)
    assert len(records) == 2
    warning = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warning) == 1 and "skipped 2 corrupt annotation entries" in warning[0], warning
    assert "'00001' (not a sample id" in warning[0] and "-3 (not a sample id" in warning[0]


def test_20000_keys_read_in_linear_time():
    """20,000 int keys (what a plain dict of colliding keys made quadratic: 4.3 s) read in linear
    time: ten times the keys take about ten times as long, not a hundred (best of 3 runs, and a wide
    margin, so that a busy machine does not decide)."""
    def seconds(count):
        data = pickle.dumps({key: [key, 0.5] for key in range(count)}, protocol=2)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            loaded = safe_pickle.loads(data)
            best = min(best, time.perf_counter() - start)
        assert len(loaded) == count and loaded[count - 1] == [count - 1, 0.5]
        return best

    small, large = seconds(2_000), seconds(20_000)
    assert large < 40 * small, (small, large)
    print(f"20,000 keys read in {large:.3f} s (2,000 in {small:.3f} s)")


def test_damaged_pickle_is_one_line_through_the_reader(tmp_path):
    root = tmp_path / "RHD_published_v2"
    fx.write_rhd(root, split_dir="evaluation", dominant=("right",))
    path = root / "evaluation" / "anno_evaluation.pickle"
    path.write_bytes(nested_tuples(100_000))
    with pytest.raises(registry.DatasetReadError, match=f"^rhd: cannot read {path}: UnsafePickleError: refused: "
                                                        "values nested deeper than 32$"):
        load_rhd(root, "eval", cache_dir=None)


# ---------------------------------------------------------------------------------------------
# Other files from elsewhere: a model config, a huge picture, a damaged SavedModel, detections
# ---------------------------------------------------------------------------------------------


def huge_png(path, width, height):
    """A PNG header of ``width`` x ``height`` grey pixels with one compressed row: what the reader
    must judge is in the header (a real one of 16000x16000 is 249 kB and 3 GB decoded)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(width + 1)))
                     + chunk(b"IEND", b""))
    return path


def test_hostile_model_config_is_refused_before_the_model_is_built(tmp_path):
    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(b"")  # never read: the config is judged first
    config = tmp_path / "model.config.json"
    config.write_text(json.dumps({"model": {"backbone_filters": 1e7}}))
    result = run_main("--mode=groups", f"--checkpoint={weights}", f"--model_dir={tmp_path / 'out'}", check=False)
    error_line(result, f"{config} is not a model config: backbone_filters must be an integer in 1..2048, "
                       "got 10000000.0")
    for field, value, message in [("hourglass_depth", 40, "hourglass_depth must be an integer in 1..8"),
                                  ("fusion", "yes", "fusion must be true or false"),
                                  ("initial_temperature", None, "initial_temperature must be a finite number"),
                                  ("selector_seed", 2**70, "selector_seed must be an integer in 0..2147483647")]:
        config.write_text(json.dumps({"model": {field: value}}))
        with pytest.raises(ValueError, match=message):
            io.load_model(str(weights))


def test_picture_of_256_megapixels_is_refused_from_its_header(tmp_path):
    path = huge_png(tmp_path / "huge.png", 16000, 16000)
    result = run_main("--mode=predict", f"--image={path}", f"--output_dir={tmp_path / 'out'}", check=False)
    error_line(result, f"image: {path} has 256000000 pixels, more than the 134217728")
    path = huge_png(tmp_path / "large.png", 12000, 12000)  # above our cap, below PIL's own
    with pytest.raises(ValueError, match="has 12000x12000 = 144000000 pixels"):
        predict.read_image(path)
    assert predict.read_image(huge_png(tmp_path / "fine.png", 64, 1))[0].shape == (1, 64, 3)


def test_truncated_variables_of_the_shipped_model_are_one_line(tmp_path):
    from conftest import REPO

    copy = tmp_path / "demo"
    shutil.copytree(REPO / "lgh_tf" / "demo" / "synthetic_demo", copy)
    [data] = (copy / "1" / "variables").glob("variables.data-*")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    image = tmp_path / "hand.png"
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    result = run_main("--mode=predict", f"--checkpoint={copy}", f"--image={image}",
                      f"--output_dir={tmp_path / 'out'}", check=False)
    error_line(result, f"SavedModel {copy / '1'} is not readable (IndexError: Read less bytes than requested)")


@pytest.mark.parametrize("content, message", [
    ('{"frame": Infinity, "boxes": []}\n', "frame inf is not a frame index"),
    ('{"frame": -1, "boxes": []}\n', "frame -1 is not a frame index"),
    ('{"frame": 2, "boxes": [[1, 2, NaN, 4]]}\n', "a box is not 4 finite numbers"),
    ('{"image": 7, "boxes": []}\n', "image is not a file name"),
    ("[" * 100_000 + "]" * 100_000 + "\n", "RecursionError"),
])
def test_detections_that_are_no_boxes_are_one_line(tmp_path, content, message):
    path = tmp_path / "boxes.jsonl"
    path.write_text('{"frame": 3.0, "boxes": [[1, 2, 3, 4]]}\n' + content)
    with pytest.raises(ValueError, match=f"detections: {path} line 2: .*{re.escape(message)}") as error:
        predict.read_detections(path)
    assert "\n" not in str(error.value)
    path.write_text('{"frame": 3.0, "boxes": [[1, 2, 3, 4]]}\n')
    assert predict.read_detections(path) == {3: [[1.0, 2.0, 3.0, 4.0]]}


def test_endless_detections_file_is_refused_after_a_bounded_read(tmp_path):
    image = huge_png(tmp_path / "hand.png", 64, 1)
    result = run_main("--mode=predict", f"--image={image}", "--detections=/dev/zero",
                      f"--output_dir={tmp_path / 'out'}", check=False)
    error_line(result, "detections: /dev/zero: more than 64 MiB, not a file of boxes")


@pytest.mark.parametrize("args, message", [
    (["--steps=abc"], "error: flag --steps=abc: invalid literal for int()"),
    (["--no_such_flag=1"], "error: Unknown command line flag 'no_such_flag'"),
    (["--mode=train", "stray"], "error: unexpected arguments: ['stray']"),
    (["--seed=1180591620717411303424"], "error: --seed=1180591620717411303424 must be an integer in 0..2147483647"),
    (["--steps=1180591620717411303424"], "error: --steps=1180591620717411303424 must be a positive integer (and fit"),
    (["--mode=predict"], "error: --mode=predict needs one of --image, --video or --images"),
])
def test_flag_and_usage_errors_are_one_line_and_exit_2(args, message):
    """Through the real entry point (absl's app.run): one line, exit 2, as the docs say; these stop
    before TensorFlow is imported, so each takes about a second."""
    from conftest import REPO

    result = subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(message), \
        result.stderr


# ---------------------------------------------------------------------------------------------
# Silently wrong: images of another size, a cut BMP, 0..255 floats into TFLite
# ---------------------------------------------------------------------------------------------


def test_stb_frames_of_another_size_are_named_and_not_scored(tmp_path):
    from lgh_tf.data.stb import load_stb
    from lgh_tf.evaluation import evaluate

    fx.write_stb(tmp_path / "STB", frames=1)
    small = tmp_path / "STB" / "images" / "B1Counting" / "BB_left_0.png"
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(small)), (320, 240)))  # half size: 178 mm before
    records = load_stb(tmp_path / "STB", "eval")
    unusable = evaluate.unusable_samples("stb", records)
    [(row, reason)] = unusable.items()
    assert records.image_path[row] == str(small)
    assert reason == "image size: 320x240, the data set's images are 640x480 (resized or another data set's file)"
    dataset = evaluate.make_eval_dataset("stb", records, output_size=64, batch_size=64, unusable=unusable)
    [batch] = list(dataset)
    assert sorted(batch["index"].numpy()) == [i for i in range(len(records)) if i != row]
    [note] = evaluate.skipped_notes(records, unusable, len(records) - 1)
    assert note.startswith(f"1 of {len(records)} samples not scored (1 x image size); first: {small}: image size")


def test_dexter_bmp_of_20x15_and_a_cut_bmp_are_in_the_results_notes(tmp_path):
    """What --mode=eval puts in results.json's notes (main.run_eval: unusable_samples, then
    skipped_notes): both files, counted by kind, the first named; before, the 20x15 frame was
    scored and the cut one named only in TensorFlow's log."""
    from lgh_tf.data.dexter import load_dexter
    from lgh_tf.evaluation import evaluate

    root = tmp_path / "dexter"
    fx.write_dexter(root, frames=1)
    tiny = root / "data" / "Grasp1" / "color" / "Color_0000.bmp"
    cv2.imwrite(str(tiny), np.zeros((15, 20, 3), np.uint8))
    cut = fx.damage(root / "data" / "Pinch" / "color" / "Color_0000.bmp")
    records = load_dexter(root)
    unusable = evaluate.unusable_samples("dexter", records)
    reasons = {records.image_path[row]: reason for row, reason in unusable.items()}
    assert reasons == {
        str(tiny): "image size: 20x15, the data set's images are 640x480 (resized or another data set's file)",
        str(cut): f"image file truncated: BMP of {cut.stat().st_size} bytes, its header says "
                  f"{2 * cut.stat().st_size}",
    }
    notes = evaluate.skipped_notes(records, unusable, len(records) - 2)
    assert notes == [f"2 of {len(records)} samples not scored (1 x image file truncated; 1 x image size); first: "
                     f"{records.image_path[min(unusable)]}: {unusable[min(unusable)]}"]
    # A file that passed the checks but did not decode is counted too.
    assert evaluate.skipped_notes(records, unusable, len(records) - 3)[1] == \
        "1 more samples could not be decoded and were not scored (see the log)"


def test_tflite_runner_refuses_0_to_255_floats_like_the_savedmodel():
    from lgh_tf.export import tflite

    runner = tflite.TFLiteRunner.__new__(tflite.TFLiteRunner)  # the input handling, without a model
    runner.path, runner.input_size = "model.tflite", 2
    runner.runner = lambda images: {"images": images}
    with pytest.raises(ValueError, match=r"model.tflite expects images float32 in \[0, 1\] \(RGB / 255\); "
                                         r"got values from 0 to 255"):
        runner(np.linspace(0, 255, 12, dtype=np.float32).reshape(1, 2, 2, 3))
    with pytest.raises(ValueError, match="got values from -0.5 to 0.5"):
        runner(np.full((1, 2, 2, 3), 0.5, np.float32) * np.array([1, -1, 1], np.float32))
    edges = np.array([0.0, 1.0, 0.5], np.float32) * np.ones((1, 2, 2, 3), np.float32)
    np.testing.assert_array_equal(runner(edges)["images"], edges)


def test_values_built_are_bounded_whatever_their_size_in_the_file(monkeypatch):
    """An empty dict is one byte of pickle and ~250 bytes of memory: their number is capped by the
    file's size (one per 4 bytes) and absolutely (MAX_VALUES, here lowered so that the test builds few)."""
    monkeypatch.setattr(safe_pickle, "MAX_VALUES", 1000)
    data = PROTO3 + EMPTY_LIST + MARK + EMPTY_DICT * 999 + b"e" + STOP
    assert len(safe_pickle.loads(data)) == 999
    with pytest.raises(safe_pickle.UnsafePickleError, match="refused: more than 1000 lists, dicts, tuples and arrays"):
        safe_pickle.loads(PROTO3 + EMPTY_LIST + MARK + EMPTY_DICT * 1000 + b"e" + STOP)
    monkeypatch.setattr(safe_pickle, "MAX_VALUES", 1 << 21)
    bomb = PROTO3 + EMPTY_LIST + MARK + EMPTY_DICT * 200_000 + b"e" + STOP
    with pytest.raises(safe_pickle.UnsafePickleError, match="more than 54097 lists, dicts, tuples and arrays "
                                                            "\\(for a file of 200006 bytes\\)"):
        safe_pickle.loads(bomb)
