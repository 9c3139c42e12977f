"""lgh_tf command line: flags -> configs -> one mode.

    python main.py --mode=train                      # embedded synthetic hands, no download
    python main.py --mode=train --dataset=stb --data_dir=/data/STB
    python main.py --mode=groups --checkpoint=runs/synthetic

flags/<dataset>.cfg holds each data set's defaults and is read before the command line.
"""

import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flags import lgh_flags  # noqa: E402,F401  (defines the flags)

FLAGS = flags.FLAGS
FLAGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flags")


def with_dataset_flagfile(argv):
    """Puts --flagfile=flags/<dataset>.cfg first, so the command line overrides it."""
    dataset = "synthetic"
    for i, arg in enumerate(argv[1:], 1):
        if arg.startswith("--dataset="):
            dataset = arg.split("=", 1)[1]
        elif arg == "--dataset" and i + 1 < len(argv):
            dataset = argv[i + 1]
    flagfile = os.path.join(FLAGS_DIR, f"{dataset}.cfg")
    if os.path.exists(flagfile):
        return [argv[0], f"--flagfile={flagfile}"] + argv[1:]
    return argv


def model_config():
    from lgh_tf.config import ModelConfig

    return ModelConfig(
        num_groups=FLAGS.num_groups,
        fusion=FLAGS.fusion,
        grouping=FLAGS.grouping,
        input_size=FLAGS.input_size,
        backbone_filters=FLAGS.backbone_filters,
        group_channels=FLAGS.group_channels,
        trunk_hidden=FLAGS.trunk_hidden,
        initial_temperature=FLAGS.temperature_initial,
        selector_seed=FLAGS.seed,
    ).validate()


def optim_config():
    from lgh_tf.training.schedules import TemperatureSchedule
    from lgh_tf.training.task import OptimConfig

    return OptimConfig(
        stage=FLAGS.stage,
        beta=FLAGS.beta,
        lr_pretrain=FLAGS.lr_pretrain,
        lr_selector=FLAGS.lr_selector,
        lr_fusion=FLAGS.lr_fusion,
        lr_rest=FLAGS.lr_rest,
        temperature=TemperatureSchedule(
            FLAGS.temperature_initial,
            FLAGS.temperature_decrement,
            FLAGS.temperature_every,
            FLAGS.temperature_floor,
        ),
    )


def train_config():
    from lgh_tf.training.loop import TrainConfig

    return TrainConfig(
        model_dir=FLAGS.model_dir or os.path.join("runs", FLAGS.dataset),
        steps=FLAGS.steps,
        batch_size=FLAGS.batch_size,
        checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints,
        eval_batches=FLAGS.eval_batches,
        seed=FLAGS.seed,
        jit_compile=FLAGS.jit_compile,
        mixed_precision=FLAGS.mixed_precision,
        strategy=FLAGS.strategy,
        init_checkpoint=FLAGS.init_checkpoint,
    )


def load_sources(split):
    from lgh_tf.data.sources import load_sources as load

    return load(
        FLAGS.dataset,
        split,
        data_dir=FLAGS.data_dir,
        cache_dir=FLAGS.cache_dir,
        seed=FLAGS.seed,
        synthetic_counts={"train": FLAGS.synthetic_train, "test": FLAGS.synthetic_test},
    )


def run_train():
    from lgh_tf.data import pipeline
    from lgh_tf.training import loop

    if FLAGS.dataset == "dexter":
        raise app.UsageError(
            "Dexter+Object is evaluation only; train with --dataset=rhd+stb (the paper's protocol)."
        )
    if FLAGS.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    model, optim, train = model_config(), optim_config(), train_config()
    train_sources = load_sources("train")
    try:
        eval_sources = load_sources("eval")
    except Exception as error:  # noqa: BLE001  a set without labelled eval split still trains
        logging.warning("no held-out split for %s (%s); training without before/after figures", FLAGS.dataset, error)
        eval_sources = None

    def make_train_dataset(start_sample):
        return pipeline.make_mixed_dataset(
            train_sources, output_size=model.input_size, batch_size=train.batch_size,
            training=True, seed=train.seed, start_sample=start_sample,
        )

    eval_dataset = None
    if eval_sources:
        eval_dataset = pipeline.make_mixed_dataset(
            eval_sources, output_size=model.input_size, batch_size=train.batch_size,
            training=False, seed=train.seed,
        )
    _, results = loop.train(model, optim, train, make_train_dataset, eval_dataset)
    _print_train_summary(results, train.model_dir)


def _print_train_summary(results, model_dir):
    print(f"\nTrained to step {results['step']} (tau {results['temperature']:.2f}) in {model_dir}")
    for key in ("error_3d_mm", "error_2d_px"):
        if key in results.get("before", {}) and key in results.get("after", {}):
            print(f"  held-out {key}: {results['before'][key]:.2f} -> {results['after'][key]:.2f}")
    print(f"  groups: {results['groups']}")
    print(f"  TensorBoard: tensorboard --logdir {os.path.join(model_dir, 'tensorboard')}")


def run_groups():
    import cv2

    from lgh_tf import visualize
    from lgh_tf.model.io import load_model

    if not FLAGS.checkpoint:
        raise app.UsageError("--mode=groups needs --checkpoint")
    model = load_model(FLAGS.checkpoint)
    groups = model.groups()
    print(visualize.grouping_text(groups))
    out_dir = FLAGS.model_dir or "runs/groups"
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "groups.png")
    cv2.imwrite(path, visualize.grouping_figure(groups, "Learned joint groups")[..., ::-1])
    print(f"wrote {path}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from lgh_tf.data.registry import DatasetNotFoundError

    modes = {"train": run_train, "groups": run_groups}
    if FLAGS.mode not in modes:
        raise app.UsageError(f"--mode={FLAGS.mode} is not built yet (see the open issues)")
    try:
        modes[FLAGS.mode]()
    except DatasetNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main, argv=with_dataset_flagfile(sys.argv))
