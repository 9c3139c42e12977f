"""The first training step: what every training run, resume and training test pays before its
first update (tracing the step, optimising its graph, running it once), as ``fit`` takes it.

Each measurement is a fresh process that builds the network and the stage-2 task (three Adams),
then times the first call of Keras' train function (``task.make_train_function()``, the one
``fit`` uses) on one synthetic batch, then a second call (the step itself). Two networks:

  ``paper``   the paper's network, 256x256, batch 4
  ``test``    the one-level test network of the suite (``tests/conftest.small_config``), 64x64, batch 2

``--baseline DIR`` also times the lgh_tf of another checkout (for example a ``git worktree`` of an
earlier commit) in the same run, alternating with this one round by round, so both see the same
moments of a shared machine; the table then gives this checkout's time over the baseline's.
``--markdown [PATH]`` writes the output with the machine block (tools/bench_report.py).

    python tools/bench_first_step.py
    git worktree add ../before 5d1cff3 && python tools/bench_first_step.py --baseline ../before --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/: bench_report
from bench_report import Capture, add_markdown_flag, portable_path, write_markdown  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name -> (ModelConfig fields, batch size); "test" is tests/conftest.small_config's network.
NETWORKS = {
    "paper": ({"input_size": 256}, 4),
    "test": ({"input_size": 64, "backbone_filters": 32, "group_channels": 8, "trunk_hidden": 16,
              "hourglass_depth": 1, "selector_seed": 1}, 2),
}


def _batch(size, batch_size):
    """One batch in the pipeline's format: random pixels, a hand ~0.5 m in front of a pinhole camera."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    xyz = rng.normal(scale=0.03, size=(batch_size, 21, 3)) + [0.0, 0.0, 0.5]
    K = np.repeat(np.array([[2.0 * size, 0, size / 2], [0, 2.0 * size, size / 2], [0, 0, 1]])[None], batch_size, 0)
    projected = np.einsum("bij,bkj->bki", K, xyz)
    scale = np.linalg.norm(xyz[:, 12] - xyz[:, 11], axis=-1)
    batch = {"image": rng.uniform(size=(batch_size, size, size, 3)), "uv": projected[..., :2] / projected[..., 2:],
             "depth": (xyz[..., 2] - xyz[:, 12:13, 2]) / scale[:, None], "xyz": xyz, "K": K, "scale": scale,
             "root_depth": xyz[:, 12, 2]}
    return {key: tf.constant(value, tf.float32) for key, value in batch.items()}


def _child(network: str) -> dict:
    start_cpu, start = time.process_time(), time.perf_counter()
    import tensorflow as tf

    from lgh_tf.config import ModelConfig, OptimConfig
    from lgh_tf.model.network import LearnableGroupsNet
    from lgh_tf.training.task import HandPoseTask

    fields, batch_size = NETWORKS[network]
    batch = _batch(fields["input_size"], batch_size)
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    imported = time.perf_counter() - start
    begin = time.perf_counter()
    task = HandPoseTask(LearnableGroupsNet(ModelConfig(**fields)).build_for_input(), OptimConfig(stage="full"))
    task.compile()
    task.make_train_function()
    build = time.perf_counter() - begin
    begin, cpu = time.perf_counter(), time.process_time()
    float(task.train_function(iterator)["loss"])
    first, first_cpu = time.perf_counter() - begin, time.process_time() - cpu
    begin = time.perf_counter()
    float(task.train_function(iterator)["loss"])
    return {"import_s": imported, "build_s": build, "first_s": first, "first_cpu_s": first_cpu,
            "second_s": time.perf_counter() - begin, "process_cpu_s": time.process_time() - start_cpu}


def _measure(network: str, library: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=library)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", network, "--library", library],
                          capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    raise SystemExit(f"error: the {network} network's measurement with {library} failed: {' | '.join(tail)}")


def _commit(directory: str) -> str:
    done = subprocess.run(["git", "-C", directory, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def _spread(values, fmt="{:.1f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", default="paper,test", help=f"comma list of {','.join(NETWORKS)}")
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per network and checkout")
    parser.add_argument("--baseline", default="", help="another checkout's root, timed alternately in the same run")
    add_markdown_flag(parser)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--library", default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, args.library)
        print("RESULT " + json.dumps(_child(args.child)), flush=True)
        return 0
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = sorted(set(networks) - set(NETWORKS))
    if unknown or args.repeats < 1:
        parser.error(f"--networks: unknown {unknown}; choose from {','.join(NETWORKS)}; --repeats >= 1")
    if args.baseline and not os.path.isdir(os.path.join(args.baseline, "lgh_tf")):
        parser.error(f"--baseline: {args.baseline} holds no lgh_tf/ (a checkout's root is expected)")
    checkouts = ([("baseline", os.path.abspath(args.baseline))] if args.baseline else []) + [("this", REPO)]
    with Capture() as captured:
        print("First training step (Keras' train function, stage 2, three Adams), fresh process each; "
              f"median (min-max) over {args.repeats} processes; CPU s = the process's CPU seconds in that call.")
        shown = ", ".join(f"{label} {_commit(path)} ({portable_path(path)})" for label, path in checkouts)
        print(f"checkouts: {shown}\n")
        rows = []
        for network in networks:
            results = {label: [] for label, _ in checkouts}
            for round_ in range(args.repeats):
                for label, path in checkouts:
                    results[label].append(_measure(network, path))
                    r = results[label][-1]
                    print(f"  {network} {label} round {round_ + 1}: first step {r['first_s']:.1f} s "
                          f"({r['first_cpu_s']:.1f} CPU s), second {r['second_s']:.2f} s", flush=True)
            for label, _ in checkouts:
                rows.append((network, label, results[label]))
        print("\n| network | checkout | first step s | first step CPU s | second step s | build s | "
              "this ÷ baseline (first step) |")
        print("|---|---|---|---|---|---|---|")
        baseline = {}
        for network, label, values in rows:
            firsts = [v["first_s"] for v in values]
            ratio = "-"
            if label == "baseline":
                baseline[network] = statistics.median(firsts)
            elif network in baseline:
                ratio = f"{statistics.median(firsts) / baseline[network]:.2f}"
            print(f"| {network} | {label} | {_spread(firsts)} | {_spread([v['first_cpu_s'] for v in values])} | "
                  f"{_spread([v['second_s'] for v in values], '{:.2f}')} | "
                  f"{_spread([v['build_s'] for v in values])} | {ratio} |")
    if args.markdown:
        path = write_markdown("bench_first_step", captured.text(), "" if args.markdown == "-" else args.markdown,
                              sys.argv[1:] if argv is None else argv)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
