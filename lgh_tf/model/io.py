"""Loading a trained model from whatever the user has: the one loader of every mode (eval, predict,
video, export, groups, tools; resuming training restores with ``restore_checkpoint``).

- ``load_model`` / ``load_models``: a Keras ``LearnableGroupsNet`` from a training directory or
  checkpoint prefix, an authors' .pth, or Keras weights (.weights.h5 with the .config.json the
  converter writes);
- ``load_function``: ``images -> (uv, depth, heatmaps)`` from any of those, or from a SavedModel
  (``--mode=export``) or a ``.tflite`` file, with the input size it takes (``predict``, ``video``).

Every load is exact: each stored weight must find its model weight and each model weight must be
filled (same names, same shapes), else a ``CheckpointError`` names what is extra or missing, so
weights that do not fit the configuration beside them (another K, fusion on/off, another width)
never load silently. Unreadable files (a truncated ``.index`` / ``.data``, an empty
``config.json``) give a ``CheckpointError`` or ``ValueError`` naming the file.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import tempfile
from typing import TYPE_CHECKING

import tensorflow as tf

from lgh_tf.config import ModelConfig
from lgh_tf.convert import CheckpointError
from lgh_tf.model.network import LearnableGroupsNet

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np

    # images (B, S, S, 3) float32 in [0, 1] -> (uv (B, J, 2), depth (B, J), heatmaps or None)
    PoseFunction = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | None]]

_LISTED = 5  # names quoted in a mismatch message
_SAVED_MODEL_SIGNATURES = ("predict_float", "serving_default")


def _config_from_json(path):
    try:
        with open(path) as f:
            data = json.load(f)
        return ModelConfig(**data.get("model", data)).validate()
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); it is empty or damaged") from None
    except (TypeError, AttributeError, ValueError) as error:
        raise CheckpointError(f"{path} is not a model config: {error}") from None


def _mismatch(path, extra, missing, shapes=()):
    """The CheckpointError for stored weights the model lacks, model weights the file lacks and
    shape differences; None when all three are empty."""
    parts = []
    for count_text, names in ((f"{len(extra)} stored weight(s) the model does not have", sorted(extra)),
                              (f"{len(missing)} model weight(s) the file does not have", sorted(missing)),
                              (f"{len(shapes)} weight(s) of another shape", sorted(shapes))):
        if names:
            parts.append(f"{count_text} ({', '.join(names[:_LISTED])}{', ...' if len(names) > _LISTED else ''})")
    if not parts:
        return None
    return CheckpointError(f"{path} does not fit the network of its config (K, fusion, widths?): "
                           + "; ".join(parts))


def _h5_datasets(path):
    import h5py

    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item.shape)
                     if isinstance(item, h5py.Dataset) else None)
    return found


def load_keras_weights(model: LearnableGroupsNet, path: str) -> LearnableGroupsNet:
    """``model.load_weights(path)`` after checking that the file holds exactly the model's weights
    (Keras itself skips stored weights the model lacks)."""
    try:
        stored = _h5_datasets(path)
    except OSError as error:
        raise CheckpointError(f"{path} is not a readable .weights.h5 file ({error})") from None
    with tempfile.TemporaryDirectory() as directory:  # the layout this model writes
        reference = os.path.join(directory, "expected.weights.h5")
        model.save_weights(reference)
        expected = _h5_datasets(reference)
    shapes = [f"{name} {stored[name]} vs {expected[name]}" for name in set(stored) & set(expected)
              if tuple(stored[name]) != tuple(expected[name])]
    error = _mismatch(path, set(stored) - set(expected), set(expected) - set(stored), shapes)
    if error is not None:
        raise error
    model.load_weights(path)
    return model


def _escape(name):
    """A tf.train.Checkpoint dict key as it appears in the checkpoint's variable names."""
    return name.replace(".", "..").replace("/", ".S")


def _unescape(name):
    return re.sub(r"\.(S|\.)", lambda m: "/" if m.group(1) == "S" else ".", name)


def restore_checkpoint(
    model: LearnableGroupsNet, prefix: str, section: str = "network", only: str = ""
) -> LearnableGroupsNet:
    """Restores ``model`` from the ``section`` of a training checkpoint, exactly: every stored
    network weight used, every model weight filled (optimizer slots and the step are left).
    ``only``: restrict both sides to the weights whose names start with it (e.g. "backbone/")."""
    suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
    try:
        stored = {name[len(section) + 1: -len(suffix)]: tuple(shape)
                  for name, shape in tf.train.list_variables(prefix)
                  if name.startswith(section + "/") and name.endswith(suffix)}
    except (tf.errors.OpError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {prefix}.index (truncated or damaged?): "
                              f"{first_line(error)}") from None
    stored = {k: shape for k, shape in stored.items() if _unescape(k).startswith(only)}
    variables = {name: v for name, v in model.checkpoint_variables().items() if name.startswith(only)}
    expected = {_escape(name): tuple(v.shape) for name, v in variables.items()}
    shapes = [f"{_unescape(k)} {stored[k]} vs {expected[k]}" for k in set(stored) & set(expected)
              if stored[k] != expected[k]]
    error = _mismatch(prefix, {_unescape(k) for k in set(stored) - set(expected)},
                      {_unescape(k) for k in set(expected) - set(stored)}, shapes)
    if error is not None:
        raise error
    checkpoint = tf.train.Checkpoint(**{section: variables})
    try:
        checkpoint.restore(prefix).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError, IndexError) as error:  # IndexError: short .data
        raise CheckpointError(f"cannot read the weights of checkpoint {prefix} (its .data file truncated "
                              f"or damaged?): {first_line(error)}") from None
    return model


def latest_checkpoint(checkpoint_dir: str, resume: bool = False) -> str | None:
    """The checkpoint prefix to resume or load from in ``checkpoint_dir``, or None when it holds none.

    The index file (``checkpoint``) names it, unless the index is missing, damaged or behind the
    newest ``ckpt-<step>`` on disk (someone copied only the ``ckpt-*`` files): then the newest one,
    which a resumed run never overwrites, as its saves are numbered by later steps. A newest one
    that cannot be read is a ValueError: resuming from an older one would overwrite it.
    """
    checkpoint_dir = os.fspath(checkpoint_dir)
    indexed = tf.train.latest_checkpoint(checkpoint_dir)  # None for a missing or unparsable index
    steps = sorted(int(m.group(1)) for m in (re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(p))
                                             for p in glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index")))
                   if m)
    if not steps:
        return indexed
    newest = os.path.join(checkpoint_dir, f"ckpt-{steps[-1]}")
    if indexed is not None and os.path.abspath(indexed) == os.path.abspath(newest):
        return indexed
    try:
        tf.train.load_checkpoint(newest).get_variable_to_shape_map()
        if not glob.glob(newest + ".data-*"):
            raise ValueError("no .data file")
    except (tf.errors.OpError, ValueError) as error:
        if not resume and indexed is not None:
            return indexed
        state = "names an older one" if indexed else "is missing or damaged"
        raise ValueError(f"{newest} cannot be read ({first_line(error)}) and the index "
                         f"{os.path.join(checkpoint_dir, 'checkpoint')} {state}: training on would overwrite it; "
                         "move it away or use another --model_dir") from None
    logging.warning("%s: the index %s; using the newest checkpoint %s", checkpoint_dir,
                    "names an older one" if indexed else "is missing or damaged", newest)
    return newest


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def load_model(path: str | os.PathLike[str]) -> LearnableGroupsNet:
    """Returns a built LearnableGroupsNet. ``path`` may be:

    - a training ``model_dir`` (config.json + checkpoints/), or a checkpoint prefix inside one;
    - an authors' ``.pth`` (needs the torch extra);
    - a ``.weights.h5`` with ``<stem>.config.json`` beside it.

    A checkpoint that does not fit the network of its config.json (another version of the code,
    say) raises a short ValueError naming the path instead of TensorFlow's list of variables.
    """
    path = os.fspath(path)
    try:
        return _load_keras(path)
    except AssertionError as error:
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise ValueError(f"checkpoint: {path} does not match the network described by its "
                         f"config (written by another version of lgh_tf?): {first}") from None


def _load_keras(path):
    if path.endswith(".pth"):
        from lgh_tf.convert import load_authors_checkpoint

        return load_authors_checkpoint(path)
    if path.endswith(".weights.h5"):
        config_path = path[: -len(".weights.h5")] + ".config.json"
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"{path} needs its model config beside it: {config_path}")
        model = LearnableGroupsNet(_config_from_json(config_path)).build_for_input()
        return load_keras_weights(model, path)
    if os.path.isdir(path):
        model_dir, prefix = path, latest_checkpoint(os.path.join(path, "checkpoints"))
        if prefix is None:
            raise FileNotFoundError(f"no checkpoint under {os.path.join(path, 'checkpoints')} "
                                    "(train first: python main.py --mode=train)")
    else:
        prefix = path
        model_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        if not tf.io.gfile.exists(prefix + ".index"):
            raise FileNotFoundError(f"{path} is neither a model directory nor a checkpoint prefix")
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"training config missing: {config_path}")
    model = LearnableGroupsNet(_config_from_json(config_path)).build_for_input()
    for _ in range(3):
        try:
            return restore_checkpoint(model, prefix)
        except (ValueError, tf.errors.OpError):
            # A folder being trained: its checkpoint rotation removed this one while it was read;
            # the index names only complete checkpoints, so take its latest again.
            latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
            if not os.path.isdir(path) or tf.io.gfile.exists(prefix + ".index") or latest in (None, prefix):
                raise
            prefix = latest
    return restore_checkpoint(model, prefix)


def model_paths(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """A list of non-empty paths from a list or one path; ValueError when none is left."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths if os.fspath(p)]
    if not paths:
        raise ValueError("checkpoint: no model path given")
    return paths


def load_models(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[LearnableGroupsNet]:
    """``load_model`` for each path (a list: an ensemble), each checked to exist before any loads."""
    paths = model_paths(paths)
    for path in paths:
        if not os.path.exists(path) and not os.path.exists(path + ".index"):
            raise FileNotFoundError(f"checkpoint: {path} does not exist")
    return [load_model(path) for path in paths]


# ---------------------------------------------------------------------------------------------
# Inference functions: Keras, SavedModel, TFLite
# ---------------------------------------------------------------------------------------------


def find_saved_model(path: str | os.PathLike[str]) -> str | None:
    """The SavedModel directory under ``path`` (itself, or the highest numbered version of a TF
    Serving base directory), or None when ``path`` holds none."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return None
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [d for d in glob.glob(os.path.join(path, "*"))
                if os.path.basename(d).isdigit() and os.path.isfile(os.path.join(d, "saved_model.pb"))]
    if versions:
        return max(versions, key=lambda d: int(os.path.basename(d)))
    return None


def load_function(path: str | os.PathLike[str]) -> tuple[PoseFunction, int]:
    """``(fn, input_size)`` for one model path: ``fn(images)`` with float32 (B, S, S, 3) RGB in
    [0, 1] answers numpy ``(uv (B, 21, 2) input pixels, depth (B, 21), heatmaps (B, S/4, S/4, 21)
    or None)``.

    ``path`` may be anything ``load_model`` reads, a SavedModel directory (``saved_model.pb``
    inside, or a TF Serving base directory with numbered versions), used through its
    ``predict_float`` signature (``serving_default`` otherwise), or a ``.tflite`` file from
    ``--mode=export --tflite`` (run with ai-edge-litert).
    """
    path = os.fspath(path)
    if path.endswith(".tflite"):
        return _tflite_function(path)
    saved_model = find_saved_model(path)
    if saved_model is not None:
        return _saved_model_function(saved_model)
    return _keras_function(path)


def _keras_function(path):
    [model] = load_models([path])

    @tf.function(reduce_retracing=True)
    def run(images):
        out = model(images, training=False)
        return out["uv"], out["depth"], out["heatmaps"]

    def call(images):
        return tuple(t.numpy() for t in run(tf.convert_to_tensor(images, tf.float32)))

    return call, model.config.input_size


def _saved_model_function(directory):
    """(fn, input size) from a SavedModel with a ``predict_float`` (or ``serving_default``)
    signature taking one image tensor and returning ``uv`` and ``depth`` (``heatmaps`` optional)."""
    try:
        loaded = tf.saved_model.load(directory)
    except Exception as error:  # noqa: BLE001  a cut variables.data is an IndexError, a bad .pb a DecodeError
        raise ValueError(f"SavedModel {directory} is not readable ({type(error).__name__}: {first_line(error)}): "
                         "the export is damaged or incomplete; export it again") from None
    signature, name = None, None
    for candidate in _SAVED_MODEL_SIGNATURES:
        if candidate in loaded.signatures:
            signature, name = loaded.signatures[candidate], candidate
            break
    if signature is None:
        raise ValueError(f"SavedModel {directory} has none of the signatures {_SAVED_MODEL_SIGNATURES} "
                         f"(it has {sorted(loaded.signatures)})")
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        image_keys = [k for k in specs if "image" in k]
        if len(image_keys) != 1:
            raise ValueError(f"SavedModel {directory}: signature {name!r} takes {sorted(specs)}; "
                             "expected one image input")
        input_name = image_keys[0]
    else:
        input_name = next(iter(specs))
    spec = specs[input_name]
    size = spec.shape[1] if spec.shape.rank == 4 else None
    if size is None:
        size = getattr(loaded, "input_size", None)
        size = int(size.numpy()) if hasattr(size, "numpy") else size
    if not size:
        raise ValueError(f"SavedModel {directory}: input {input_name!r} has no static size "
                         f"({spec.shape}) and the model no input_size attribute")
    outputs = signature.structured_outputs
    missing = [k for k in ("uv", "depth") if k not in outputs]
    if missing:
        raise ValueError(f"SavedModel {directory}: signature {name!r} returns {sorted(outputs)}; "
                         "expected 'uv' and 'depth'")

    def run(images):
        tensor = tf.convert_to_tensor(images, tf.float32)
        if spec.dtype == tf.uint8:
            tensor = tf.cast(tf.round(tf.clip_by_value(tensor, 0.0, 1.0) * 255.0), tf.uint8)
        else:
            tensor = tf.cast(tensor, spec.dtype)
        out = signature(**{input_name: tensor})
        heatmaps = out["heatmaps"].numpy() if "heatmaps" in out else None
        return out["uv"].numpy(), out["depth"].numpy(), heatmaps

    return run, int(size)


def _tflite_function(path):
    from lgh_tf.export.tflite import TFLiteRunner

    if not os.path.isfile(path):
        raise ValueError(f"checkpoint: no such TFLite file {path}")
    runner = TFLiteRunner(path)

    def call(images):
        out = runner(images)
        return out["uv"], out["depth"], out.get("heatmaps")

    return call, runner.input_size
