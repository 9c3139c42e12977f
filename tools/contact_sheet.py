"""A contact sheet of synthetic samples: a grid of renders with their joints, occluded ones hollow.

    python tools/contact_sheet.py                                  # 16 realistic samples
    python tools/contact_sheet.py --world=coded --out=runs/coded.png --count=9

Writes docs/images/synthetic_contact_sheet.png by default (training split, seed 0, 320 px, shown
at --tile px). Joints: filled dots where visible, hollow circles where occluded by the hand,
crosses where occluded by the object; the skeleton in the finger colours of lgh_tf.visualize.
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lgh_tf import files  # noqa: E402
from lgh_tf.data import schema, synthetic  # noqa: E402

FINGER_RGB = {"thumb": (255, 60, 60), "index": (255, 210, 0), "middle": (60, 220, 60),
              "ring": (40, 140, 255), "little": (220, 60, 220)}


def annotated_tile(sample, tile: int, with_joints: bool) -> np.ndarray:
    """The stored image (left hands as rendered) scaled to ``tile`` px, joints drawn on top."""
    image = sample["image"]
    size = image.shape[0]
    uv = sample["uv"].copy()
    if sample["flip"]:  # annotations describe the flipped image; draw on the stored one
        uv[:, 0] = size - 1 - uv[:, 0]
    scale = tile / size
    out = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
    if not with_joints:
        return out
    points = [tuple(int(round(c)) for c in (p + 0.5) * scale - 0.5) for p in uv]
    self_occluded = sample.get("self_occluded", np.zeros(len(uv), bool))
    object_occluded = sample.get("object_occluded", np.zeros(len(uv), bool))
    for finger, joints in schema.FINGER_JOINTS.items():
        chain = (0,) + tuple(reversed(joints))
        for a, b in zip(chain[:-1], chain[1:]):
            cv2.line(out, points[a], points[b], FINGER_RGB[finger], 1, cv2.LINE_AA)
    for joint, point in enumerate(points):
        finger = next((f for f, js in schema.FINGER_JOINTS.items() if joint in js), "middle")
        colour = FINGER_RGB[finger] if joint else (255, 255, 255)
        if object_occluded[joint]:
            cv2.drawMarker(out, point, colour, cv2.MARKER_TILTED_CROSS, 7, 1, cv2.LINE_AA)
        elif self_occluded[joint]:
            cv2.circle(out, point, 3, colour, 1, cv2.LINE_AA)
        else:
            cv2.circle(out, point, 2, colour, -1, cv2.LINE_AA)
    return out


def contact_sheet(world="realistic", count=16, seed=0, split="train", image_size=320, tile=200,
                  columns=4, with_joints=True, first=0) -> np.ndarray:
    tiles = []
    for index in range(first, first + count):
        sample = synthetic.render_sample(seed, index, image_size, split, world)
        tile_image = annotated_tile(sample, tile, with_joints)
        cv2.putText(tile_image, f"#{index}{' L' if sample['flip'] else ''}", (4, 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile_image)
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default="realistic", choices=synthetic.SYNTHETIC_WORLDS)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--first", type=int, default=0, help="index of the first sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="train", choices=sorted(synthetic.SPLIT_STREAMS))
    parser.add_argument("--tile", type=int, default=200)
    parser.add_argument("--no_joints", action="store_true", help="the images alone")
    parser.add_argument("--out", default="docs/images/synthetic_contact_sheet.png")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    sheet = contact_sheet(args.world, args.count, args.seed, args.split, tile=args.tile,
                          with_joints=not args.no_joints, first=args.first)
    files.write_png(args.out, sheet)
    print(f"wrote {args.out} ({args.count} {args.world} samples, seed {args.seed}, {args.split})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
