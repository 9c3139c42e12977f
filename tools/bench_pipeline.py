"""Throughput of the tf.data input pipeline (images/s), with and without augmentation.

Writes a few hundred 320x320 PNG fixtures (smooth random content, RHD-like size) with plausible
hand annotations into a temporary directory, then times ``lgh_tf.data.pipeline.make_dataset`` at
the requested crop size and reports images/s in total, per CPU core (``os.cpu_count()``) and per
CPU-second actually consumed (robust when other processes share the machine).

    python tools/bench_pipeline.py [--images 300] [--output-size 256] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import cv2
import numpy as np
import tensorflow as tf

from lgh_tf.config import DataConfig
from lgh_tf.data import pipeline, schema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/: bench_report, bench_train
from bench_report import add_markdown_flag, run_main  # noqa: E402

IMAGE_SIZE = 320


def _plausible_hand(rng: np.random.Generator) -> np.ndarray:
    """21 joints (metres, RHD order) around a random root 0.3-0.7 m in front of the camera."""
    offsets = rng.normal(0.0, 0.035, size=(schema.NUM_JOINTS, 3))
    offsets[schema.ROOT] = 0.0
    offsets[11] = offsets[12] + rng.normal(0.0, 0.02, size=3)  # a real MCP-PIP bone
    root = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(0.3, 0.7)])
    return (root + offsets).astype(np.float32)


def write_fixtures(directory: pathlib.Path, count: int, seed: int = 0) -> schema.Records:
    """``count`` RHD-like samples: 320x320 PNGs (blurred noise + shapes) and pinhole labels."""
    rng = np.random.default_rng(seed)
    focal = 280.0
    intrinsics = np.array(
        [[focal, 0.0, IMAGE_SIZE / 2], [0.0, focal, IMAGE_SIZE / 2], [0.0, 0.0, 1.0]], np.float32
    )
    paths, poses = [], []
    for i in range(count):
        noise = rng.integers(0, 256, size=(IMAGE_SIZE // 4, IMAGE_SIZE // 4, 3), dtype=np.uint8)
        image = cv2.resize(noise, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
        image = cv2.GaussianBlur(image, (5, 5), 0)
        for _ in range(5):
            centre = tuple(int(c) for c in rng.integers(0, IMAGE_SIZE, size=2))
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            cv2.circle(image, centre, int(rng.integers(5, 40)), colour, -1)
        path = directory / f"{i:05d}.png"
        cv2.imwrite(str(path), image)
        paths.append(str(path))
        poses.append(_plausible_hand(rng))
    xyz = np.stack(poses)
    uvw = xyz @ intrinsics.T
    return schema.Records(
        image_path=np.array(paths),
        uv=(uvw[..., :2] / uvw[..., 2:]).astype(np.float32),
        xyz=xyz,
        K=np.repeat(intrinsics[None], count, axis=0),
        visible=np.ones((count, schema.NUM_JOINTS), bool),
        flip=rng.random(count) < 0.5,
        name="bench",
    )


def measure(dataset, batch_size: int, warmup_batches: int, timed_batches: int):
    """Iterates ``dataset``; returns (images/s, images per CPU-second of this process).

    The second figure is throughput per core actually used: it does not depend on how many cores
    other processes leave free (this process's CPU time includes thread-pool spinning, so it
    slightly understates the per-core rate).
    """
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(timed_batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    images = timed_batches * batch_size
    return images / wall, images / cpu


def decode_only_dataset(records: schema.Records, batch_size: int, output_size: int):
    """Lower bound for comparison: read + decode + a plain slice, no crop or targets."""
    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.image.resize_with_crop_or_pad(image, output_size, output_size)

    return (
        tf.data.Dataset.from_tensor_slices(records.image_path).repeat()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def bench_train_step(args) -> float | None:
    """Images/s of the stage-"full" train step on a fixed batch (tools/bench_train.py has every
    compile option); the paper's network at ``--output-size``, or the light synthetic preset."""
    if args.train_batches <= 0:
        return None
    from bench_train import time_train_step

    overrides = None
    if args.train_preset == "synthetic":
        overrides = dict(backbone_filters=64, group_channels=16, trunk_hidden=32)
    result = time_train_step(args.output_size, args.train_batch_size, jit_compile=args.jit_compile,
                             steps=args.train_batches, cache_dir=args.cache_dir, config_overrides=overrides)
    return result["images_per_s"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--output-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup-batches", type=int, default=5)
    parser.add_argument("--timed-batches", type=int, default=40)
    parser.add_argument("--train-batches", type=int, default=3, help="timed train steps (0: skip)")
    parser.add_argument("--train-batch-size", type=int, default=4)
    parser.add_argument("--train-preset", choices=["paper", "synthetic"], default="paper")
    parser.add_argument("--jit-compile", action="store_true", help="XLA-compile the train step")
    parser.add_argument("--cache-dir", default="cache", help="synthetic hands for the train-step batch")
    add_markdown_flag(parser)
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        records = write_fixtures(pathlib.Path(tmp), args.images)
        size_kb = np.mean([os.path.getsize(p) for p in records.image_path]) / 1024
        print(f"{len(records)} fixtures {IMAGE_SIZE}x{IMAGE_SIZE} PNG (mean {size_kb:.0f} KiB), "
              f"crop {args.output_size}, batch {args.batch_size}, os.cpu_count() = {cores}")
        print("\n| input | images/s | per core | per CPU-s | cores used |\n|---|---|---|---|---|")
        cases = [("decode only (reference)", decode_only_dataset(
            records, args.batch_size, args.output_size))]
        for jit_compile in (True, False):
            for augment in (False, True):
                label = (f"pipeline {'with' if augment else 'without'} augmentation"
                         f"{'' if jit_compile else ', no XLA'}")
                data = DataConfig(output_size=args.output_size, batch_size=args.batch_size, augment=augment,
                                  seed=0, jit_compile=jit_compile)
                cases.append((label, pipeline.make_dataset(records, data, training=True)))
        rates = {}
        for label, dataset in cases:
            rate, per_cpu_second = measure(
                dataset, args.batch_size, args.warmup_batches, args.timed_batches
            )
            rates[label] = rate
            print(f"| {label} | {rate:.1f} | {rate / cores:.1f} | {per_cpu_second:.1f} | "
                  f"{rate / per_cpu_second:.2f} |", flush=True)

    # The train step on the same machine: the pipeline must outrun it.
    train_rate = bench_train_step(args)
    if train_rate is not None:
        print(f"| train step ({args.train_preset}, batch {args.train_batch_size}) | {train_rate:.1f} | - | - | - |")
        aug_rate = rates["pipeline with augmentation"]
        print(f"\npipeline with augmentation / train step: {aug_rate / train_rate:.1f}x "
              f"({'the pipeline is not the bottleneck' if aug_rate > train_rate else 'PIPELINE-BOUND'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("bench_pipeline", main))
