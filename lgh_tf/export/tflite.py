"""TensorFlow Lite conversion of an exported SavedModel, and a small runner.

Variants (``VARIANTS``), all converted from the SavedModel's ``predict_float`` signature (float32
images in [0, 1] in, ``uv`` / ``depth`` / ``heatmaps`` out; the .tflite keeps the signature and its
free batch size, the runner resizes the input) with builtin TFLite ops only, so a stray TF op (a
random op, anything that would need the Flex delegate) fails the conversion. The in-graph input
checks of the SavedModel (``Assert``) are dropped by the converter: :class:`TFLiteRunner` checks
shapes in Python instead.

``float32``       plain conversion;
``float16``       weights stored as float16 (half the file; XNNPACK computes in float32);
``dynamic_int8``  weights int8, activations quantised on the fly per op (dynamic range);
``int8``          integer network: weights and activations int8 (ranges calibrated on synthetic
                  hand crops) for every convolution, BatchNorm, pooling and the heat/depth-map
                  heads; the soft-argmax readout after them (softmax over the H/4 x W/4 positions,
                  the expectations, the group combination; ~40 small ops) stays float32, and input
                  and output are float32 (a quantize / dequantize at each end).

Why the readout stays float: an int8 softmax over 1,024+ positions has a step of 1/256, so almost
every probability rounds to 0 and the expected coordinates collapse. Quantising everything
(``float_readout=False``, ``TFLITE_BUILTINS_INT8``) put a trained 128x128 network 86 px (mean) away
from its float output; with the float readout it is 0.2 px (mean), 1.0 px at most (numbers from
``runs/synthetic``, 32 synthetic crops). The selective quantisation is what
``tf.lite.experimental.QuantizationDebugger`` does: calibrate only, then ``mlir_quantize`` with the
readout's tensors denylisted (TF's internal ``tensorflow.lite.python.convert.mlir_quantize``).

Files: ``<version_dir>/tflite/model_<variant>.tflite``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from lgh_tf import files

VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
SIGNATURE = "predict_float"


def tflite_path(version_dir, variant) -> str:
    return os.path.join(os.fspath(version_dir), "tflite", f"model_{variant}.tflite")


def check_variants(names) -> list[str]:
    """The variants named (``--tflite``'s names, split by the command line), each once, in order;
    [] for none or ["none"]; unknown names raise."""
    names = [str(name).strip() for name in (names or []) if str(name).strip()]
    if names in ([], ["none"]):
        return []
    if "none" in names:
        raise ValueError(f"'none' cannot be combined with other variants: {','.join(names)!r}")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown TFLite variant(s) {unknown}; choose from none,{','.join(VARIANTS)}")
    return list(dict.fromkeys(names))


def synthetic_representative_images(input_size, num_samples=100, cache_dir="cache", seed=0):
    """``num_samples`` float32 (1, S, S, 3) crops of the synthetic held-out split (generated into
    ``cache_dir`` on first use), as the evaluation pipeline feeds them to the network."""
    from lgh_tf.config import DataConfig
    from lgh_tf.data.pipeline import make_dataset
    from lgh_tf.data.synthetic import load_synthetic

    records = load_synthetic(cache_dir, "test", num_samples=num_samples, seed=seed)
    dataset = make_dataset(records, DataConfig(output_size=input_size, batch_size=1), training=False)
    return [batch["image"].numpy() for batch in dataset.take(num_samples)]


def configure(converter, variant, representative_images=None, float_readout=True):
    """Applies a variant's settings (builtin ops only, quantisation) to a TFLiteConverter."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown TFLite variant {variant!r}; choose from {VARIANTS}")
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if not representative_images:
            raise ValueError("the int8 variant needs representative_images (calibration crops)")
        images = [np.asarray(x, np.float32) for x in representative_images]

        def representative_dataset():
            for image in images:
                yield {"images": image if image.ndim == 4 else image[None]}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        if float_readout:
            converter._experimental_calibrate_only = True  # quantised by _quantize_but_readout
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def readout_tensor_names(model_content) -> list[str]:
    """Output tensor names of every op from the first SOFTMAX onwards (the soft-argmax readout and
    what consumes it) in a TFLite model: the nodes the int8 variant keeps in float32."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    ops = interpreter._get_ops_details()
    names = {tensor["index"]: tensor["name"] for tensor in interpreter.get_tensor_details()}
    consumers = {}
    for op in ops:
        for tensor in op["inputs"]:
            consumers.setdefault(tensor, []).append(op)
    pending = [op for op in ops if op["op_name"] == "SOFTMAX"]
    if not pending:
        raise ValueError("no SOFTMAX op (soft-argmax readout) in the model")
    seen = {}
    while pending:
        op = pending.pop()
        if op["index"] not in seen:
            seen[op["index"]] = op
            for tensor in op["outputs"]:
                pending.extend(consumers.get(tensor, []))
    return sorted({names[tensor] for op in seen.values() for tensor in op["outputs"]})


def _quantize_but_readout(calibrated) -> bytes:
    from tensorflow.lite.python import convert as lite_convert

    return lite_convert.mlir_quantize(calibrated, denylisted_nodes=readout_tensor_names(calibrated))


def make_converter(version_dir, variant, representative_images=None, float_readout=True):
    """A configured ``tf.lite.TFLiteConverter`` for one variant (see the module docstring).

    Refuses a SavedModel with a random op: TFLite has builtin RANDOM_UNIFORM / MULTINOMIAL kernels,
    so a stateful random op would convert silently (stateless ones fail as non-builtin).
    """
    from lgh_tf.export.saved_model import random_ops

    found = random_ops(version_dir)
    if found:
        raise ValueError(f"{version_dir} contains random ops {found}; export with the hard selector")
    converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(version_dir), signature_keys=[SIGNATURE])
    return configure(converter, variant, representative_images, float_readout)


def convert(version_dir, variant, representative_images=None, output_path=None, float_readout=True) -> str:
    """Converts the SavedModel in ``version_dir`` to one TFLite variant; returns the file's path.

    Records the file in ``export_info.json`` when the version directory has one. Note: each
    ``TFLiteConverter.convert()`` keeps ~20 MB of the process's memory in TF 2.21.
    """
    info_path = os.path.join(os.fspath(version_dir), "export_info.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            precision = json.load(f).get("precision", "float32")
        if precision != "float32":
            raise ValueError(f"{version_dir} is a {precision} export; TFLite variants are converted from float32 "
                             "exports (main.py --mode=export --export_precision=float32)")
    converter = make_converter(version_dir, variant, representative_images, float_readout)
    flatbuffer = converter.convert()
    if variant == "int8" and float_readout:
        flatbuffer = _quantize_but_readout(flatbuffer)
    path = output_path or tflite_path(version_dir, variant)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_bytes(path, flatbuffer)
    if output_path is None and os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        info.setdefault("tflite", {})[variant] = {
            "path": os.path.relpath(path, os.fspath(version_dir)),
            "bytes": len(flatbuffer),
            "converted_from": SIGNATURE,
            "input": "images float32 (N, S, S, 3) in [0, 1]",
        }
        files.write_json(info_path, info)
    return path


def convert_all(version_dir, variants, representative_samples=100, cache_dir="cache",
                representative_images=None) -> dict:
    """{variant: path} for each requested variant; draws the int8 calibration set when needed."""
    paths = {}
    for variant in variants:
        if variant == "int8" and representative_images is None:
            from lgh_tf.export.saved_model import read_export_info

            size = read_export_info(version_dir)["input_size"]
            representative_images = synthetic_representative_images(size, representative_samples, cache_dir)
        paths[variant] = convert(version_dir, variant, representative_images)
    return paths


def load_interpreter(path, num_threads=None):
    """An ``ai_edge_litert`` Interpreter (XNNPACK, the default delegate) with ``num_threads``
    threads (default ``os.cpu_count()``)."""
    from ai_edge_litert.interpreter import Interpreter

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such TFLite file")
    try:
        return Interpreter(model_path=path, num_threads=num_threads or os.cpu_count() or 1)
    except (ValueError, RuntimeError) as error:  # a truncated or foreign file
        lines = str(error).strip().splitlines()
        raise ValueError(f"{path}: not a readable TFLite model (truncated or damaged?): "
                         f"{lines[0] if lines else type(error).__name__}") from None


class TFLiteRunner:
    """Runs a converted model repeatedly: ``TFLiteRunner(path)(images)`` -> dict of numpy arrays.

    The batch size is free: the signature runner resizes the input (and reallocates the tensors)
    when it changes; a repeated shape costs nothing extra.
    """

    def __init__(self, path, num_threads=None):
        self.path = os.fspath(path)
        self.interpreter = load_interpreter(path, num_threads)
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        details = self.runner.get_input_details()["images"]
        self.input_size = int(details["shape_signature"][1])

    def __call__(self, images):
        images = np.asarray(images)
        if images.dtype == np.uint8:  # as the SavedModel's uint8 serving signature: [0, 255] -> [0, 1]
            images = images.astype(np.float32) / 255.0
        elif not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"{os.path.basename(self.path)} expects images float32 in [0, 1] or uint8 in "
                             f"[0, 255]; got {images.dtype}")
        images = images.astype(np.float32, copy=False)
        size = self.input_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.shape[0] == 0:
            raise ValueError(
                f"{os.path.basename(self.path)} expects images float32 (N, {size}, {size}, 3) in [0, 1], "
                f"N >= 1; got shape {images.shape}"
            )
        if not np.isfinite(images).all():
            raise ValueError(f"{os.path.basename(self.path)}: the images hold NaN or inf")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:  # as the SavedModel's predict_float: 0..255 floats give nonsense
            raise ValueError(f"{os.path.basename(self.path)} expects images float32 in [0, 1] (RGB / 255); got "
                             f"values from {low:g} to {high:g}")
        return {key: np.array(value) for key, value in self.runner(images=images).items()}


def run_tflite(path, images, num_threads=None) -> dict:
    """One call of a converted model on float32 (N, S, S, 3) images in [0, 1] (uint8 in [0, 255] is
    divided by 255 first, like the SavedModel's serving signature)."""
    return TFLiteRunner(path, num_threads)(images)
