"""One check for every layer of lgh_tf, in the spirit of keras-hub's ``TestCase.run_layer_test``.

``run_layer_test`` asserts, for one layer class and its constructor arguments:
  * ``build(shapes)`` alone creates every variable that a call creates (same paths and shapes), and
    builds every sub-layer;
  * ``from_config(get_config())`` gives the same config (JSON-serialisable) and, with the weights
    copied over, the same outputs;
  * a small functional model around the layer saves to ``.keras`` and loads back with the same outputs;
  * under ``dtype="mixed_bfloat16"`` every sub-layer has that policy, every floating variable is
    float32, the outputs have the expected dtypes (bfloat16 by default), and the global policy is
    left alone.
"""

import json

import keras
import numpy as np
import tensorflow as tf

LAYER_NAME = "under_test"


def _call(layer, input_data, call_kwargs):
    """``layer(**input_data)`` for a dict of named inputs, else ``layer(input_data)``."""
    if isinstance(input_data, dict):
        return layer(**input_data, **call_kwargs)
    return layer(input_data, **call_kwargs)


def _build(layer, input_data):
    shapes = keras.tree.map_structure(lambda x: tuple(x.shape), input_data)
    if isinstance(input_data, dict):
        layer.build(**{f"{name}_shape": shape for name, shape in shapes.items()})
    else:
        layer.build(shapes)


def _outputs(output):
    """The output's tensors as a flat list of numpy arrays (None outputs dropped)."""
    return [np.asarray(x) for x in keras.tree.flatten(output) if x is not None]


def _sublayers(layer):
    return list(layer._flatten_layers(include_self=True, recursive=True))


def _symbolic_inputs(input_data):
    def symbolic(x, name=None):
        return keras.Input(batch_shape=tuple(x.shape), dtype=x.dtype, name=name)

    if isinstance(input_data, dict):  # named as their keys, as Keras asks of a functional model's dict inputs
        return {name: symbolic(x, name) for name, x in input_data.items()}
    return keras.tree.map_structure(symbolic, input_data)


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    tmp_path,
    call_kwargs=None,
    bfloat16_output_dtypes=None,
):
    """Runs the checks above. ``input_data``: a tensor, a list of tensors (one list argument), or a
    dict of tensors passed by name; ``call_kwargs``: further call arguments (e.g. ``training``);
    ``bfloat16_output_dtypes``: the flat output dtypes under mixed_bfloat16 when not all bfloat16
    (layers that compute in float32 on purpose)."""
    call_kwargs = dict(call_kwargs or {})
    init_kwargs = dict(init_kwargs, name=LAYER_NAME)

    # Explicit build: every variable and sub-layer exists before any call.
    built = layer_cls(**init_kwargs)
    _build(built, input_data)
    assert built.built
    unbuilt = [sub.name for sub in _sublayers(built) if not sub.built]
    assert not unbuilt, f"sub-layers left unbuilt by build(): {unbuilt}"
    called = layer_cls(**init_kwargs)
    expected = _call(called, input_data, call_kwargs)
    signature = [(v.path, tuple(v.shape), v.dtype) for v in called.variables]
    assert [(v.path, tuple(v.shape), v.dtype) for v in built.variables] == signature
    _call(built, input_data, call_kwargs)  # a call after build() creates nothing new
    assert [(v.path, tuple(v.shape), v.dtype) for v in built.variables] == signature

    # Config round trip, and the same outputs with the weights copied.
    config = called.get_config()
    json.dumps(keras.saving.serialize_keras_object(called))
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    _build(clone, input_data)
    clone.set_weights(called.get_weights())
    for got, want in zip(_outputs(_call(clone, input_data, call_kwargs)), _outputs(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    # .keras round trip of a functional model around the layer.
    inputs = _symbolic_inputs(input_data)
    model = keras.Model(inputs, _call(called, inputs, call_kwargs))
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for got, want in zip(_outputs(loaded(input_data)), _outputs(model(input_data)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    # Mixed precision by the layer's own policy, not the global one.
    assert keras.config.dtype_policy().name == "float32"
    mixed = layer_cls(**dict(init_kwargs, dtype="mixed_bfloat16"))
    output = _call(mixed, input_data, call_kwargs)
    assert keras.config.dtype_policy().name == "float32"
    policies = {sub.path or sub.name: sub.dtype_policy.name for sub in _sublayers(mixed)}
    assert set(policies.values()) == {"mixed_bfloat16"}, policies
    for variable in mixed.variables:
        if variable.dtype in ("float16", "bfloat16", "float32", "float64"):
            assert variable.dtype == "float32", variable.path
    dtypes = [x.dtype.name for x in keras.tree.flatten(output) if x is not None]
    assert dtypes == list(bfloat16_output_dtypes or ["bfloat16"] * len(dtypes))
    return expected


def random_input(shape, seed=0):
    return tf.random.stateless_uniform(shape, seed=[seed, 1])
