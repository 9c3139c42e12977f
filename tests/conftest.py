"""Shared test setup: quiet TensorFlow, locate ../shared, small model configs, main.py in process,
and the one tiny training run that every test needing a trained checkpoint reads."""

import contextlib
import dataclasses
import importlib.util
import io
import logging
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"

# A 2-step training run of a tiny network (64x64, a one-level hourglass): with --dataset=stb and
# --data_dir it reads the tiny STB fixture (fixtures_datasets.write_stb); --model_dir and --cache_dir
# come apart. Tests that do not need the traced train step add EAGER: tracing it costs ~20 s.
TINY_TRAIN = (
    "--input_size=64", "--backbone_filters=16", "--hourglass_depth=1", "--group_channels=4", "--trunk_hidden=8",
    "--batch_size=2", "--steps=2", "--checkpoint_every=2", "--synthetic_train=24",
    "--synthetic_test=8", "--eval_batches=1", "--temperature_every=2", "--temperature_decrement=1",
    "--pretrain_steps=0",
)
EAGER = "--run_eagerly"


def small_config(**overrides):
    """A tiny network (64x64 input, narrow widths, a one-level hourglass) with the full architecture."""
    from lgh_tf.config import ModelConfig

    values = dict(
        input_size=64, backbone_filters=32, group_channels=8, trunk_hidden=16, hourglass_depth=1,
        selector_seed=1,
    )
    values.update(overrides)
    return ModelConfig(**values)


def load_tool(name):
    """tools/<name>.py as a module (tools/ holds scripts, not a package), to call its main() here."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The tf.distribute proofs (2 replicas vs one device, two real workers) start several TensorFlow
# processes each: ~200 s together on 2 cores, more than the rest of the suite can spare in CI.
# They are green; run them with LGH_TF_DISTRIBUTE_TESTS=1 (docs/multi-gpu.md).
distribute_tests = pytest.mark.skipif(
    os.environ.get("LGH_TF_DISTRIBUTE_TESTS") != "1",
    reason="multi-process tf.distribute checks (~200 s): run with LGH_TF_DISTRIBUTE_TESTS=1",
)


def selector_training(*argv):
    """(selector_loss, selector_init, warm-up steps, init step) that ``main.py ARGV --steps=100``
    trains with: the flags as main.py resolves them (its --selector_recipe and data-set presets)."""
    from absl import flags

    import main

    flags.FLAGS.unparse_flags()
    flags.FLAGS(main.with_dataset_flagfile(["main.py", "--steps=100", *argv]))
    try:
        optim = main.configs_from_flags().validate().optim
    finally:
        flags.FLAGS.unparse_flags()
    return optim.selector_loss, optim.selector_init, optim.selector_warmup_steps, optim.selector_init_step


@dataclasses.dataclass
class MainResult:
    returncode: int
    stdout: str
    stderr: str


def run_main(*args, check=True):
    """``python main.py ARGS`` in this process (no second TensorFlow start-up): the same flag
    parsing (flags/<dataset>.cfg first), exit status, stdout, and stderr with the log lines.
    ``check``: assert exit status 0."""
    from absl import app, flags

    import main

    argv = main.with_dataset_flagfile(["main.py", *map(str, args)])
    stdout, stderr = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(stderr)
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    flags.FLAGS.unparse_flags()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main.main(flags.FLAGS(argv))
            except app.UsageError as error:  # app.run prints the message and exits 1
                print(f"FATAL Flags parsing error: {error}", file=stderr)
                code = 1
            except SystemExit as exit_:
                code = exit_.code
    finally:
        flags.FLAGS.unparse_flags()
        root.removeHandler(handler)
        root.setLevel(level)
    result = MainResult(code or 0, stdout.getvalue(), stderr.getvalue())
    if check:
        assert result.returncode == 0, f"main.py {' '.join(map(str, args))}:\n{result.stderr[-3000:]}"
    return result


@dataclasses.dataclass
class TrainedRun:
    model_dir: pathlib.Path
    cache_dir: pathlib.Path
    result: MainResult  # what main.py printed


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """The session's one training run: ``main.py --mode=train --dataset=stb`` of ``TINY_TRAIN`` on the
    tiny STB fixture (its B1 sequence is the held-out split). test_main_train checks the run itself;
    eval, predict and groups read its training directory, which nothing may write into."""
    from fixtures_datasets import write_stb

    root = tmp_path_factory.mktemp("trained")
    write_stb(root / "STB", frames=2)
    model_dir, cache = root / "run", root / "cache"
    result = run_main("--mode=train", "--dataset=stb", f"--data_dir={root / 'STB'}", f"--model_dir={model_dir}",
                      f"--cache_dir={cache}", *TINY_TRAIN)
    return TrainedRun(model_dir, cache, result)


@pytest.fixture(scope="session")
def reference_paths():
    pth, npz = REFERENCE / "reference_k3.pth", REFERENCE / "reference_k3.npz"
    if not pth.exists() or not npz.exists():
        # A clone with nothing beside it: tests/test_seeded_parity.py checks parity from tests/fixtures.
        pytest.skip(f"full-size parity fixture not here: {pth} and {npz} (../shared beside the checkout)")
    return pth, npz
