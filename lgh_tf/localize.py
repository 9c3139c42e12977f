"""Finding the hand with the network itself: crop search, confidence from the heatmaps, handedness.

    from lgh_tf import localize, predict
    predictor = predict.load_predictor("saved_models/lgh")
    hand = localize.localize(predictor, rgb)                  # no box: search, then refine
    hand["uv"], hand["confidence"], hand["hand"], hand["detected"]

Search (no box). A first pass sees the whole image padded to a square; the next crop is the
training crop about the predicted joints (``geometry.keypoint_square``: margin 1.2, shifted inside
the image), and so on until the crop stops moving (centre and side within ``tolerance`` of the
side) or after ``iterations`` passes. With a prior (the previous video frame's joints) the search
starts from the training crop about them; with a box it starts from the box's square.

Confidence. The backbone's 21 heatmaps are logits whose softmax is the distribution that its own
soft-argmax reads (``backbone_readout``, sharpness 1). A joint's confidence is the probability mass
within ``CONFIDENCE_RADIUS`` heatmap cells (2 cells = 8 input pixels at stride 4) of the final
predicted joint: near 1 for a sharp peak where the network put the joint, about
pi r^2 / (S/4)^2 (0.003 at 256x256) for a flat map, and low when the backbone disagrees with the
grouped heads. The hand's confidence is the mean over the joints. ``spread_px`` is the heatmap's
standard deviation about the joint, in crop pixels. A hand whose keypoints span fewer than
``MIN_HAND_PX`` image pixels is reported as too small whatever its confidence: its crop would be an
upscaled blur.

Handedness. The networks are trained on right hands. ``hand="left"`` mirrors the crop
(``geometry.mirror_matrix`` folded into ``crop_from_image``) and maps the joints back, so uv and the
Eq. 3 lift come out in the original image and camera; ``"auto"`` runs both (one batch of two) and
keeps the more confident, reporting both confidences.
"""

from __future__ import annotations

import numpy as np

from lgh_tf import geometry

HANDS = ("right", "left", "auto")
CONFIDENCE_RADIUS = 2.0  # heatmap cells
MIN_CONFIDENCE = 0.3
MIN_HAND_PX = 24.0
SEARCH_ITERATIONS = 4
SEARCH_TOLERANCE = 0.05


def heatmap_confidence(heatmaps, uv_crop, input_size, radius=CONFIDENCE_RADIUS):
    """Per-joint (confidence, spread in crop pixels), each (B, J), from heatmap logits
    (B, h, w, J) and the predicted crop joints (B, J, 2) (heatmap cell i is input pixel
    i * S / w)."""
    heatmaps = np.asarray(heatmaps, np.float64)
    batch, height, width, joints = heatmaps.shape
    logits = heatmaps.reshape(batch, height * width, joints)
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    stride = input_size / float(width)
    rows, cols = np.divmod(np.arange(height * width), width)
    cells = np.stack([cols, rows], axis=-1).astype(np.float64)  # (P, 2) as (u, v)
    joint_cells = np.asarray(uv_crop, np.float64) / stride  # (B, J, 2)
    distance2 = np.sum((cells[None, :, None, :] - joint_cells[:, None, :, :]) ** 2, axis=-1)  # (B, P, J)
    confidence = np.sum(p * (distance2 <= radius**2), axis=1)
    mean = np.einsum("bpj,pc->bjc", p, cells)
    variance = np.einsum("bpj,p->bj", p, np.sum(cells**2, axis=-1)) - np.sum(mean**2, axis=-1)
    return confidence, stride * np.sqrt(np.maximum(variance, 0.0))


def predict_crops(predictor, rgb, matrices):
    """Runs ``predictor`` on the crops ``matrices`` (list of 3x3 crop_from_image) of one image
    in one batch; a list of dicts: crop_from_image, uv (image pixels), uv_crop, depth,
    joint_confidence, confidence (None without heatmaps), spread_px."""
    size = predictor.input_size
    crops = np.stack([geometry.render_crop(rgb, m, size) for m in matrices]).astype(np.float32) / 255.0
    out = predictor.run(crops) if hasattr(predictor, "run") else dict(
        zip(("uv", "depth", "heatmaps"), tuple(predictor(crops)) + (None,)))
    uv_crop, depth = np.asarray(out["uv"], np.float64), np.asarray(out["depth"], np.float64)
    heatmaps = out.get("heatmaps")
    if heatmaps is not None and (np.ndim(heatmaps) != 4 or np.shape(heatmaps)[-1] != uv_crop.shape[1]):
        heatmaps = None  # not per-joint maps: no confidence
    if heatmaps is not None:
        joint_confidence, spread = heatmap_confidence(heatmaps, uv_crop, size)
    results = []
    for i, matrix in enumerate(matrices):
        matrix = np.asarray(matrix, np.float64)
        results.append({
            "crop_from_image": matrix,
            "uv": geometry.map_points(geometry.invert_affine(matrix), uv_crop[i]),
            "uv_crop": uv_crop[i],
            "depth": depth[i],
            "joint_confidence": None if heatmaps is None else joint_confidence[i],
            "confidence": None if heatmaps is None else float(np.mean(joint_confidence[i])),
            "spread_px": None if heatmaps is None else float(np.mean(spread[i])),
        })
    return results


def _crop_matrix(centre, side, size, hand):
    matrix = geometry.square_crop_matrix(np.asarray(centre, np.float64), float(side), size)
    return geometry.mirror_matrix(size) @ matrix if hand == "left" else matrix


def _stable(previous, current, tolerance):
    (c0, s0), (c1, s1) = previous, current
    return bool(np.max(np.abs(np.asarray(c1) - np.asarray(c0))) <= tolerance * s0
                and abs(s1 - s0) <= tolerance * s0)


def localize(predictor, rgb, *, box=None, prior_uv=None, hand="right", iterations=SEARCH_ITERATIONS,
             tolerance=SEARCH_TOLERANCE, margin=geometry.CROP_MARGIN, min_confidence=MIN_CONFIDENCE,
             min_hand_px=MIN_HAND_PX, refine_box=False):
    """The hand in ``rgb`` (H, W, 3) uint8: the prediction on the final crop.

    Args:
      box: (x, y, w, h) around the hand (user or detector): its square (side ``margin * max(w, h)``)
        is the first crop, and the only one unless ``refine_box``.
      prior_uv: (21, 2) joints in image pixels (the previous frame's): the first crop is the
        training crop about them.
      hand: "right", "left" (mirrored crop) or "auto" (both, the more confident kept).
      iterations: at most this many network passes per hand; the search stops earlier when the
        crop is stable.

    Returns a dict: everything ``predict_crops`` gives for the final crop, plus hand, source
    ("box", "prior" or "search"), iterations, squares (the crops tried, [u, v, side] in image
    pixels), hand_size_px, status ("ok", "low confidence", "too small"; "ok" when there is no
    confidence), detected, and handedness {mode, right, left} (the two confidences under "auto").
    """
    if hand not in HANDS:
        raise ValueError(f"hand: expected one of {HANDS}, got {hand!r}")
    height, width = rgb.shape[:2]
    size = predictor.input_size
    if box is not None:
        start, source = geometry.box_square(box, margin), "box"
    elif prior_uv is not None:
        start, source = _keypoint_square(prior_uv, margin, width, height), "prior"
    else:
        start, source = geometry.image_square(width, height), "search"
    passes = 1 if (box is not None and not refine_box) else max(1, int(iterations))
    hands = ("right", "left") if hand == "auto" else (hand,)
    squares = {h: [start] for h in hands}
    done = {h: False for h in hands}
    results = {}
    for step in range(passes):
        active = [h for h in hands if not done[h]]
        outputs = predict_crops(predictor, rgb, [_crop_matrix(*squares[h][-1], size, h) for h in active])
        for h, result in zip(active, outputs):
            results[h] = result
            result["iterations"] = step + 1
            if step + 1 == passes:
                continue
            square = _keypoint_square(result["uv"], margin, width, height)
            if _stable(squares[h][-1], square, tolerance):
                done[h] = True
            else:
                squares[h].append(square)
        if all(done.values()):
            break
    confidences = {h: results[h]["confidence"] for h in hands}
    if hand == "auto":
        if any(c is None for c in confidences.values()):
            raise ValueError("hand=auto needs a model with heatmaps (confidence), this one gives none")
        chosen = max(hands, key=lambda h: confidences[h])
    else:
        chosen = hand
    result = dict(results[chosen])
    hand_size = float(np.max(np.ptp(result["uv"], axis=0)))
    if result["confidence"] is not None and result["confidence"] < min_confidence:
        status = "low confidence"
    elif hand_size < min_hand_px:
        status = "too small"
    else:
        status = "ok"
    result.update(
        hand=chosen, source=source,
        squares=[[float(c[0]), float(c[1]), float(s)] for c, s in squares[chosen][:result["iterations"]]],
        hand_size_px=hand_size, status=status, detected=status == "ok",
        handedness={"mode": hand, **{h: confidences[h] for h in hands}},
    )
    return result


def _keypoint_square(uv, margin, width, height):
    centre, side = geometry.keypoint_square(np.asarray(uv, np.float64), margin)
    return geometry.shift_inside(centre, side, width, height), float(side)
