"""Loading a trained model from whatever the user has: a training directory or checkpoint, an
authors' .pth, or Keras weights (.weights.h5 with the .config.json the converter writes).

Every load is exact: each stored weight must find its model weight and each model weight must be
filled (same names, same shapes), else a ``CheckpointError`` names what is extra or missing, so
weights that do not fit the configuration beside them (another K, fusion on/off, another width)
never load silently. Unreadable files (a truncated ``.index`` / ``.data``, an empty
``config.json``) give a ``CheckpointError`` or ``ValueError`` naming the file.
"""

import json
import os
import re
import tempfile

import tensorflow as tf

from lgh_tf.config import ModelConfig
from lgh_tf.convert import CheckpointError
from lgh_tf.model.network import LearnableGroupsNet

_LISTED = 5  # names quoted in a mismatch message


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


def load_keras_weights(model, path):
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


def restore_checkpoint(model, prefix, section="network", only=""):
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


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def load_model(path):
    """Returns a built LearnableGroupsNet. ``path`` may be:

    - a training ``model_dir`` (config.json + checkpoints/), or a checkpoint prefix inside one;
    - an authors' ``.pth`` (needs the torch extra);
    - a ``.weights.h5`` with ``<stem>.config.json`` beside it.
    """
    path = os.fspath(path)
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
        model_dir, prefix = path, tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
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
    return restore_checkpoint(model, prefix)
