"""Synthetic hand sequences and an oracle predictor that reads the joints off the pixels.

Frames: ``synthetic.render_sequence`` (a synthetic hand moving and scaling across a larger frame,
palm towards the camera, fingers up) plus a small colour-coded marker on every joint. The
background and the hand have their blue channel compressed to at most 150, so the markers (blue
255, red/green on a 5x5 grid 55 apart) are the only pixels with those colours.

Oracle: finds each joint's marker in the crop it is given (pixels within 14 of the code in red and
green, blue >= 200), answers its centroid (+ Gaussian noise), zero relative depth, and heatmaps with
a bump of height 8 at each found joint (flat where a joint is not found). A hand seen mirrored (the
2D turns of ``TRIPLES`` of the other sign, by a vote) gets bumps of height 3, i.e. a lower
confidence, as a network trained on right hands would give; for this palm-facing pose family the
2D turn is a handedness cue (for any pose it is not: a left palm is a right back).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # run as a script from a checkout: this checkout's package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from lgh_tf.data import schema, synthetic  # noqa: E402

_LEVELS = (20, 75, 130, 185, 240)
CODES = np.array([(r, g, 255) for r in _LEVELS for g in _LEVELS][:schema.NUM_JOINTS], np.float64)
BLUE_CAP = 150


# Joint triples whose 2D turn tells a palm-facing right hand from its mirror image: (wrist, index
# MCP, little MCP) and (middle MCP, index or little MCP, middle PIP), for when the wrist is hidden.
TRIPLES = ((0, 8, 20), (12, 8, 11), (12, 20, 11))


def _turns(uv):
    """Sign of the 2D turn a -> b -> c (image axes, v down) of each triple, 0 where a joint is NaN."""
    signs = []
    for a, b, c in TRIPLES:
        u, v = uv[b] - uv[a], uv[c] - uv[a]
        signs.append(float(np.nan_to_num(np.sign(u[0] * v[1] - u[1] * v[0]))))
    return np.array(signs)


def render_sequence(num_frames, width=640, height=480, seed=0, absent=(), mirrored=False, period=None):
    """``synthetic.render_sequence`` with a marker on every joint (the hand's left/right mirror
    image, frames flipped horizontally, when ``mirrored``). Returns (frames, uv [(21, 2) or None
    where there is no hand], K)."""
    sequence = synthetic.render_sequence(num_frames, width, height, seed, absent, period)
    frames, truth = [], []
    for image, uv, xyz in zip(sequence["frames"], sequence["uv"], sequence["xyz"]):
        image = image.copy()
        image[..., 2] = np.minimum(image[..., 2], BLUE_CAP)
        if uv is not None:
            radius = max(4.0, 0.05 * float(np.max(np.ptp(uv, axis=0))))
            for j in np.argsort(-xyz[:, 2]):  # far to near
                centre = tuple(int(round(c * 16)) for c in uv[j])
                cv2.circle(image, centre, int(round(radius * 16)), tuple(float(c) for c in CODES[j]), -1,
                           cv2.LINE_8, 4)
        if mirrored:
            image = np.ascontiguousarray(image[:, ::-1])
            if uv is not None:
                uv = uv.copy()
                uv[:, 0] = width - 1 - uv[:, 0]
        frames.append(image)
        truth.append(uv)
    return frames, truth, sequence["K"]


class MarkerOracle:
    """A predictor (``run`` / ``__call__`` / ``input_size``) that reads the markers; see the module
    docstring. ``noise_px``: standard deviation of the answered joints, in crop pixels."""

    def __init__(self, input_size=256, noise_px=0.0, seed=0):
        self.input_size = input_size
        self.noise_px = noise_px
        self.rng = np.random.default_rng(seed)
        self.description = "marker oracle"
        self.calls = 0

    def find(self, crop):
        """(21, 2) marker centroids in crop pixels, NaN where a marker is not seen."""
        pixels = np.asarray(crop, np.float64) * 255.0
        rows, cols = np.mgrid[:pixels.shape[0], :pixels.shape[1]]
        keyed = pixels[..., 2] >= 200
        found = np.full((schema.NUM_JOINTS, 2), np.nan)
        for j, code in enumerate(CODES):
            mask = keyed & (np.abs(pixels[..., 0] - code[0]) <= 14) & (np.abs(pixels[..., 1] - code[1]) <= 14)
            if mask.any():
                found[j] = cols[mask].mean(), rows[mask].mean()
        return found

    def run(self, images):
        self.calls += 1
        size = self.input_size
        cells = size // 4
        grid_v, grid_u = np.mgrid[:cells, :cells].astype(np.float64)
        uvs, heatmaps = [], []
        for crop in images:
            found = self.find(crop)
            seen = np.all(np.isfinite(found), axis=1)
            mirrored = float(np.sum(_turns(found) * RIGHT_TURNS)) < 0  # a vote of the visible triples
            height = 3.0 if mirrored else 8.0
            fill = found[seen].mean(axis=0) if seen.any() else np.full(2, (size - 1) / 2)
            uv = np.where(seen[:, None], found, fill) + self.rng.normal(0.0, self.noise_px, (schema.NUM_JOINTS, 2))
            maps = np.zeros((cells, cells, schema.NUM_JOINTS))
            for j in np.flatnonzero(seen):
                cu, cv = found[j] / 4.0
                maps[..., j] = height * np.exp(-((grid_u - cu) ** 2 + (grid_v - cv) ** 2) / 2.0)
            uvs.append(uv)
            heatmaps.append(maps)
        uv = np.array(uvs)
        return {"uv": uv, "depth": np.zeros(uv.shape[:2]), "heatmaps": np.array(heatmaps)}

    def __call__(self, images):
        out = self.run(images)
        return out["uv"], out["depth"]


# The turns of a right hand (a ground-truth frame; the same throughout the palm-facing sequences).
RIGHT_TURNS = _turns(synthetic.render_sequence(1, seed=0)["uv"][0])


def jitter_and_lag(points, truth, fps=30.0, max_lag=6.0):
    """Frame-to-frame jitter (RMS over frames and joints of the motion error
    |(p_t - p_{t-1}) - (g_t - g_{t-1})|, in the points' unit) and lag (frames: the delay of the
    truth, linearly interpolated, that best explains the points, on a 0.05-frame grid)."""
    points, truth = np.asarray(points, np.float64), np.asarray(truth, np.float64)
    motion_error = np.diff(points, axis=0) - np.diff(truth, axis=0)
    jitter = float(np.sqrt(np.mean(np.sum(motion_error**2, axis=-1))))
    start = int(np.ceil(max_lag)) + 1
    best = None
    for lag in np.arange(0.0, max_lag + 1e-9, 0.05):
        t = np.arange(start, len(points)) - lag
        low = np.floor(t).astype(int)
        w = (t - low)[:, None, None]
        delayed = (1 - w) * truth[low] + w * truth[np.minimum(low + 1, len(truth) - 1)]
        error = float(np.mean(np.linalg.norm(points[start:] - delayed, axis=-1)))
        if best is None or error < best[1]:
            best = (float(lag), error)
    return jitter, best[0]


if __name__ == "__main__":
    # python tests/hand_sequences.py [OUT_DIR]: the oracle tracked through a 48-frame sequence with
    # three frames without a hand -> OUT_DIR/demo.jsonl, demo_overlay.mp4, demo_contact.png, demo_3d.mp4.
    from lgh_tf import video

    frames, _, _ = render_sequence(48, seed=0, absent=(20, 21, 40))
    summary = video.run(MarkerOracle(256, noise_px=1.0), video.array_source(frames, name="demo"),
                        sys.argv[1] if len(sys.argv) > 1 else "runs/video_demo", hand="auto", view_3d=True)
    for what, path in summary["paths"].items():
        print(f"wrote {what}: {path}")
