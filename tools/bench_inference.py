"""Inference speed of every deployment form of one network, on the same weights, in one run.

Variants: ``eager`` (the Keras model called eagerly), ``function`` (``tf.function``), ``xla``
(``tf.function(jit_compile=True)``), ``saved_model`` (the export reloaded, ``predict_float``; BatchNorm
folded into the convolutions, as ``main.py --mode=export`` writes it), ``saved_model_unfolded`` (the
same exported without folding, for comparison), ``saved_model_bf16`` (``--export_precision=bfloat16``:
bfloat16 convolutions, fast where the CPU has AMX / AVX512-BF16) and
``tflite_<float32|float16|dynamic_int8|int8>`` (ai-edge-litert, XNNPACK, ``os.cpu_count()``
threads). Each runs at the requested batch sizes on synthetic hand crops; the table gives the median
ms per batch, ms per image, images/s, the GFLOP/s achieved and how far each is from the FLOP limit
(ms/image divided by FLOPs / peak), with the machine's float32 peak measured by timing 2048x2048
``tf.linalg.matmul``. The forward pass's FLOPs are counted from the model: 2 x the multiply-adds of
every convolution / transposed convolution / dense layer, from its kernel and its built input shape
(the TF profiler's count of the frozen graph is printed beside it). ``mean/max Δuv px`` is each
variant's 2D drift from the eager float32 Keras output (per-joint distance in crop pixels) over the
``--representative_samples`` synthetic crops. Random weights get trained-looking BatchNorm statistics
and biases (``folding.randomize_batch_norms``), else folding would have nothing to fold. With
``--memory`` the peak resident memory of inference at batch 1 (SavedModel, TFLite int8) is measured
in fresh processes.

    python tools/bench_inference.py --input_size 256 --iterations 3
    python tools/bench_inference.py --checkpoint runs/synthetic --variants function,tflite_int8

Random weights unless ``--checkpoint``; timings on a shared machine vary run to run (the CPU time
the process used per wall second is printed to show contention).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/: bench_report
from bench_report import add_markdown_flag, portable_path, run_main  # noqa: E402

BASE_VARIANTS = ("eager", "function", "xla", "saved_model_unfolded", "saved_model", "saved_model_bf16")
TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
ALL_VARIANTS = BASE_VARIANTS + tuple(f"tflite_{v}" for v in TFLITE_VARIANTS)


def conv_flops(model) -> int:
    """FLOPs (2 x multiply-adds) of one image through every Conv2D, Conv2DTranspose and Dense layer,
    from the kernels and the input shapes the layers were built with."""
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)):
            continue
        input_shape = tuple(next(iter(layer._build_shapes_dict.values())))
        kernel = tuple(int(d) for d in layer.kernel.shape)
        if isinstance(layer, keras.layers.Conv2DTranspose):  # every input pixel scatters a kernel
            macs = np.prod(input_shape[1:3]) * np.prod(kernel)
        elif isinstance(layer, keras.layers.Conv2D):
            output_shape = layer.compute_output_shape(input_shape)
            macs = np.prod(output_shape[1:3]) * np.prod(kernel)
        else:
            macs = np.prod(input_shape[1:-1]) * np.prod(kernel)
        total += int(macs)
    return 2 * total


def profiler_flops(model, size) -> int | None:
    """The TF profiler's float-op count of the frozen forward graph for one image (cross-check)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        function = tf.function(lambda x: model(x, training=False, selector="hard")["uv"])
        frozen = convert_variables_to_constants_v2(
            function.get_concrete_function(tf.TensorSpec((1, size, size, 3), tf.float32))
        )
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        return int(tf.compat.v1.profiler.profile(frozen.graph, options=options).total_float_ops)
    except Exception:  # noqa: BLE001  the profiler is a legacy API; the count is informative only
        return None


def matmul_peak(n=2048, repeats=8) -> float:
    """float32 GFLOP/s of the best of ``repeats`` timed n x n matmuls (all cores)."""
    import tensorflow as tf

    a = tf.random.stateless_uniform((n, n), seed=[1, 2])
    b = tf.random.stateless_uniform((n, n), seed=[3, 4])
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def time_calls(fn, images, iterations, warmup=1):
    """(median, best) seconds per call of fn(images) after ``warmup`` calls (compilation,
    allocation). The best is measured the way the matmul peak is (best of its repeats), so the
    "best x FLOP limit" ratio compares like with like on a machine shared with other jobs."""
    for _ in range(warmup):
        fn(images)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn(images)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def _uv(out):
    value = out["uv"]
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _measure_rss(kind, path, threads) -> float:
    """Peak resident memory (MiB) of a fresh process that loads ``path`` and runs batch 1."""
    import subprocess
    import sys

    command = [sys.executable, os.path.abspath(__file__), "--rss_child", kind, path, "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    for line in done.stdout.splitlines():
        if line.startswith("PEAK_RSS_MB "):
            return float(line.split()[1])
    raise RuntimeError(f"memory measurement of {kind} failed: {done.stderr[-2000:]}")


def _rss_child(kind, path, threads) -> int:
    from bench_train import peak_rss_mb

    if kind == "saved_model":
        import tensorflow as tf

        signature = tf.saved_model.load(path).signatures["predict_float"]
        size = int(signature.structured_input_signature[1]["images"].shape[1])
        run = lambda x: signature(images=tf.constant(x))  # noqa: E731
    else:  # the LiteRT runtime alone, as on a phone: no TensorFlow in this process
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner("predict_float")
        size = int(runner.get_input_details()["images"]["shape_signature"][1])
        run = lambda x: runner(images=x)  # noqa: E731
    images = np.random.default_rng(0).uniform(size=(1, size, size, 3)).astype(np.float32)
    for _ in range(3):
        run(images)
    print(f"PEAK_RSS_MB {peak_rss_mb():.1f}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_size", type=int, default=256, help="crop side (random-weight model)")
    parser.add_argument("--checkpoint", default="", help="model to load (default: random weights, paper config)")
    parser.add_argument("--iterations", type=int, default=5, help="timed calls per variant and batch size")
    parser.add_argument("--variants", default=",".join(ALL_VARIANTS), help=f"comma list of {','.join(ALL_VARIANTS)}")
    parser.add_argument("--batch_sizes", default="1,8")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TFLite interpreter threads")
    parser.add_argument("--representative_samples", type=int, default=16, help="int8 calibration crops")
    parser.add_argument("--cache_dir", default="cache", help="synthetic hands (benchmark input, calibration)")
    parser.add_argument("--work_dir", default="", help="where the SavedModel and .tflite go (default: a temp dir)")
    parser.add_argument("--memory", action="store_true", help="peak RSS of batch-1 inference in fresh processes")
    parser.add_argument("--rss_child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    add_markdown_flag(parser)
    args = parser.parse_args(argv)
    if args.rss_child:
        return _rss_child(*args.rss_child, args.threads)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from lgh_tf.export import saved_model as sm
    from lgh_tf.export import tflite

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(ALL_VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {','.join(ALL_VARIANTS)}")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    keras.utils.set_random_seed(0)
    if args.checkpoint:
        from lgh_tf.model.io import load_model

        model = load_model(args.checkpoint)
    else:
        from lgh_tf.config import ModelConfig
        from lgh_tf.export.folding import randomize_batch_norms
        from lgh_tf.model.network import LearnableGroupsNet

        model = LearnableGroupsNet(ModelConfig(input_size=args.input_size)).build_for_input()
        randomize_batch_norms(model, seed=0)
    size = model.config.input_size
    flops = conv_flops(model)
    profiled = profiler_flops(model, size)
    peak = matmul_peak()
    c = model.config
    print(f"model: {args.checkpoint or 'random weights'}, {size}x{size}, K={c.num_groups}, fusion={c.fusion}, "
          f"backbone {c.backbone_filters}, {model.count_params() / 1e6:.2f} M parameters")
    print(f"forward FLOPs/image: {flops / 1e9:.2f} GFLOP (2 x conv/dense MACs, from the layers)"
          + (f"; TF profiler on the frozen graph: {profiled / 1e9:.2f} GFLOP" if profiled else ""))
    limit_ms = flops / (peak * 1e9) * 1e3  # ms/image at the matmul peak
    print(f"float32 matmul peak (2048x2048, {os.cpu_count()} cores): {peak:.1f} GFLOP/s -> FLOP limit "
          f"{limit_ms:.1f} ms/image")

    crops = tflite.synthetic_representative_images(size, max(args.representative_samples, max(batch_sizes)),
                                                   args.cache_dir)
    inputs = {b: np.concatenate(crops[:b]) for b in batch_sizes}
    drift_inputs = np.concatenate(crops)
    reference = model(drift_inputs, training=False, selector="hard")["uv"].numpy()

    runners, memory = {}, {}
    if "eager" in variants:
        runners["eager"] = lambda x: model(x, training=False, selector="hard")
    if "function" in variants:
        runners["function"] = tf.function(lambda x: model(x, training=False, selector="hard"))
    if "xla" in variants:
        runners["xla"] = tf.function(lambda x: model(x, training=False, selector="hard"), jit_compile=True)
    tflite_wanted = [v for v in TFLITE_VARIANTS if f"tflite_{v}" in variants]
    temporary = None if args.work_dir else tempfile.TemporaryDirectory(prefix="lgh_bench_")
    work = args.work_dir or temporary.name
    if "saved_model_unfolded" in variants:
        unfolded = sm.export_saved_model(model, os.path.join(work, "saved_model_unfolded"), fold_batch_norms=False)
        unfolded_signature = tf.saved_model.load(unfolded).signatures["predict_float"]
        runners["saved_model_unfolded"] = lambda x: unfolded_signature(images=tf.constant(x))
    if "saved_model_bf16" in variants:
        bf16 = sm.export_saved_model(model, os.path.join(work, "saved_model_bf16"), precision="bfloat16")
        bf16_signature = tf.saved_model.load(bf16).signatures["predict_float"]
        runners["saved_model_bf16"] = lambda x: bf16_signature(images=tf.constant(x))
    if "saved_model" in variants or tflite_wanted or args.memory:
        start = time.perf_counter()
        path = sm.export_saved_model(model, os.path.join(work, "saved_model"))
        print(f"exported {portable_path(path, root=work)} (BatchNorm folded) "
              f"in {time.perf_counter() - start:.0f} s")
        if "saved_model" in variants:
            signature = tf.saved_model.load(path).signatures["predict_float"]
            runners["saved_model"] = lambda x: signature(images=tf.constant(x))
        if args.memory and "int8" not in tflite_wanted:
            tflite_wanted.append("int8")
        for variant in tflite_wanted:
            start = time.perf_counter()
            file = tflite.convert(path, variant, crops[: args.representative_samples])
            print(f"converted tflite_{variant} ({os.path.getsize(file) / 1e6:.1f} MB) in "
                  f"{time.perf_counter() - start:.0f} s")
            runner = tflite.TFLiteRunner(file, num_threads=args.threads)
            if f"tflite_{variant}" in variants:
                runners[f"tflite_{variant}"] = runner
        if args.memory:
            memory["saved_model"] = _measure_rss("saved_model", path, args.threads)
            memory["tflite_int8"] = _measure_rss("tflite", tflite.tflite_path(path, "int8"), args.threads)

    rows = []
    for name in [v for v in ALL_VARIANTS if v in runners]:
        fn = runners[name]
        drift = np.linalg.norm(_uv(fn(drift_inputs)) - reference, axis=-1)  # per joint, crop px
        deviation = (float(drift.mean()), float(drift.max()))
        for batch in batch_sizes:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            seconds, best = time_calls(fn, inputs[batch], args.iterations, warmup=1 if name != "xla" else 2)
            cpu_share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
            ms_image, best_ms_image = 1e3 * seconds / batch, 1e3 * best / batch
            rows.append((name, batch, 1e3 * seconds, ms_image, batch / seconds,
                         flops / (seconds / batch) / 1e9, ms_image / limit_ms, best_ms_image,
                         best_ms_image / limit_ms, deviation, cpu_share))
            print(f"  {name} batch {batch}: {ms_image:.1f} ms/image", flush=True)

    header = ("variant", "batch", "ms/batch", "ms/image", "images/s", "GFLOP/s", "x FLOP limit",
              "best ms/image", "best x FLOP limit", "mean / max Δuv px", "CPU/wall")
    print("\n| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for name, batch, ms_batch, ms_image, ips, gflops, ratio, best_ms, best_ratio, deviation, cpu_share in rows:
        print(f"| {name} | {batch} | {ms_batch:.1f} | {ms_image:.1f} | {ips:.2f} | {gflops:.1f} | {ratio:.2f} | "
              f"{best_ms:.1f} | {best_ratio:.2f} | {deviation[0]:.2g} / {deviation[1]:.2g} | {cpu_share:.2f} |")
    print(f"\nFLOP limit: {flops / 1e9:.2f} GFLOP / {peak:.1f} GFLOP/s = {limit_ms:.1f} ms/image; "
          f"TFLite: XNNPACK, {args.threads} threads; iterations: {args.iterations} (median); drift over "
          f"{len(drift_inputs)} synthetic crops")
    by_key = {(name, batch): ms_image for name, batch, _, ms_image, *_ in rows}
    best_by_key = {(row[0], row[1]): row[7] for row in rows}
    if ("saved_model", 1) in by_key:
        print(f"SavedModel float32, batch 1: {by_key[('saved_model', 1)]:.1f} ms/image (median) = "
              f"{by_key[('saved_model', 1)] / limit_ms:.2f}x the FLOP limit; "
              f"best {best_by_key[('saved_model', 1)]:.1f} "
              f"ms/image = {best_by_key[('saved_model', 1)] / limit_ms:.2f}x")
        if ("saved_model", 8) in by_key:
            print(f"SavedModel float32, batch 8 / batch 1 per image: "
                  f"{by_key[('saved_model', 8)] / by_key[('saved_model', 1)]:.2f}")
        if ("tflite_int8", 1) in by_key:
            print(f"TFLite int8 batch 1 speed-up over the SavedModel: "
                  f"{by_key[('saved_model', 1)] / by_key[('tflite_int8', 1)]:.2f}x")
    for kind, mb in memory.items():
        print(f"peak resident memory, {kind} inference at batch 1 (fresh process): {mb:.0f} MiB")
    if temporary is not None:
        runners.clear()
        temporary.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main("bench_inference", main))
