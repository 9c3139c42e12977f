"""The paper's ablation (Tables 2 and 3) on the embedded synthetic hands, in one command.

Trains every configuration on the same data (the synthetic set of ``--synthetic_seed``) with the
same budget, for each of ``--seeds`` training seeds (initial weights, data order, augmentation,
selector draws), then evaluates each run with the data set's protocol (``main.py --mode=eval``):

    k1              baseline: no groups (K = 1)                    Table 2 row 1, Table 3 'Baseline'
    manual          thumb / index / other fingers, no fusion       Table 2 row 2
    manual_fusion   the same with feature fusion (Eq. 9)           Table 2 row 3 (not run by default)
    learned         learned K = 3, no fusion                       Table 2 row 4, Table 3 '3'
    learned_fusion  learned K = 3 with fusion (the full method)    Table 2 row 5
    k2, k4, k5      learned K = 2, 4, 5, no fusion                 Table 3
    fingers         one fixed group per finger (K = 5), no fusion  Table 3, beside K = 5 (not run by default)
    k2_recipe .. k5_recipe
                    learned K = 2..5, no fusion, trained with      Table 3 with main.py's default
                    --selector_recipe=error_affinity               selector (not run by default)
    learned_fusion_per_image, learned_fusion_lr001
                    the full method with one selector remedy       "Remedies" (not run by default)

Stage 1 (the hourglass on 2D joints) does not depend on the configuration, so it runs once per
seed (``<out_dir>/pretrain2d_s<seed>``) and every configuration of that seed starts from it.
Every run lives in ``<out_dir>/<config>_s<seed>`` and is resumable: a finished run (its
``train_results.json`` at the requested step) and a finished evaluation are skipped, an interrupted
one resumes from its last checkpoint. Written into ``<out_dir>``:

    ablation.md          Tables 2 and 3 (mean / median 3D EPE, AUC 20-50, 2D EPE; mean +- std over
                         seeds), the adjusted Rand index of the learned groups between seeds, the
                         learned groups of every run
    ablation.json        every figure of every run
    groups.png           every run's final grouping, one row per configuration, one column per seed
    curves.png           held-out and training-batch 3D error during stage 2, a colour per configuration

    python tools/ablation.py                                   # CPU: the quickstart's budget
    python tools/ablation.py --budget=10 --seeds=3             # GPU: 10x the steps
    python tools/ablation.py --configs=k1,learned_fusion -- --batch_size=32   # flags after -- go to main.py
    python tools/ablation.py --synthetic_world=realistic --configs=k1,manual,learned_fusion --seeds=3 \
        --budget=3 --stage1_budget=1 --docs_dir=docs          # docs/ablation.md, docs/images/ablation_groups.png

Runs go seed-major (seed 0: every configuration, then seed 1, ...), so that every finished seed is
a complete comparison; remedies run after every seed of the other configurations; the tables are
rewritten after every run (over the runs finished so far), and the same command continues an
interrupted ablation. With ``--docs_dir`` the records go into ``<docs_dir>/ablation.json`` too: a
run recorded there (same world, data seed and steps) whose folder is gone (another machine, a new
checkout) keeps its record instead of being trained again.

``--budget`` multiplies the steps (``--pretrain_steps`` and ``--steps``, by default those of
``flags/synthetic.cfg``) and tau's annealing interval with them (``--temperature_every``), so that
tau reaches its floor at the same fraction of every budget; every other flag of the runs is
``flags/synthetic.cfg``'s or given after ``--``. ``--stage1_budget`` scales stage 1 alone (default:
``--budget``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import bench_report  # noqa: E402  (the machine block of every tool)

# name -> (main.py flags, Table 2 marks (manual, learned, fusion) or None, Table 3 row or None).
# Every row but the remedy's trains as the paper does (main.py's default is issue 34's remedy).
PAPER = "--selector_recipe=paper"
RECIPE = "--selector_recipe=error_affinity"
CONFIGS = {
    "k1": (["--num_groups=1", "--nofusion", PAPER], ("-", "-", "-"), "Baseline"),
    "manual": (["--grouping=manual", "--num_groups=3", "--nofusion", PAPER], ("✓", "-", "-"), None),
    "manual_fusion": (["--grouping=manual", "--num_groups=3", "--fusion", PAPER], ("✓", "-", "✓"), None),
    "learned": (["--grouping=learned", "--num_groups=3", "--nofusion", PAPER], ("-", "✓", "-"), "3"),
    "learned_fusion": (["--grouping=learned", "--num_groups=3", "--fusion", PAPER], ("-", "✓", "✓"), None),
    "k2": (["--grouping=learned", "--num_groups=2", "--nofusion", PAPER], None, "2"),
    "k4": (["--grouping=learned", "--num_groups=4", "--nofusion", PAPER], None, "4"),
    "k5": (["--grouping=learned", "--num_groups=5", "--nofusion", PAPER], None, "5"),
    "fingers": (["--grouping=fingers", "--num_groups=5", "--nofusion", PAPER], None, "5, the fingers (fixed)"),
    # Table 3 with issue 34's default recipe (the four flags of learned_fusion_recommended, one flag).
    **{f"k{k}_recipe": (["--grouping=learned", f"--num_groups={k}", "--nofusion", RECIPE], None,
                        f"{k}, error_affinity") for k in (2, 3, 4, 5)},
    # Issue 25's remedies for the selector: the full method with one option changed (docs/selector.md).
    "learned_fusion_per_image": (["--grouping=learned", "--num_groups=3", "--fusion", "--selector_sample=image",
                                  PAPER], None, None),
    "learned_fusion_lr001": (["--grouping=learned", "--num_groups=3", "--fusion", "--lr_selector=0.01", PAPER],
                             None, None),
    # Issue 34's recommended remedy (docs/selector.md): theta frozen for 45% of stage 2, set from the
    # joints' error affinity at 30%, the per-branch expected loss from then on.
    "learned_fusion_recommended": (["--grouping=learned", "--num_groups=3", "--fusion", "--selector_warmup=0.45",
                                    "--selector_init=error_affinity", "--selector_init_at=0.3",
                                    "--selector_loss=expected"], None, None),
}
REMEDIES = {"learned_fusion_per_image": "one Concrete draw per image (`--selector_sample=image`)",
            "learned_fusion_lr001": "θ learning rate 0.01 instead of 0.1 (`--lr_selector=0.01`)",
            "learned_fusion_recommended": "the recommended remedy (`--selector_warmup=0.45 "
                                          "--selector_init=error_affinity --selector_init_at=0.3 "
                                          "--selector_loss=expected`)"}
DEFAULT_CONFIGS = ("k1", "manual", "learned", "learned_fusion", "k2", "k4", "k5")
FIGURES = (("mean_epe_mm", "Mean EPE [mm]"), ("median_epe_mm", "Median EPE [mm]"),
           ("auc_20_50", "AUC [20-50]"), ("epe_2d_px", "2D EPE [px]"))


def synthetic_defaults():
    """{flag: value} of flags/synthetic.cfg (the quickstart's budget)."""
    values = {}
    with open(os.path.join(REPO, "flags", "synthetic.cfg")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("--") and "=" in line:
                name, value = line[2:].split("=", 1)
                values[name] = value
    return values


def scaled_steps(budget, stage1, stage2, every, stage1_budget=None):
    """((stage-1 steps, its checkpoint interval), (stage-2 steps, its interval)) at ``budget`` x
    (stage 1 at ``stage1_budget`` x when given).

    Each stage runs whole checkpoint intervals (at most ``every`` steps), so that an interrupted
    run resumes at a checkpoint; stage 1 is skipped when it scales to 0 steps.
    """
    scaled = []
    stage1_budget = budget if stage1_budget is None else stage1_budget
    for steps, least, factor in ((stage1, 0, stage1_budget), (stage2, 1, budget)):
        steps = max(least, round(steps * factor))
        interval = max(1, min(every, steps))
        scaled.append((-(-steps // interval) * interval, interval))
    return tuple(scaled)


def scaled_temperature_every(every, steps, scaled):
    """tau's interval (Eq. 8's annealing, --temperature_every) for a stage 2 of ``scaled`` steps
    instead of ``steps``: tau then falls to the same value at the same fraction of the run, so a
    short budget still ends on nearly one-hot selectors, as the hard grouping of inference."""
    return max(1, round(every * scaled / steps))


def _finished(model_dir, steps):
    path = os.path.join(model_dir, "train_results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        results = json.load(f)
    return results if results.get("step") == steps else None


def _run(command, log_path):
    """Runs ``command`` with its output appended to ``log_path``; exits naming the log on failure."""
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    if code:
        sys.exit(f"error: {' '.join(command[1:3])} ... failed with exit status {code}; see {log_path}")


def train_and_evaluate(name, seed, args, extra, steps, tau_every):
    """Trains (or resumes) and evaluates one run (stage 2 with tau's interval ``tau_every``);
    returns its record for the tables."""
    (stage1_steps, stage1_every), (stage2_steps, stage2_every) = steps
    main = [sys.executable, os.path.join(REPO, "main.py")]
    common = [f"--cache_dir={args.cache_dir}", f"--synthetic_seed={args.synthetic_seed}",
              f"--synthetic_world={args.synthetic_world}", f"--seed={seed}"] + extra
    stage1_dir = os.path.join(args.out_dir, f"pretrain2d_s{seed}")
    model_dir = os.path.join(args.out_dir, f"{name}_s{seed}")
    log_path = os.path.join(args.out_dir, f"{name}_s{seed}.log")
    recorded = args.previous.get((name, seed))
    if recorded and args.previous_matches and not os.path.exists(model_dir):
        return recorded  # trained by an earlier session, whose run folder is not here
    if stage1_steps and not _finished(stage1_dir, stage1_steps):
        _run(main + ["--mode=train", "--stage=pretrain2d", f"--model_dir={stage1_dir}",
                     f"--steps={stage1_steps}", f"--checkpoint_every={stage1_every}"] + common,
             os.path.join(args.out_dir, f"pretrain2d_s{seed}.log"))
    results = _finished(model_dir, stage2_steps)
    eval_dir = os.path.join(model_dir, "eval")
    trained = results is None
    if results is None:
        init = ([f"--init_checkpoint={stage1_dir}", "--init_backbone_only"] if stage1_steps
                else ["--pretrain_steps=0"])
        _run(main + ["--mode=train", f"--model_dir={model_dir}", f"--steps={stage2_steps}",
                     f"--checkpoint_every={stage2_every}", f"--temperature_every={tau_every}"]
             + CONFIGS[name][0] + init + common, log_path)
        results = _finished(model_dir, stage2_steps)
        if os.path.exists(os.path.join(eval_dir, "results.json")):
            os.remove(os.path.join(eval_dir, "results.json"))  # evaluated an earlier checkpoint
    if not os.path.exists(os.path.join(eval_dir, "results.json")):
        _run(main + ["--mode=eval", "--dataset=synthetic", f"--checkpoint={model_dir}",
                     f"--output_dir={eval_dir}"] + common, log_path)
    with open(os.path.join(eval_dir, "results.json")) as f:
        evaluation = json.load(f)
    figures = {key: evaluation["3d"][key] for key in ("mean_epe_mm", "median_epe_mm", "auc_20_50")}
    figures["epe_2d_px"] = (evaluation.get("2d") or {}).get("mean_epe_px")
    # The commit that trained the run: this one, or the one recorded when an earlier session did.
    earlier = args.previous.get((name, seed), {}).get("commit", args.previous_commit)
    commit = args.machine["commit"] if trained or not earlier else earlier
    record = {"config": name, "seed": seed, "groups": results["groups"], "figures": figures,
              "model_dir": bench_report.portable_path(model_dir), "commit": commit}
    curves = stage2_curves(model_dir)
    if curves:
        record["curves"] = curves
    return record


def stage2_curves(model_dir):
    """{"step", "heldout_3d_mm", "train_3d_mm"} of a run's learning_curves.json: the held-out 3D error
    at each evaluation and the training batches' mean 3D error over the steps since the previous
    one (None without curves). Their gap is what the network fits of its training set alone.
    Non-finite values (a diverging step) are left out; a file that is not such a history gives None."""
    import numpy as np

    curves = {"step": [], "heldout_3d_mm": [], "train_3d_mm": []}
    try:
        with open(os.path.join(model_dir, "learning_curves.json")) as f:
            history = json.load(f)
        held_out, train = history["eval"], history["train"]
        steps = np.asarray(train["step"], dtype=np.float64)
        errors = np.asarray([np.nan if e is None else e for e in train["error_3d_mm"]], dtype=np.float64)
        if steps.ndim != 1 or steps.shape != errors.shape:
            return None
        previous = 0
        for step, error in zip(held_out["step"], held_out["error_3d_mm"]):
            if step is None or step <= 0:
                continue  # before the first step: no training batches to set beside it
            window = errors[(steps > previous) & (steps <= step)]
            window = window[np.isfinite(window)]
            previous = step
            if window.size and error is not None and np.isfinite(error):
                curves["step"].append(int(step))
                curves["heldout_3d_mm"].append(round(float(error), 3))
                curves["train_3d_mm"].append(round(float(np.mean(window)), 3))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return _valid_curves(curves)


def _valid_curves(curves):
    """``curves`` if it is what stage2_curves writes (equal, non-empty lists; increasing integer
    steps; finite errors), else None: a record edited by hand or cut short draws no wrong line."""
    import math

    try:
        steps, held_out, train = curves["step"], curves["heldout_3d_mm"], curves["train_3d_mm"]
        ok = (isinstance(steps, list) and isinstance(held_out, list) and isinstance(train, list)
              and 0 < len(steps) == len(held_out) == len(train)
              and all(type(v) is int for v in steps) and all(a < b for a, b in zip(steps, steps[1:]))
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                      for v in held_out + train))
    except (TypeError, KeyError):
        return None
    return curves if ok else None


def _cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    import numpy as np

    digits = 3
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _figures(runs, name):
    return {key: [r["figures"].get(key) for r in runs if r["config"] == name] for key, _ in FIGURES}


def seed_agreement(runs, name):
    """Mean adjusted Rand index of ``name``'s learned groups over all pairs of seeds (None if < 2)."""
    from lgh_tf.evaluation.grouping import adjusted_rand_index
    from lgh_tf.visualize import groups_to_assignment

    labels = [groups_to_assignment(r["groups"]) for r in runs if r["config"] == name]
    pairs = [adjusted_rand_index(a, b) for a, b in itertools.combinations(labels, 2)]
    return (sum(pairs) / len(pairs), len(pairs)) if pairs else None


def reference_groupings():
    """{name: (21,) labels} of the groupings the learned ones are compared with."""
    from lgh_tf.data import schema

    finger = [0] * schema.NUM_JOINTS  # the wrist alone, one group per finger
    for k, joints in enumerate(schema.FINGER_JOINTS.values(), 1):
        for joint in joints:
            finger[joint] = k
    manual = [0] * schema.NUM_JOINTS
    for k, joints in enumerate(schema.MANUAL_GROUPS):
        for joint in joints:
            manual[joint] = k
    return {"finger": finger, "manual": manual}


def reference_agreement(runs, name, reference):
    """(mean, std, n) of the ARI of ``name``'s groups against a reference labelling."""
    import numpy as np

    from lgh_tf.evaluation.grouping import adjusted_rand_index
    from lgh_tf.visualize import groups_to_assignment

    values = [adjusted_rand_index(groups_to_assignment(r["groups"]), reference)
              for r in runs if r["config"] == name]
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, len(values)


def machine_description():
    """CPU model, cores, load, TF/Keras versions, git commit: where the figures were measured."""
    versions = subprocess.run([sys.executable, "-c", "import tensorflow as tf, keras; "
                               "print(tf.__version__, keras.__version__)"], capture_output=True, text=True)
    tf_version, keras_version = (versions.stdout.split() + ["?", "?"])[:2]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"cpu": bench_report.cpu_model_and_flags()[0], "cores": os.cpu_count(), "tensorflow": tf_version,
            "keras": keras_version, "commit": bench_report.git_commit(), "load_at_start": round(load, 1)}


def markdown(runs, args, steps, tau_every):
    """ablation.md: Tables 2 and 3 in the paper's layout, mean +- std over seeds."""
    names = [n for n in CONFIGS if any(r["config"] == n for r in runs)]
    seeds = sorted({r["seed"] for r in runs})
    header = " | ".join(label for _, label in FIGURES)
    machine = getattr(args, "machine", None) or {}
    complete = [s for s in seeds if all(any(r["config"] == n and r["seed"] == s for r in runs)
                                        for n in args.names if n not in REMEDIES)]
    lines = [
        f"# Ablation on the synthetic hands ({args.synthetic_world} world)",
        "",
        f"Stage 1 {steps[0][0]} steps, stage 2 {steps[1][0]} steps (budget {args.budget:g} x "
        f"flags/synthetic.cfg's stage 2, {args.stage1_budget:g} x its stage 1; stage 2 with "
        f"--temperature_every={tau_every}), seeds finished {seeds} (complete comparisons: "
        f"{complete} of {args.seeds} asked), data seed {args.synthetic_seed}, world "
        f"{args.synthetic_world}; every configuration has the same data, steps and schedule. "
        "Figures: mean ± sample standard deviation over seeds; 3D with the RHD/STB protocol "
        "(ground-truth root depth and scale), 2D in original-image pixels.",
        "",
        *(["Commands (each later one extends the tables; the same command continues an interrupted run):",
            *[f"- `{c}`" for c in args.commands]] if len(getattr(args, "commands", [])) > 1
          else [f"Command: `{getattr(args, 'command', '')}`"]),
        "",
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores (shared with other "
        f"jobs: see ablation.json's load average), TensorFlow "
        f"{machine.get('tensorflow', '?')}, Keras {machine.get('keras', '?')}; commits that trained "
        f"the runs: {', '.join(sorted({r.get('commit', '?') for r in runs}))} (per run below).",
        "",
        "## Table 2: grouping and feature fusion",
        "",
        f"| Manual | Learned | Fea. Fuse | {header} |",
        "|---|---|---|" + "---|" * len(FIGURES),
    ]
    for name in names:
        marks = CONFIGS[name][1]
        if marks:
            cells = " | ".join(_cell(v) for v in _figures(runs, name).values())
            lines.append(f"| {' | '.join(marks)} | {cells} |")
    rows = sorted((CONFIGS[n][2], n) for n in names if CONFIGS[n][2])
    rows.sort(key=lambda row: (row[0] != "Baseline", row[0]))
    if any(label != "Baseline" for label, _ in rows):  # the baseline alone is no Table 3
        lines += ["", "## Table 3: number of groups (learned, no fusion)", "",
                  f"| #Group | {header} |", "|---|" + "---|" * len(FIGURES)]
        for label, name in rows:
            cells = " | ".join(_cell(v) for v in _figures(runs, name).values())
            lines.append(f"| {label} | {cells} |")
    lines += ["", "## Do the seeds learn the same groups?", "",
              "Adjusted Rand index of the final hard groupings between seeds (1: the same partition, "
              "~0: no more alike than chance), mean over pairs of seeds.", "",
              "| configuration | ARI | pairs |", "|---|---|---|"]
    for name in names:
        if name.startswith(("learned", "k")) and name != "k1":
            agreement = seed_agreement(runs, name)
            cells = "n/a (one seed) | 0" if agreement is None else f"{agreement[0]:.3f} | {agreement[1]}"
            lines.append(f"| {name} | {cells} |")
    lines += ["", "## Are the learned groups the skeleton's?", "",
              "Adjusted Rand index of each run's groups against the finger-level grouping (wrist, "
              "thumb, index, middle, ring, little) and against the paper's manual grouping "
              "(thumb / index / others), mean ± std over seeds.", "",
              "| configuration | ARI vs fingers | ARI vs manual | runs |", "|---|---|---|---|"]
    references = reference_groupings()
    for name in names:
        if name.startswith(("learned", "k")) and name != "k1":
            cells = []
            for reference in ("finger", "manual"):
                value = reference_agreement(runs, name, references[reference])
                cells.append("n/a" if value is None else f"{value[0]:.3f} ± {value[1]:.3f}")
            lines.append(f"| {name} | {' | '.join(cells)} | {sum(r['config'] == name for r in runs)} |")
    remedies = [n for n in names if n in REMEDIES]
    if remedies:
        lines += ["", "## Remedies for the selector (issue 25)", "",
                  "The full method (learned K = 3 with fusion) with one option changed, on the same data, "
                  "steps, τ schedule and seeds; K = 1 and the paper's default beside them.", "",
                  f"| configuration | {header} | ARI between seeds | ARI vs fingers | runs |",
                  "|---|" + "---|" * (len(FIGURES) + 3)]
        for name in [n for n in ("k1", "learned_fusion") if n in names] + remedies:
            cells = " | ".join(_cell(v) for v in _figures(runs, name).values())
            agreement = seed_agreement(runs, name) if name != "k1" else None
            finger = reference_agreement(runs, name, references["finger"]) if name != "k1" else None
            label = {"k1": "K = 1", "learned_fusion": "paper default", **REMEDIES}[name]
            lines.append(f"| {name}: {label} | {cells} | "
                         f"{'n/a' if agreement is None else f'{agreement[0]:.3f}'} | "
                         f"{'n/a' if finger is None else f'{finger[0]:.3f} ± {finger[1]:.3f}'} | "
                         f"{sum(r['config'] == name for r in runs)} |")
    lines += curves_section(runs, names, getattr(args, "curves_picture", "curves.png"))
    lines += ["", "## Groups of every run", "", "| run | groups | commit |", "|---|---|---|"]
    for run in runs:
        lines.append(f"| {run['config']} seed {run['seed']} | {run['groups']} | {run.get('commit', '?')} |")
    picture = getattr(args, "picture", "groups.png")
    lines += ["", "Every run's groups (a row per configuration, a column per seed; a configuration's seeds "
              "in matching colours, so the group numbers there are not branch numbers; ablation.json keeps "
              f"each run's groups in branch order): ![groups]({picture})"]
    return "\n".join(lines) + "\n"


def _curve_at(run, step, key="heldout_3d_mm"):
    """``key`` of a run's curves at its last evaluation at or before ``step`` (None if none)."""
    curves = run.get("curves") or {}
    values = [v for s, v in zip(curves.get("step", []), curves.get(key, [])) if s <= step]
    return values[-1] if values else None


def curves_section(runs, names, picture):
    """Held-out 3D error at a third, two thirds and the end of stage 2, and the training batches'
    error beside the last: still falling, and how much of the training set the network fits alone."""
    with_curves = [r for r in runs if _valid_curves(r.get("curves"))]
    if not with_curves:
        return []
    end = max(r["curves"]["step"][-1] for r in with_curves)
    marks = sorted({m for m in (round(end / 3), round(2 * end / 3), end) if m > 0})
    lines = ["", "## Held-out error during stage 2", "",
             "Held-out 3D EPE [mm] at the evaluations during training (the first `--eval_batches` batches of "
             "the held-out split, so not the tables' figures), and the training batches' mean 3D EPE over the "
             "last evaluation interval (in training mode: BatchNorm batch statistics, the selector's draws); "
             "held-out minus training is what the network fits of its training set alone. Mean ± std over seeds.",
             "", "| configuration | " + " | ".join(f"held-out, step {m}" for m in marks)
             + " | training batches, end | held-out − training, end | runs |", "|---|" + "---|" * (len(marks) + 3)]
    for name in names:
        mine = [r for r in with_curves if r["config"] == name]
        if not mine:
            continue
        cells = [_cell([_curve_at(r, m) for r in mine]) for m in marks]
        train = [_curve_at(r, end, "train_3d_mm") for r in mine]
        gap = [h - t for h, t in zip([_curve_at(r, end) for r in mine], train) if h is not None and t is not None]
        lines.append(f"| {name} | {' | '.join(cells)} | {_cell(train)} | {_cell(gap)} | {len(mine)} |")
    lines += ["", f"Held-out (solid) and training batches (dashed), mean over seeds: ![curves]({picture})"]
    return lines


def curves_picture(runs):
    """Held-out (solid) and training-batch (dashed) 3D error against the stage-2 step, a colour per
    configuration, mean over its seeds at the steps all of them evaluated. RGB uint8, or None when
    no run has curves."""
    import numpy as np

    from lgh_tf import visualize

    lines = []
    for name in CONFIGS:
        mine = [c for c in (_valid_curves(r.get("curves")) for r in runs if r["config"] == name) if c]
        steps = sorted(set.intersection(*(set(c["step"]) for c in mine))) if mine else []
        if steps:
            means = {key: np.mean([[dict(zip(c["step"], c[key]))[s] for s in steps] for c in mine], axis=0)
                     for key in ("heldout_3d_mm", "train_3d_mm")}
            lines.append((name, len(mine), steps, means))
    if not lines:
        return None
    figure, axes = visualize.plt.subplots(figsize=(8, 5), dpi=100)
    low, high = np.inf, 0.0
    for index, (name, seeds, steps, means) in enumerate(lines):
        colour = visualize.plt.get_cmap("tab10")(index % 10)
        for key, style in (("heldout_3d_mm", "-"), ("train_3d_mm", "--")):
            mean = means[key]
            axes.plot(steps, mean, style, color=colour, marker="." if len(steps) == 1 else None,
                      label=f"{name} ({seeds} seed{'s' if seeds > 1 else ''})" if key == "heldout_3d_mm" else None)
            low, high = min(low, float(mean.min())), max(high, float(mean[len(mean) // 10]))
    axes.set_ylim(0.95 * low, max(high, low * 1.05))
    axes.set_xlabel("stage-2 step")
    axes.set_ylabel("3D EPE [mm]")
    axes.set_title("held-out (solid) and training batches (dashed)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    picture = visualize.figure_to_array(figure)
    visualize.plt.close(figure)
    return picture


def groups_picture(runs):
    """One grouping figure per run: a row per configuration, a column per seed. RGB uint8."""
    import numpy as np

    from lgh_tf import visualize
    from lgh_tf.evaluation import grouping

    names = [n for n in CONFIGS if any(r["config"] == n for r in runs)]
    seeds = sorted({r["seed"] for r in runs})
    first = {}  # per configuration, its lowest seed's groups: the others drawn in matching colours
    for r in sorted(runs, key=lambda r: r["seed"]):
        first.setdefault(r["config"], r["groups"])
    tiles = {(r["config"], r["seed"]): visualize.grouping_figure(
        grouping.align_groups(r["groups"], first[r["config"]]), f"{r['config']}, seed {r['seed']}")
        for r in runs}
    blank = np.full_like(next(iter(tiles.values())), 255)
    rows = [np.concatenate([tiles.get((n, s), blank) for s in seeds], axis=1) for n in names]
    return np.concatenate(rows, axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", default="runs/ablation")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                        help=f"comma-separated, from {', '.join(CONFIGS)} (or 'all')")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per configuration")
    parser.add_argument("--budget", type=float, default=1.0, help="multiplies --pretrain_steps and --steps")
    parser.add_argument("--stage1_budget", type=float, default=None,
                        help="multiplies --pretrain_steps alone (default: --budget)")
    parser.add_argument("--synthetic_world", default="coded", choices=("coded", "realistic"),
                        help="the synthetic hands of every run (main.py's --synthetic_world)")
    parser.add_argument("--docs_dir", default="",
                        help="also write <docs_dir>/ablation.md and <docs_dir>/images/ablation_groups.png")
    defaults = synthetic_defaults()
    parser.add_argument("--pretrain_steps", type=int, default=int(defaults.get("pretrain_steps", 0)),
                        help="stage-1 steps at budget 1 (default: flags/synthetic.cfg's)")
    parser.add_argument("--steps", type=int, default=int(defaults["steps"]),
                        help="stage-2 steps at budget 1 (default: flags/synthetic.cfg's)")
    parser.add_argument("--temperature_every", type=float, default=None,
                        help="tau's interval at budget 1 for --steps stage-2 steps, scaled with the budget "
                        "(default: flags/synthetic.cfg's, in proportion to --steps)")
    parser.add_argument("--checkpoint_every", type=int, default=int(defaults.get("checkpoint_every", 100)))
    parser.add_argument("--synthetic_seed", type=int, default=0, help="the data (same for every run)")
    parser.add_argument("--interleave_remedies", action="store_true",
                        help="run the remedies in --configs' order within each seed, not after every seed")
    parser.add_argument("--cache_dir", default="cache")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    names = list(CONFIGS) if args.configs == "all" else [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or not names:
        parser.error(f"--configs: unknown {unknown}; choose from {', '.join(CONFIGS)}")
    if args.stage1_budget is None:
        args.stage1_budget = args.budget
    if args.seeds < 1 or args.budget <= 0 or args.stage1_budget < 0:
        parser.error("--seeds must be >= 1, --budget > 0 and --stage1_budget >= 0")
    args.names = names
    args.main_flags = list(bench_report.portable_command(extra))  # as the report names them: no machine
    args.command = "python tools/ablation.py " + " ".join(
        shlex.quote(a) for a in bench_report.portable_command(argv or sys.argv[1:]))
    if args.temperature_every is None:
        args.temperature_every = (float(defaults.get("temperature_every", 1000)) * args.steps
                                  / float(defaults["steps"]))
    steps = scaled_steps(args.budget, args.pretrain_steps, args.steps, args.checkpoint_every, args.stage1_budget)
    tau_every = scaled_temperature_every(args.temperature_every, args.steps, steps[1][0])
    if args.interleave_remedies:  # every seed a complete comparison, remedies included
        jobs = [(name, seed) for seed in range(args.seeds) for name in names]
    else:
        jobs = ([(name, seed) for seed in range(args.seeds) for name in names if name not in REMEDIES]
                + [(name, seed) for seed in range(args.seeds) for name in names if name in REMEDIES])
    print(f"{len(jobs)} runs ({len(names)} configurations x {args.seeds} seeds), stage 1 {steps[0][0]} "
          f"and stage 2 {steps[1][0]} steps each, into {args.out_dir}", flush=True)
    this = {"world": args.synthetic_world, "synthetic_seed": args.synthetic_seed,
            "steps": {"stage1": steps[0][0], "stage2": steps[1][0]}, "tau_every": tau_every,
            "main_flags": args.main_flags}
    directories = [args.out_dir] + ([args.docs_dir] if args.docs_dir else [])
    try:
        reports = [(d, _recorded_report(d)) for d in directories]
    except RecordError as error:
        print(f"error: {error}: move it away or give another --out_dir / --docs_dir", file=sys.stderr)
        return 2
    for directory, other in reports:
        if other.get("runs") and not _same_ablation(other, this):  # rewriting it would lose its records
            print(f"error: {os.path.join(directory, 'ablation.json')} records another ablation (world "
                  f"{other.get('world')}, data seed {other.get('synthetic_seed', 0)}, steps {other.get('steps')}, "
                  f"tau interval {other.get('tau_every', '?')}, main.py flags {other.get('main_flags', '?')}) than "
                  f"this one ({this['world']}, {this['synthetic_seed']}, {this['steps']}, {tau_every}, "
                  f"{args.main_flags}): its "
                  "tables would be lost; give another --out_dir / --docs_dir", file=sys.stderr)
            return 2
    args.previous, args.previous_commit, _ = previous_runs([other for _, other in reports])
    # Every report with runs was checked above; one without runs brings no records to keep.
    args.previous_matches = all(_same_ablation(other, this) for _, other in reports if other.get("runs"))
    os.makedirs(args.out_dir, exist_ok=True)
    args.machine = machine_description()
    for record in args.previous.values():  # curves of runs recorded before the tables had them
        if "curves" not in record:
            curves = stage2_curves(os.path.join(args.out_dir, f"{record['config']}_s{record['seed']}"))
            if curves:
                record["curves"] = curves
    args.commands = []  # every command that wrote these tables, the first first
    for _, other in reversed(reports):
        for command in other.get("commands") or ([other["command"]] if other.get("command") else []):
            if isinstance(command, str) and command not in args.commands:
                args.commands.append(command)
    if args.command not in args.commands:
        args.commands.append(args.command)
    runs, started = [], time.time()
    for done, (name, seed) in enumerate(jobs):
        begin = time.time()
        runs.append(train_and_evaluate(name, seed, args, extra, steps, tau_every))
        elapsed = time.time() - started
        eta = elapsed / (done + 1) * (len(jobs) - done - 1)
        figures = runs[-1]["figures"]
        print(f"[{done + 1}/{len(jobs)}] {name} seed {seed}: mean EPE {figures['mean_epe_mm']:.2f} mm, "
              f"groups {runs[-1]['groups']} ({time.time() - begin:.0f} s; about {eta / 60:.0f} min left)",
              flush=True)
        write_outputs(runs, args, steps, tau_every)  # after every run: an interrupted ablation still reports
    print(f"wrote {os.path.join(args.out_dir, 'ablation.md')}, ablation.json and groups.png")
    return 0


class RecordError(ValueError):
    """An ablation.json that is there but is not an ablation's record."""


def _same_ablation(report, this):
    """Whether ``report`` records the ablation ``this`` describes: world, data seed and steps, and τ's
    interval and main.py's extra flags where the report names them (earlier reports do not)."""
    return (report.get("world") == this["world"] and report.get("synthetic_seed", 0) == this["synthetic_seed"]
            and report.get("steps") == this["steps"]
            and all(report.get(key, this[key]) == this[key] for key in ("tau_every", "main_flags")))


def _valid_groups(groups):
    """A list of groups, each a list of joint numbers 0..20 (at least one group)."""
    from lgh_tf.data.schema import NUM_JOINTS

    return (isinstance(groups, list) and bool(groups) and all(
        isinstance(g, list) and all(type(j) is int and 0 <= j < NUM_JOINTS for j in g) for g in groups))


def _recorded_report(directory):
    """<directory>/ablation.json ({} when there is none); RecordError when it is not an ablation's
    record (its records would be lost if the tool wrote over it)."""
    path = os.path.join(directory, "ablation.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as error:
        raise RecordError(f"{path} cannot be read ({error})") from None
    if not isinstance(report, dict) or not isinstance(report.get("runs", []), list):
        raise RecordError(f"{path} is not an ablation's record")
    kinds = {"machine": dict, "command": str, "commands": list, "steps": dict}
    wrong = [key for key, kind in kinds.items() if key in report and not isinstance(report[key], kind)]
    if wrong or not all(isinstance(c, str) for c in report.get("commands", [])):
        raise RecordError(f"{path} is not an ablation's record ({', '.join(wrong) or 'commands'})")
    for index, record in enumerate(report.get("runs", [])):
        if not (isinstance(record, dict) and isinstance(record.get("config"), str)
                and type(record.get("seed")) is int and _valid_groups(record.get("groups"))
                and isinstance(record.get("figures"), dict)
                and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                        for v in record["figures"].values())):
            raise RecordError(f"{path}: runs[{index}] is not a run's record (config, seed, groups of "
                              "joints 0-20, numeric figures)")
        if "curves" in record and not _valid_curves(record["curves"]):
            del record["curves"]  # drawn again from the run's folder where it is here
    return report


def previous_runs(recorded):
    """({(config, seed): run record}, commit, report) of the earlier ablation.json files ``recorded``
    (as _recorded_report read them, --out_dir's first): --out_dir's records over --docs_dir's (both
    kept), the report --out_dir's, else --docs_dir's ({}, None, {} when neither is there)."""
    reports = [r for r in recorded if r]
    if not reports:
        return {}, None, {}
    runs = {}
    for report in reversed(reports):
        runs.update({(r["config"], r["seed"]): r for r in report.get("runs", [])})
    return runs, (reports[0].get("machine") or {}).get("commit"), reports[0]


def write_outputs(runs, args, steps, tau_every):
    """ablation.md, ablation.json and groups.png in --out_dir (and the docs copies)."""
    from lgh_tf import files

    targets = [(args.out_dir, "groups.png", "curves.png")]
    if args.docs_dir:
        targets.append((args.docs_dir, "images/ablation_groups.png", "images/ablation_curves.png"))
    done = {(r["config"], r["seed"]) for r in runs}  # an earlier record stays until a new one replaces it
    runs = [r for key, r in getattr(args, "previous", {}).items()
            if key not in done and getattr(args, "previous_matches", False)] + runs
    picture, curves = groups_picture(runs), curves_picture(runs)
    for directory, link, curves_link in targets:
        os.makedirs(directory, exist_ok=True)  # --docs_dir may be new
        args.picture, args.curves_picture = link, curves_link
        files.write_bytes(os.path.join(directory, "ablation.md"), markdown(runs, args, steps, tau_every).encode())
        for name, rgb in ((link, picture), (curves_link, curves)):
            if rgb is not None:
                os.makedirs(os.path.dirname(os.path.join(directory, name)), exist_ok=True)
                files.write_png(os.path.join(directory, name), rgb)
    report = {"steps": {"stage1": steps[0][0], "stage2": steps[1][0]}, "budget": args.budget,
              "stage1_budget": args.stage1_budget, "world": args.synthetic_world,
              "synthetic_seed": args.synthetic_seed, "tau_every": tau_every,
              "main_flags": getattr(args, "main_flags", []), "machine": args.machine, "command": args.command,
              "commands": getattr(args, "commands", [args.command]), "runs": runs}
    for directory in [args.out_dir] + ([args.docs_dir] if args.docs_dir else []):
        files.write_json(os.path.join(directory, "ablation.json"), report)


if __name__ == "__main__":
    sys.exit(main())
