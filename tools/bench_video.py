"""Frames per second of the video pipeline (``lgh_tf.video``) for the float32 SavedModel and the
int8 TFLite file of the same network.

    python tools/bench_video.py                      # 256x256, K = 3, random weights, 40 frames
    python tools/bench_video.py --checkpoint runs/synthetic --frames 60

Builds the network (random weights with trained-looking BatchNorm statistics, as
``tools/bench_inference.py``, unless ``--checkpoint``), exports it (BatchNorm folded) and converts it
to int8 TFLite, renders a synthetic 640x480 sequence (``synthetic.render_sequence``) and runs the
whole pipeline (crop, network, confidence, lift, One Euro, overlay video, JSON lines) on it in two
regimes that bound a real run:

* tracking: every frame is cropped from the previous frame's joints, one network pass per frame
  (``min_confidence`` and ``min_hand_px`` 0, so every hand counts as found);
* search: no hand is ever found (``min_confidence`` above 1), so every frame is searched from the
  whole image (up to ``--search_iterations`` passes, times two with ``--hand auto``).

It prints frames/s, network passes per frame, the network's share of the time, and the network
alone (``predictor`` on one 256x256 crop) as the baseline measured in the same run. Figures depend
on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/: bench_report
from bench_report import add_markdown_flag, run_main  # noqa: E402


class TimedPredictor:
    """Wraps a Predictor, counting calls and network time."""

    def __init__(self, predictor):
        self.predictor, self.input_size, self.description = predictor, predictor.input_size, predictor.description
        self.calls, self.images, self.seconds = 0, 0, 0.0

    def run(self, images):
        start = time.perf_counter()
        out = self.predictor.run(images)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.images += len(images)
        return out


def build_models(args, work):
    from lgh_tf.config import ModelConfig
    from lgh_tf.export import saved_model, tflite
    from lgh_tf.model.io import load_model
    from lgh_tf.model.network import LearnableGroupsNet

    if args.checkpoint:
        model = load_model(args.checkpoint)
    else:
        import keras

        from lgh_tf.export.folding import randomize_batch_norms

        keras.utils.set_random_seed(0)
        model = LearnableGroupsNet(ModelConfig(input_size=args.input_size, num_groups=3, fusion=True)).build_for_input()
        randomize_batch_norms(model, seed=0)
    version = saved_model.export_saved_model(model, os.path.join(work, "lgh"))
    crops = tflite.synthetic_representative_images(model.config.input_size, args.representative_samples,
                                                   args.cache_dir)
    int8 = tflite.convert(version, "int8", crops)
    return {"saved_model_float32": version, "tflite_int8": int8}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="a trained model (default: random weights)")
    parser.add_argument("--input_size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--hand", default="right", choices=["right", "left", "auto"])
    parser.add_argument("--search_iterations", type=int, default=4)
    parser.add_argument("--representative_samples", type=int, default=16)
    parser.add_argument("--cache_dir", default="cache")
    add_markdown_flag(parser)
    args = parser.parse_args(argv)

    from lgh_tf import predict, video
    from lgh_tf.data import synthetic

    frames = synthetic.render_sequence(args.frames, seed=0, period=max(args.frames, 120))["frames"]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        paths = build_models(args, work)
        for name, path in paths.items():
            predictor = predict.load_predictor(path)
            crop = np.random.default_rng(0).uniform(size=(1, predictor.input_size, predictor.input_size, 3))
            predictor.run(crop)  # warm-up
            start = time.perf_counter()
            for _ in range(5):
                predictor.run(crop)
            network_ms = 1000 * (time.perf_counter() - start) / 5
            for regime, limits in (("tracking", dict(min_confidence=0.0, min_hand_px=0.0)),
                                   ("search", dict(min_confidence=1.01))):
                options = dict(hand=args.hand, iterations=args.search_iterations, **limits)
                timed = TimedPredictor(predictor)
                list(video.track(timed, video.array_source(frames[:2]), **options))  # warm-up, batch shapes
                timed = TimedPredictor(predictor)
                summary = video.run(timed, video.array_source(frames, name=f"{name}_{regime}"),
                                    os.path.join(work, "out"), progress=False, **options)
                rows.append((name, regime, summary["frames"], summary["frames_per_second"],
                             timed.images / summary["frames"], 1000 * timed.seconds / summary["frames"],
                             timed.seconds / summary["seconds"], network_ms))
    print(f"\nvideo pipeline, {args.frames} frames of 640x480, network {args.input_size}x{args.input_size} K=3 "
          f"({'checkpoint ' + args.checkpoint if args.checkpoint else 'random weights'}), hand={args.hand}, "
          f"{os.cpu_count()} CPUs (shared machine: figures vary with the load)\n")
    header = ("model", "regime", "frames", "frames/s", "crops/frame", "network ms/frame", "network share",
              "network alone ms/crop")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, regime, count, fps, crops, ms, share, alone in rows:
        print(f"| {name} | {regime} | {count} | {fps:.2f} | {crops:.2f} | {ms:.1f} | {share:.0%} | {alone:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("bench_video", main))
