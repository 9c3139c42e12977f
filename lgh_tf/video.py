"""3D hand pose over a video, a folder of frames or a camera: tracking, smoothing, outputs.

    from lgh_tf import predict, video
    predictor = predict.load_predictor("saved_models/lgh/2/tflite/model_int8.tflite")
    summary = video.run(predictor, video.open_frames("clip.mp4"), "runs/predict", hand="auto")

Tracking. Frame t is cropped from frame t-1's joints (the training crop about them, one network
pass). When that crop's hand is not confidently there (``localize`` status other than "ok"), the
frame is searched again from the whole image (``relocalised`` in its record); a frame without a
hand ends the track, and the next frame is searched. With ``hand="auto"`` the handedness is chosen
when the hand is found (both mirrorings, the more confident) and kept while it is tracked. A
detector's boxes for a frame (``predict.read_detections``) replace the search there.

Smoothing: the One Euro filter (Casiez, Roussel & Vogel, CHI 2012) on the 2D and on the 3D joints,
each joint's speed measured in hand sizes per second (the keypoints' extent in that space), so one
set of parameters serves pixels and metres: cutoff = ``min_cutoff`` + ``beta`` * speed (Hz), the
speed itself low-passed at ``d_cutoff``. Slow hands are smoothed hard (little jitter), fast ones
lightly (little lag). The filter restarts with every new track.

Outputs (written under temporary names, renamed when complete): ``<stem>.jsonl`` (one object per
frame), ``<stem>_overlay.mp4`` (the skeleton over each frame, mp4v), ``<stem>_contact.png`` (a
contact sheet of up to 12 frames), ``<stem>_summary.json`` (counts, frames/s, parameters,
assumptions) and, on request, ``<stem>_3d.mp4`` (the 3D skeleton, two views).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import json
import math
import os
import time

import numpy as np

from lgh_tf import files, geometry, localize

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FPS = 30.0
CONTACT_SHEET_FRAMES = 12


# ---------------------------------------------------------------------------------------------
# One Euro filter
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OneEuroConfig:
    """One Euro parameters: ``min_cutoff`` (Hz) at rest, ``beta`` (Hz per hand size per second),
    ``d_cutoff`` (Hz) for the speed estimate."""

    min_cutoff: float = 1.0
    beta: float = 1.0
    d_cutoff: float = 1.0


def _smoothing_factor(cutoff, dt):
    # Exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz sampled every dt s.
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """``filter(x, t, unit)``: points x (..., D) at time t (seconds), speed measured per ``unit``
    (e.g. the hand's size). ``reset()`` forgets the past."""

    def __init__(self, config=OneEuroConfig()):
        self.config = config
        self.reset()

    def reset(self):
        self.x, self.dx, self.t = None, None, None

    def __call__(self, x, t, unit=1.0):
        x = np.asarray(x, np.float64)
        if self.x is None or self.x.shape != x.shape:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t
        if dt <= 0:
            dt = 1.0 / DEFAULT_FPS
        c = self.config
        a_d = _smoothing_factor(c.d_cutoff, dt)
        self.dx = a_d * (x - self.x) / dt + (1.0 - a_d) * self.dx
        speed = np.linalg.norm(self.dx, axis=-1, keepdims=True) / max(float(unit), 1e-12)
        a = _smoothing_factor(c.min_cutoff + c.beta * speed, dt)
        self.x = a * x + (1.0 - a) * self.x
        self.t = float(t)
        return self.x.copy()


# ---------------------------------------------------------------------------------------------
# Frame sources
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FrameSource:
    """``frames``: an iterator of (index, name, (H, W, 3) uint8 RGB); ``count`` (None for a
    camera), ``fps``, ``name`` (the stem of the outputs), ``skipped`` [(name, why)] filled while
    iterating (unreadable files of a folder, undecodable frames of a video), ``problems`` (one line
    each: a video that gave fewer frames than its container declares)."""

    frames: object
    count: int | None
    fps: float
    name: str
    skipped: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)  # e.g. fewer frames than declared


def _folder_source(directory, fps, max_frames):
    from lgh_tf import predict

    paths = sorted(p for p in glob.glob(os.path.join(directory, "*"))
                   if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p))
    if not paths:
        raise ValueError(f"images: no image files ({', '.join(IMAGE_EXTENSIONS)}) in {directory}")
    if max_frames:
        paths = paths[:max_frames]
    source = FrameSource(None, len(paths), fps or DEFAULT_FPS,
                         os.path.basename(os.path.normpath(directory)) or "frames")

    def frames():
        for index, path in enumerate(paths):
            try:
                rgb, _ = predict.read_image(path)
            except ValueError as error:
                source.skipped.append((os.path.basename(path), str(error)))
                continue
            yield index, os.path.basename(path), rgb

    source.frames = frames()
    return source


def open_frames(video=None, images=None, *, fps=None, max_frames=None):
    """A :class:`FrameSource` for ``images`` (a folder of frames, in file-name order) or ``video``
    (a video file, a folder of frames, or a camera index such as "0"). ValueError naming it when
    it cannot be opened."""
    if images:
        if not os.path.isdir(images):
            raise ValueError(f"images: {images} is not a directory")
        return _folder_source(images, fps, max_frames)
    if video is None or str(video) == "":
        raise ValueError("video: give a video file, a folder of frames or a camera index")
    video = str(video)
    if os.path.isdir(video):
        return _folder_source(video, fps, max_frames)
    import cv2

    camera = video.isdigit()
    if not camera and not os.path.isfile(video):
        raise ValueError(f"video: no such file {video}")
    capture = cv2.VideoCapture(int(video) if camera else video)
    if not capture.isOpened():
        raise ValueError(f"video: cannot open {'camera ' if camera else ''}{video} (not a video OpenCV can "
                         "decode, or no such camera)")
    count = None if camera else int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    if max_frames:
        count = min(count, max_frames) if count else max_frames
    rate = fps or capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    if not (0 < rate < 1000):
        rate = DEFAULT_FPS

    def frames():
        index, read, failed = 0, 0, 0
        try:
            while not max_frames or index < max_frames:
                ok, bgr = capture.read()
                if not ok:
                    # A frame that fails to decode before the container's count: skip it (named) and
                    # try the next, so a video damaged in the middle is not silently cut short.
                    if count is None or index >= count:
                        break
                    source.skipped.append((f"frame {index}", "cannot be decoded (damaged or cut short)"))
                    failed, index = failed + 1, index + 1
                    continue
                yield index, f"frame {index}", np.ascontiguousarray(bgr[..., ::-1])
                index, read = index + 1, read + 1
        finally:
            capture.release()
            if count is not None and read < count:
                source.problems.append(f"{video}: read {read} of the {count} frames its container declares "
                                       f"({failed} could not be decoded: the file is damaged or cut short)")

    name = f"camera{video}" if camera else os.path.splitext(os.path.basename(video))[0]
    source = FrameSource(frames(), count, float(rate), name)
    return source


def array_source(frames, fps=DEFAULT_FPS, name="frames"):
    """A :class:`FrameSource` over a list of RGB arrays (tests, notebooks)."""
    frames = list(frames)
    return FrameSource(((i, f"frame {i}", f) for i, f in enumerate(frames)), len(frames), fps, name)


# ---------------------------------------------------------------------------------------------
# Tracking
# ---------------------------------------------------------------------------------------------


def track(predictor, source, *, hand="right", intrinsics=None, scale=None,
          field_of_view=geometry.DEFAULT_FIELD_OF_VIEW_DEG, smoothing=True, one_euro=OneEuroConfig(),
          iterations=localize.SEARCH_ITERATIONS, min_confidence=localize.MIN_CONFIDENCE,
          min_hand_px=localize.MIN_HAND_PX, detections=None):
    """Yields one record per frame (a JSON-ready dict plus "_image", the frame): frame, name, time
    (s), detected, status, hand, handedness, confidence, joint_confidence, source ("prior",
    "search", "box"), relocalised, crop (the final square [u, v, side]), uv and xyz (smoothed when
    ``smoothing``), uv_raw, xyz_raw, depth_relative, root_depth; None fields without a hand."""
    from lgh_tf import predict

    filter_2d, filter_3d = OneEuroFilter(one_euro), OneEuroFilter(one_euro)
    detections = detections or {}
    prior, tracked_hand = None, None
    K = None if intrinsics is None else predict.intrinsics_matrix(intrinsics)
    options = dict(iterations=iterations, min_confidence=min_confidence, min_hand_px=min_hand_px)
    for index, name, rgb in source.frames:
        height, width = rgb.shape[:2]
        camera, hand_scale, assumptions = predict.camera_and_scale(K, scale, width, height,
                                                                     field_of_view=field_of_view)
        t = index / source.fps
        boxes = detections.get(index) or detections.get(name)
        relocalised = False
        if boxes:
            found = [localize.localize(predictor, rgb, box=b, hand=tracked_hand or hand, **options) for b in boxes]
            result = max(found, key=lambda r: r["confidence"] or 0.0)
        elif prior is not None:
            result = localize.localize(predictor, rgb, prior_uv=prior, hand=tracked_hand,
                                       **{**options, "iterations": 1})
            if not result["detected"]:
                result = localize.localize(predictor, rgb, hand=hand, **options)
                relocalised = True
        else:
            result = localize.localize(predictor, rgb, hand=hand, **options)
            relocalised = index > 0
        record = {"frame": index, "name": name, "time": t, "detected": result["detected"],
                  "status": result["status"], "hand": result["hand"], "handedness": result["handedness"],
                  "confidence": result["confidence"], "source": result["source"], "relocalised": relocalised,
                  "crop": result["squares"][-1], "hand_size_px": result["hand_size_px"]}
        if not result["detected"]:
            prior, tracked_hand = None, None
            filter_2d.reset()
            filter_3d.reset()
            record.update(uv=None, xyz=None, uv_raw=None, xyz_raw=None, depth_relative=None, root_depth=None,
                          joint_confidence=None)
        else:
            prior, tracked_hand = result["uv"], result["hand"]
            xyz, root_depth, _ = predict.lift_hand(result["uv_crop"], result["depth"], result["crop_from_image"],
                                                   camera, hand_scale)
            uv, xyz_raw = result["uv"], xyz
            if smoothing:
                uv = filter_2d(uv, t, unit=max(float(np.max(np.ptp(uv, axis=0))), 1.0))
                xyz = filter_3d(xyz, t, unit=max(float(np.max(np.ptp(xyz, axis=0))), 1e-6))
            record.update(uv=uv.tolist(), xyz=xyz.tolist(), uv_raw=result["uv"].tolist(),
                          xyz_raw=xyz_raw.tolist(), depth_relative=result["depth"].tolist(), root_depth=root_depth,
                          joint_confidence=None if result["joint_confidence"] is None
                          else result["joint_confidence"].tolist())
            assumptions = {**assumptions, "root_depth": "estimated from the scale (Iqbal et al. 2018)"}
        record["assumptions"] = assumptions
        record["_image"] = rgb
        yield record


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


def overlay_frame(record):
    """The frame (RGB uint8) with its skeleton and a status line."""
    import cv2

    from lgh_tf import visualize

    image = record["_image"]
    canvas = visualize.draw_skeleton(image, record["uv"]) if record["detected"] else image.copy()
    confidence = "n/a" if record["confidence"] is None else f"{record['confidence']:.2f}"
    text = (f"{record['frame']}  {record['hand']} hand  conf {confidence}" if record["detected"]
            else f"{record['frame']}  no hand ({record['status']}, conf {confidence})")
    scale = max(0.5, image.shape[1] / 800.0)
    (_, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, 1)
    strip = text_height + baseline + 8
    canvas[:strip] = (canvas[:strip] * 0.35).astype(np.uint8)  # darkened strip behind the text
    cv2.putText(canvas, text, (6, strip - baseline - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                (255, 255, 255) if record["detected"] else (255, 90, 90), max(1, int(round(scale))), cv2.LINE_AA)
    return canvas


def contact_sheet(tiles, columns=4):
    """Tiles (list of (name, RGB image)), each scaled to a common width, in a grid. RGB uint8."""
    import cv2

    width = 320
    scaled = []
    for _, tile in tiles:
        height = int(round(tile.shape[0] * width / tile.shape[1]))
        scaled.append(cv2.resize(tile, (width, height), interpolation=cv2.INTER_AREA))
    height = max(t.shape[0] for t in scaled)
    rows = int(math.ceil(len(scaled) / columns))
    sheet = np.full((rows * (height + 4) + 4, columns * (width + 4) + 4, 3), 255, np.uint8)
    for k, tile in enumerate(scaled):
        r, c = divmod(k, columns)
        y, x = 4 + r * (height + 4), 4 + c * (width + 4)
        sheet[y:y + tile.shape[0], x:x + width] = tile
    return sheet


class _VideoWriter:
    """cv2.VideoWriter (mp4v) into a temporary name, renamed on ``close``; frames of another size
    are resized to the first frame's."""

    def __init__(self, path, fps):
        self.path, self.fps, self.writer, self.size, self.frames = path, fps, None, None, 0
        self.temporary = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp.mp4")

    def write(self, rgb):
        import cv2

        if self.writer is None:
            self.size = (rgb.shape[1], rgb.shape[0])
            self.writer = cv2.VideoWriter(self.temporary, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise OSError(f"cannot write the video {self.path} (OpenCV has no mp4v encoder?)")
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(np.ascontiguousarray(rgb[..., ::-1]))
        self.frames += 1

    def close(self, keep=True):
        import cv2

        if self.writer is not None:
            self.writer.release()
            if keep:
                # OpenCV's encoder fails silently (a full disk, a read-only folder): read the count
                # back from the container before the file replaces an earlier one.
                capture = cv2.VideoCapture(self.temporary)
                written = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
                capture.release()
                if written < self.frames:
                    with contextlib.suppress(OSError):
                        os.remove(self.temporary)
                    raise files.OutputError(f"cannot write {self.path}: the encoder stored {written} of "
                                            f"{self.frames} frames (is the disk full?); earlier outputs were "
                                            "left as they were")
                os.replace(self.temporary, self.path)
            elif os.path.exists(self.temporary):
                os.remove(self.temporary)


@contextlib.contextmanager
def _naming(path):
    """A failed write of the JSON lines (full disk) as an OutputError naming the output."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
            raise
        raise files.output_error(path, error) from None


def _jsonable(record):
    return {k: v for k, v in record.items() if not k.startswith("_")}


def run(predictor, source, out_dir, *, view_3d=False, progress=True, **options):
    """Tracks the hand through ``source`` (``open_frames``) and writes the outputs (module
    docstring) into ``out_dir``; ``options`` go to :func:`track`. Returns the summary dict, with
    the written paths under "paths"."""
    import cv2

    from lgh_tf import visualize

    os.makedirs(out_dir, exist_ok=True)
    stem = source.name
    paths = {"jsonl": os.path.join(out_dir, f"{stem}.jsonl"),
             "overlay": os.path.join(out_dir, f"{stem}_overlay.mp4"),
             "contact_sheet": os.path.join(out_dir, f"{stem}_contact.png"),
             "summary": os.path.join(out_dir, f"{stem}_summary.json")}
    if view_3d:
        paths["3d"] = os.path.join(out_dir, f"{stem}_3d.mp4")
    jsonl_temporary = os.path.join(out_dir, f".{stem}.jsonl.tmp")
    overlay = _VideoWriter(paths["overlay"], source.fps)
    view = _VideoWriter(paths["3d"], source.fps) if view_3d else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=source.count, unit="frame", desc=stem, dynamic_ncols=True)
    tiles, stride = [], 1
    counts = {"frames": 0, "detected": 0, "relocalised": 0}
    hands = {"right": 0, "left": 0}
    assumptions = {}
    start = time.perf_counter()
    complete = False
    try:
        with _naming(paths["jsonl"]), open(jsonl_temporary, "w") as jsonl:
            for record in track(predictor, source, **options):
                assumptions = record["assumptions"] or assumptions
                jsonl.write(json.dumps(_jsonable(record), allow_nan=False) + "\n")
                counts["frames"] += 1
                counts["detected"] += int(record["detected"])
                counts["relocalised"] += int(record["relocalised"])
                if record["detected"]:
                    hands[record["hand"]] += 1
                picture = overlay_frame(record)
                overlay.write(picture)
                if view is not None:
                    if record["detected"]:
                        figure = visualize.skeleton_3d_figure(np.array(record["xyz"]), f"frame {record['frame']}: "
                                                              "3D joints (camera coordinates)")
                    else:
                        figure = np.full((440, 840, 3), 255, np.uint8)
                        cv2.putText(figure, f"frame {record['frame']}: no hand", (30, 220),
                                    cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2, cv2.LINE_AA)
                    view.write(figure)
                if record["frame"] % stride == 0:
                    tiles.append((record["name"], picture))
                    if len(tiles) > 2 * CONTACT_SHEET_FRAMES:
                        tiles, stride = tiles[::2], stride * 2
                if bar is not None:
                    bar.update(1)
        complete = True
    finally:
        if bar is not None:
            bar.close()
        overlay.close(keep=complete)
        if view is not None:
            view.close(keep=complete)
        if not complete and os.path.exists(jsonl_temporary):
            os.remove(jsonl_temporary)
    os.replace(jsonl_temporary, paths["jsonl"])
    elapsed = time.perf_counter() - start
    if tiles:
        chosen = [tiles[int(round(k))] for k in np.linspace(0, len(tiles) - 1, min(len(tiles), CONTACT_SHEET_FRAMES))]
        files.write_png(paths["contact_sheet"], contact_sheet(chosen))
    else:
        del paths["contact_sheet"]
    one_euro = options.get("one_euro", OneEuroConfig())
    summary = {
        "source": stem, "model": getattr(predictor, "description", None), **counts, "hands": hands,
        "skipped": [{"name": n, "why": w} for n, w in source.skipped],
        "frames_expected": source.count, "problems": list(source.problems),
        "seconds": elapsed, "frames_per_second": counts["frames"] / elapsed if elapsed > 0 else None,
        "fps": source.fps, "hand_mode": options.get("hand", "right"),
        "smoothing": dataclasses.asdict(one_euro) if options.get("smoothing", True) else None,
        "assumptions": assumptions, "paths": paths,
    }
    files.write_json(paths["summary"], summary)
    return summary
