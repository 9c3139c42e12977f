"""Loading a trained model from whatever the user has: a training directory or checkpoint, an
authors' .pth, or Keras weights (.weights.h5 with the .config.json the converter writes)."""

import json
import os

import tensorflow as tf

from lgh_tf.config import ModelConfig
from lgh_tf.model.network import LearnableGroupsNet


def _config_from_json(path):
    with open(path) as f:
        data = json.load(f)
    return ModelConfig(**data.get("model", data))


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
        model.load_weights(path)
        return model
    if os.path.isdir(path):
        model_dir, prefix = path, tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
        if prefix is None:
            raise FileNotFoundError(f"no checkpoint under {os.path.join(path, 'checkpoints')}")
    else:
        prefix = path
        model_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        if not tf.io.gfile.exists(prefix + ".index"):
            raise FileNotFoundError(f"{path} is neither a model directory nor a checkpoint prefix")
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"training config missing: {config_path}")
    model = LearnableGroupsNet(_config_from_json(config_path)).build_for_input()
    checkpoint = tf.train.Checkpoint(network=model.checkpoint_variables())
    checkpoint.restore(prefix).expect_partial().assert_existing_objects_matched()
    return model
