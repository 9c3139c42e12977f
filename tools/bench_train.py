"""Training throughput: images/s of the full train step with each compile option, the input
pipeline beside it, and peak memory.

Every option runs in its own process (a mixed-precision policy is global, and peak resident
memory is per process): stage ``full`` (network + Eq. 10 + the three per-group Adam updates), the
paper's network at ``--input_size``, on one fixed batch of synthetic hands (so only the step is
timed), after one untimed step (tracing / XLA compilation, which is reported too). Options:

  ``default``       tf.function, float32 (what ``main.py --mode=train`` uses unless told otherwise)
  ``jit``           tf.function(jit_compile=True)                                (--jit_compile)
  ``bf16``          Keras policy mixed_bfloat16: bfloat16 compute, float32 weights (--mixed_precision)
  ``jit+bf16``      both

Side by side: when torch and the authors' network (``--reference_dir``, default
``../shared/reference/authors``) are here, their train step (as their bench_reference_train.py:
train-mode forward, an Eq. 10-shaped loss, backward, three Adams; on the GPU when torch has one) is
timed in the same run. Ours and the reference run in two long-lived processes that take turns:
``--repeats`` rounds of ``--steps`` steps each, so both see the same moments of a shared machine;
``x reference`` is the median (min-max) over rounds of our images/s over theirs. ``--options none``
times the reference alone (no TensorFlow needed). Without torch or their network the reference is
skipped with a note. ``--breakdown`` times parts of the float32 step instead (forward, backward,
the optimizers, the step without BatchNorm), wall and CPU time; ``--profile`` records ``--steps``
float32 steps with TensorFlow's profiler and sums its kernels' time by kind (convolution forward,
its two gradients, BatchNorm, ReLU, Adam, ...). ``--markdown [PATH]`` writes the
output with the machine block to docs/benchmarks/bench_train.md (tools/bench_report.py).

The input pipeline (``lgh_tf.data.pipeline.make_dataset`` with the paper's augmentation, read +
decode + one affine warp per image) is timed at the same batch size on the synthetic hands.
``peak RSS`` is the process's peak resident memory (VmHWM); on a GPU the device's peak
allocation is printed as well. ``--memory_batch`` (default 32) reruns the default option at that
batch (one traced and one timed step) to report its peak memory, whatever batch the timing used.

    python tools/bench_train.py                         # CPU: batch 4, all options, beside the reference
    python tools/bench_train.py --options default,bf16,jit --repeats 3 --steps 2 --memory_batch 0 --markdown
    python tools/bench_train.py --breakdown --steps 3 --markdown docs/benchmarks/bench_train_breakdown.md
    python tools/bench_train.py --profile --steps 2 --markdown docs/benchmarks/bench_train_profile.md
    python tools/bench_train.py --batch_size 32         # GPU
    python tools/bench_train.py --input_size 128 --options default,bf16 --memory_batch 0
    python tools/bench_train.py --preset=synthetic --batch_size 16 --steps 10 --options default --memory_batch 0

``--preset=synthetic`` times the quickstart's network (``flags/synthetic.cfg``: 64 px, its widths)
at its batch: a check of how fast a machine runs the quickstart, and how fast it runs now.

``--strategy=mirrored`` times the default option under ``tf.distribute.MirroredStrategy`` for each
replica count of ``--replicas`` instead (per-replica batch ``--batch_size``, so the global batch
grows with the replicas): one replica per GPU, or, without GPUs, per logical CPU device
(``tf.config.set_logical_device_configuration``). Logical CPU devices share the same cores, so on
a CPU the figures measure the cost of the replication (all-reduce, per-replica graphs), not
scaling.

    python tools/bench_train.py --strategy=mirrored --replicas 1,2 --input_size 128 --memory_batch 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/: bench_report, ablation
from bench_report import Capture, add_markdown_flag, write_markdown  # noqa: E402

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared",
                             "reference", "authors")
FIRST_STEP_CPU_S = [float("nan")]  # this process's CPU seconds in the first step (less noisy on a shared machine)
OPTIONS = {"default": (False, False), "jit": (True, False), "bf16": (False, True), "jit+bf16": (True, True)}
# The flags of flags/synthetic.cfg that shape the network (--preset=synthetic).
PRESET_FIELDS = ("input_size", "backbone_filters", "hourglass_depth", "group_channels", "trunk_hidden")


def preset_config(preset):
    """{ModelConfig field: value} of the quickstart preset's network, or {} for the paper's."""
    if not preset:
        return {}
    from ablation import synthetic_defaults  # tools/ is this script's directory

    values = synthetic_defaults()
    return {name: int(values[name]) for name in PRESET_FIELDS if name in values}


def preset_widths(preset):
    """preset_config without the input size (``--input_size`` carries it): ModelConfig overrides."""
    return {name: value for name, value in preset_config(preset).items() if name != "input_size"}


def network_name(args):
    return "the quickstart's network" if args.preset else "paper network"


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: VmHWM of /proc/self/status. (ru_maxrss is no
    use in a child process: Linux carries the parent's peak across fork + exec.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_batch(input_size, batch_size, cache_dir, augment=True):
    """One pipeline batch of synthetic hands (a dict of tensors), as ``fit`` receives it."""
    from lgh_tf.config import DataConfig
    from lgh_tf.data.pipeline import make_dataset
    from lgh_tf.data.synthetic import load_synthetic

    records = load_synthetic(cache_dir, "test", num_samples=max(batch_size, 8))
    data = DataConfig(output_size=input_size, batch_size=batch_size, augment=augment, seed=0)
    dataset = make_dataset(records, data, training=True)
    return next(iter(dataset))


def mirrored_strategy(replicas):
    """MirroredStrategy over ``replicas`` GPUs, or, without GPUs, over as many logical CPU devices
    (split here: call before TensorFlow has initialised its devices)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < replicas:
            raise RuntimeError(f"{replicas} replicas need {replicas} GPUs, found {len(gpus)}")
        devices = [f"/gpu:{i}" for i in range(replicas)]
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


PARTS = ("step", "forward_backward", "forward", "optimizers", "no_batchnorm")


def part_function(task, part):
    """What ``part`` of the train step runs (the step's time breakdown, ``--breakdown``): the whole
    ``step``; the ``forward`` pass and loss; ``forward_backward`` (gradients, no update); the three
    ``optimizers`` alone on constant gradients; or the whole step with every BatchNorm an identity
    (``no_batchnorm``, patched in this process only)."""
    import keras
    import tensorflow as tf

    if part in ("step", "no_batchnorm"):
        if part == "no_batchnorm":
            classes = [keras.layers.BatchNormalization]
            while classes:
                cls = classes.pop()
                cls.call = lambda self, x, training=None, mask=None: x
                classes += cls.__subclasses__()
        return task.train_step
    groups = task.trainable_groups()
    variables = [v for vs in groups.values() for v in vs]

    def forward(batch):
        return {"loss": tf.reduce_mean(task.compute_terms(batch, training=True)["loss"])}

    def forward_backward(batch):
        with tf.GradientTape() as tape:
            loss = forward(batch)["loss"]
        gradients = tape.gradient(loss, variables)
        return {"loss": loss + 0.0 * tf.add_n([tf.reduce_sum(g) for g in gradients if g is not None])}

    def optimizers(batch):
        for group, group_vars in groups.items():
            task.optimizers[group].apply_gradients([(tf.fill(v.shape, 1e-3), v) for v in group_vars])
        return {"loss": tf.constant(0.0)}

    return {"forward": forward, "forward_backward": forward_backward, "optimizers": optimizers}[part]


def build_train_step(input_size=256, batch_size=4, jit_compile=False, mixed_precision=False, cache_dir="cache",
                     config_overrides=None, replicas=0, part="step"):
    """Builds the paper's network (``config_overrides`` change it), compiles stage ``full`` with the
    given options and runs one (untimed: tracing / compilation) step on one fixed batch; with
    ``replicas`` > 0 under a MirroredStrategy of that many replicas, ``batch_size`` each.
    Returns (run, global batch size, first step s, build s, loss): ``run(n)`` takes n more steps and returns
    their seconds each (waiting for each to finish) and the last loss."""
    import contextlib

    import keras
    import tensorflow as tf

    from lgh_tf.config import ModelConfig, OptimConfig
    from lgh_tf.model.network import LearnableGroupsNet
    from lgh_tf.training.task import HandPoseTask

    strategy = mirrored_strategy(replicas) if replicas else None
    keras.utils.set_random_seed(0)
    batch_size *= max(replicas, 1)  # the global batch
    batch = synthetic_batch(input_size, batch_size, cache_dir)
    config = ModelConfig(input_size=input_size, **(config_overrides or {}))
    start = time.perf_counter()
    with strategy.scope() if strategy else contextlib.nullcontext():
        network = LearnableGroupsNet(config, dtype="mixed_bfloat16" if mixed_precision else None)
        task = HandPoseTask(network.build_for_input(), OptimConfig(stage="full"))
        task.compile()
    if strategy:
        batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch))))

        def replicated(data):
            logs = strategy.run(task.train_step, args=(data,))
            return {"loss": strategy.reduce("MEAN", logs["loss"], axis=None)}

        step = tf.function(replicated, jit_compile=jit_compile)
    else:
        # No AutoGraph: Keras traces its train step without it (do_not_convert), so the first step here is fit's.
        step = tf.function(part_function(task, part), jit_compile=jit_compile, autograph=False)
    build = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()  # the first step: tracing, graph optimisation, one run
    loss = float(step(batch)["loss"])
    first = time.perf_counter() - start
    FIRST_STEP_CPU_S[0] = time.process_time() - cpu

    def run(steps):
        seconds = []
        for _ in range(steps):
            begin = time.perf_counter()
            last = float(step(batch)["loss"])  # waits for the step
            seconds.append(time.perf_counter() - begin)
        return seconds, last

    return run, batch_size, first, build, loss


def device_memory() -> dict:
    """peak_rss_mb, and gpu_peak_mb on a GPU."""
    import tensorflow as tf

    result = {"peak_rss_mb": peak_rss_mb()}
    if tf.config.list_physical_devices("GPU"):
        result["gpu_peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return result


def time_train_step(input_size=256, batch_size=4, jit_compile=False, mixed_precision=False, steps=3,
                    cache_dir="cache", config_overrides=None, replicas=0, part="step") -> dict:
    """``build_train_step`` then ``steps`` timed steps. Returns a dict with images_per_s, step_ms
    (median), first_step_s (tracing / compilation + one step), build_s (network, optimizer slots),
    loss, peak_rss_mb and, on a GPU, gpu_peak_mb."""
    import numpy as np

    run, batch_size, first, build, loss = build_train_step(input_size, batch_size, jit_compile, mixed_precision,
                                                           cache_dir, config_overrides, replicas, part)
    cpu = time.process_time()
    seconds, loss = run(steps) if steps else ([float("nan")], loss)
    cpu = (time.process_time() - cpu) / max(steps, 1)
    median = float(np.median(seconds))
    return {"images_per_s": batch_size / median, "step_ms": 1e3 * median, "step_cpu_ms": 1e3 * cpu,
            "first_step_s": first, "first_step_cpu_s": FIRST_STEP_CPU_S[0], "build_s": build,
            "loss": loss, "finite": bool(np.isfinite(loss)), **device_memory()}


def reference_dir_problem(ref_dir) -> str:
    """Why the authors' PyTorch step cannot be timed here ("" when it can)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install -e '.[torch]')"
    if not os.path.isfile(os.path.join(ref_dir, "nets", "Net.py")):
        return f"the authors' network is not at {ref_dir}/nets/Net.py (../shared/reference/authors beside the checkout)"
    return ""


def build_reference_step(ref_dir, input_size=256, batch_size=4, groups=3):
    """The authors' train step, as their bench_reference_train.py times it: forward in train mode
    (Concrete sample at temperature 1), an Eq. 10-shaped l1 loss on uv / depth, backward, three Adams
    (selector 1e-1, fusion 1e-2, the rest 1e-4), on one fixed random batch; on the GPU when torch has
    one. Their network is imported from ``ref_dir`` here, at run time, and nowhere in lgh_tf.
    Returns (run, batch size, first step s, build s, loss) as ``build_train_step``."""
    import torch

    if ref_dir not in sys.path:
        sys.path.insert(0, ref_dir)
    from nets.Net import Learnable_Groups

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = Learnable_Groups([groups, groups > 1], input_size, 21, [32, 32]).to(device).train()
    selector = [model.meta_S.weight]
    fusion = [p for name, p in model.named_parameters() if name.startswith("nddr")]
    ids = {id(t) for t in selector + fusion}
    rest = [p for p in model.parameters() if id(p) not in ids]
    optimizers = [torch.optim.Adam(selector, 1e-1), torch.optim.Adam(rest, 1e-4)]
    optimizers += [torch.optim.Adam(fusion, 1e-2)] if fusion else []
    x = torch.rand(batch_size, 3, input_size, input_size, device=device)
    uv_true = torch.rand(batch_size, 21, 2, device=device) * input_size
    depth_true = torch.randn(batch_size, 21, device=device) * 0.1
    build = time.perf_counter() - start

    def step():
        uv, depth = model(x, 1.0)
        loss = (uv - uv_true).abs().mean() + 20 * (depth - depth_true).abs().mean()
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        return loss

    start, cpu = time.perf_counter(), time.process_time()
    loss = float(step())
    sync()
    first = time.perf_counter() - start
    FIRST_STEP_CPU_S[0] = time.process_time() - cpu

    def run(steps):
        seconds, last = [], float("nan")
        for _ in range(steps):
            begin = time.perf_counter()
            last = float(step())  # .item() waits for the step
            sync()
            seconds.append(time.perf_counter() - begin)
        return seconds, last

    return run, batch_size, first, build, loss


def _serve(args) -> int:
    """A long-lived child: builds one step (an option of ours, or ``reference``), prints READY, then
    runs ``STEPS n`` requests from stdin (printing TIMES) until QUIT (printing RESULT). The parent
    alternates two such children, so ours and the reference share the machine's moments."""
    import numpy as np

    widths = preset_widths(args.preset)
    if args.threads:
        if args.child == "reference":
            import torch

            torch.set_num_threads(args.threads)
        else:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.child == "reference":
        run, batch_size, first, build, loss = build_reference_step(args.reference_dir, args.input_size,
                                                                   args.batch_size)
    else:
        jit_compile, mixed_precision = OPTIONS[args.child]
        run, batch_size, first, build, loss = build_train_step(args.input_size, args.batch_size, jit_compile,
                                                               mixed_precision, args.cache_dir, widths)
    print("READY " + json.dumps({"first_step_s": first, "build_s": build, "loss": loss}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command and command[0] == "STEPS":
            seconds, loss = run(int(command[1]))
            print("TIMES " + json.dumps({"seconds": seconds, "loss": loss}), flush=True)
        else:
            break
    result = {"first_step_s": first, "first_step_cpu_s": FIRST_STEP_CPU_S[0], "build_s": build, "loss": loss,
              "finite": bool(np.isfinite(loss)),
              "batch_size": batch_size, "peak_rss_mb": peak_rss_mb()}
    if args.child != "reference":
        result.update(device_memory())
    print("RESULT " + json.dumps(result), flush=True)
    return 0


class Server:
    """The parent's handle on a ``_serve`` child."""

    def __init__(self, args, child, batch_size):
        command = [sys.executable, os.path.abspath(__file__), "--child", child, "--serve", "--input_size",
                   str(args.input_size), "--batch_size", str(batch_size), "--cache_dir", args.cache_dir,
                   "--preset", args.preset, "--reference_dir", args.reference_dir, "--threads", str(args.threads)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        self.child = child
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self.ready = self._expect("READY")

    def _expect(self, tag):
        for line in self.process.stdout:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1:])
        tail = self.process.stderr.read().strip().splitlines()[-5:]
        raise RuntimeError(f"{self.child}: " + " | ".join(tail))

    def steps(self, n):
        self.process.stdin.write(f"STEPS {n}\n")
        self.process.stdin.flush()
        return self._expect("TIMES")

    def close(self):
        self.process.stdin.write("QUIT\n")
        self.process.stdin.flush()
        result = self._expect("RESULT")
        self.process.wait()
        return result


def side_by_side(args, options, batch_size, reference_problem):
    """Times each option against the reference, interleaved: for each of ``--repeats`` rounds, ``--steps``
    steps of ours then of the reference (the order alternating). Returns rows and the reference's row.
    A round's figure is its median step; an option's images/s is the median over rounds, its spread
    the rounds' min-max; ``x reference`` is the median (min-max) of the rounds' ratios."""
    import numpy as np

    reference = None
    if not reference_problem:
        try:
            reference = Server(args, "reference", batch_size)
            print(f"  reference: first step {reference.ready['first_step_s']:.1f} s", flush=True)
        except RuntimeError as error:
            reference_problem = f"the reference failed: {error}"
    reference_rounds, rows = [], []
    for option in options:
        try:
            ours = Server(args, option, batch_size)
        except RuntimeError as error:
            rows.append((option, {"error": str(error)}))
            continue
        ours_rounds, ratios = [], []
        for round_ in range(args.repeats):
            order = [ours, reference] if round_ % 2 == 0 else [reference, ours]
            medians = {}
            for server in order:
                if server is not None:
                    medians[server.child] = float(np.median(server.steps(args.steps)["seconds"]))
            ours_rounds.append(batch_size / medians[option])
            if reference is not None:
                reference_rounds.append(batch_size / medians["reference"])
                ratios.append(medians["reference"] / medians[option])
        result = ours.close()
        result.update(rounds=ours_rounds, ratios=ratios, images_per_s=float(np.median(ours_rounds)))
        result["step_ms"] = 1e3 * batch_size / result["images_per_s"]
        rows.append((option, result))
        print(f"  {option}: {result}", flush=True)
    reference_row = None
    if reference is not None:
        if not options:  # the reference alone
            for _ in range(args.repeats):
                reference_rounds.append(batch_size / float(np.median(reference.steps(args.steps)["seconds"])))
        reference_row = reference.close()
        reference_row.update(rounds=reference_rounds, images_per_s=float(np.median(reference_rounds)))
        reference_row["step_ms"] = 1e3 * batch_size / reference_row["images_per_s"]
    return rows, reference_row, reference_problem


def spread(values, fmt="{:.2f}"):
    """'median (min-max)' of ``values``."""
    import numpy as np

    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(float(np.median(values)))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def time_pipeline(input_size, batch_size, cache_dir, batches=20, warmup=3) -> float:
    """Images/s of the training input pipeline (augmentation on) over the synthetic hands."""
    from lgh_tf.config import DataConfig
    from lgh_tf.data.pipeline import make_dataset
    from lgh_tf.data.synthetic import load_synthetic

    records = load_synthetic(cache_dir, "train")
    data = DataConfig(output_size=input_size, batch_size=batch_size, augment=True, seed=0)
    iterator = iter(make_dataset(records, data, training=True))
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def _child(args) -> int:
    """Runs one measurement in this (fresh) process and prints it as one JSON line."""
    # The preset's widths; its input size is already args.input_size (main()).
    widths = preset_widths(args.preset)
    if args.child == "pipeline":
        result = {"images_per_s": time_pipeline(args.input_size, args.batch_size, args.cache_dir),
                  "peak_rss_mb": peak_rss_mb()}
    elif args.child.startswith("part:"):
        result = time_train_step(args.input_size, args.batch_size, steps=args.steps, cache_dir=args.cache_dir,
                                 config_overrides=widths, part=args.child.split(":")[1])
    elif args.child.startswith("mirrored:"):
        result = time_train_step(args.input_size, args.batch_size, steps=args.steps, cache_dir=args.cache_dir,
                                 config_overrides=widths, replicas=int(args.child.split(":")[1]))
    else:
        jit_compile, mixed_precision = OPTIONS[args.child]
        result = time_train_step(args.input_size, args.batch_size, jit_compile, mixed_precision,
                                 args.steps, args.cache_dir, config_overrides=widths)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def _run_child(args, child, batch_size, steps) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", child, "--input_size", str(args.input_size),
               "--batch_size", str(batch_size), "--steps", str(steps), "--cache_dir", args.cache_dir,
               "--preset", args.preset]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
    return {"error": " | ".join(tail)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_size", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=0, help="default: 32 on a GPU, 4 on the CPU")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per option and round")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds per option, each ours then the reference (interleaved)")
    parser.add_argument("--options", default=",".join(OPTIONS),
                        help=f"comma list of {','.join(OPTIONS)}; 'none': the reference alone (no TensorFlow)")
    parser.add_argument("--memory_batch", type=int, default=32, help="batch for the peak-memory run (0: skip)")
    parser.add_argument("--cache_dir", default="cache", help="synthetic hands (generated on first use)")
    parser.add_argument("--strategy", default="default", choices=["default", "mirrored"],
                        help="mirrored: time the default option over each --replicas count instead")
    parser.add_argument("--replicas", default="1,2", help="--strategy=mirrored: comma list of replica counts")
    parser.add_argument("--preset", default="", choices=["", "synthetic"],
                        help="synthetic: the quickstart's network (flags/synthetic.cfg: input size and widths)")
    parser.add_argument("--reference_dir", default=str(REFERENCE_DIR),
                        help="the authors' PyTorch network (nets/Net.py), timed side by side when torch is here")
    parser.add_argument("--no_reference", action="store_true", help="do not time the authors' step")
    parser.add_argument("--threads", type=int, default=0,
                        help="side by side: compute threads of ours and the reference (0: their defaults, all cores); "
                             "1 keeps the comparison fair on a machine that other jobs oversubscribe")
    parser.add_argument("--no_pipeline", action="store_true", help="do not time the input pipeline")
    parser.add_argument("--breakdown", action="store_true",
                        help=f"time parts of the float32 step instead ({', '.join(PARTS)}), each in its own process")
    parser.add_argument("--profile", action="store_true",
                        help="the float32 step's kernel time by kind, from TensorFlow's profiler")
    add_markdown_flag(parser)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.preset:
        args.input_size = preset_config(args.preset)["input_size"]
    if args.child:
        return _serve(args) if args.serve else _child(args)
    with Capture() as captured:
        if args.profile:
            code = _main_profile(args)
        elif args.breakdown:
            code = _main_breakdown(args)
        else:
            code = _main_mirrored(args) if args.strategy == "mirrored" else _main_options(args, parser)
    if args.markdown:
        path = write_markdown("bench_train", captured.text(), "" if args.markdown == "-" else args.markdown,
                              sys.argv[1:] if argv is None else argv)
        print(f"wrote {path}")
    return code


def _main_options(args, parser) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    options = [o.strip() for o in args.options.split(",") if o.strip() and o.strip() != "none"]
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown options {unknown}; choose from {','.join(OPTIONS)}")
    reference_problem = "--no_reference" if args.no_reference else reference_dir_problem(args.reference_dir)
    if args.preset and not reference_problem:
        reference_problem = "the reference is the paper's network; --preset changes ours"
    if options:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        device = f"GPU ({gpus[0].name})" if gpus else f"CPU ({os.cpu_count()} cores)"
        versions = f"TF {tf.__version__}"
    else:  # the reference alone: no TensorFlow needed
        import torch

        gpus = [0] if torch.cuda.is_available() else []
        device = f"GPU ({torch.cuda.get_device_name(0)})" if gpus else f"CPU ({os.cpu_count()} cores)"
        versions = f"torch {torch.__version__}"
    batch_size = args.batch_size or (32 if gpus else 4)
    if options:
        from lgh_tf.data.synthetic import load_synthetic

        # Generate the synthetic splits the children read once, before they race for them.
        load_synthetic(args.cache_dir, "train")
        for size in {batch_size, args.memory_batch} - {0}:
            load_synthetic(args.cache_dir, "test", num_samples=max(size, 8))
    threads = f"{args.threads} thread(s) each" if args.threads else "default threads"
    print(f"train step, stage full, {network_name(args)} {args.input_size}x{args.input_size}, batch {batch_size}, "
          f"{args.repeats} rounds x {args.steps} timed steps per option, {device}, {threads}, {versions}", flush=True)
    if reference_problem:
        print(f"reference (the authors' PyTorch step) not timed: {reference_problem}", flush=True)

    rows, reference, reference_problem = side_by_side(args, options, batch_size, reference_problem)
    pipeline = {}
    if options and not args.no_pipeline:
        pipeline = _run_child(args, "pipeline", batch_size, 0)
        print(f"  pipeline: {pipeline}", flush=True)

    header = ("option", "images/s (rounds' min-max)", "ms/step", "x default", "x reference (min-max)",
              "first step s (CPU s)", "build s", "peak RSS MiB", "GPU peak MiB", "loss")
    print_table(header, rows, "default", lambda option, r, ratio, gpu: [
        option, spread(r["rounds"]), f"{r['step_ms']:.0f}", ratio, spread(r["ratios"]),
        f"{r['first_step_s']:.1f} ({r['first_step_cpu_s']:.1f})", f"{r['build_s']:.1f}", f"{r['peak_rss_mb']:.0f}",
        gpu, f"{r['loss']:.4g}"])
    if reference:
        print(f"| reference (authors' PyTorch, float32) | {spread(reference['rounds'])} | {reference['step_ms']:.0f} | "
              f"- | 1 | {reference['first_step_s']:.1f} ({reference['first_step_cpu_s']:.1f}) | "
              f"{reference['build_s']:.1f} | {reference['peak_rss_mb']:.0f} | - | {reference['loss']:.4g} |")
        print("\nx reference: our images/s over the reference's in the same round (ours and the reference "
              "alternate, each in its own process); both steps run stage 2 of the paper's network (K=3, "
              "fusion) with an Eq. 10-shaped loss and three Adams.")
    elif reference_problem:
        print(f"\nreference not timed: {reference_problem}")
    if "images_per_s" in pipeline:
        best = max((r["images_per_s"] for _, r in rows if "images_per_s" in r), default=0.0)
        verdict = "the pipeline is not the bottleneck" if pipeline["images_per_s"] > best else "PIPELINE-BOUND"
        print(f"\ninput pipeline (augmentation on, batch {batch_size}): {pipeline['images_per_s']:.1f} images/s "
              f"= {pipeline['images_per_s'] / best:.1f}x the fastest train step ({verdict})" if best else "")
    if args.memory_batch and options:
        memory = _run_child(args, "default", args.memory_batch, 1)
        if "error" in memory:
            print(f"peak memory at batch {args.memory_batch}: failed ({memory['error'][:300]})")
        else:
            gpu = f", GPU peak {memory['gpu_peak_mb']:.0f} MiB" if "gpu_peak_mb" in memory else ""
            print(f"peak resident memory, training (default option) at batch {args.memory_batch}: "
                  f"{memory['peak_rss_mb']:.0f} MiB{gpu} ({memory['step_ms'] / 1e3:.1f} s/step)")
    return 0


def print_table(header, rows, base_key, cells):
    """A Markdown table of ``rows`` ((key, result) pairs); ``cells(key, result, ratio, gpu)`` gives a
    row's cells, ``ratio`` its images/s over that of ``base_key`` (measured in the same run)."""
    print("\n| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    base = dict(rows).get(base_key, {}).get("images_per_s")
    for key, r in rows:
        if "error" in r:
            print(f"| {key} | failed: {r['error'][:200]} |")
            continue
        ratio = f"{r['images_per_s'] / base:.2f}" if base else "-"
        gpu = f"{r['gpu_peak_mb']:.0f}" if "gpu_peak_mb" in r else "-"
        print("| " + " | ".join(str(cell) for cell in cells(key, r, ratio, gpu)) + " |")


def _main_breakdown(args) -> int:
    """Where the float32 step's time goes: each part of PARTS timed in its own process, wall and CPU."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from lgh_tf.data.synthetic import load_synthetic

    batch_size = args.batch_size or (32 if tf.config.list_physical_devices("GPU") else 4)
    load_synthetic(args.cache_dir, "test", num_samples=max(batch_size, 8))
    print(f"train step breakdown, float32, stage full, {network_name(args)} {args.input_size}x{args.input_size}, "
          f"batch {batch_size}, {args.steps} timed steps per part, TF {tf.__version__}", flush=True)
    rows = []
    for part in PARTS:
        result = _run_child(args, f"part:{part}", batch_size, args.steps)
        rows.append((part, result))
        print(f"  {part}: {result}", flush=True)
    header = ("part", "ms/step (median)", "CPU ms/step", "x step (CPU)", "first step s", "first step CPU s")
    step_cpu = dict(rows).get("step", {}).get("step_cpu_ms")
    print_table(header, rows, "step", lambda part, r, ratio, gpu: [
        part, f"{r['step_ms']:.0f}", f"{r['step_cpu_ms']:.0f}",
        f"{r['step_cpu_ms'] / step_cpu:.2f}" if step_cpu else "-", f"{r['first_step_s']:.1f}",
        f"{r['first_step_cpu_s']:.1f}"])
    print("\nbatch norm's share = step - no_batchnorm; the optimizers' = step - forward_backward (or the "
          "optimizers row alone); the backward pass = forward_backward - forward. CPU ms count both cores.")
    return 0


# Kernel kinds of the profile: (label, op types as the CPU (oneDNN) or GPU runtime names them).
KERNEL_KINDS = (
    ("convolution, forward", ("_MklNativeFusedConv2D", "_MklNativeConv2D", "_MklFusedConv2D", "_MklConv2D",
                              "Conv2D", "_FusedConv2D", "Conv2DTranspose")),
    ("convolution, gradient of the weights", ("_MklNativeConv2DBackpropFilterWithBias",
                                              "_MklNativeConv2DBackpropFilter", "Conv2DBackpropFilter",
                                              "_MklConv2DBackpropFilterWithBias", "BiasAddGrad")),
    ("convolution, gradient of the input", ("_MklNativeConv2DBackpropInput", "Conv2DBackpropInput")),
    ("1x1 convolutions in training: matrix products, forward and both gradients",
     ("_MklMatMul", "_MklNativeMatMul", "MatMul", "_MklFusedMatMul", "_MklNativeFusedMatMul", "_FusedMatMul")),
    ("BatchNorm, forward", ("_MklNativeFusedBatchNormV3", "_MklNativeFusedBatchNormEx", "FusedBatchNormV3",
                            "_FusedBatchNormEx")),
    ("BatchNorm, gradient", ("_MklNativeFusedBatchNormGradV3", "FusedBatchNormGradV3", "_FusedBatchNormGradEx")),
    ("ReLU and its gradient", ("Relu", "ReluGrad", "_MklRelu", "_MklReluGrad")),
    ("sums of gradients (AddN)", ("AddN", "_MklAddN")),
    ("Adam updates", ("ResourceApplyAdam",)),
)


def profile_kernels(logdir) -> dict:
    """{op type: (milliseconds, events)} summed over the kernel events of the profile in ``logdir``."""
    import collections
    import glob

    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as error:  # an internal module: a TensorFlow without it cannot be read here
        raise SystemExit(f"error: this TensorFlow has no profiler protobuf to read ({error})") from None
    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise SystemExit(f"error: the profiler wrote no trace under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.defaultdict(lambda: [0.0, 0])
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name.count(":") == 1 and " " not in name:  # "<node name>:<op type>": one kernel's run
                    kind = totals[name.rsplit(":", 1)[1]]
                    kind[0] += event.duration_ps / 1e9
                    kind[1] += 1
    return dict(totals)


def _main_profile(args) -> int:
    """The float32 step's kernel time by kind (KERNEL_KINDS), from TensorFlow's profiler."""
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    batch_size = args.batch_size or (32 if tf.config.list_physical_devices("GPU") else 4)
    run, batch_size, _, _, _ = build_train_step(args.input_size, batch_size, cache_dir=args.cache_dir,
                                                config_overrides=preset_widths(args.preset))
    run(2)  # past the first steps' allocations
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        seconds, _ = run(args.steps)
        tf.profiler.experimental.stop()
        kernels = profile_kernels(logdir)
    step_ms = 1000 * sum(seconds) / len(seconds)
    total = sum(ms for ms, _ in kernels.values())
    print(f"kernel time by kind, float32 train step (stage full), {network_name(args)} {args.input_size}x"
          f"{args.input_size}, batch {batch_size}, {args.steps} profiled steps of {step_ms:.0f} ms (wall, "
          f"profiler on), TF {tf.__version__}\n")
    print("| kind | kernel ms/step | kernels/step | share of kernel time |")
    print("|---|---|---|---|")
    counted = set()
    rows = []
    for label, types in KERNEL_KINDS:
        found = [t for t in types if t in kernels]
        counted.update(found)
        rows.append((label, sum(kernels[t][0] for t in found), sum(kernels[t][1] for t in found)))
    rest = [t for t in kernels if t not in counted]
    rows.append(("everything else (" + ", ".join(sorted(rest, key=lambda t: -kernels[t][0])[:4]) + ", ...)",
                 sum(kernels[t][0] for t in rest), sum(kernels[t][1] for t in rest)))
    for label, ms, count in rows:
        print(f"| {label} | {ms / args.steps:.0f} | {count // args.steps} | {ms / total:.3f} |")
    print(f"| all kernels | {total / args.steps:.0f} | {sum(c for _, c in kernels.values()) // args.steps} | 1 |")
    print("\nkernel ms add up the kernels' own times; kernels run side by side on the cores (two inter-op "
          "threads), so they exceed the step's wall time.")
    return 0


def _main_mirrored(args) -> int:
    """images/s of the train step per replica count, each count in its own process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from lgh_tf.data.synthetic import load_synthetic

    gpus = tf.config.list_physical_devices("GPU")
    device = f"{len(gpus)} GPU(s) ({gpus[0].name})" if gpus else f"CPU ({os.cpu_count()} cores), logical devices"
    per_replica = args.batch_size or (32 if gpus else 4)
    counts = [int(n) for n in args.replicas.split(",") if n.strip()]
    for n in counts:
        load_synthetic(args.cache_dir, "test", num_samples=max(per_replica * n, 8))
    print(f"train step under MirroredStrategy, stage full, {network_name(args)} {args.input_size}x{args.input_size}, "
          f"batch {per_replica} per replica, {args.steps} timed steps, {device}, TF {tf.__version__}", flush=True)
    rows = []
    for n in counts:
        result = _run_child(args, f"mirrored:{n}", per_replica, args.steps)
        rows.append((n, result))
        print(f"  {n} replica(s): {result}", flush=True)
    header = ("replicas", "global batch", "images/s", "images/s per replica", "x 1 replica", "ms/step",
              "first step s", "peak RSS MiB", "GPU:0 peak MiB", "loss")
    print_table(header, rows, 1, lambda n, r, ratio, gpu: [
        n, per_replica * n, f"{r['images_per_s']:.2f}", f"{r['images_per_s'] / n:.2f}", ratio,
        f"{r['step_ms']:.0f}", f"{r['first_step_s']:.1f}", f"{r['peak_rss_mb']:.0f}", gpu, f"{r['loss']:.4g}"])
    if not gpus:
        print("\nCPU: the logical devices share the same cores; the figures measure the cost of replication "
              "(all-reduce, per-replica graphs), not scaling.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
