"""Do ``--mixed_precision`` (bfloat16) and ``--jit_compile`` (XLA) train like float32? The quickstart per option.

For every training seed (seed-major: an interrupted check still compares whole seeds), for each
option, the quickstart's two stages (``flags/synthetic.cfg``: the full method, learned K = 3 with
fusion) run through ``tools/ablation.py`` into ``<out_dir>/<option>`` with the option's flag on
both stages and on the evaluation. The synthetic data are generated once before any run is timed.
Prints one table: the held-out 3D and 2D errors per option (mean ± std over seeds, each seed's
value), the difference to float32 and whether the option's mean lies within float32's range over
the same seeds, and the time per run (both stages and the evaluation): wall seconds and the CPU
seconds of its processes (the fair figure when other work shares the cores or the check is paused). A loss that turns
non-finite stops its run (main.py's guard), so a finished run trained on finite losses throughout.

    python tools/options_convergence.py --seeds=3 --markdown   # docs/benchmarks/options_convergence.md

Resumable like the ablation: finished runs are skipped and keep their recorded time
(``<out_dir>/options_convergence.json``); a run resumed after an interruption is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import bench_report  # noqa: E402

OPTIONS = {"float32": [], "bf16": ["--mixed_precision"], "xla": ["--jit_compile"]}
LABELS = {"float32": "float32 (default)", "bf16": "bfloat16 (`--mixed_precision`)", "xla": "XLA (`--jit_compile`)"}
CONFIG = "learned_fusion"


def _mean_std(values):
    import numpy as np

    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "n/a"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def table(records, seconds):
    """The Markdown table: ``records`` {option: {seed: figures}}, ``seconds`` {option: {seed: [wall s, CPU s]}}.

    Only seeds finished by every option are compared, so that each row averages the same seeds.
    """
    import numpy as np

    options = [o for o in OPTIONS if o in records]
    seeds = sorted(set.intersection(*(set(records[o]) for o in options))) if options else []
    if not seeds:
        return "no seed finished by every option yet"
    base = [records["float32"][s]["mean_epe_mm"] for s in seeds] if "float32" in records else None
    lines = [f"Seeds compared: {', '.join(map(str, seeds))}.", "",
             "| option | 3D EPE [mm], mean ± std | per seed | − float32 [mm] | within float32's range | "
             "2D EPE [px], mean ± std | wall s per run | CPU s per run |",
             "|---|---|---|---|---|---|---|---|"]
    for option in options:
        epe = [records[option][s]["mean_epe_mm"] for s in seeds]
        epe_2d = [records[option][s]["epe_2d_px"] for s in seeds if records[option][s].get("epe_2d_px") is not None]
        timed = [seconds[option][s] for s in seeds if s in seconds.get(option, {})]
        wall, cpu = (f"{np.mean([t[i] for t in timed]):.0f}" if timed else "n/a" for i in (0, 1))
        if base is None or option == "float32":
            delta, within = "—", "—"
        else:
            delta = f"{np.mean(epe) - np.mean(base):+.2f}"
            within = ("n/a (one seed)" if len(seeds) < 2
                      else "yes" if min(base) <= np.mean(epe) <= max(base) else "no")
        lines.append(f"| {LABELS[option]} | {_mean_std(epe)} | {' / '.join(f'{v:.2f}' for v in epe)} | {delta} | "
                     f"{within} | {_mean_std(epe_2d)} | {wall} | {cpu} |")
    return "\n".join(lines)


def curves(out_dir, options, seeds):
    """{option: [(seed, stage-1 curve, stage-2 curve)]}: each run's held-out figures per step
    (stage 1: 2D error in px; stage 2: 3D error in mm) from its learning_curves.json."""
    found = {}
    for option in options:
        for seed in seeds:
            try:
                with open(os.path.join(out_dir, option, f"pretrain2d_s{seed}", "learning_curves.json")) as f:
                    first = json.load(f)["eval"]
                with open(os.path.join(out_dir, option, f"{CONFIG}_s{seed}", "learning_curves.json")) as f:
                    second = json.load(f)["eval"]
            except (OSError, ValueError, KeyError):
                continue
            found.setdefault(option, []).append(
                (seed, (first["step"], first["error_2d_px"]), (second["step"], second["error_3d_mm"])))
    return found


def curves_picture(found):
    """RGB array: stage 1's held-out 2D error and stage 2's 3D error over the steps, a colour per option."""
    from matplotlib.figure import Figure

    from lgh_tf.visualize import figure_to_array

    figure = Figure(figsize=(10, 4), dpi=100)
    axes = figure.subplots(1, 2)
    for colour, option in zip(("tab:blue", "tab:orange", "tab:green"), OPTIONS):
        for number, (_, (s1, e1), (s2, e2)) in enumerate(found.get(option, [])):
            label = LABELS[option].replace("`", "") if number == 0 else None
            axes[0].plot(s1, e1, color=colour, alpha=0.8, label=label)
            axes[1].plot(s2, e2, color=colour, alpha=0.8, label=label)
    axes[0].set(title="stage 1: held-out 2D error", xlabel="step", ylabel="px", ylim=(0, None))
    axes[1].set(title="stage 2: held-out 3D error", xlabel="step", ylabel="mm", ylim=(0, None))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle("the quickstart per option, one line per seed")
    figure.tight_layout()
    return figure_to_array(figure)


def read_records(out_dir):
    """{option: {seed: figures}} from each option's ablation.json."""
    records = {}
    for option in OPTIONS:
        try:
            with open(os.path.join(out_dir, option, "ablation.json")) as f:
                runs = json.load(f)["runs"]
        except (OSError, ValueError, KeyError):
            continue
        records[option] = {r["seed"]: r["figures"] for r in runs if r["config"] == CONFIG}
    return records


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _seconds_text(timed):
    return f"{timed[0]:.0f} s wall, {timed[1]:.0f} CPU s" if timed else "time not recorded"


def _load_seconds(path):
    try:
        with open(path) as f:
            return {o: {int(s): t for s, t in d.items()} for o, d in json.load(f).items()}
    except (OSError, ValueError):
        return {}


def _save_seconds(path, seconds):
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump(seconds, f, indent=1)
    os.replace(temporary, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="runs/options")
    parser.add_argument("--options", default=",".join(OPTIONS), help=f"comma-separated, from {', '.join(OPTIONS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0, help="tools/ablation.py's --budget (1: the quickstart)")
    parser.add_argument("--cache_dir", default="cache")
    bench_report.add_markdown_flag(parser)
    args = parser.parse_args(argv)
    options = [o.strip() for o in args.options.split(",") if o.strip()]
    if not options or any(o not in OPTIONS for o in options) or args.seeds < 1 or args.budget <= 0:
        parser.error(f"--options from {', '.join(OPTIONS)}, --seeds >= 1, --budget > 0")
    # The runs go through subprocesses working in the repository: absolute paths mean the same there.
    args.out_dir, args.cache_dir = os.path.abspath(args.out_dir), os.path.abspath(args.cache_dir)
    os.makedirs(args.out_dir, exist_ok=True)
    seconds_path = os.path.join(args.out_dir, "options_convergence.json")
    seconds = _load_seconds(seconds_path)
    # The data once, untimed: the first run would otherwise pay for generating them.
    warm_dir = os.path.join(args.out_dir, "data")
    if not os.path.exists(os.path.join(warm_dir, "train_results.json")):
        code = subprocess.call([sys.executable, os.path.join(REPO, "main.py"), "--mode=train", "--dataset=synthetic",
                                "--stage=pretrain2d", "--steps=1", "--checkpoint_every=1",
                                f"--model_dir={warm_dir}", f"--cache_dir={args.cache_dir}"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if code:
            sys.exit(f"error: generating the synthetic data failed (exit status {code})")
    for seed in range(args.seeds):
        for option in options:
            # Timed only when both stages start here: an interrupted run that resumes would time a part.
            fresh = not any(os.path.exists(os.path.join(args.out_dir, option, f"{name}_s{seed}"))
                            for name in ("pretrain2d", CONFIG))
            begin, cpu_begin = time.time(), _children_cpu()
            command = [sys.executable, os.path.join(REPO, "tools", "ablation.py"), f"--configs={CONFIG}",
                       f"--seeds={seed + 1}", f"--budget={args.budget}", f"--cache_dir={args.cache_dir}",
                       f"--out_dir={os.path.join(args.out_dir, option)}", "--", *OPTIONS[option]]
            code = subprocess.call(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            if code:
                sys.exit(f"error: {option} seed {seed} failed (exit status {code}); "
                         f"see {os.path.join(args.out_dir, option, f'{CONFIG}_s{seed}.log')}")
            if fresh:  # trained here from the start (a finished run keeps its recorded time)
                seconds.setdefault(option, {})[seed] = [round(time.time() - begin, 1),
                                                        round(_children_cpu() - cpu_begin, 1)]
                _save_seconds(seconds_path, seconds)
            figures = read_records(args.out_dir)[option][seed]
            print(f"{option} seed {seed}: 3D {figures['mean_epe_mm']:.2f} mm, 2D {figures['epe_2d_px']:.2f} px "
                  f"({_seconds_text(seconds.get(option, {}).get(seed))})", flush=True)
    records = read_records(args.out_dir)
    print()
    print(table({o: records[o] for o in options if o in records}, seconds))
    found = curves(args.out_dir, options, range(args.seeds))
    if found:
        from lgh_tf import files

        picture = curves_picture(found)
        targets = [os.path.join(args.out_dir, "curves.png")]
        if args.markdown:  # the page's picture
            targets.append(os.path.join(REPO, "docs", "images", "options_convergence.png"))
        for path in targets:
            files.write_png(path, picture)
        print(f"\nheld-out curves of every run: {files.portable_path(targets[-1])}")
    return 0


if __name__ == "__main__":
    sys.exit(bench_report.run_main("options_convergence", main))
