"""Shared test setup: quiet TensorFlow, locate ../shared, small model configs."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"


def small_config(**overrides):
    """A tiny network (64x64 input, narrow widths) with the full architecture, for fast tests."""
    from lgh_tf.config import ModelConfig

    values = dict(
        input_size=64, backbone_filters=32, group_channels=8, trunk_hidden=16, hourglass_depth=2,
        selector_seed=1,
    )
    values.update(overrides)
    return ModelConfig(**values)


@pytest.fixture(scope="session")
def reference_paths():
    pth, npz = REFERENCE / "reference_k3.pth", REFERENCE / "reference_k3.npz"
    if not pth.exists() or not npz.exists():
        # A clone with nothing beside it: tests/test_seeded_parity.py checks parity from tests/fixtures.
        pytest.skip(f"full-size parity fixture not here: {pth} and {npz} (../shared beside the checkout)")
    return pth, npz
