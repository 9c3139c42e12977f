"""The authors' checkpoint reader: config inference and clear errors for bad files."""

import pickle

import numpy as np
import pytest
from conftest import load_tool

from lgh_tf.convert import CheckpointError, infer_config, read_authors_checkpoint

torch = pytest.importorskip("torch")


def test_truncated_checkpoint_is_a_clear_error(reference_paths, tmp_path):
    pth, _ = reference_paths
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(pth.read_bytes()[: 1 << 20])
    with pytest.raises(CheckpointError, match="truncated"):
        read_authors_checkpoint(truncated)


def test_foreign_files_are_clear_errors(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pth"):
        read_authors_checkpoint(text)
    foreign = tmp_path / "other.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, foreign)
    with pytest.raises(CheckpointError, match="not in the authors' format"):
        read_authors_checkpoint(foreign)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(object()))
    with pytest.raises(CheckpointError):
        read_authors_checkpoint(evil)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_authors_checkpoint(tmp_path / "missing.pth")


def test_infer_config_from_reference_keys(reference_paths):
    pth, _ = reference_paths
    state, temperature = read_authors_checkpoint(pth)
    config = infer_config(state)
    assert (config.num_groups, config.fusion, config.hourglass_depth) == (3, True, 4)
    assert (config.backbone_filters, config.group_channels, config.trunk_hidden) == (256, 32, 128)
    assert temperature == pytest.approx(0.5)
    values = sum(int(np.prod(v.shape)) if v.shape else 1 for v in state.values())
    assert values == 7_538_377  # the reference README's count
    no_fusion = {k: v for k, v in state.items() if not k.startswith("nddr_layer")}
    assert infer_config(no_fusion).fusion is False


def test_converted_model_holds_every_reference_value(reference_paths):
    """Every reference value lands in the model: the count differs only by what has no Keras
    counterpart (num_batches_tracked, the soft-argmax index grids) and our extras (tau, seed)."""
    from lgh_tf.convert import load_authors_checkpoint

    pth, _ = reference_paths
    state, _ = read_authors_checkpoint(pth)
    model = load_authors_checkpoint(pth, input_size=64)
    bn_counters = sum(1 for k in state if k.endswith("num_batches_tracked"))
    grids = sum(v.size for k, v in state.items() if k.endswith((".wx", ".wy")))
    extras = 1  # temperature (the selector's seed state is a variable but not a weight)
    assert model.count_params() == 7_538_377 - bn_counters - grids + extras


def test_convert_tool_writes_weights_and_config(reference_paths, tmp_path, capsys):
    tool = load_tool("convert_torch_checkpoint")
    pth, _ = reference_paths
    out = tmp_path / "ref.weights.h5"
    assert tool.main([str(pth), str(out), "--input_size", "64"]) == 0
    assert out.exists() and (tmp_path / "ref.config.json").exists()
    assert "K=3" in capsys.readouterr().out
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00" * 100)
    assert tool.main([str(bad), str(out)]) == 2
    assert "bad.pth" in capsys.readouterr().err
