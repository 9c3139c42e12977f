"""Generation speed of the synthetic worlds (images/s), both worlds in the same run.

For each world, generates ``--images`` samples at ``--size`` px into a temporary cache with
``lgh_tf.data.synthetic.load_synthetic`` (render + PNG write + annotations, the real path) using
``--workers`` processes, ``--repeats`` times, the worlds interleaved so that both see the same
machine load. Reports per world the best wall-clock images/s, and images per CPU-second consumed
(parent and worker processes), which does not depend on what else shares the machine: on
``--workers`` idle cores the generator would reach about that figure times the worker count. The
ratio realistic / coded is measured in the same run.

    python tools/bench_synthetic.py                                 # 400 images, 2 workers, 320 px
    python tools/bench_synthetic.py --markdown=docs/benchmarks/synthetic.md

``--markdown`` writes the table with the machine (CPU model, cores, load, TensorFlow and Keras
versions, git commit) and the command.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report  # noqa: E402  (the machine block of every tool)

from lgh_tf import files  # noqa: E402
from lgh_tf.data import synthetic  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_generation(world: str, images: int, size: int, workers: int, seed: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to generate ``images`` samples of ``world`` into a fresh cache."""
    with tempfile.TemporaryDirectory() as directory:
        start_wall, start_cpu = time.perf_counter(), cpu_seconds()
        synthetic.load_synthetic(directory, "train", images, seed=seed, image_size=size,
                                 num_workers=workers, world=world)
        return time.perf_counter() - start_wall, cpu_seconds() - start_cpu


def time_rendering(world: str, images: int, size: int) -> float:
    """Images per CPU-second of ``render_sample`` alone, in this process (no PNG, no workers)."""
    synthetic.render_sample(0, 0, size, world=world)  # warm up (imports, caches)
    start = time.process_time()
    for index in range(images):
        synthetic.render_sample(1, index, size, world=world)
    return images / (time.process_time() - start)


def machine() -> dict:
    return {"cpu": bench_report.cpu_model_and_flags()[0], "cores": os.cpu_count(), "load": os.getloadavg()[0],
            "tensorflow": bench_report.package_version("tensorflow"),
            "keras": bench_report.package_version("keras"), "numpy": bench_report.package_version("numpy"),
            "opencv": bench_report.package_version("opencv-python-headless"), "commit": bench_report.git_commit()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worlds", default=",".join(synthetic.SYNTHETIC_WORLDS))
    parser.add_argument("--markdown", default="", help="write the table (and the machine) to this file")
    args = parser.parse_args(argv)
    worlds = [w.strip() for w in args.worlds.split(",") if w.strip()]
    if not worlds or any(w not in synthetic.SYNTHETIC_WORLDS for w in worlds) or args.images < 1:
        parser.error(f"--worlds from {synthetic.SYNTHETIC_WORLDS}, --images >= 1")
    box = machine()
    results = {world: [] for world in worlds}
    render_only = {world: time_rendering(world, min(args.images, 100), args.size) for world in worlds}
    for repeat in range(args.repeats):
        for world in worlds:
            wall, cpu = time_generation(world, args.images, args.size, args.workers, seed=repeat)
            results[world].append((wall, cpu))
            print(f"{world:10s} repeat {repeat}: {args.images / wall:6.1f} images/s wall, "
                  f"{args.images / cpu:6.1f} images per CPU-second", flush=True)
    rows = {w: (args.images / min(r[0] for r in results[w]), args.images / min(r[1] for r in results[w]))
            for w in worlds}
    base = rows.get("coded")
    lines = [
        f"| world | images/s, wall ({args.workers} workers, shared machine) | images per CPU-second "
        f"| ≈ images/s on {args.workers} idle cores | vs coded | render alone, images per CPU-second |",
        "|---|---|---|---|---|---|",
    ]
    for world, (wall, per_cpu) in rows.items():
        ratio = f"{per_cpu / base[1]:.2f}x" if base else "n/a"
        lines.append(f"| {world} | {wall:.1f} | {per_cpu:.1f} | {per_cpu * args.workers:.0f} | {ratio} "
                     f"| {render_only[world]:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        command = "python tools/bench_synthetic.py " + " ".join(
            shlex.quote(a) for a in bench_report.portable_command(argv or sys.argv[1:]))
        text = "\n".join([
            "# Synthetic data generation speed",
            "",
            f"{args.images} training samples per world at {args.size} px, rendered and written as PNGs "
            f"by `load_synthetic` with {args.workers} worker processes, best of {args.repeats} "
            "(the worlds interleaved). Images per CPU-second counts the parent's and the workers' CPU "
            "time (including the workers' start-up), so it does not depend on other jobs sharing the "
            f"machine; the idle-core column is that figure x {args.workers}. The last column times "
            "`render_sample` alone in one process (no PNG writing, no worker start-up).",
            "",
            table,
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {box['cpu']}, {box['cores']} cores (load average {box['load']:.1f} at the start: "
            f"shared with other jobs), TensorFlow {box['tensorflow']}, Keras {box['keras']}, numpy "
            f"{box['numpy']}, OpenCV {box['opencv']}, commit {box['commit']}.",
            "",
        ])
        files.write_bytes(args.markdown, text.encode())
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
