"""The canonical sample every reader produces, and the hand skeleton in RHD joint order.

A sample is a dict:
  image       uint8 (H, W, 3) RGB
  uv          float32 (21, 2) 2D joints in image pixels, (u = column, v = row)
  xyz         float32 (21, 3) 3D joints in camera coordinates, metres
  K           float32 (3, 3) camera intrinsics of ``image``
  visible     bool (21,) per-joint visibility
  mask        uint8 (H, W) hand mask, optional (absent or all zeros when unknown)

Joint order is RHD's: 0 wrist; then thumb, index, middle, ring, little, each finger listed tip -> MCP.
The root is the middle-finger MCP (12) and the hand scale is |xyz[12] - xyz[11]| (MCP to PIP), as in
the authors' evaluation and Yang et al. 2019.
"""

import dataclasses

import numpy as np

NUM_JOINTS = 21
ROOT = 12
SCALE_BONE = (12, 11)

FINGERS = ("thumb", "index", "middle", "ring", "little")

JOINT_NAMES = ("wrist",) + tuple(
    f"{finger}_{part}" for finger in FINGERS for part in ("tip", "dip", "pip", "mcp")
)

# Joints of each finger, tip -> MCP.
FINGER_JOINTS = {finger: tuple(range(1 + 4 * i, 5 + 4 * i)) for i, finger in enumerate(FINGERS)}

# Parent of every joint in the kinematic tree (wrist is the root of the tree, -1).
PARENTS = (-1,) + tuple(
    (j + 1 if (j - 1) % 4 != 3 else 0) for j in range(1, NUM_JOINTS)
)

# Bones as (parent, child) pairs, for drawing.
BONES = tuple((PARENTS[j], j) for j in range(1, NUM_JOINTS))

# The paper's Table 2 "Manual" grouping (after Zhou et al. 2018): thumb / index / other fingers.
# The wrist goes with the other fingers (the palm group).
MANUAL_GROUPS = (
    FINGER_JOINTS["thumb"],
    FINGER_JOINTS["index"],
    (0,) + FINGER_JOINTS["middle"] + FINGER_JOINTS["ring"] + FINGER_JOINTS["little"],
)

# The finger-level grouping: one group per finger, the wrist with the middle finger (the palm's axis),
# so K = 5 with no one-joint branch.
FINGER_GROUPS = (
    FINGER_JOINTS["thumb"],
    FINGER_JOINTS["index"],
    (0,) + FINGER_JOINTS["middle"],
    FINGER_JOINTS["ring"],
    FINGER_JOINTS["little"],
)
FIXED_GROUPINGS = {"manual": MANUAL_GROUPS, "fingers": FINGER_GROUPS}


# ---------------------------------------------------------------------------------------------
# What a reader hands to the pipeline: one row per sample, images still on disk.
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Records:
    """Annotations of N samples in the canonical schema; images are decoded later in tf.data.

    ``flip[i]`` asks the pipeline to mirror image i horizontally when it decodes it; the reader has
    already mirrored uv, xyz and K to match (left hands become right hands, RHD convention).
    """

    image_path: np.ndarray  # (N,) str
    uv: np.ndarray  # (N, 21, 2) float32, pixels of the (possibly flipped) image
    xyz: np.ndarray  # (N, 21, 3) float32, metres
    K: np.ndarray  # (N, 3, 3) float32
    visible: np.ndarray  # (N, 21) bool
    flip: np.ndarray  # (N,) bool
    mask_path: np.ndarray | None = None  # (N,) str, "" where there is none
    name: str = "records"
    # (width, height) every image must have: the data set's documented size (a 320x240 STB frame
    # is not scored as a 640x480 one); None: any size.
    image_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.image_path)

    def subset(self, index) -> "Records":
        """Rows ``index`` (a slice, boolean mask or integer array) as new Records."""
        return Records(
            image_path=self.image_path[index],
            uv=self.uv[index],
            xyz=self.xyz[index],
            K=self.K[index],
            visible=self.visible[index],
            flip=self.flip[index],
            mask_path=None if self.mask_path is None else self.mask_path[index],
            name=self.name,
            image_size=self.image_size,
        )
