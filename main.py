"""lgh_tf command line: flags -> configs -> one mode.

    python main.py --mode=train                      # embedded synthetic hands, no download
    python main.py --mode=train --dataset=stb --data_dir=/data/STB
    python main.py --mode=groups --checkpoint=runs/synthetic

flags/<dataset>.cfg holds each data set's defaults and is read before the command line.
"""

import contextlib
import dataclasses
import os
import sys

from absl import app, flags, logging

# `python main.py` finds flags/ beside this file (the script's folder is first on sys.path); the
# `lgh-tf` console script finds the installed copy (setup.cfg installs main and flags).
from flags import lgh_flags  # noqa: F401  (defines the flags)

FLAGS = flags.FLAGS
FLAGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flags")


def with_dataset_flagfile(argv):
    """Puts --flagfile=flags/<dataset>.cfg first, so the command line overrides it. An explicit
    --flagfile (e.g. flags/ablations/*.cfg, which include their data set's file) replaces it."""
    if any(arg.startswith("--flagfile") for arg in argv[1:]):
        return argv
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


def _from_flags(config_class, values, **other):
    """``config_class`` with every field that has a flag of the same name taken from it, and the
    fields whose flag is named otherwise (or derived) given in ``other``."""
    import dataclasses

    named = {f.name: values[f.name].value for f in dataclasses.fields(config_class) if f.name in values}
    return config_class(**{**named, **other})


def configs_from_flags(values=FLAGS):
    """The ExperimentConfig of the flags: the one place flags become library settings (built once
    per run and passed down whole). Not validated here: run_train does, naming a bad value."""
    from lgh_tf.config import DataConfig, ExperimentConfig, ModelConfig, OptimConfig, TemperatureSchedule, TrainConfig

    model = _from_flags(ModelConfig, values, initial_temperature=values.temperature_initial,
                        selector_seed=values.seed)
    # The pipeline's own XLA warp stays on (DataConfig.jit_compile); --jit_compile is the train step's.
    data = DataConfig(output_size=values.input_size, batch_size=values.batch_size, seed=values.seed,
                      augment=values.augment)
    schedule = TemperatureSchedule(values.temperature_initial, values.temperature_decrement,
                                   values.temperature_every, values.temperature_floor)
    selector, note = lgh_flags.selector_settings(values)  # --selector_recipe, explicit flags winning
    if note:
        logging.warning(note)
    optim = _from_flags(OptimConfig, values, temperature=schedule,
                        lr_decay_steps=values.steps if values.lr_decay == "cosine" else 0,
                        selector_loss=selector["selector_loss"], selector_init=selector["selector_init"],
                        selector_warmup_steps=round(selector["selector_warmup"] * values.steps),
                        selector_init_step=round(selector["selector_init_at"] * values.steps))
    train = _from_flags(TrainConfig, values, model_dir=values.model_dir or os.path.join("runs", values.dataset))
    return ExperimentConfig(model=model, data=data, optim=optim, train=train, pretrain_steps=values.pretrain_steps)


def export_config_from_flags(values=FLAGS):
    """The ExportConfig of the flags (--mode=export); a bad --tflite list is a usage error."""
    from lgh_tf.config import ExportConfig
    from lgh_tf.export import tflite

    try:
        variants = tflite.check_variants(lgh_flags.parse_names(values.tflite))
    except ValueError as error:
        raise app.UsageError(f"--tflite: {error}") from None
    return ExportConfig(
        export_dir=values.export_dir,
        version=values.export_version,
        precision=values.export_precision,
        fold_batch_norms=values.fold_batch_norms,
        tflite=tuple(variants),
        representative_samples=values.representative_samples,
        cache_dir=values.cache_dir,
    )


def reader_options():
    """Reader options from the data-set flags, by data set (lgh_tf.data.sources.load_sources)."""
    import numpy as np

    from lgh_tf.data import stb

    rule = FLAGS.stb_wrist_rule
    try:
        stb.palm_to_wrist(np.zeros((21, 3)), rule)  # an unknown rule fails before any data is read
    except ValueError as error:
        fail(f"--stb_wrist_rule: {error}")
    return {"stb": {"camera": FLAGS.stb_camera, "wrist_rule": rule},
            "dexter": {"corrected_annotations": FLAGS.dexter_annotations == "corrected"}}


def load_sources(split):
    from lgh_tf.data.sources import load_sources as load

    return load(
        FLAGS.dataset,
        split,
        data_dir=FLAGS.data_dir,
        cache_dir=FLAGS.cache_dir,
        seed=FLAGS.synthetic_seed,
        synthetic_counts={"train": FLAGS.synthetic_train, "test": FLAGS.synthetic_test},
        reader_options=reader_options(),
        synthetic_world=FLAGS.synthetic_world,
    )


def training_data():
    """What a run trains on, stored in its config.json and fixed on resume: the data set and, for
    the synthetic hands, their world, seed and counts."""
    data = {"dataset": FLAGS.dataset}
    if FLAGS.dataset == "synthetic":
        data.update(synthetic_world=FLAGS.synthetic_world, synthetic_seed=FLAGS.synthetic_seed,
                    synthetic_train=FLAGS.synthetic_train, synthetic_test=FLAGS.synthetic_test)
    return data


def labelled_sources(sources):
    """The (records, weight) sources with at least one labelled sample; a note for the others
    (FreiHAND as released has no evaluation labels: it is scored by the online server)."""
    from lgh_tf.data import pipeline

    kept = []
    for records, weight in sources:
        if len(pipeline.find_invalid_samples(records, check_images=False)) < len(records):
            kept.append((records, weight))
        else:
            print(f"note: {records.name} has no labelled sample: training without held-out figures "
                  f"(for FreiHAND, --mode=eval writes pred.json for the evaluation server)")
    return kept or None


def run_train():
    from lgh_tf import files

    if FLAGS.dataset == "dexter":
        raise app.UsageError(
            "Dexter+Object is evaluation only; train with --dataset=rhd+stb (the paper's protocol)."
        )
    experiment = configs_from_flags()
    with user_errors():
        experiment.validate()
    train = experiment.train
    check_directory(train.model_dir, "--model_dir")
    with contextlib.ExitStack() as stack:
        # One run per folder, checked before TensorFlow starts (seconds); under multi_worker only
        # the chief holds it, known once the strategy is made.
        if train.strategy != "multi_worker":
            with user_errors():
                stack.enter_context(files.run_lock(train.model_dir, "--model_dir"))
        from lgh_tf.training import loop

        # First: MultiWorkerMirroredStrategy configures the collective ops, which TF allows only
        # before anything initialises its runtime; both stages share it.
        strategy = loop.make_strategy(train.strategy)
        if train.strategy == "multi_worker" and loop.worker_of(strategy)[2]:
            with user_errors():
                stack.enter_context(files.run_lock(train.model_dir, "--model_dir"))
        with lost_worker_errors(train):
            _train_stages(experiment, strategy)


def _train_stages(experiment, strategy):
    from lgh_tf.data import pipeline
    from lgh_tf.data.registry import DatasetNotFoundError
    from lgh_tf.training import loop

    model, data, optim, train = experiment.model, experiment.data, experiment.optim, experiment.train
    if FLAGS.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    with user_errors():
        train_sources = load_sources("train")
    try:
        with user_errors():
            eval_sources = labelled_sources(load_sources("eval"))
    except DatasetNotFoundError as error:  # a set without a held-out split still trains (a damaged one stops)
        logging.warning("no held-out split for %s (%s); training without before/after figures", FLAGS.dataset,
                        str(error).splitlines()[0])
        eval_sources = None

    def make_train_dataset(start_sample, batch_size=data.batch_size, shard=(1, 0)):
        return pipeline.make_mixed_dataset(
            train_sources, data, training=True, start_sample=start_sample, shard=shard, batch_size=batch_size
        )

    eval_dataset = None
    if eval_sources:
        eval_dataset = pipeline.make_mixed_dataset(eval_sources, data, training=False)
    pretrain_steps = experiment.pretrain_steps
    if optim.stage == "full" and pretrain_steps > 0 and not train.init_checkpoint:
        # The paper's stage 1: the hourglass alone on 2D joints, then stage 2 starts from it.
        stage1_optim = dataclasses.replace(
            optim, stage="pretrain2d", lr_decay_steps=pretrain_steps if optim.lr_decay_steps else 0
        )
        stage1_train = dataclasses.replace(
            train, model_dir=os.path.join(train.model_dir, "pretrain2d"), steps=pretrain_steps
        )
        print(f"Stage 1 (pretrain2d): {pretrain_steps} steps in {stage1_train.model_dir}")
        with user_errors():
            _, stage1 = loop.train(model, stage1_optim, stage1_train, make_train_dataset, eval_dataset, strategy,
                                   data=training_data())
        _print_train_summary(stage1, stage1_train.model_dir)
        train = dataclasses.replace(train, init_checkpoint=stage1_train.model_dir)
        print(f"Stage 2 (full, Eq. 10): {train.steps} steps in {train.model_dir}")
    with user_errors():
        _, results = loop.train(model, optim, train, make_train_dataset, eval_dataset, strategy,
                                data=training_data())
    _print_train_summary(results, train.model_dir)


def _print_train_summary(results, model_dir):
    print(f"\nTrained to step {results['step']} (tau {results['temperature']:.2f}) in {model_dir}")
    for key in ("error_3d_mm", "error_2d_px"):
        if key in results.get("before", {}) and key in results.get("after", {}):
            print(f"  held-out {key}: {results['before'][key]:.2f} -> {results['after'][key]:.2f}")
    print(f"  groups: {results['groups']}")
    print(f"  TensorBoard: tensorboard --logdir {os.path.join(model_dir, 'tensorboard')}")


def run_groups():
    from lgh_tf import files, visualize
    from lgh_tf.model.io import load_model
    from lgh_tf.training import selector_log

    if not FLAGS.checkpoint:
        raise app.UsageError("--mode=groups needs --checkpoint")
    out_dir = FLAGS.model_dir or "runs/groups"
    check_directory(out_dir, "--model_dir")
    checkpoints = [path.strip() for path in FLAGS.checkpoint.split(",") if path.strip()]
    if len(checkpoints) > 1:
        return run_consensus_groups(checkpoints, out_dir)
    with user_errors():
        model = load_model(FLAGS.checkpoint)
    groups = model.groups()
    print(visualize.grouping_text(groups))
    probabilities = None
    if model.selector.fixed_groups is None and model.config.num_groups > 1:
        probabilities = selector_log.firmness(model.selector.theta.numpy())["probabilities"]
        print("\nHow firm each assignment is: softmax(theta) of its group, and the margin over the runner-up")
        print(visualize.grouping_firmness_text(probabilities))
    files.require_directory(out_dir, "--model_dir")
    path = files.write_png(os.path.join(out_dir, "groups.png"),
                           visualize.grouping_figure(groups, "Learned joint groups", probabilities))
    print(f"wrote {path}")
    log_path = _selector_log_path(FLAGS.checkpoint)
    if probabilities is not None and log_path:
        try:
            log = selector_log.read_log(log_path)
        except ValueError as error:
            print(f"skipped the selector trajectories: {error}")
        else:
            title = f"softmax(theta) per joint, {files.portable_path(os.path.dirname(log_path))}"
            print(f"wrote {selector_log.write_picture(out_dir, log, title)}")


def run_consensus_groups(checkpoints, out_dir):
    """--mode=groups with several runs: each run's groups, how alike they are (adjusted Rand index)
    and their consensus, average linkage on how often two joints share a group (groups.png)."""
    import numpy as np

    from lgh_tf import files, visualize
    from lgh_tf.evaluation import grouping
    from lgh_tf.model.io import load_model

    labelings, sizes = [], set()
    for path in checkpoints:
        with user_errors():
            groups = load_model(path).groups()
        sizes.add(len(groups))
        labelings.append(visualize.groups_to_assignment(groups))
        print(f"{path}:\n{visualize.grouping_text(groups)}\n")
    if len(sizes) > 1:
        fail(f"--checkpoint: the runs have different numbers of groups ({sorted(sizes)})")
    print("adjusted Rand index between the runs:")
    for i, a in enumerate(labelings):
        print("  " + " ".join(f"{grouping.adjusted_rand_index(a, b):6.2f}" for b in labelings) + f"   run {i + 1}")
    num_groups = sizes.pop()
    consensus = grouping.consensus_partition(labelings, num_groups)
    groups = [[int(j) for j in np.flatnonzero(consensus == k)] for k in range(num_groups)]
    print(f"\nconsensus of {len(labelings)} runs:\n{visualize.grouping_text(groups)}")
    files.require_directory(out_dir, "--model_dir")
    path = files.write_png(os.path.join(out_dir, "groups.png"),
                           visualize.grouping_figure(groups, f"Consensus of {len(labelings)} runs"))
    print(f"wrote {path}")


def _selector_log_path(checkpoint):
    """The selector_log.npz of the training directory that ``checkpoint`` (the directory, its
    checkpoints/ folder or a prefix inside it) belongs to, or None."""
    from lgh_tf.training.selector_log import LOG_NAME

    path = os.path.abspath(checkpoint)
    for folder in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        candidate = os.path.join(folder, LOG_NAME)
        if os.path.isfile(candidate):
            return candidate
    return None


def run_eval():
    """--mode=eval: the paper's protocol for --dataset, a table, results.json and PNGs."""
    from lgh_tf.evaluation import evaluate
    from lgh_tf.model.io import load_models

    checkpoints = [path.strip() for path in FLAGS.checkpoint.split(",") if path.strip()]
    if not checkpoints:
        raise app.UsageError("--mode=eval needs --checkpoint (a comma-separated list is an ensemble)")
    out_dir = FLAGS.output_dir or os.path.join("runs", f"eval_{FLAGS.dataset}")
    check_directory(out_dir, "--output_dir")
    with user_errors():
        records, scales = evaluate.load_eval_records(
            FLAGS.dataset, data_dir=FLAGS.data_dir, cache_dir=FLAGS.cache_dir, seed=FLAGS.synthetic_seed,
            synthetic_test=FLAGS.synthetic_test, reader_options=reader_options(),
            synthetic_world=FLAGS.synthetic_world,
        )
        models = load_models(checkpoints)
        unusable = evaluate.unusable_samples(FLAGS.dataset, records)
        dataset = evaluate.make_eval_dataset(
            FLAGS.dataset, records, output_size=models[0].config.input_size,
            batch_size=FLAGS.batch_size, scales=scales, unusable=unusable,
        )
        predictions, gt = evaluate.predict_dataset(models, dataset)
        results = evaluate.evaluate(FLAGS.dataset, predictions, gt)
        results["notes"] += evaluate.skipped_notes(records, unusable, results["num_samples"])
        results.update(checkpoints=checkpoints, num_records=len(records))
        results["notes"] = evaluate.training_data_notes(checkpoints, FLAGS.dataset, FLAGS.synthetic_world) + list(
            results.get("notes", []))
        paths = evaluate.write_report(results, out_dir, predictions=predictions, gt=gt)
    name = "LGH" if len(models) == 1 else f"LGH ensemble of {len(models)}"
    print(f"\n{FLAGS.dataset}: {results['num_samples']} samples, root depth {results['root_depth']}, "
          f"crop: {results['crop']}")
    if results["3d"] is not None:
        print(evaluate.results_table({name: results}))
    for note in results["notes"]:
        print(f"note: {note}")
    for what, path in paths.items():
        print(f"wrote {what}: {path}")


def run_predict():
    """--mode=predict: 2D/3D joints for --image (a JSON and two pictures), or for every frame of
    --video / --images (JSON lines, an overlay video, a contact sheet) in --output_dir."""
    from lgh_tf import predict

    checkpoints = [path.strip() for path in FLAGS.checkpoint.split(",") if path.strip()]
    if sum(bool(x) for x in (FLAGS.image, FLAGS.video, FLAGS.images)) != 1:
        raise app.UsageError("--mode=predict needs one of --image, --video or --images")
    checkpoints = checkpoints or [demo_model()]
    out_dir = FLAGS.output_dir or os.path.join("runs", "predict")
    check_directory(out_dir, "--output_dir")
    options = dict(hand=FLAGS.hand, iterations=FLAGS.search_iterations, min_confidence=FLAGS.min_confidence,
                   field_of_view=FLAGS.field_of_view)
    if FLAGS.video or FLAGS.images:
        return run_predict_video(checkpoints, out_dir, options)
    with user_errors():
        result, paths = predict.run(
            checkpoints, FLAGS.image, out_dir=out_dir, intrinsics=intrinsics_flag(),
            box=box_flag(), scale=FLAGS.scale, root_depth=FLAGS.root_depth,
            detections=FLAGS.detections or None, **options,
        )
    confidence = "n/a" if result["confidence"] is None else f"{result['confidence']:.2f}"
    print(f"{len(result['uv'])} joints of {FLAGS.image} ({result['image_size'][0]}x{result['image_size'][1]}): "
          f"{result['hand']} hand, confidence {confidence} ({result['status']}), "
          f"3D: {'yes' if result['xyz'] is not None else 'no (2.5D only)'}")
    for note in result["notes"]:
        print(f"note: {note}")
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")
    for what, path in paths.items():
        print(f"wrote {what}: {path}")


def demo_model():
    """The shipped model (tools/build_demo.py: the quickstart trained on the synthetic hands), the
    default of --mode=predict without --checkpoint; says so, since its answers on real photos are poor."""
    from lgh_tf import DEMO_MODEL
    from lgh_tf.model.io import find_saved_model

    path = find_saved_model(DEMO_MODEL)
    if path is None:
        raise app.UsageError(f"--mode=predict needs --checkpoint (checkpoint, .pth, .weights.h5, SavedModel or "
                             f".tflite); the shipped model {DEMO_MODEL} is missing (tools/build_demo.py rebuilds it)")
    shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    print(f"model: {shown} (the shipped demo model, trained on the synthetic hands only; "
          f"--checkpoint=... for your own)")
    return path


def run_predict_video(checkpoints, out_dir, options):
    from lgh_tf import predict, video

    if FLAGS.box or FLAGS.root_depth:
        raise app.UsageError("--box and --root_depth are for --image; a video is tracked (--detections gives boxes)")
    with user_errors():
        source = video.open_frames(FLAGS.video or None, FLAGS.images or None, fps=FLAGS.fps,
                                   max_frames=FLAGS.max_frames)
        detections = predict.read_detections(FLAGS.detections) if FLAGS.detections else None
        intrinsics = intrinsics_flag()
        if intrinsics is not None:
            predict.intrinsics_matrix(intrinsics)  # bad values fail before the model loads
        predictor = predict.load_predictor(checkpoints)
        one_euro = video.OneEuroConfig(FLAGS.smoothing_min_cutoff, FLAGS.smoothing_beta, FLAGS.smoothing_d_cutoff)
        summary = video.run(predictor, source, out_dir, view_3d=FLAGS.view_3d, intrinsics=intrinsics,
                            scale=FLAGS.scale, smoothing=FLAGS.smoothing, one_euro=one_euro,
                            detections=detections, **options)
    print(f"{summary['frames']} frames, a hand in {summary['detected']} ({summary['hands']['right']} right, "
          f"{summary['hands']['left']} left), searched again {summary['relocalised']} times, "
          f"{summary['frames_per_second'] or 0:.2f} frames/s")
    for name, why in ((s["name"], s["why"]) for s in summary["skipped"]):
        print(f"skipped {name}: {why}")
    for problem in summary.get("problems", []):
        print(f"warning: {problem}")
    for what, path in summary["paths"].items():
        print(f"wrote {what}: {path}")


def intrinsics_flag():
    """--intrinsics as (fx, fy, cx, cy), None when not given."""
    return lgh_flags.parse_numbers(FLAGS.intrinsics, 4, "intrinsics", "fx,fy,cx,cy")


def box_flag():
    """--box as (x, y, w, h), None when not given."""
    return lgh_flags.parse_numbers(FLAGS.box, 4, "box", "x,y,w,h")


def run_export():
    """--mode=export: SavedModel (TF Serving layout) in --export_dir, plus --tflite variants."""
    from lgh_tf import export
    from lgh_tf.export import saved_model
    from lgh_tf.model.io import load_model

    if not FLAGS.checkpoint:
        raise app.UsageError("--mode=export needs --checkpoint (training directory, checkpoint prefix, .pth "
                             "or .weights.h5)")
    config = export_config_from_flags()
    if config.tflite and config.precision != "float32":
        raise app.UsageError("--tflite needs --export_precision=float32 (TFLite is converted from a float32 export)")
    if config.version is not None and config.version < 0:
        fail(f"--export_version must be a non-negative integer, got {config.version}")
    check_directory(config.export_dir, "--export_dir")
    with user_errors():
        model = load_model(FLAGS.checkpoint)
    with user_errors():
        path = export.export(model, config)
    print(f"SavedModel: {path}")
    info = saved_model.read_export_info(path)
    for name, signature in info["signatures"].items():
        inputs = ", ".join(f"{k} {v['dtype']}{tuple(v['shape'])}" for k, v in signature["inputs"].items())
        outputs = ", ".join(f"{k} {v['dtype']}{tuple(v['shape'])}" for k, v in signature["outputs"].items())
        print(f"  {name}: {inputs} -> {outputs}".replace("None", "N"))
    for variant, entry in info.get("tflite", {}).items():
        tflite_path = os.path.join(path, entry["path"])
        print(f"TFLite {variant}: {tflite_path} ({os.path.getsize(tflite_path) / 1e6:.2f} MB)")
    print(f"Serve: docker run -p 8501:8501 --mount type=bind,source={os.path.abspath(config.export_dir)},"
          f"target=/models/lgh -e MODEL_NAME=lgh -t tensorflow/serving")


def check_directory(path, flag):
    """Refuses, before any work, an output directory that cannot be one (a file is in the way) or
    cannot be written (read-only, full, no permission)."""
    from lgh_tf.files import require_writable

    with user_errors():
        require_writable(path, flag, create=False)


@contextlib.contextmanager
def lost_worker_errors(train):
    """--strategy=multi_worker: a worker that died (the chief sees a gRPC / collective error) is one
    line saying how to go on, not a traceback; nothing after the last checkpoint is lost."""
    if train.strategy != "multi_worker":
        yield
        return
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as error:
        from lgh_tf.model.io import first_line

        latest = tf.train.latest_checkpoint(os.path.join(train.model_dir, "checkpoints")) or "none yet"
        print(f"error: a worker of --strategy=multi_worker was lost ({type(error).__name__}: {first_line(error)}); "
              f"restart every worker with the same flags: they resume from the last checkpoint ({latest})",
              file=sys.stderr)
        sys.exit(1)


def fail(message):
    """The command line's answer to bad input: one line naming it, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@contextlib.contextmanager
def user_errors():
    """Library errors about the user's files and flags (a missing or damaged checkpoint, a bad
    value) become `error: ...` and exit 2 instead of a traceback."""
    try:
        yield
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError) as error:
        if type(error).__name__ == "DatasetNotFoundError":
            raise  # main() prints it and exits 2
        fail(str(error))
    except OSError as error:  # a file opened directly (permission, read-only, full disk)
        where = f"{error.filename}: " if error.filename else ""
        fail(f"{where}{error.strerror or error}")
    except Exception as error:
        from lgh_tf import files

        if type(error).__module__.startswith("tensorflow") and files.is_write_failure(error):
            lines = str(error).strip().splitlines()  # TensorFlow's own I/O error: its first line names the file
            fail(f"cannot write: {lines[0] if lines else type(error).__name__}")
        raise


def main(argv):
    try:
        return _main(argv)
    except app.UsageError as error:  # absl would print the usage text and exit 1
        fail(str(error))


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from lgh_tf.data.registry import DatasetNotFoundError

    problems = lgh_flags.invalid_flags(FLAGS)  # every numeric flag, by its table (flags/lgh_flags.py)
    if problems:
        fail("; ".join(problems))
    modes = {"train": run_train, "groups": run_groups, "eval": run_eval, "predict": run_predict, "export": run_export}
    if FLAGS.mode not in modes:
        raise app.UsageError(f"--mode={FLAGS.mode} is not built yet (see the open issues)")
    try:
        modes[FLAGS.mode]()
    except DatasetNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        if type(error).__name__ != "TrainingDivergedError":
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    if FLAGS.mode == "train" and FLAGS.strategy == "multi_worker":
        # TF 2.21's multi-worker runtime (gRPC server, collective executors) hangs the interpreter's
        # final garbage collection: everything is written and flushed, so leave without it.
        logging.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def parse_flags(argv):
    """absl's flag parsing, its errors (an unknown flag, a value of the wrong type) as one
    `error: ...` line and exit status 2 like every other bad input (absl: two lines, exit 1)."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        fail(str(error).splitlines()[0] if str(error).strip() else type(error).__name__)


def run():
    """Entry point of `python main.py` and of the `lgh-tf` console script."""
    app.run(main, argv=with_dataset_flagfile(sys.argv), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
