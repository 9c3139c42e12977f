"""The web page's speed (web/, LiteRT.js in headless Chromium) beside the Python TFLite runner on the
same images: milliseconds per image (the whole crop search) on the examples, and frames per second
in camera mode (Chromium's fake camera playing a synthetic hand sequence).

    python tools/bench_web.py --markdown          # -> docs/benchmarks/bench_web.md

The page runs the float32 .tflite (web/assets/, ``npm ci`` in web/) one thread when the page is not
cross-origin isolated (``python -m http.server``), ``--threads`` threads when it is
(``python tools/serve_web.py``); Python's runner (ai-edge-litert, XNNPACK) runs the same file with
``--threads``. Python's camera figure is ``lgh_tf.video.track`` on the same frames (4:2:0 round trip,
as the camera gives them), decoding not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/: bench_report, chromium
import chromium  # noqa: E402
from bench_report import add_markdown_flag, run_main  # noqa: E402

REPO = chromium.ROOT
MODEL = os.path.join(REPO, "lgh_tf", "demo", "synthetic_demo", "1", "tflite", "model_float32.tflite")
EXAMPLES = ("hand1.png", "hand2.png", "hand3.png", "hand4.png")


def page_images(browser, url, repeats):
    page = browser.open(url)
    page.wait_for("document.body.dataset.state === 'ready'", timeout=120)
    runtime = page.evaluate("document.getElementById('runtime').textContent")
    times, passes = [], []
    for _ in range(repeats):
        for name in EXAMPLES:
            page.evaluate(f"window.lgh.analyseUrl('assets/examples/{name}', {name!r})")
            page.wait_for(f"document.body.dataset.state === 'done' && window.lgh.result.image === {name!r}",
                          timeout=120)
            result = page.evaluate("window.lgh.result")
            times.append(result["ms"])
            passes.append(result["iterations"])
    network = page.evaluate("""(async () => {
      const x = new Float32Array(64 * 64 * 3).fill(0.5), times = [];
      for (let i = 0; i < 30; i++) {
        const t = performance.now(); await window.lgh.run(x); times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b); return times[15];
    })()""", timeout=120)
    return runtime, times, passes, network


def page_camera(browser, url, seconds):
    page = browser.open(url)
    page.wait_for("document.body.dataset.state === 'ready'", timeout=120)
    page.evaluate("document.getElementById('camera').click()")
    page.wait_for("window.lgh.track.length >= 5", timeout=120)
    time.sleep(seconds)
    track = page.evaluate("window.lgh.track.slice(5)")  # past the start
    page.evaluate("document.getElementById('camera').click()")
    span = track[-1]["time"] - track[0]["time"]
    busy = [r["phases"]["busy"] for r in track]
    return {"frames": len(track), "fps": (len(track) - 1) / span if span > 0 else float("nan"),
            "ms": statistics.median(r["ms"] for r in track),
            # the loop's own time per frame (read the frame, crop search, draw), mean: its frames/s
            # with no wait for the camera; and the mean wait between frames (camera, rendering step)
            "busy": statistics.mean(busy[1:]), "wait": statistics.mean(r["phases"]["wait"] for r in track[1:]),
            "searched": sum(r["relocalised"] for r in track) / len(track),
            "detected": sum(r["detected"] for r in track) / len(track), "size": track[0]["size"]}


def python_figures(frames, threads, repeats):
    import numpy as np

    from lgh_tf import predict, video
    from lgh_tf.export.tflite import TFLiteRunner

    runner = TFLiteRunner(MODEL, num_threads=threads)
    predictor = predict.Predictor(
        [lambda images: (lambda out: (out["uv"], out["depth"], out["heatmaps"]))(runner(images))], 64, "tflite")
    images = [predict.read_image(os.path.join(REPO, "examples", name))[0] for name in EXAMPLES]
    predict.predict_image(predictor, images[0])  # warm-up
    times, passes = [], []
    for _ in range(repeats):
        for rgb in images:
            start = time.perf_counter()
            result = predict.predict_image(predictor, rgb)
            times.append(1000 * (time.perf_counter() - start))
            passes.append(result["crop"]["iterations"])
    x = np.full((1, 64, 64, 3), 0.5, np.float32)
    network = []
    for _ in range(30):
        start = time.perf_counter()
        runner(x)
        network.append(1000 * (time.perf_counter() - start))
    start = time.perf_counter()
    records = list(video.track(predictor, video.array_source(frames), smoothing=True))
    fps = len(records) / (time.perf_counter() - start)
    return times, passes, statistics.median(network), fps, sum(r["detected"] for r in records) / len(records)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="times each example is run")
    parser.add_argument("--threads", type=int, default=2, help="threads of the isolated page and of Python")
    parser.add_argument("--camera_seconds", type=float, default=8.0)
    parser.add_argument("--frames", type=int, default=60, help="camera sequence length (640x480)")
    add_markdown_flag(parser)
    args = parser.parse_args(argv)
    if chromium.find_chromium() is None or chromium.web_ready():
        print(f"bench_web: {chromium.web_ready() or 'no Chromium (apt-get install chromium)'}")
        return 1
    import cv2

    from lgh_tf.data import synthetic

    sequence = synthetic.render_sequence(args.frames, 640, 480, seed=0)
    frames = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420), cv2.COLOR_YUV2RGB_I420)
              for f in sequence["frames"]]
    with tempfile.TemporaryDirectory() as tmp:
        rows, version = _page_rows(args, chromium.write_y4m(os.path.join(tmp, "hand.y4m"), sequence["frames"], 30))
    with open(os.path.join(REPO, "web", "node_modules", "@litertjs", "core", "package.json")) as f:
        litert = json.load(f)["version"]
    times, passes, network, fps, detected = python_figures(frames, args.threads, args.repeats)
    print(f"{version}, LiteRT.js (@litertjs/core) {litert}; ai-edge-litert {_version('ai-edge-litert')}")
    print(f"float32 TFLite (64x64 input), the 4 examples x {args.repeats}; camera: {args.frames} frames of "
          f"640x480 at 30 frames/s from Chromium's fake camera, {args.camera_seconds:g} s")
    print()
    print("| runtime | ms per image (median) | passes per image | network ms per pass | camera frames/s | "
          "camera search ms per frame (median) | camera loop busy ms per frame (mean) | camera wait ms (mean) | "
          "frames searched again | camera frames with a hand |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, ms, mean_passes, net, camera in rows:
        print(f"| {label} | {ms:.1f} | {mean_passes:.2f} | {net:.1f} | {camera['fps']:.1f} | {camera['ms']:.1f} | "
              f"{camera['busy']:.1f} | {camera['wait']:.1f} | {100 * camera['searched']:.0f}% | "
              f"{100 * camera['detected']:.0f}% |")
    print(f"| Python ai-edge-litert, {args.threads} threads | {statistics.median(times):.1f} | "
          f"{statistics.mean(passes):.2f} | {network:.1f} | {fps:.1f} | | {1000 / fps:.1f} | | | "
          f"{100 * detected:.0f}% |")
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("Camera frames/s is what the page draws (a frame, its crop, one network pass, the skeleton, shown by "
          "a rendering step); the fake camera offers 30. The goal is 20 frames/s. The loop's busy ms is its own "
          "work per frame (reading the frame out of the video, the crop search: one pass from the previous "
          "joints, the whole search again when that misses, drawing); the wait is the time between frames "
          "(the camera's next frame, the rendering step). 1000 / busy is what the loop could do with frames "
          "always ready; on a loaded machine both grow.")
    return 0


def _page_rows(args, y4m):
    """The page's rows: one thread (not isolated), then ``--threads`` threads (isolated)."""
    rows = []
    with chromium.Browser(chromium.camera_flags(y4m)) as browser:
        version = browser.version()
        for isolated in (False, True):
            with chromium.serve_web(isolated=isolated) as url:
                query = f"?threads={args.threads}" if isolated else "?threads=0"
                runtime, times, passes, network = page_images(browser, url + query, args.repeats)
                camera = page_camera(browser, url + query, args.camera_seconds)
            label = f"page, {'isolated, ' + str(args.threads) + ' threads' if isolated else 'one thread'}"
            rows.append((label, statistics.median(times), statistics.mean(passes), network, camera))
            print(f"{label}: {runtime}")
    return rows, version


def _version(name):
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


if __name__ == "__main__":
    raise SystemExit(run_main("bench_web", main))
