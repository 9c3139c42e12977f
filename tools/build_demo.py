"""Rebuilds the shipped demo model, the example images and the README's picture, in one command.

    python tools/build_demo.py                             # trains the quickstart (flags/synthetic.cfg) first
    python tools/build_demo.py --run_dir=runs/synthetic    # reuses a finished quickstart run
    python tools/build_demo.py --stages=figure             # only the README picture, from what is shipped

Stages (``--stages``, in this order):

    train     python main.py --mode=train (the quickstart: the default synthetic world, both stages)
              into <work_dir>/run, unless --run_dir names a finished run; resumable like any run
    export    python main.py --mode=export --tflite=int8,float32 of that run: the float32 SavedModel
              (BatchNorm folded), its int8 TFLite and its float32 TFLite (the web page's, web/), as
              version 1 of lgh_tf/demo/synthetic_demo/ (replaced whole)
    examples  the first --num_examples right hands of the synthetic test split (--synthetic_seed, the
              same world as the training: held-out, never trained on) with every joint inside the
              image, as examples/hand<i>.png, their ground truth in examples/annotations.json
    figure    docs/images/demo.png: the shipped model on examples/hand1.png (no box, no camera: what
              `python main.py --mode=predict --image=examples/hand1.png` does), its 3D view and the
              learned groups; and the model's 2D error on every example, printed
              (export also copies the run's learning_curves.png to docs/images/)

When the default synthetic world (lgh_tf/data/synthetic/) changes, rerun this tool without
--run_dir and commit lgh_tf/demo/synthetic_demo/, examples/ and docs/images/demo.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

STAGES = ("train", "export", "examples", "figure")
DEMO_DIR = os.path.join("lgh_tf", "demo", "synthetic_demo")
EXAMPLES_DIR = "examples"
FIGURE = os.path.join("docs", "images", "demo.png")
CURVES = os.path.join("docs", "images", "learning_curves.png")


def run_main(*args):
    command = [sys.executable, os.path.join(REPO, "main.py"), *args]
    print("+", " ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=REPO, check=True)


def stage_train(args):
    run_dir = args.run_dir or os.path.join(args.work_dir, "run")
    if not args.run_dir:
        run_main("--mode=train", f"--model_dir={run_dir}", f"--cache_dir={args.cache_dir}",
                 f"--synthetic_seed={args.synthetic_seed}")
    if not os.path.isfile(os.path.join(run_dir, "train_results.json")):
        sys.exit(f"error: {run_dir} is not a finished training run (no train_results.json)")
    return run_dir


def stage_export(args, run_dir):
    """Exports into a fresh directory beside the target, then swaps it in (never half a model)."""
    target = os.path.join(REPO, DEMO_DIR)
    staging = os.path.join(args.work_dir, "export")
    shutil.rmtree(staging, ignore_errors=True)
    run_main("--mode=export", f"--checkpoint={run_dir}", f"--export_dir={staging}", "--export_version=1",
             "--tflite=int8,float32", f"--representative_samples={args.representative_samples}",
             f"--cache_dir={args.cache_dir}")
    old = target + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(target):
        os.replace(target, old)
    shutil.copytree(staging, target + ".new")
    os.replace(target + ".new", target)
    shutil.rmtree(old, ignore_errors=True)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(target) for f in fs)
    print(f"shipped model: {DEMO_DIR} ({size / 1e6:.2f} MB)")
    curves = os.path.join(run_dir, "learning_curves.png")
    if os.path.isfile(curves):  # the training page's picture
        os.makedirs(os.path.join(REPO, "docs", "images"), exist_ok=True)
        shutil.copyfile(curves, os.path.join(REPO, CURVES))
        print(f"wrote {CURVES}")


def stage_examples(args):
    import numpy as np

    from lgh_tf import files
    from lgh_tf.data import synthetic

    out = os.path.join(REPO, EXAMPLES_DIR)
    os.makedirs(out, exist_ok=True)
    entries, index = {}, 0
    while len(entries) < args.num_examples:
        sample = synthetic.render_sample(args.synthetic_seed, index, split="test")
        if not sample["flip"] and bool(np.all(sample["visible"])):
            name = f"hand{len(entries) + 1}.png"
            files.write_png(os.path.join(out, name), sample["image"])
            entries[name] = {
                "test_index": index,
                "uv": np.round(sample["uv"].astype(float), 3).tolist(),
                "xyz": np.round(sample["xyz"].astype(float), 6).tolist(),
                "K": np.round(sample["K"].astype(float), 4).tolist(),
            }
        index += 1
    annotations = {
        "about": "Right hands of the embedded synthetic world's test split (held out from the shipped model's "
                 "training), made by tools/build_demo.py: uv in image pixels (u = column, v = row), xyz in "
                 "metres in the camera frame, K the camera matrix; joints in RHD order (lgh_tf.data.schema).",
        "generator": "lgh_tf.data.synthetic.render_sample",
        "generator_version": synthetic.GENERATOR_VERSION,
        "split": "test",
        "synthetic_seed": args.synthetic_seed,
        "images": entries,
    }
    files.write_json(os.path.join(out, "annotations.json"), annotations)
    print(f"examples: {', '.join(entries)} in {EXAMPLES_DIR}/")


def example_errors(predictor):
    """{name: mean 2D error in px} of the predictor on every example, as --mode=predict runs it."""
    import numpy as np

    from lgh_tf import predict

    with open(os.path.join(REPO, EXAMPLES_DIR, "annotations.json")) as f:
        annotations = json.load(f)
    errors, results = {}, {}
    for name, entry in annotations["images"].items():
        result = predict.predict_image(predictor, os.path.join(REPO, EXAMPLES_DIR, name))
        errors[name] = float(np.mean(np.linalg.norm(np.asarray(result["uv"]) - np.asarray(entry["uv"]), axis=-1)))
        results[name] = result
    return errors, results


def stage_figure(args):
    import numpy as np

    from lgh_tf import files, predict, visualize
    from lgh_tf.export import saved_model
    from lgh_tf.model import io

    model_dir = io.find_saved_model(os.path.join(REPO, DEMO_DIR))
    predictor = predict.load_predictor(model_dir)
    errors, results = example_errors(predictor)
    for name, error in errors.items():
        print(f"{name}: mean 2D error {error:.2f} px ({results[name]['status']}, "
              f"confidence {results[name]['confidence']:.2f})")
    info = saved_model.read_export_info(model_dir)
    tflite = os.path.join(model_dir, info["tflite"]["int8"]["path"])
    int8_errors, _ = example_errors(predict.load_predictor(tflite))
    print("int8 TFLite: " + ", ".join(f"{name} {error:.2f} px" for name, error in int8_errors.items()))

    import cv2

    result = results["hand1.png"]
    overlay = visualize.draw_skeleton(result["_image"], np.asarray(result["uv"]))
    view = visualize.skeleton_3d_figure(np.asarray(result["xyz"]), "3D joints (camera coordinates)")
    groups = visualize.grouping_figure(info["groups"], "Learned joint groups")
    height = 360
    panels = [cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height), interpolation=cv2.INTER_AREA)
              for p in (overlay, view, groups)]
    path = files.write_png(os.path.join(REPO, FIGURE), np.concatenate(panels, axis=1))
    print(f"wrote {os.path.relpath(path, REPO)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma list of {','.join(STAGES)}")
    parser.add_argument("--run_dir", default="", help="a finished quickstart run to export (skips the training)")
    parser.add_argument("--work_dir", default="runs/demo", help="the training run and the staging export")
    parser.add_argument("--cache_dir", default="cache", help="generated synthetic hands")
    parser.add_argument("--synthetic_seed", type=int, default=0, help="the synthetic world (training, examples)")
    parser.add_argument("--num_examples", type=int, default=4)
    parser.add_argument("--representative_samples", type=int, default=100, help="int8 calibration crops")
    args = parser.parse_args(argv)
    args.work_dir = os.path.abspath(args.work_dir)
    args.run_dir = os.path.abspath(args.run_dir) if args.run_dir else ""
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: unknown {unknown}; choose from {','.join(STAGES)}")
    run_dir = args.run_dir
    if "train" in stages:
        run_dir = stage_train(args)
    if "export" in stages:
        stage_export(args, run_dir or os.path.join(args.work_dir, "run"))
    if "examples" in stages:
        stage_examples(args)
    if "figure" in stages:
        stage_figure(args)


if __name__ == "__main__":
    main()
