"""Loading the authors' PyTorch checkpoints (LearnableGroups-Hand) into LearnableGroupsNet.

The authors' format is ``torch.save({"model_state_dict": ..., "Temperature": ...})``; the key names
are listed in shared/reference/reference_k3_state_dict.txt. torch is an optional extra
(``pip install -e .[torch]``) and is only imported here, with ``weights_only=True``.
"""

import os
import re
import zipfile

import numpy as np

from lgh_tf.config import ModelConfig


class CheckpointError(ValueError):
    """The file is not a readable checkpoint in the authors' format."""


def read_authors_checkpoint(path):
    """Returns (state_dict as {key: numpy array}, temperature or None) from an authors' ``.pth``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "reading the authors' .pth checkpoints needs PyTorch: pip install -e '.[torch]' "
            "(pinned to the CPU build torch==2.13.0)"
        ) from error
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path!r} cannot be read ({type(error).__name__}: {error}); "
            "is it truncated or not a PyTorch file?"
        ) from error
    except Exception as error:  # torch raises UnpicklingError for foreign pickles
        raise CheckpointError(
            f"checkpoint {path!r} is not a plain PyTorch state dict ({type(error).__name__}: {error})"
        ) from error
    if isinstance(payload, dict) and "model_state_dict" in payload:
        state, temperature = payload["model_state_dict"], payload.get("Temperature")
    elif isinstance(payload, dict) and "meta_S.weight" in payload:
        state, temperature = payload, None
    else:
        keys = list(payload)[:5] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"checkpoint {path!r} is not in the authors' format: expected a dict with "
            f"'model_state_dict' and 'Temperature', found {keys}"
        )
    state = {key.removeprefix("module."): value.detach().cpu().numpy() for key, value in state.items()}
    if temperature is not None:
        temperature = float(temperature)
    return state, temperature


def infer_config(state, input_size=256):
    """Infers K, fusion and the widths from the state dict's keys and shapes."""
    if "meta_S.weight" not in state or "backbone.conv1_.weight" not in state:
        raise CheckpointError(
            "state dict lacks 'meta_S.weight' / 'backbone.conv1_.weight': not the authors' network"
        )
    num_joints, num_groups = state["meta_S.weight"].shape
    depth = 1 + max(
        key.split(".conv1")[0].count("low2.")
        for key in state
        if key.startswith("backbone.hourglass.0.")
    )
    return ModelConfig(
        num_joints=int(num_joints),
        num_groups=int(num_groups),
        fusion=any(key.startswith("nddr_layer") for key in state),
        input_size=input_size,
        backbone_filters=int(state["backbone.tmpOut.0.weight"].shape[1]),
        hourglass_depth=depth,
        group_channels=int(state["b_conv0.0.block.0.weight"].shape[0]),
        trunk_hidden=int(state["backbone_conv.0.res_branch.0.weight"].shape[0]),
    )


class _StateReader:
    """Hands out state-dict entries by key and remembers which were used."""

    def __init__(self, state):
        self.state = state
        self.used = set()

    def __call__(self, key):
        if key not in self.state:
            raise CheckpointError(f"checkpoint lacks {key!r}")
        self.used.add(key)
        return self.state[key]

    def unused(self):
        ignored = re.compile(r".*(num_batches_tracked|\.wx|\.wy)$")  # BN counters, index grids
        return sorted(k for k in self.state if k not in self.used and not ignored.match(k))


def _set(variable, value):
    if tuple(variable.shape) != tuple(value.shape):
        raise CheckpointError(
            f"shape mismatch for {variable.path}: model {tuple(variable.shape)}, checkpoint {value.shape}"
        )
    variable.assign(value.astype(np.float32))


def _conv(layer, read, prefix):
    """Conv2d (out, in, kh, kw) -> Keras (kh, kw, in, out). Accepts a PaddedConv2D too."""
    layer = getattr(layer, "conv", layer)
    _set(layer.kernel, read(prefix + ".weight").transpose(2, 3, 1, 0))
    if layer.use_bias:
        _set(layer.bias, read(prefix + ".bias"))


def _deconv(layer, read, prefix):
    """ConvTranspose2d (in, out, kh, kw) -> Keras Conv2DTranspose (kh, kw, out, in)."""
    _set(layer.kernel, read(prefix + ".weight").transpose(2, 3, 1, 0))
    _set(layer.bias, read(prefix + ".bias"))


def _bn(layer, read, prefix):
    _set(layer.gamma, read(prefix + ".weight"))
    _set(layer.beta, read(prefix + ".bias"))
    _set(layer.moving_mean, read(prefix + ".running_mean"))
    _set(layer.moving_variance, read(prefix + ".running_var"))


def _bottleneck(block, read, prefix):
    _bn(block.bn, read, prefix + ".bn")
    _conv(block.conv1, read, prefix + ".conv1")
    _bn(block.bn1, read, prefix + ".bn1")
    _conv(block.conv2, read, prefix + ".conv2")
    _bn(block.bn2, read, prefix + ".bn2")
    _conv(block.conv3, read, prefix + ".conv3")
    if block.skip is not None:
        _conv(block.skip, read, prefix + ".conv4")


def _hourglass(hourglass, read, prefix):
    for stage, torch_name in (("upper", "up1_"), ("lower_in", "low1_"), ("lower_out", "low3_")):
        for i, block in enumerate(getattr(hourglass, stage)):
            _bottleneck(block, read, f"{prefix}.{torch_name}.{i}")
    if isinstance(hourglass.inner, list):
        for i, block in enumerate(hourglass.inner):
            _bottleneck(block, read, f"{prefix}.low2_.{i}")
    else:
        _hourglass(hourglass.inner, read, prefix + ".low2")


def _residual2d(block, read, prefix):
    _conv(block.conv1, read, prefix + ".res_branch.0")
    _bn(block.bn1, read, prefix + ".res_branch.1")
    _conv(block.conv2, read, prefix + ".res_branch.3")
    _bn(block.bn2, read, prefix + ".res_branch.4")
    if block.skip_conv is not None:
        _conv(block.skip_conv, read, prefix + ".skip_con.0")
        _bn(block.skip_bn, read, prefix + ".skip_con.1")


def _basic(block, read, prefix):
    _conv(block.conv, read, prefix + ".block.0")
    _bn(block.bn, read, prefix + ".block.1")


def _up(block, read, prefix):
    _deconv(block.deconv, read, prefix + ".block.0")
    _bn(block.bn, read, prefix + ".block.1")


def assign_authors_weights(model, state, temperature=None):
    """Copies an authors' state dict into a built ``LearnableGroupsNet`` of the matching config."""
    read = _StateReader(state)
    bb = model.backbone
    _conv(bb.stem_conv, read, "backbone.conv1_")
    _bn(bb.stem_bn, read, "backbone.bn1")
    _bottleneck(bb.res1, read, "backbone.r1")
    _bottleneck(bb.res2, read, "backbone.r4")
    _bottleneck(bb.res3, read, "backbone.r5")
    _hourglass(bb.hourglass, read, "backbone.hourglass.0")
    for i, block in enumerate(bb.post):
        _bottleneck(block, read, f"backbone.Residual.{i}")
    _conv(bb.feature_conv, read, "backbone.lin_.0.0")
    _bn(bb.feature_bn, read, "backbone.lin_.0.1")
    _conv(bb.heatmap_conv, read, "backbone.tmpOut.0")

    _residual2d(model.trunk.block1, read, "backbone_conv.0")
    _residual2d(model.trunk.block2, read, "backbone_conv.1")
    for j, branch in enumerate(model.branches):
        _basic(branch.entry, read, f"b_conv0.{j}")
        _residual2d(branch.res, read, f"b_conv1.{j}")
        _residual2d(branch.down1, read, f"b_down1.{j}")
        _residual2d(branch.down2, read, f"b_down2.{j}")
        _up(branch.up2, read, f"b_up2.{j}.0")
        _basic(branch.merge1, read, f"b_up1.{j}.0")
        _up(branch.up1, read, f"b_up1.{j}.1")
        _basic(branch.merge0, read, f"b_up0.{j}.0")
        _residual2d(branch.exit, read, f"b_up0.{j}.1")
        heat, depth = model.heatmap_heads[j], model.depth_heads[j]
        _conv(heat.conv1, read, f"b_htmaps_conv.{j}.0")
        _conv(heat.conv2, read, f"b_htmaps_conv.{j}.2")
        _conv(depth.conv1, read, f"b_depth_conv.{j}.0")
        _conv(depth.conv2, read, f"b_depth_conv.{j}.2")
        _set(model.readouts[j].beta, read(f"b_get_uv.{j}.beta.weight").reshape(-1))
        _check_index_grid(state, f"b_get_uv.{j}")
    if model.fusion is not None:
        for k, (conv, bn) in enumerate(zip(model.fusion.convs, model.fusion.bns)):
            _conv(conv, read, f"nddr_layer0.Conv_Task_List.{k}.0")
            _bn(bn, read, f"nddr_layer0.Conv_Task_List.{k}.1")
    if model.selector.fixed_groups is None:
        _set(model.selector.theta, read("meta_S.weight"))
    else:
        read("meta_S.weight")  # unused by a manual grouping
    if temperature is not None:
        model.temperature.assign(temperature)
    unused = read.unused()
    if unused:
        raise CheckpointError(f"checkpoint has {len(unused)} entries the model does not use: {unused[:5]}")
    return model


def _check_index_grid(state, prefix):
    """The reference's soft-argmax buffers must be plain column / row index grids."""
    wx, wy = state.get(prefix + ".wx"), state.get(prefix + ".wy")
    if wx is None:
        return
    h, w = wx.shape
    columns, rows = np.tile(np.arange(w), (h, 1)), np.tile(np.arange(h)[:, None], (1, w))
    if not (np.array_equal(wx, columns) and np.array_equal(wy, rows)):
        raise CheckpointError(f"{prefix}.wx/.wy are not index grids; this network variant is not supported")


def load_authors_checkpoint(path, input_size=256, grouping="learned"):
    """Reads an authors' ``.pth`` and returns a built LearnableGroupsNet with its weights.

    K, fusion and widths are inferred from the keys; the checkpoint's "Temperature" becomes the
    model's default tau.
    """
    from lgh_tf.model.network import LearnableGroupsNet

    state, temperature = read_authors_checkpoint(path)
    config = infer_config(state, input_size=input_size)
    config.grouping = grouping
    if temperature is not None:
        config.initial_temperature = temperature
    model = LearnableGroupsNet(config).build_for_input()
    return assign_authors_weights(model, state, temperature)
