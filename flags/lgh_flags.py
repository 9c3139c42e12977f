"""absl flag definitions for main.py, and the parsing of text flag values (the library takes
numbers). One flagfile per data set (flags/<dataset>.cfg) sets its defaults; main.py reads
flags/<dataset>.cfg before the command line, so explicit flags win."""

import math

from absl import flags

DATASETS = ("synthetic", "rhd", "stb", "freihand", "dexter", "rhd+stb")
MODES = ("train", "eval", "export", "predict", "groups")

# What to do.
flags.DEFINE_enum("mode", "train", MODES, "What to run.")
flags.DEFINE_enum("dataset", "synthetic", DATASETS, "Data set; 'synthetic' needs no download.")
flags.DEFINE_string("data_dir", "", "Data set directory (default: the data set's documented place).")
flags.DEFINE_string("cache_dir", "cache", "Where generated data (synthetic hands) and derived indices (RHD's "
                    "hand choice) go.")
flags.DEFINE_enum("stb_camera", "BB_left", ["BB_left", "SK_color"], "STB: Bumblebee2 left images with the _BB "
                  "labels, or RealSense colour images with the _SK labels (moved into the colour camera).")
flags.DEFINE_string("stb_wrist_rule", "zb2017", "STB: palm centre -> wrist, one of zb2017 (Zimmermann & Brox), "
                    "ge2019, yang2020, palm (no conversion) or a number k: wrist = palm + k (palm - middle MCP).")
flags.DEFINE_enum("dexter_annotations", "original", ["original", "corrected"], "Dexter+Object: the released "
                  "annotations/<Seq>3D.txt, or the corrected annotations/my_<Seq>3D.txt some public evaluations use.")
flags.DEFINE_string("model_dir", "", "Training output: checkpoints, TensorBoard, config (default runs/<dataset>).")

# Model (ModelConfig).
flags.DEFINE_integer("num_groups", 3, "K, number of joint groups (1 = the paper's baseline).")
flags.DEFINE_boolean("fusion", True, "Cross-group feature fusion (Eq. 9).")
flags.DEFINE_enum("grouping", "learned", ["learned", "manual", "fingers"],
                  "Learned selector, the manual thumb/index/others grouping (num_groups 3) or one group "
                  "per finger (num_groups 5).")
flags.DEFINE_integer("input_size", 256, "Crop side fed to the network, a multiple of 64.")
flags.DEFINE_integer("backbone_filters", 256, "Hourglass width.")
flags.DEFINE_integer("hourglass_depth", 4, "Hourglass levels (the paper's: 4); input_size a multiple of 4 * 2**depth.")
flags.DEFINE_integer("group_channels", 32, "Width of each group branch.")
flags.DEFINE_integer("trunk_hidden", 128, "Width of the trunk into the groups.")
flags.DEFINE_enum("selector_sample", "batch", ["batch", "image"], "Concrete draws of the selector S while training: "
                  "one per batch (the paper's Eq. 8) or one per image (docs/selector.md).")
flags.DEFINE_boolean("selector_straight_through", False, "Train the selector with a straight-through hard sample: "
                     "forward one_hot(argmax draw), backward the relaxed draw's gradient (docs/selector.md).")
flags.DEFINE_boolean("sync_batch_norm", False, "With --strategy=mirrored|multi_worker: BatchNorm statistics over the "
                     "global batch (all-reduced every layer and step) instead of each replica's share.")

# Optimisation (OptimConfig, TemperatureSchedule).
flags.DEFINE_enum("stage", "full", ["pretrain2d", "full"], "pretrain2d: hourglass alone on 2D joints; full: Eq. 10.")
flags.DEFINE_float("beta", 20.0, "Weight of the Z term in Eq. 10.")
flags.DEFINE_float("lr_pretrain", 1e-3, "Adam learning rate of stage pretrain2d.")
flags.DEFINE_float("lr_selector", 1e-1, "Adam learning rate of the selector logits theta.")
flags.DEFINE_float("lr_fusion", 1e-2, "Adam learning rate of the fusion layers.")
flags.DEFINE_float("lr_rest", 1e-4, "Adam learning rate of everything else.")
flags.DEFINE_enum("lr_decay", "none", ["none", "cosine"], "none: constant learning rates (the paper's); cosine: "
                  "each rate decays to 0 over the stage's steps (--steps, --pretrain_steps for stage 1).")
# --selector_recipe: the selector's training as one choice; a remedy flag given explicitly still wins.
SELECTOR_RECIPES = {
    "paper": {"selector_warmup": 0.0, "selector_init": "uniform", "selector_loss": "blended"},
    "error_affinity": {"selector_warmup": 0.45, "selector_init": "error_affinity", "selector_init_at": 0.3,
                       "selector_loss": "expected"},
}
flags.DEFINE_enum("selector_recipe", "error_affinity", list(SELECTOR_RECIPES), "error_affinity (the default; the "
                  "paper's data-set presets set paper): --selector_warmup=0.45 --selector_init=error_affinity "
                  "--selector_init_at=0.3 --selector_loss=expected; paper: theta learns from step 0 on the blended "
                  "prediction's loss (docs/selector.md). Flags given explicitly win.")
flags.DEFINE_float("selector_warmup", 0.0, "Fraction of stage 2's --steps with theta frozen (its learning rate 0) "
                   "while the branches learn; 0: the paper's. Unless given: --selector_recipe's (docs/selector.md).")
flags.DEFINE_enum("selector_loss", "blended", ["blended", "expected"], "blended: Eq. 10 on Eq. 5's combined "
                  "prediction (the paper's); expected: sum_k S_jk Eq. 10 of branch k's joint j. Unless given: "
                  "--selector_recipe's (docs/selector.md).")
flags.DEFINE_enum("selector_init", "uniform", ["uniform", "error_affinity"], "theta's start: uniform 1/K (the "
                  "paper's), or error_affinity: at --selector_init_at, the partition of the joints whose errors vary "
                  "together over the steps before (needs --selector_warmup >= --selector_init_at). Unless given: "
                  "--selector_recipe's (docs/selector.md).")
flags.DEFINE_float("selector_init_at", 0.3, "With --selector_init=error_affinity: the fraction of --steps at which "
                   "theta is set (statistics over the second half of the steps before).")
flags.DEFINE_float("temperature_initial", 5.0, "tau at step 0.")
flags.DEFINE_float("temperature_decrement", 0.1, "tau falls by this much ...")
flags.DEFINE_integer("temperature_every", 1000, "... every this many steps ...")
flags.DEFINE_float("temperature_floor", 0.1, "... down to this floor.")

# Training loop (TrainConfig).
flags.DEFINE_integer("steps", 100_000, "Total training steps.")
flags.DEFINE_integer("batch_size", 32, "Global batch size (split over the replicas of --strategy).")
flags.DEFINE_integer("checkpoint_every", 1000, "Checkpoint interval in steps (resume points).")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
flags.DEFINE_integer("eval_batches", 8, "Held-out batches for the before/after figures of a training run.")
flags.DEFINE_integer("seed", 0, "Seed of the data order, augmentation and selector sampling.")
flags.DEFINE_boolean("jit_compile", False, "XLA-compile the train step (Keras turns 'auto' on only with a GPU).")
flags.DEFINE_boolean("run_eagerly", False, "Train step op by op (no tf.function): debugging, or runs of a few steps.")
flags.DEFINE_boolean("mixed_precision", False, "mixed_bfloat16 compute (no loss scaling needed).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_integer("pretrain_steps", 0, "With --stage=full and no --init_checkpoint: first pre-train the hourglass "
                     "on 2D joints for this many steps (stage 1, in <model_dir>/pretrain2d), "
                     "then train stage 2 from it.")
flags.DEFINE_boolean("augment", True, "Online augmentation of the training crops (the paper's: crop scale, rotation, "
                     "shift, hue); --noaugment trains on the evaluation crop.")
flags.DEFINE_boolean("deterministic", False, "tf.config.experimental.enable_op_determinism(): bitwise-repeatable runs.")
flags.DEFINE_string("init_checkpoint", "", "Stage-1 checkpoint (prefix or directory) to start stage 'full' from.")
flags.DEFINE_boolean("init_backbone_only", False, "Take only the hourglass from --init_checkpoint (all that stage 1 "
                     "trains), e.g. a stage-1 run made with another --num_groups or --fusion.")

# Synthetic data set.
flags.DEFINE_integer("synthetic_train", 4000, "Synthetic training samples.")
flags.DEFINE_integer("synthetic_test", 500, "Synthetic held-out samples.")
flags.DEFINE_enum("synthetic_world", "coded", ["coded", "realistic"],
                  "Synthetic hands: 'coded' (one colour per finger; quick, for smoke tests) or 'realistic' "
                  "(skin tones, z-buffered occlusion, objects, lighting and camera effects, the couplings "
                  "of real fingers; docs/synthetic-world.md). Train and --mode=eval must use the same.")
flags.DEFINE_integer("synthetic_seed", 0, "Seed of the generated synthetic hands (both splits); --seed varies the "
                     "training (initial weights, data order, augmentation, selector draws) on the same data.")

# Inference modes.
flags.DEFINE_string("checkpoint", "", "Model to load: a training checkpoint (directory or prefix), "
                    "an authors' .pth, or a .weights.h5 with its .config.json; eval/predict: a "
                    "comma-separated list is an ensemble (predict: also a SavedModel directory or .tflite; "
                    "default: the shipped demo model, lgh_tf/demo/synthetic_demo).")
flags.DEFINE_string("export_dir", "saved_models/lgh", "SavedModel base directory (TF Serving layout).")

# Evaluation and prediction (--mode=eval, --mode=predict). --checkpoint takes a comma-separated
# list for a checkpoint ensemble (mean of uv and depth, paper Table 1).
flags.DEFINE_string("output_dir", "", "Where --mode=eval/predict write (default runs/eval_<dataset>, runs/predict).")
flags.DEFINE_string("image", "", "--mode=predict: the image file to run on.")
flags.DEFINE_string("intrinsics", "", "--mode=predict: camera intrinsics of --image, 'fx,fy,cx,cy' in pixels.")
flags.DEFINE_string("box", "", "--mode=predict: hand box 'x,y,w,h' in pixels of --image as displayed (default: "
                    "the hand is searched for with the network).")
flags.DEFINE_float("scale", None, "--mode=predict: hand scale, the middle finger's MCP-PIP bone length (e.g. metres; "
                   "default: 0.04 m, an average adult hand).")
flags.DEFINE_float("root_depth", None, "--mode=predict: depth of the root joint (middle MCP), unit of --scale; "
                   "estimated from --scale when left out.")
flags.DEFINE_float("field_of_view", 65.0, "--mode=predict without --intrinsics: the camera's field of view in degrees "
                   "across the longer image side (principal point at the centre).")
flags.DEFINE_enum("hand", "right", ["right", "left", "auto"], "--mode=predict: which hand; the networks are trained "
                  "on right hands: left mirrors the crop, auto tries both and keeps the more confident.")
flags.DEFINE_string("detections", "", "--mode=predict: a detector's boxes, JSON lines {\"image\": NAME or \"frame\": "
                    "INDEX, \"boxes\": [[x, y, w, h], ...]}; the most confident hand of a frame's boxes is kept.")
flags.DEFINE_integer("search_iterations", 4, "--mode=predict without a box: at most this many network passes to find "
                     "the hand (the whole image, then the crop about the predicted joints until it is stable).")
flags.DEFINE_float("min_confidence", 0.3, "--mode=predict: hands below this heatmap confidence are reported as not "
                   "found (video: the frame is searched again).")
flags.DEFINE_string("video", "", "--mode=predict: a video file, a folder of frames, or a camera index (0, 1, ...).")
flags.DEFINE_string("images", "", "--mode=predict: a folder of frames (file-name order), tracked as a video.")
flags.DEFINE_float("fps", None, "--mode=predict --images: frames per second (default 30; videos: their own).")
flags.DEFINE_integer("max_frames", None, "--mode=predict --video/--images: stop after this many frames "
                     "(0 or unset: every frame).")
flags.DEFINE_boolean("smoothing", True, "--mode=predict --video/--images: One Euro filter on the 2D and 3D joints.")
flags.DEFINE_float("smoothing_min_cutoff", 1.0, "One Euro: cutoff frequency at rest (Hz); lower = smoother.")
flags.DEFINE_float("smoothing_beta", 1.0, "One Euro: cutoff increase per hand size per second of speed; "
                   "higher = less lag on fast hands.")
flags.DEFINE_float("smoothing_d_cutoff", 1.0, "One Euro: cutoff of the speed estimate (Hz).")
flags.DEFINE_boolean("view_3d", False, "--mode=predict --video/--images: also write <name>_3d.mp4 (3D skeleton).")

# Export (--mode=export).
flags.DEFINE_integer("export_version", None, "SavedModel version under --export_dir (default: the next integer).")
flags.DEFINE_enum("export_precision", "float32", ["float32", "bfloat16"],
                  "Compute precision of the exported SavedModel: bfloat16 convolutions ran 1.6-3.2x faster on "
                  "a CPU with AMX for 0.05 px mean 2D drift; TFLite needs a float32 export.")
flags.DEFINE_boolean("fold_batch_norms", True, "Export with every BatchNorm folded into the convolution before "
                     "it (same outputs, faster); --nofold_batch_norms exports the graph as trained.")
flags.DEFINE_string("tflite", "none", "TFLite variants to convert after the export, comma-separated: "
                    "none,float32,float16,dynamic_int8,int8 (int8 is calibrated on synthetic crops).")
flags.DEFINE_integer("representative_samples", 100, "Synthetic crops calibrating the int8 TFLite variant.")


# ---------------------------------------------------------------------------------------------
# Numeric flags: what a valid value is, checked once right after parsing (main.py calls
# invalid_flags first and answers `error: --flag=value must be ...`, exit 2). A new numeric flag
# adds one row here; None (an unset optional flag) is always accepted.
# ---------------------------------------------------------------------------------------------


def _finite(v):
    return math.isfinite(v)


POSITIVE = (lambda v: v > 0, "a positive integer")
# Seeds go to numpy (< 2**32) and, plus an offset per source, to TensorFlow's int64 seeds.
SEED = (lambda v: 0 <= v < 2**31, "an integer in 0..2147483647")
NON_NEGATIVE = (lambda v: v >= 0, "an integer >= 0")
POSITIVE_REAL = (lambda v: _finite(v) and v > 0, "a finite number > 0")
NON_NEGATIVE_REAL = (lambda v: _finite(v) and v >= 0, "a finite number >= 0")

FLAG_CHECKS = {
    # Model.
    "num_groups": (lambda v: 1 <= v <= 21, "an integer in 1..21 (K, at most one group per joint)"),
    "input_size": POSITIVE, "backbone_filters": POSITIVE, "hourglass_depth": POSITIVE,
    "group_channels": POSITIVE, "trunk_hidden": POSITIVE,
    # Optimisation: learning rates >= 0, tau > 0 (Eq. 8 divides by it), beta finite (Eq. 10).
    "beta": NON_NEGATIVE_REAL,
    "lr_pretrain": NON_NEGATIVE_REAL, "lr_selector": NON_NEGATIVE_REAL, "lr_fusion": NON_NEGATIVE_REAL,
    "lr_rest": NON_NEGATIVE_REAL,
    "selector_warmup": (lambda v: _finite(v) and 0 <= v < 1, "a fraction in [0, 1) of --steps"),
    "selector_init_at": (lambda v: _finite(v) and 0 < v < 1, "a fraction in (0, 1) of --steps"),
    "temperature_initial": POSITIVE_REAL, "temperature_decrement": NON_NEGATIVE_REAL,
    "temperature_every": POSITIVE, "temperature_floor": POSITIVE_REAL,
    # Training loop.
    "steps": POSITIVE, "batch_size": POSITIVE, "checkpoint_every": POSITIVE, "keep_checkpoints": POSITIVE,
    "eval_batches": POSITIVE, "seed": SEED, "pretrain_steps": NON_NEGATIVE,
    # Synthetic data.
    "synthetic_train": POSITIVE, "synthetic_test": POSITIVE, "synthetic_seed": SEED,
    # Prediction.
    "scale": POSITIVE_REAL, "root_depth": POSITIVE_REAL,
    "field_of_view": (lambda v: _finite(v) and 0 < v < 180, "in (0, 180) degrees"),
    "search_iterations": POSITIVE, "min_confidence": (lambda v: _finite(v) and 0 <= v <= 1, "in [0, 1]"),
    "fps": POSITIVE_REAL, "max_frames": (lambda v: v >= 0, "an integer >= 0 (0: every frame)"),
    "smoothing_min_cutoff": POSITIVE_REAL, "smoothing_beta": NON_NEGATIVE_REAL,
    "smoothing_d_cutoff": POSITIVE_REAL,
    # Export.
    "export_version": NON_NEGATIVE, "representative_samples": POSITIVE,
}


def selector_settings(values):
    """{flag: value} of the four selector flags: each given flag's own, the rest --selector_recipe's.
    The recipe's error-affinity start needs 2 steps of statistics (--selector_init_at x --steps >= 2):
    on shorter runs theta starts uniform instead, and the reason is returned (explicit flags are
    checked, and refused in one line, by OptimConfig)."""
    recipe = SELECTOR_RECIPES[values.selector_recipe]
    names = ("selector_warmup", "selector_init", "selector_init_at", "selector_loss")
    settings = {n: values[n].value if values[n].present or n not in recipe else recipe[n] for n in names}
    note = None
    if (not values["selector_init"].present and settings["selector_init"] == "error_affinity"
            and round(settings["selector_init_at"] * values.steps) < 2):
        settings["selector_init"] = "uniform"
        note = (f"--selector_recipe={values.selector_recipe}: {values.steps} steps are too few to set theta "
                "from error affinity (2 steps of statistics at least); theta starts uniform")
    return settings, note


def invalid_flags(values, checks=None):
    """["--name=value must be ...", ...] for every flag of ``checks`` (default FLAG_CHECKS) whose
    value fails its check; flags not defined or left at None are skipped."""
    problems = []
    for name, (check, meaning) in (checks or FLAG_CHECKS).items():
        if name not in values or values[name].value is None:
            continue
        value = values[name].value
        if isinstance(value, int) and not -(2**63) <= value < 2**63:  # TensorFlow's widest integer
            problems.append(f"--{name}={value} must be {meaning} (and fit in 64 bits)")
            continue
        try:
            ok = bool(check(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(f"--{name}={value} must be {meaning}")
    return problems


def parse_numbers(text, count, name, meaning):
    """``count`` comma-separated finite numbers from a text flag (--box, --intrinsics), None when
    the flag is blank, or a ValueError naming ``name`` (main.py turns it into ``error: ...``)."""
    if text is None or not str(text).strip():
        return None
    parts = [p.strip() for p in str(text).replace(" ", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"{name}: cannot parse {text!r} as {count} numbers {meaning}") from None
    if len(values) != count:
        raise ValueError(f"{name}: expected {count} numbers {meaning}, got {len(values)} in {text!r}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name}: {text!r} has a non-finite value")
    return values


def parse_names(text):
    """The comma-separated names of a text flag (--tflite), blanks dropped."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]
