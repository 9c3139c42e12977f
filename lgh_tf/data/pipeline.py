"""tf.data input pipeline: validate, decode, crop around the hand, augment, build targets, batch.

Every reader returns :class:`lgh_tf.data.schema.Records`; this module turns them into batches of
training targets for the network of Li, Gao & Sang, "Exploiting Learnable Joint Groups for Hand
Pose Estimation" (AAAI 2021).

Geometry, all in one warp per image
-----------------------------------
Pixel convention: pixel ``(row r, column c)`` has its centre at ``(u, v) = (c, r)``, i.e. at
integer coordinates. This is the convention of the uv annotations (u is the column index of the
pixel centre) and of ``tf.raw_ops.ImageProjectiveTransformV3``, which samples the input at the
transformed integer output coordinates. A horizontal flip therefore maps ``u -> W - 1 - u``, and an
output of ``S`` pixels covers the continuous interval ``[-0.5, S - 0.5]`` with centre
``(S - 1) / 2``.

1. Hand crop (train and eval; as in the authors' data loader): a square centred on the bounding
   box of the 21 2D keypoints, side ``crop_factor * 2 * d`` with ``crop_factor = 1.2`` and
   ``d = max_j max(|u_j - u_root|, |v_j - v_root|)`` the largest per-axis distance of a joint from
   the root joint 12 (never below ``min_hand_extent``). Border rule "shift, then pad": along each
   axis a square that fits inside the image (the hull ``[0, size - 1]`` of its pixel centres) is
   shifted inside it, as the reference does, so there is no fake black border where real context
   exists (joints inside the image stay inside the square, which contains their box); a square
   larger than the image is centred on the image and the outside zero-filled.
2. Online augmentation (training only; paper, "Data Processing"): crop scale ``U[1, 1.2]`` (the
   crop window grows and the hand shrinks, as in the reference), rotation ``U[-pi, pi]`` about the
   crop centre, translation ``U[-20, 20]`` px of a 256 crop (scaled with ``output_size``) per axis,
   and hue ``U[-0.1, 0.1]`` of the HSV circle (``tf.image.adjust_hue`` arithmetic).
3. Crop, resize, scale, rotation and translation compose into one affine ``A`` (original pixels ->
   crop pixels). The image is resampled once, bilinearly with zero fill; a requested flip is folded
   into the same warp. ``uv_crop = A [u, v, 1]``, ``K_crop = A @ K`` (not upper triangular after a
   rotation; its last row stays ``(0, 0, 1)``) and ``xyz`` is unchanged, so ``K_crop`` projects
   ``xyz`` onto ``uv_crop`` and paper Eq. 3, ``xyz = (s0 * z_rel + z_root) K_crop^-1 [u, v, 1]``,
   holds in the crop (with the full inverse: ``x = z (u - cx) / fx`` no longer applies).

By default (``jit_compile=True``) the warp is a gather-based bilinear warp and the hue shift an
elementwise rewrite of ``adjust_hue``, both XLA-compiled (about 3x cheaper on CPU than
``ImageProjectiveTransformV3`` + ``AdjustHue``; the tests check they agree). ``jit_compile=False``
uses those two TF ops instead.

Corrupt images
--------------
:func:`validate_records` drops (and logs, by path) files that are missing, empty, not PNG/JPEG by
their magic bytes, truncated (a PNG without its IEND trailer, a JPEG without an EOI marker near
its end) or, for PNGs, damaged anywhere (every chunk's CRC-32 is checked). As a second line of
defence the decode map is followed by ``dataset.ignore_errors(log_warning=True)``: an element
whose decode still fails is dropped with a logged warning instead of stopping training (an
in-graph check of the magic bytes and of the PNG trailer makes that warning name the path).
Elements dropped at that stage are logged but not counted; everything the up-front check can see
is counted by :func:`validate_records`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from lgh_tf import geometry
from lgh_tf.config import AugmentConfig, DataConfig  # noqa: F401  (also importable from here, as before)
from lgh_tf.data import schema

# The up-front checks live in lgh_tf.data.validation (numpy only); importable from here as before.
from lgh_tf.data.validation import (  # noqa: F401
    _BMP_MAGIC,
    _JPEG_MAGIC,
    _PNG_MAGIC,
    _PNG_TRAILER,
    find_invalid_samples,
    image_file_problem,
    validate_records,
)

logger = logging.getLogger(__name__)

# Size of the crop the paper's augmentation ranges are expressed in.
REFERENCE_CROP_SIZE = 256

# ---------------------------------------------------------------------------------------------
# Per-sample graph ops.
# ---------------------------------------------------------------------------------------------


def _records_to_dataset(records: schema.Records) -> tf.data.Dataset:
    """One element per sample: path, labels and flip flag (images are read later)."""
    return tf.data.Dataset.from_tensor_slices(
        {
            "image_path": np.asarray(records.image_path, dtype=str).astype(object),
            "uv": np.asarray(records.uv, dtype=np.float32),
            "xyz": np.asarray(records.xyz, dtype=np.float32),
            "K": np.asarray(records.K, dtype=np.float32),
            "visible": np.asarray(records.visible, dtype=bool),
            "flip": np.asarray(records.flip, dtype=bool),
        }
    )


def read_image(path: tf.Tensor) -> tf.Tensor:
    """Reads and decodes a PNG/JPEG/BMP file into uint8 (H, W, 3) RGB.

    Raises InvalidArgumentError naming ``path`` when the bytes are neither JPEG nor a complete
    PNG (magic bytes, IEND trailer) nor a complete BMP (magic bytes, declared size), so that the
    ``ignore_errors`` guard downstream logs which file it dropped; other decode failures are
    logged by the decoder without the path.
    """
    contents = tf.io.read_file(path)
    length = tf.strings.length(contents)
    trailer = tf.strings.substr(contents, tf.maximum(length - len(_PNG_TRAILER), 0),
                                len(_PNG_TRAILER))
    is_png = tf.logical_and(
        tf.equal(tf.strings.substr(contents, 0, len(_PNG_MAGIC)), _PNG_MAGIC),
        tf.equal(trailer, _PNG_TRAILER),
    )
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
    padded = tf.strings.join([contents, b"\0" * 6])  # 4 header bytes to read even from a stub
    size_bytes = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 2, 4), tf.uint8), tf.int64)
    declared = tf.reduce_sum(size_bytes * tf.constant([1, 1 << 8, 1 << 16, 1 << 24], tf.int64))
    is_bmp = tf.logical_and(tf.equal(tf.strings.substr(contents, 0, len(_BMP_MAGIC)), _BMP_MAGIC),
                            tf.cast(length, tf.int64) >= declared)
    with tf.control_dependencies(
        [tf.debugging.Assert(is_png | is_jpeg | is_bmp, ["Not a complete PNG/JPEG/BMP image:", path])]
    ):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def hand_crop_matrix(
    uv: tf.Tensor, image_height: tf.Tensor, image_width: tf.Tensor, output_size: int,
    config: AugmentConfig,
) -> tf.Tensor:
    """The 3x3 affine mapping original pixels to pixels of the (unaugmented) hand crop.

    ``geometry.keypoint_square`` (side ``crop_factor * max(2 * max_j max(|u_j - u_root|,
    |v_j - v_root|), min_hand_extent)`` about the keypoints' bounding box), shifted inside the image
    where it fits (``geometry.shift_inside``; the warp zero-fills the outside otherwise).
    """
    centre, side = geometry.keypoint_square(uv, config.crop_factor, config.min_hand_extent)
    centre = geometry.shift_inside(centre, side, image_width, image_height)
    return geometry.square_crop_matrix(centre, side, output_size)


def augment_matrix(
    random_uniform: tf.Tensor, output_size: int, config: AugmentConfig
) -> tf.Tensor:
    """3x3 affine of the crop-space augmentation from 4 uniform [0, 1) draws.

    Scales the crop window by ``s ~ U[scale_range]`` (content by ``1/s``) and rotates by
    ``theta ~ U[-max_rotation, max_rotation]``, both about the crop centre, then translates by
    ``t ~ U[-max_translation, max_translation]`` (per axis, scaled to ``output_size``).
    """
    low, high = config.scale_range
    window_scale = low + (high - low) * random_uniform[0]
    angle = config.max_rotation * (2.0 * random_uniform[1] - 1.0)
    max_shift = config.max_translation * output_size / REFERENCE_CROP_SIZE
    translation = max_shift * (2.0 * random_uniform[2:4] - 1.0)
    centre = 0.5 * (output_size - 1.0)
    cos, sin = tf.cos(angle) / window_scale, tf.sin(angle) / window_scale
    # p' = R(angle) (p - c) / s + c + t
    return tf.stack(
        [
            tf.stack([cos, -sin, centre + translation[0] - cos * centre + sin * centre]),
            tf.stack([sin, cos, centre + translation[1] - sin * centre - cos * centre]),
            tf.constant([0.0, 0.0, 1.0]),
        ]
    )


invert_affine = geometry.invert_affine


def source_from_crop(
    crop_from_image: tf.Tensor, image_width: tf.Tensor, flip: tf.Tensor
) -> tf.Tensor:
    """3x3 map from crop pixels to pixels of the image *file* (before any requested flip).

    ``crop_from_image`` refers to the flipped image when ``flip`` (the reader mirrored the labels);
    the mirror ``u -> W - 1 - u`` is folded in here so that the warp reads the file directly.
    """
    image_from_crop = geometry.invert_affine(crop_from_image)
    return tf.where(flip, geometry.mirror_matrix(image_width) @ image_from_crop, image_from_crop)


def warp_image_projective(
    image: tf.Tensor, source_from_crop: tf.Tensor, output_size: int
) -> tf.Tensor:
    """Bilinear warp with zero fill by ``tf.raw_ops.ImageProjectiveTransformV3``.

    Args:
      image: (H, W, C) source pixels.
      source_from_crop: 3x3 map from output pixels to source pixels (integer = pixel centre).
      output_size: side S of the output.

    Returns:
      float32 (S, S, C).
    """
    transform = tf.reshape(source_from_crop / source_from_crop[2, 2], [9])[:8]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=tf.constant([output_size, output_size], tf.int32),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )[0]
    warped.set_shape([output_size, output_size, image.shape[-1]])
    return warped


def warp_image_affine(image: tf.Tensor, source_from_crop: tf.Tensor, output_size: int) -> tf.Tensor:
    """The same bilinear, zero-filled warp for an affine map, from gathers (XLA-compilable).

    Matches :func:`warp_image_projective` (same convention: integer coordinates are pixel
    centres, neighbours outside the image count as 0) and is about 3x cheaper on CPU under XLA.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    channels = image.shape[-1]
    steps = tf.range(output_size, dtype=tf.float32)
    cols, rows = steps[tf.newaxis, :], steps[:, tf.newaxis]
    # Source coordinates, shifted by 1 into an image with a one-pixel zero border.
    x = source_from_crop[0, 0] * cols + source_from_crop[0, 1] * rows + source_from_crop[0, 2] + 1
    y = source_from_crop[1, 0] * cols + source_from_crop[1, 1] * rows + source_from_crop[1, 2] + 1
    x = tf.clip_by_value(x, -1.0, tf.cast(width, tf.float32) + 1.0)
    y = tf.clip_by_value(y, -1.0, tf.cast(height, tf.float32) + 1.0)
    x_floor, y_floor = tf.floor(x), tf.floor(y)
    x_weight, y_weight = (x - x_floor)[..., tf.newaxis], (y - y_floor)[..., tf.newaxis]
    x0 = tf.cast(x_floor, tf.int32)
    y0 = tf.cast(y_floor, tf.int32)
    x0, x1 = tf.clip_by_value(x0, 0, width + 1), tf.clip_by_value(x0 + 1, 0, width + 1)
    y0, y1 = tf.clip_by_value(y0, 0, height + 1), tf.clip_by_value(y0 + 1, 0, height + 1)
    padded = tf.reshape(tf.pad(image, [[1, 1], [1, 1], [0, 0]]), [-1, channels])
    stride = width + 2
    corners = tf.gather(
        padded, tf.stack([y0 * stride + x0, y0 * stride + x1, y1 * stride + x0, y1 * stride + x1])
    )
    corners = tf.cast(corners, tf.float32)
    top = corners[0] + x_weight * (corners[1] - corners[0])
    bottom = corners[2] + x_weight * (corners[3] - corners[2])
    return top + y_weight * (bottom - top)


def shift_hue(rgb: tf.Tensor, delta: tf.Tensor) -> tf.Tensor:
    """Rotates the HSV hue of float RGB in [0, 1] by ``delta`` (fraction of the circle).

    The arithmetic of ``tf.image.adjust_hue`` (RGB -> HSV, h += delta, HSV -> RGB; each pixel's max
    and min channel are kept), written as elementwise ops that XLA fuses into one loop: ~0.6 ms
    per 256x256 image on one CPU core instead of ~1.5 ms for the ``AdjustHue`` kernel.
    """
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = tf.maximum(tf.maximum(red, green), blue)
    chroma = value - tf.minimum(tf.minimum(red, green), blue)
    inverse_chroma = tf.where(chroma > 0, 1.0 / tf.maximum(chroma, 1e-12), 0.0)
    # Hue in sixths of the circle, in (-1, 5]; 0 for greys.
    hue = tf.where(
        tf.equal(value, red),
        (green - blue) * inverse_chroma,
        tf.where(tf.equal(value, green), (blue - red) * inverse_chroma + 2.0,
                 (red - green) * inverse_chroma + 4.0),
    )
    hue = tf.where(chroma > 0, hue, 0.0) + 6.0 * delta
    channels = []
    for offset in (5.0, 3.0, 1.0):  # R, G, B of the HSV -> RGB formula
        k = hue + offset
        k -= 6.0 * tf.floor(k * (1.0 / 6.0))  # k mod 6
        channels.append(value - chroma * tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0))
    return tf.stack(channels, axis=-1)


def pose_targets(
    uv: tf.Tensor, xyz: tf.Tensor, intrinsics: tf.Tensor, crop_from_image: tf.Tensor
) -> dict[str, tf.Tensor]:
    """Crop-space 2D joints, crop intrinsics and the 2.5D targets of paper Eq. 2.

    ``depth = (z - z_root) / s0`` with root joint 12 and hand scale ``s0 = |xyz[12] - xyz[11]|``;
    ``K_crop = crop_from_image @ K`` projects the unchanged ``xyz`` onto the crop ``uv``.
    """
    uv_crop = geometry.map_points(crop_from_image, uv)
    child, parent = schema.SCALE_BONE
    scale = tf.norm(xyz[child] - xyz[parent])
    root_depth = xyz[schema.ROOT, 2]
    return {
        "uv": uv_crop,
        "depth": (xyz[:, 2] - root_depth) / scale,
        "xyz": xyz,
        "K": crop_from_image @ intrinsics,
        "scale": scale,
        "root_depth": root_depth,
    }


def _element_seed(base_seed: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """A stateless seed (shape [2]) for element ``index``."""
    return tf.random.experimental.stateless_fold_in(base_seed, index)


def make_crop_fn(output_size: int, augment: bool, config: AugmentConfig, jit_compile: bool):
    """Returns ``crop(image, uv, xyz, K, flip, draws) -> targets`` for one decoded image.

    ``draws`` are 5 uniform [0, 1) numbers (scale, angle, shift x, shift y, hue), used only when
    ``augment``. With ``jit_compile`` the geometry and gather warp form one XLA cluster and the hue
    shift another (fused together, XLA would recompute the gathers for every use of a channel),
    each compiled once per source image size; without it the warp is
    ``ImageProjectiveTransformV3`` and the hue shift ``tf.image.adjust_hue``.
    """
    apply_hue = augment and config.max_hue_delta > 0

    def geometry_and_warp(image, uv, xyz, intrinsics, flip, draws):
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        crop_from_image = hand_crop_matrix(uv, height, width, output_size, config)
        if augment:
            crop_from_image = augment_matrix(draws[:4], output_size, config) @ crop_from_image
        targets = pose_targets(uv, xyz, intrinsics, crop_from_image)
        warp = warp_image_affine if jit_compile else warp_image_projective
        pixels = warp(image, source_from_crop(crop_from_image, width, flip), output_size)
        targets["image"] = tf.clip_by_value(pixels * (1.0 / 255.0), 0.0, 1.0)
        return targets

    def colour(pixels, draws):
        hue_delta = config.max_hue_delta * (2.0 * draws[4] - 1.0)
        pixels = (shift_hue if jit_compile else tf.image.adjust_hue)(pixels, hue_delta)
        return tf.clip_by_value(pixels, 0.0, 1.0)

    if jit_compile:
        # autograph=False: straight-line TensorFlow, nothing to convert (conversion cost seconds per run).
        geometry_and_warp = tf.function(geometry_and_warp, jit_compile=True, reduce_retracing=True,
                                        autograph=False)
        colour = tf.function(colour, jit_compile=True, reduce_retracing=True, autograph=False)

    def crop(image, uv, xyz, intrinsics, flip, draws):
        targets = geometry_and_warp(image, uv, xyz, intrinsics, flip, draws)
        if apply_hue:
            targets["image"] = colour(targets["image"], draws)
        return targets

    return crop


def make_sample_fn(
    output_size: int, augment: bool, config: AugmentConfig, base_seed: tf.Tensor,
    jit_compile: bool = True,
):
    """Returns ``fn(index, record) -> targets``: read, decode, crop (+ augment), targets.

    Element ``index`` draws its augmentation from the stateless seed ``fold_in(base_seed, index)``,
    so a given seed reproduces every batch regardless of thread scheduling.
    """
    crop = make_crop_fn(output_size, augment, config, jit_compile)

    def sample_fn(index: tf.Tensor, record: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        image = read_image(record["image_path"])
        if augment:
            draws = tf.random.stateless_uniform([5], seed=_element_seed(base_seed, index))
        else:
            draws = tf.zeros([5])
        targets = crop(image, record["uv"], record["xyz"], record["K"], record["flip"], draws)
        targets["image"].set_shape([output_size, output_size, 3])
        targets["visible"] = tf.cast(record["visible"], tf.float32)
        return targets

    return sample_fn


# ---------------------------------------------------------------------------------------------
# Datasets.
# ---------------------------------------------------------------------------------------------


def _resolve_seed(seed: int | None) -> int:
    return random.SystemRandom().randrange(2**31) if seed is None else int(seed)


def _dataset_options() -> tf.data.Options:
    """Deterministic order (augmentation is seeded per element), autotuned parallelism."""
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    options.experimental_optimization.parallel_batch = True
    return options


def _samples_to_batches(
    records_dataset: tf.data.Dataset, *, output_size: int, batch_size: int, augment: bool,
    config: AugmentConfig, seed: int, drop_remainder: bool, skip_decode_errors: bool,
    jit_compile: bool, start_sample: int, shard: tuple[int, int] = (1, 0),
) -> tf.data.Dataset:
    """Record elements -> decoded, cropped, (augmented) target batches, prefetched.

    Elements are numbered before ``start_sample`` of them are skipped (cheaply, before decoding),
    so a resumed stream repeats the uninterrupted one, augmentation included; ``shard`` keeps
    every ``shard[0]``-th of the remaining elements from ``shard[1]`` on (also before decoding).
    """
    num_shards, shard_index = shard
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard must be (number of shards, index < number), got {shard}")
    base_seed = tf.constant([seed, 0x5EED], tf.int64)
    sample_fn = make_sample_fn(output_size, augment, config, base_seed, jit_compile)
    dataset = records_dataset.enumerate()
    if start_sample:
        dataset = dataset.skip(start_sample)
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    # Not converted by autograph either (as above): the map traces it as it is.
    dataset = dataset.map(tf.autograph.experimental.do_not_convert(sample_fn),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if skip_decode_errors:
        dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return dataset.with_options(_dataset_options())


def make_dataset(
    records: schema.Records,
    config: DataConfig | None = None,
    *,
    training: bool = True,
    start_sample: int = 0,
    shard: tuple[int, int] = (1, 0),
    **overrides,
) -> tf.data.Dataset:
    """Batched dicts of network inputs and targets from one Records set.

    Args:
      records: samples from a reader.
      config: the pipeline settings (:class:`lgh_tf.config.DataConfig`; default: its defaults).
      training: enables augmentation (with ``config.augment``) and the shuffle/repeat/drop defaults.
      start_sample: skip this many samples of the (shuffled, repeated) stream, e.g.
        ``step * batch_size`` to resume training; the rest is identical to an uninterrupted run
        with the same seed (samples dropped by ``skip_decode_errors`` are not counted).
      shard: ``(num_shards, index)``: keep every ``num_shards``-th sample of that stream from
        ``index`` on, e.g. one worker's share under tf.distribute (each element keeps its
        augmentation, drawn from its index in the unsharded stream).
      **overrides: DataConfig fields replacing those of ``config`` for this call, e.g.
        ``batch_size=`` a replica's share, or ``output_size=64, batch_size=3`` without a config.

    Returns:
      A dataset of dicts: ``image`` float32 (B, S, S, 3) in [0, 1]; ``uv`` (B, 21, 2) crop pixels;
      ``depth`` (B, 21) ``(z - z_root) / scale``; ``xyz`` (B, 21, 3) metres; ``K`` (B, 3, 3) crop
      intrinsics; ``scale`` (B,) metres; ``root_depth`` (B,) metres; ``visible`` (B, 21) float32.
    """
    return make_mixed_dataset(
        [(records, 1.0)], config, training=training, start_sample=start_sample, shard=shard, **overrides
    )


def make_mixed_dataset(
    sources: Sequence[tuple[schema.Records, float]],
    config: DataConfig | None = None,
    *,
    training: bool = True,
    start_sample: int = 0,
    shard: tuple[int, int] = (1, 0),
    **overrides,
) -> tf.data.Dataset:
    """Like :func:`make_dataset`, drawing each sample from source i with probability ~ weight i.

    For combined training sets such as RHD + STB (used for the Dexter+Object experiments). Sources
    are shuffled and repeated independently and interleaved with
    ``tf.data.Dataset.sample_from_datasets``; without ``repeat`` the interleave continues until
    every source is exhausted. Arguments and output as in :func:`make_dataset`.
    """
    if not sources:
        raise ValueError("make_mixed_dataset needs at least one (records, weight) source.")
    config = dataclasses.replace(config or DataConfig(), **overrides).validate()
    shuffle = training if config.shuffle is None else config.shuffle
    repeat = training if config.repeat is None else config.repeat
    drop_remainder = training if config.drop_remainder is None else config.drop_remainder
    seed = _resolve_seed(config.seed)

    per_source, weights = [], []
    for source_index, (records, weight) in enumerate(sources):
        if config.validate_records:
            records = validate_records(records)
        if len(records) == 0:
            logger.warning("%s: no valid samples; left out.", records.name)
            continue
        dataset = _records_to_dataset(records)
        if shuffle:
            dataset = dataset.shuffle(
                len(records), seed=seed + source_index, reshuffle_each_iteration=True
            )
        if repeat:
            dataset = dataset.repeat()
        per_source.append(dataset)
        weights.append(float(weight))
    if not per_source:
        raise ValueError("No valid samples in any source.")
    if len(per_source) == 1:
        records_dataset = per_source[0]
    else:
        total = sum(weights)
        records_dataset = tf.data.Dataset.sample_from_datasets(
            per_source, weights=[w / total for w in weights], seed=seed,
            stop_on_empty_dataset=False,
        )
    return _samples_to_batches(
        records_dataset, output_size=config.output_size, batch_size=config.batch_size,
        augment=training and config.augment, config=config.augmentation, seed=seed,
        drop_remainder=drop_remainder, skip_decode_errors=config.skip_decode_errors,
        jit_compile=config.jit_compile, start_sample=start_sample, shard=shard,
    )
