"""SavedModel export in the TF Serving layout: ``<export_dir>/<version>/``.

Three signatures, all deterministic (hard selector ``one_hot(argmax theta)``, ``training=False`` so
BatchNorm uses its moving statistics, no random op in the graph):

``serving_default``  ``images`` uint8 (N, S, S, 3) RGB hand crops of the model's input size S
                     -> ``uv`` (N, 21, 2) crop pixels (u = column, v = row), ``depth`` (N, 21)
                     relative depth ``(z - z_root) / scale``, ``heatmaps`` (N, S/4, S/4, 21).
``predict_float``    the same from ``images`` float32 in [0, 1] (what the training pipeline feeds).
``predict_xyz``      ``images`` uint8 + ``intrinsics`` (N, 3, 3) of the crop + ``scale`` (N,) +
                     ``root_depth`` (N,) -> the outputs above and ``xyz`` (N, 21, 3), camera space
                     in the unit of ``scale`` / ``root_depth`` (paper Eq. 3).

Inputs are checked inside the graph, so TF Serving clients get the same messages as Python ones: a
tensor of the wrong shape (another crop size, a single image without the batch axis, grey images)
or an empty batch fails with ``InvalidArgumentError`` whose message names the signature's expected
input, e.g. ``serving_default: images must be uint8 (N, 256, 256, 3) RGB hand crops, N >= 1``. An
empty batch is an error, not an empty answer: a request without images is a client bug (and the
oneDNN convolution kernels reject zero-sized batches anyway). A wrong dtype is rejected by TF
before the graph runs (``... expected to be a uint8 tensor but is a float tensor``);
:class:`ExportedModel` checks dtype and shape in Python first and names the full spec.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import shutil

import numpy as np
import tensorflow as tf

from lgh_tf import files

SIGNATURES = ("serving_default", "predict_float", "predict_xyz")
# Compute precision of an export: float32, or bfloat16 convolutions (Keras mixed_bfloat16: weights
# stored as float32, inputs and outputs stay float32) for CPUs with AMX / AVX512-BF16 and GPUs.
PRECISIONS = ("float32", "bfloat16")
OUTPUTS = ("uv", "depth", "heatmaps")
EXPORT_INFO = "export_info.json"
_RANDOM_OP = re.compile(r"Random|Stateless|Multinomial|Shuffle")


class InferenceModule(tf.Module):
    """A ``tf.Module`` holding the model and the three serving functions (see module docstring)."""

    def __init__(self, model):
        super().__init__(name="lgh_inference")
        # Only the model's underlying tf.Variables are tracked (the functions capture them), not
        # the model: a Keras 3 variable exports itself as a second tf.Variable initialised from
        # the first (keras/src/backend/tensorflow/core.py, _export_to_saved_model_graph), and
        # with those copies the TF1-style loader of TF Serving and `saved_model_cli run` fails
        # ("Could not find variable ...") and the TFLite converter leaves the variables unfrozen
        # (NaN outputs). tf.saved_model.load in TF2 worked either way.
        self._setattr_tracking = False
        self.model = model
        self._setattr_tracking = True
        self.model_variables = [v.value if hasattr(v, "value") else v for v in model.variables]
        size = int(model.config.input_size)
        self.input_size = size
        batch = (None, size, size, 3)
        # The tf.functions live in a plain dict, not in attributes: tf.saved_model.save stores every
        # tf.function attribute (tracked or not) once more beside the signatures. And one traced
        # forward pass serves all three signatures, so the SavedModel holds the network's graph
        # once (saved_model.pb of the small test network: 12 MB -> 3.2 MB; export, load and TFLite
        # conversion time shrink with it).
        functions = {
            "forward": tf.function(
                self._forward, input_signature=[tf.TensorSpec(batch, tf.float32, name="images")],
                autograph=False,
            ),
            "serving_default": tf.function(
                self._serve_uint8,
                input_signature=[tf.TensorSpec(batch, tf.uint8, name="images")],
                autograph=False,
            ),
            "predict_float": tf.function(
                self._serve_float,
                input_signature=[tf.TensorSpec(batch, tf.float32, name="images")],
                autograph=False,
            ),
            "predict_xyz": tf.function(
                self._serve_xyz,
                input_signature=[
                    tf.TensorSpec(batch, tf.uint8, name="images"),
                    tf.TensorSpec((None, 3, 3), tf.float32, name="intrinsics"),
                    tf.TensorSpec((None,), tf.float32, name="scale"),
                    tf.TensorSpec((None,), tf.float32, name="root_depth"),
                ],
                autograph=False,
            ),
        }
        self._setattr_tracking = False
        self._functions = functions
        self._setattr_tracking = True

    def _checked(self, signature, images, dtype_text):
        """``images`` after in-graph checks of its shape and batch size (with clear messages)."""
        size = self.input_size
        spec = f"{signature}: images must be {dtype_text} (N, {size}, {size}, 3) RGB hand crops, N >= 1"
        shape, padded, shape_ok = _shape_matches(images, [None, size, size, 3])
        check_shape = tf.debugging.Assert(
            shape_ok, [f"{spec}; got shape", shape], summarize=8, name="check_shape"
        )
        with tf.control_dependencies([check_shape]):
            check_batch = tf.debugging.Assert(
                padded[0] > 0, [f"{spec}; got an empty batch, shape", shape], summarize=8, name="check_batch"
            )
        with tf.control_dependencies([check_shape, check_batch]):
            return tf.identity(images)

    def _forward(self, images):
        out = self.model(images, training=False, selector="hard")
        return {key: tf.identity(tf.cast(out[key], tf.float32), name=key) for key in OUTPUTS}

    def _serve_uint8(self, images):
        images = self._checked("serving_default", images, "uint8")
        return self._functions["forward"](to_float_images(images))

    def _serve_float(self, images):
        images = self._checked("predict_float", images, "float32 in [0, 1]")
        # 0..255 floats or NaN would give confident nonsense: refuse them (the TFLite converter
        # drops Assert ops, and with them these reductions).
        finite = tf.math.is_finite(images)
        low = tf.reduce_min(tf.where(finite, images, 0.0))
        high = tf.reduce_max(tf.where(finite, images, 0.0))
        bad = tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.int32))
        check_values = tf.debugging.Assert(
            tf.logical_and(tf.equal(bad, 0), tf.logical_and(low >= 0.0, high <= 1.0)),
            ["predict_float: images must be float32 in [0, 1] (RGB / 255); got values from", low, "to", high,
             "and non-finite values:", bad],
            name="check_range",
        )
        with tf.control_dependencies([check_values]):
            images = tf.identity(images)
        return self._functions["forward"](images)

    def _serve_xyz(self, images, intrinsics, scale, root_depth):
        from lgh_tf.model.recovery import lift_to_camera

        images = self._checked("predict_xyz", images, "uint8")
        batch = tf.raw_ops.Shape(input=images, out_type=tf.int32)[0]
        checks = []
        for name, tensor, expected, text in (
            ("intrinsics", intrinsics, [batch, 3, 3], "(N, 3, 3)"),
            ("scale", scale, [batch], "(N,)"),
            ("root_depth", root_depth, [batch], "(N,)"),
        ):
            shape, _, ok = _shape_matches(tensor, expected)
            checks.append(tf.debugging.Assert(
                ok, [f"predict_xyz: {name} must be float32 {text}, one per image; got shape", shape,
                     "for N =", batch],
                summarize=8, name=f"check_{name}",
            ))
        with tf.control_dependencies(checks):
            # Eq. 3 inverts K and scales by scale / root_depth: each must be finite, K invertible.
            finite_k = tf.reduce_all(tf.math.is_finite(intrinsics), axis=[1, 2])
            determinant = tf.linalg.det(tf.where(tf.math.is_finite(intrinsics), intrinsics, 0.0))
            values = [tf.debugging.Assert(
                tf.reduce_all(tf.logical_and(finite_k, tf.abs(determinant) > 1e-6)),
                ["predict_xyz: intrinsics must be finite, invertible 3x3 camera matrices of the crop; "
                 "finite per image:", finite_k, "determinants:", determinant],
                summarize=8, name="check_intrinsics_values",
            )]
            for name, tensor in (("scale", scale), ("root_depth", root_depth)):
                values.append(tf.debugging.Assert(
                    tf.reduce_all(tf.logical_and(tf.math.is_finite(tensor), tensor > 0.0)),
                    [f"predict_xyz: {name} must be finite and positive; got", tensor],
                    summarize=8, name=f"check_{name}_values",
                ))
        with tf.control_dependencies(checks + values):
            images, intrinsics, scale, root_depth = (
                tf.identity(t) for t in (images, intrinsics, scale, root_depth)
            )
        out = dict(self._functions["forward"](to_float_images(images)))
        out["xyz"] = tf.identity(
            lift_to_camera(out["uv"], out["depth"], intrinsics, scale, root_depth), name="xyz"
        )
        return out

    def concrete_signatures(self):
        """{name: ConcreteFunction} for ``tf.saved_model.save(..., signatures=...)``."""
        return {name: self._functions[name].get_concrete_function() for name in SIGNATURES}


def _shape_matches(tensor, expected):
    """(runtime shape, shape padded / cut to len(expected), bool: rank and every non-None dim of
    ``expected`` match).

    Raw ops: tf.shape / tf.size would fold to constants from the signature's static shape, and a
    loaded signature does not enforce that shape at call time. Shapes of another rank are padded
    with -1 so that the comparison itself cannot fail.
    """
    shape = tf.raw_ops.Shape(input=tensor, out_type=tf.int32)
    rank = tf.raw_ops.Size(input=shape, out_type=tf.int32)
    n = len(expected)
    padded = tf.concat([shape, tf.fill([n], -1)], axis=0)[:n]
    ok = tf.equal(rank, n)
    for i, dim in enumerate(expected):
        if dim is not None:
            ok = tf.logical_and(ok, tf.equal(padded[i], tf.cast(dim, tf.int32)))
    return shape, padded, ok


def to_float_images(images):
    """uint8 RGB -> float32 in [0, 1], the same arithmetic as the training pipeline."""
    return tf.cast(images, tf.float32) * (1.0 / 255.0)


def next_version(export_dir) -> int:
    """1 + the largest integer-named subdirectory of ``export_dir`` (1 when there is none)."""
    export_dir = os.fspath(export_dir)
    versions = [0]
    if os.path.isdir(export_dir):
        versions += [int(name) for name in os.listdir(export_dir) if name.isdigit()]
    return max(versions) + 1


STAGING = r"\.tmp-(?P<version>\d+)-(?P<pid>\d+)"  # a version being written, by process id


def export_saved_model(model, export_dir, version=None, fold_batch_norms=True, precision="float32",
                       before_publish=None) -> str:
    """Writes ``model`` as a SavedModel to ``export_dir/<version>/`` and returns that path.

    With ``fold_batch_norms`` (the default) the graph is that of a copy of ``model`` whose
    BatchNorms are folded into the convolutions before them (:mod:`lgh_tf.export.folding`): the
    same outputs to float32 round-off, ~15% faster on the CPU. ``model`` itself is not changed.
    ``precision="bfloat16"`` computes the convolutions in bfloat16 (the signatures' inputs and
    outputs are unchanged): measured 1.6-1.9x (batch 1) and 3.2x (batch 8) faster on a CPU with
    AMX, 0.05 px mean 2D drift; TFLite variants are converted from float32 exports only.

    ``version`` defaults to the next integer after the existing versions (TF Serving serves the
    highest). The version is written into a hidden temporary directory and renamed when complete,
    so a TF Serving instance watching ``export_dir`` never loads a half-written model;
    ``before_publish(staging_dir)`` runs last inside it (the TFLite conversion, so that a version
    never appears without the files its ``export_info.json`` lists). Staging directories left by a
    killed export (``.tmp-<version>-<pid>`` of a dead process) are removed first. An existing
    version is never overwritten (``FileExistsError``). ``export_info.json`` inside the version
    directory records the model config, input size, temperature, grouping and signatures.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    export_dir = os.path.abspath(os.fspath(export_dir))
    if version is None:
        version = next_version(export_dir)
    version = int(version)
    if version < 0:
        raise ValueError(f"--export_version must be a non-negative integer, got {version}")
    path = os.path.join(export_dir, str(version))
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; pick another --export_version or remove it")
    files.require_directory(export_dir, "--export_dir")
    files.remove_stale(export_dir, STAGING)
    staging = os.path.join(export_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)

    from lgh_tf.export import folding

    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    folded_count = 0
    inference_model = model
    if fold_batch_norms:
        inference_model = folding.fold_batch_norms(model, policy)
        folded_count = inference_model.folded_batch_norms
    elif precision != "float32" or model.dtype_policy.name != "float32":
        inference_model = folding.copy_model(model, policy)
    module = InferenceModule(inference_model)
    signatures = module.concrete_signatures()
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        info = _export_info(model, version, signatures)
        info["precision"] = precision
        info["batch_norm"] = (
            f"{folded_count} folded into the convolutions before them; the pre-activation ones at "
            "the start of every bottleneck residual as one fused scale-and-shift" if fold_batch_norms
            else "as trained (not folded)"
        )
        files.write_json(os.path.join(staging, EXPORT_INFO), info)
        if before_publish is not None:
            before_publish(staging)
        os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _spec_dict(spec):
    return {"dtype": spec.dtype.name, "shape": [None if d is None else int(d) for d in spec.shape.as_list()]}


def describe_signatures(signatures) -> dict:
    """{name: {"inputs": {...}, "outputs": {...}}} with dtype and shape of every tensor."""
    described = {}
    for name in sorted(signatures):
        function = signatures[name]
        args, inputs = function.structured_input_signature  # traced: args; loaded: kwargs
        inputs = dict(inputs)
        inputs.update({spec.name: spec for spec in tf.nest.flatten(args)})
        described[name] = {
            "inputs": {key: _spec_dict(spec) for key, spec in sorted(inputs.items())},
            "outputs": {key: _spec_dict(spec) for key, spec in sorted(function.structured_outputs.items())},
        }
    return described


def _export_info(model, version, signatures):
    import keras

    config = model.config
    return {
        "format": "lgh_tf SavedModel (TF Serving layout)",
        "version": version,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "model_config": dataclasses.asdict(config),
        "input_size": int(config.input_size),
        "input": "RGB hand crop, uint8 (serving_default, predict_xyz) or float32 in [0, 1] "
                 "(predict_float); crop as in lgh_tf.data.pipeline (1.2 x the hand's extent)",
        "selector": "hard",
        "temperature": float(model.temperature.numpy()),
        "groups": model.groups(),
        "signatures": describe_signatures(signatures),
        "tflite": {},
    }


def read_export_info(version_dir) -> dict:
    with open(os.path.join(os.fspath(version_dir), EXPORT_INFO)) as f:
        return json.load(f)


def random_op_types(graph_def) -> list[str]:
    """Sorted op types in a GraphDef (nodes and function library) that draw random numbers."""
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return sorted(op for op in ops if _RANDOM_OP.search(op))


def random_ops(saved_model_dir) -> list[str]:
    """Sorted random op types anywhere in a SavedModel's graphs (empty for an lgh_tf export)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(os.fspath(saved_model_dir), "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return sorted({op for meta_graph in proto.meta_graphs for op in random_op_types(meta_graph.graph_def)})


class ExportedModel:
    """A loaded export with checked calls: ``ExportedModel(path)(images)`` -> dict of numpy arrays.

    ``images`` uint8 (N, S, S, 3) runs ``serving_default``; float32/float64 in [0, 1] runs
    ``predict_float``; with ``intrinsics``, ``scale`` and ``root_depth`` it runs ``predict_xyz``.
    Wrong dtype, shape or an empty batch raise ``ValueError`` / ``TypeError`` naming the spec.
    """

    def __init__(self, path, loaded=None):
        self.path = os.fspath(path)
        self.loaded = loaded if loaded is not None else tf.saved_model.load(self.path)
        self.signatures = self.loaded.signatures
        _, inputs = self.signatures["serving_default"].structured_input_signature
        self.input_size = int(inputs["images"].shape[1])

    def spec_text(self, name="serving_default"):
        _, inputs = self.signatures[name].structured_input_signature
        return ", ".join(
            f"{key}: {spec.dtype.name} {tuple(spec.shape.as_list())}".replace("None", "N")
            for key, spec in sorted(inputs.items())
        )

    def __call__(self, images, intrinsics=None, scale=None, root_depth=None):
        images = np.asarray(images)
        if images.dtype == np.uint8:
            name = "serving_default"
        elif images.dtype in (np.float32, np.float64):
            name = "predict_float"
            images = images.astype(np.float32)
        else:
            raise TypeError(
                f"images must be uint8 (serving_default: {self.spec_text()}) or float32 in [0, 1] "
                f"(predict_float: {self.spec_text('predict_float')}), got {images.dtype}"
            )
        extra = (intrinsics, scale, root_depth)
        if any(x is not None for x in extra):
            if any(x is None for x in extra):
                raise ValueError("predict_xyz needs intrinsics, scale and root_depth together")
            if name != "serving_default":
                raise TypeError(f"predict_xyz takes uint8 images ({self.spec_text('predict_xyz')})")
            name = "predict_xyz"
        size = self.input_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"{name} expects {self.spec_text(name)}; got images of shape {images.shape}")
        if images.shape[0] == 0:
            raise ValueError(f"{name} expects {self.spec_text(name)} with N >= 1; got an empty batch")
        feed = {"images": tf.constant(images)}
        if name == "predict_xyz":
            n = images.shape[0]
            for key, value, shape in (("intrinsics", intrinsics, (n, 3, 3)), ("scale", scale, (n,)),
                                      ("root_depth", root_depth, (n,))):
                value = np.asarray(value, np.float32)
                if value.shape != shape:
                    raise ValueError(f"predict_xyz expects {key} of shape {shape}, got {value.shape}")
                feed[key] = tf.constant(value)
        return {key: value.numpy() for key, value in self.signatures[name](**feed).items()}
