"""Configuration dataclasses, all in one place. Defaults are the paper's (and the authors' release where
the paper is silent).

One dataclass per concern, in the style of TF Model Garden's experiment configs: ``ModelConfig`` (the
network), ``DataConfig`` (the input pipeline, with its ``AugmentConfig``), ``OptimConfig`` (losses,
learning rates and the ``TemperatureSchedule`` of Eq. 8), ``TrainConfig`` (the training loop),
``ExportConfig`` (SavedModel / TFLite) and ``ExperimentConfig`` bundling what a training run needs. The
command line builds them from its flags once and passes them down whole. Plain data: importing this
module does not import TensorFlow.

``config.json`` of a training directory holds ``dataclasses.asdict`` of the model, optim and train
sections; their field names are that file's format (a resume compares them, ``training.loop``).
"""

import dataclasses
import math

from lgh_tf import geometry


@dataclasses.dataclass
class ModelConfig:
    """The network. ``grouping``: "learned" (the selector of Eq. 8), "manual" (thumb / index /
    other fingers, Table 2; needs num_groups=3) or "fingers" (one group per finger, the wrist with
    the middle finger; needs num_groups=5)."""

    num_joints: int = 21
    num_groups: int = 3  # K; 1 is the paper's baseline, up to 21
    fusion: bool = True  # Eq. 9, cross-group feature fusion (only when K > 1)
    grouping: str = "learned"
    input_size: int = 256  # any multiple of 64
    backbone_filters: int = 256
    hourglass_depth: int = 4
    group_channels: int = 32
    trunk_hidden: int = 128
    initial_temperature: float = 5.0  # tau at step 0 (paper: 5)
    selector_seed: int | None = None
    # How the selector draws S while training (docs/selector.md; the defaults are the paper's):
    # "batch" one Concrete sample per batch (Eq. 8) or "image" one per image; straight_through:
    # forward with the draw's one-hot argmax, backward through the relaxed draw.
    selector_sample: str = "batch"
    selector_straight_through: bool = False
    # BatchNorm statistics over the global batch under tf.distribute (all-reduced per layer per
    # step) instead of each replica's own share; no effect on one device.
    sync_batch_norm: bool = False

    # Bounds on each size, far above the paper's (256 filters, depth 4, 256-pixel input): a
    # config.json from elsewhere (backbone_filters=1e7) is refused before a layer is built.
    BOUNDS = {"num_joints": (1, 64), "input_size": (1, 1024), "backbone_filters": (1, 2048),
              "hourglass_depth": (1, 8), "group_channels": (1, 1024), "trunk_hidden": (1, 4096)}

    def validate(self):
        for name, (low, high) in self.BOUNDS.items():
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
        for name in ("fusion", "selector_straight_through", "sync_batch_norm"):
            if type(getattr(self, name)) is not bool:
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if type(self.num_groups) is not int:
            raise ValueError(f"num_groups must be an integer, got {self.num_groups!r}")
        if (isinstance(self.initial_temperature, bool) or not isinstance(self.initial_temperature, (int, float))
                or not 0 < self.initial_temperature < math.inf):
            raise ValueError(f"initial_temperature must be a finite number > 0, got {self.initial_temperature!r}")
        if self.selector_seed is not None and (type(self.selector_seed) is not int
                                               or not 0 <= self.selector_seed < 2**31):
            raise ValueError(f"selector_seed must be an integer in 0..2147483647, got {self.selector_seed!r}")
        if not 1 <= self.num_groups <= self.num_joints:
            raise ValueError(f"num_groups must be in 1..{self.num_joints}, got {self.num_groups}")
        if self.selector_sample not in ("batch", "image"):
            raise ValueError(f"selector_sample must be 'batch' or 'image', got {self.selector_sample!r}")
        if self.grouping not in ("learned", "manual", "fingers"):
            raise ValueError(f"grouping must be 'learned', 'manual' or 'fingers', got {self.grouping!r}")
        if self.grouping == "manual" and self.num_groups != 3:
            raise ValueError("manual grouping (thumb / index / other fingers) needs num_groups=3")
        if self.grouping == "fingers" and self.num_groups != 5:
            raise ValueError("fingers grouping (one group per finger) needs num_groups=5")
        step = 4 * 2 ** self.hourglass_depth
        if self.input_size % step:
            raise ValueError(
                f"input_size must be a multiple of {step} for an hourglass of depth "
                f"{self.hourglass_depth}, got {self.input_size}"
            )
        return self


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Hand crop and online augmentation; defaults follow the paper (Sec. "Data Processing").

    Attributes:
      crop_factor: crop side = crop_factor * 2 * (largest per-axis distance of a joint from the
        root). Used in training and evaluation.
      min_hand_extent: lower bound, in original pixels, of ``2 * distance`` before ``crop_factor``
        (the reference clips it to 30) so that degenerate annotations still give a sane crop.
      scale_range: the crop window is enlarged by a factor drawn from this range (training only).
      max_rotation: rotation angle drawn from ``U[-max_rotation, max_rotation]`` radians.
      max_translation: shift per axis drawn from ``U[-t, t]``, in pixels of a 256-pixel crop; scaled
        by ``output_size / 256``.
      max_hue_delta: hue shift drawn from ``U[-h, h]`` (fraction of the hue circle).
    """

    crop_factor: float = geometry.CROP_MARGIN
    min_hand_extent: float = geometry.MIN_HAND_EXTENT
    scale_range: tuple[float, float] = (1.0, 1.2)
    max_rotation: float = math.pi
    max_translation: float = 20.0
    max_hue_delta: float = 0.1


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The tf.data pipeline (``lgh_tf.data.pipeline.make_dataset``). Whether a stream is a training
    one (augmented; by default shuffled, repeated, whole batches only), where it starts and which
    shard it is are given per call: one DataConfig serves the training and the held-out streams.

    Attributes:
      output_size: side S of the square crop fed to the network (the model's ``input_size``).
      batch_size: samples per batch (the global batch; a distributed run asks for its share).
      seed: makes shuffling and augmentation reproducible; ``None`` draws one.
      shuffle, repeat, drop_remainder: ``None``: as ``training``.
      augment: apply the online augmentation of ``augmentation`` (training streams only).
      augmentation: the hand crop and the augmentation ranges (default: the paper's).
      validate_records: check every file and label first, dropping (and logging) bad samples.
      skip_decode_errors: drop (with a logged warning) samples whose image still fails to decode.
      jit_compile: render crops with an XLA-compiled gather warp and hue shift (~3x cheaper on CPU)
        instead of ``ImageProjectiveTransformV3`` and ``tf.image.adjust_hue`` (same to ~1e-3 of a
        grey level). Not the train step's ``TrainConfig.jit_compile``.
    """

    output_size: int = 256
    batch_size: int = 32
    seed: int | None = None
    shuffle: bool | None = None
    repeat: bool | None = None
    drop_remainder: bool | None = None
    augment: bool = True
    augmentation: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    validate_records: bool = True
    skip_decode_errors: bool = True
    jit_compile: bool = True

    def validate(self):
        if self.output_size < 1:
            raise ValueError(f"output_size must be positive, got {self.output_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        return self


@dataclasses.dataclass
class TemperatureSchedule:
    """tau(step) = max(floor, initial - decrement * floor(step / every)).

    The paper: "tau is initialized to be 5 and decrease 0.1 for every 1,000 steps until it reaches
    around 0". The floor defaults to 0.1: the Concrete at tau = 0.1 is already nearly one-hot (mean
    largest entry > 0.9 for K = 3, see tests), while tau -> 0 makes the gradient with respect to theta
    blow up as 1 / tau. With the paper's rate the floor is reached after 49,000 steps.
    """

    initial: float = 5.0
    decrement: float = 0.1
    every: int = 1000
    floor: float = 0.1

    def __call__(self, step):
        """tau at ``step`` (a Python int or a tensor); float32."""
        import tensorflow as tf  # here, not at the top: this module is plain data without TensorFlow

        step = tf.cast(step, tf.int64)
        drops = tf.cast(step // self.every, tf.float64)
        tau = tf.cast(self.initial, tf.float64) - tf.cast(self.decrement, tf.float64) * drops
        return tf.cast(tf.maximum(tau, tf.cast(self.floor, tf.float64)), tf.float32)


@dataclasses.dataclass
class OptimConfig:
    """The objective and its optimisers (``lgh_tf.training.task``): stage "pretrain2d" (the hourglass
    alone on 2D joints, ``lr_pretrain``) or "full" (Eq. 10, one Adam per variable group)."""

    stage: str = "full"
    beta: float = 20.0  # Eq. 10, weight of the Z term
    lr_pretrain: float = 1e-3
    lr_selector: float = 1e-1
    lr_fusion: float = 1e-2
    lr_rest: float = 1e-4
    # > 0: every learning rate follows a cosine from its value down to 0 over this many steps of the
    # stage (short runs end better with a decayed rate); 0: constant rates, as the paper states.
    lr_decay_steps: int = 0
    temperature: TemperatureSchedule = dataclasses.field(default_factory=TemperatureSchedule)
    # Remedies for the selector (docs/selector.md; the defaults are the paper's). selector_warmup_steps:
    # theta frozen (learning rate 0) for the first steps of stage 2 while the branches learn;
    # selector_loss "blended" trains Eq. 10 on Eq. 5's combined prediction, "expected" on the
    # per-branch expected loss sum_k S_jk L(branch k's joint j) (the authors' DMTG, 2024).
    selector_warmup_steps: int = 0
    selector_loss: str = "blended"
    # "error_affinity": at selector_init_step theta starts from the partition of the joints whose
    # errors vary together over the steps before (lgh_tf/training/error_affinity.py); "uniform": 1/K.
    selector_init: str = "uniform"
    selector_init_step: int = 0

    def validate(self):
        if self.selector_loss not in SELECTOR_LOSSES:
            raise ValueError(f"selector_loss must be one of {SELECTOR_LOSSES}, got {self.selector_loss!r}")
        if self.selector_init not in SELECTOR_INITS:
            raise ValueError(f"selector_init must be one of {SELECTOR_INITS}, got {self.selector_init!r}")
        if self.selector_init == "error_affinity" and not 2 <= self.selector_init_step <= self.selector_warmup_steps:
            raise ValueError(
                "--selector_init=error_affinity needs theta frozen until it is set (--selector_warmup at least "
                "--selector_init_at) and 2 steps or more before it: 2 <= selector_init_step "
                f"({self.selector_init_step}) <= selector_warmup_steps ({self.selector_warmup_steps})")
        if self.selector_warmup_steps < 0:
            raise ValueError(f"selector_warmup_steps must be >= 0, got {self.selector_warmup_steps}")
        return self


SELECTOR_LOSSES = ("blended", "expected")
SELECTOR_INITS = ("uniform", "error_affinity")


@dataclasses.dataclass
class TrainConfig:
    """The training loop (``lgh_tf.training.loop.train``)."""

    model_dir: str = "runs/synthetic"
    steps: int = 2000
    batch_size: int = 32
    checkpoint_every: int = 100  # steps; also the Keras epoch length
    keep_checkpoints: int = 3
    eval_batches: int = 4
    seed: int = 0
    jit_compile: bool = False
    # Op by op, no tf.function: for debugging, and for runs of a few steps, where tracing the
    # train step (seconds per hundred variables) costs more than the steps themselves.
    run_eagerly: bool = False
    mixed_precision: bool = False  # mixed_bfloat16
    strategy: str = "default"  # default | mirrored | multi_worker
    init_checkpoint: str = ""  # a stage-1 (pretrain2d) checkpoint to start stage "full" from
    init_backbone_only: bool = False  # take only the hourglass from init_checkpoint
    verbose: int = 1


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """SavedModel export (TF Serving layout) and the TFLite variants converted inside each version
    (``lgh_tf.export.export``)."""

    export_dir: str = "saved_models/lgh"
    version: int | None = None  # None: the next integer after the existing versions
    precision: str = "float32"  # or "bfloat16" (convolutions computed in bfloat16)
    fold_batch_norms: bool = True
    tflite: tuple[str, ...] = ()  # variants (lgh_tf.export.tflite.VARIANTS)
    representative_samples: int = 100  # synthetic crops calibrating the int8 variant
    cache_dir: str = "cache"  # where those synthetic hands are generated

    def validate(self):
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {self.precision!r}")
        if self.tflite and self.precision != "float32":
            raise ValueError("TFLite variants are converted from a float32 export only")
        if self.version is not None and self.version < 0:
            raise ValueError(f"version must be a non-negative integer, got {self.version}")
        return self


@dataclasses.dataclass
class ExperimentConfig:
    """Everything a training run needs. ``pretrain_steps`` > 0 with stage "full" and no
    ``train.init_checkpoint``: first the paper's stage 1 (pretrain2d) for that many steps."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    pretrain_steps: int = 0

    def validate(self):
        self.model.validate()
        self.data.validate()
        self.optim.validate()
        # The pipeline feeds the network, and a resume positions the stream by train.batch_size.
        for what, data_value, other, value in (
            ("output_size", self.data.output_size, "model.input_size", self.model.input_size),
            ("batch_size", self.data.batch_size, "train.batch_size", self.train.batch_size),
            ("seed", self.data.seed, "train.seed", self.train.seed),
        ):
            if data_value != value:
                raise ValueError(f"data.{what} {data_value} differs from {other} {value}")
        return self
