"""Embedded synthetic hand data sets: procedurally posed 3D hands, rendered without downloads.

Two worlds (``load_synthetic(..., world=...)``, ``--synthetic_world``):

* ``coded`` (default): shaded capsules, one colour per finger (``rendering``), with the hand model
  of ``kinematics``. Quick to learn; for smoke tests and the quickstart.
* ``realistic``: one skin tone, z-buffered capsules, lighting, shadow, objects and camera effects
  (``realistic``), with the articulation and couplings of real hands (``anatomy``), and per-joint
  occlusion flags.

Every sample is a kinematic hand skeleton (metres, RHD joint order, see ``schema``) with sampled
joint angles, a random 3D orientation (back or palm towards the camera within VIEW_CONE_DEGREES,
any in-plane rotation) and a depth of 0.3-0.7 m, projected with a pinhole camera. Modules:
``kinematics`` (hand model, pose sampling, viewpoint and placement), ``anatomy`` (the realistic
articulation and couplings), ``rendering`` (the coded drawing, background, video sequences),
``realistic`` (z-buffer, lighting, objects, camera effects, occlusion flags), ``dataset`` (the
per-sample random streams, the cache, ``load_synthetic``).

Left hands and the flip convention (RHD's: the data set stores every hand as a right hand).
About half of the samples are left hands (the right-hand model mirrored in its own x axis). The
stored PNG is the rendered left hand, unmodified. Its Records row has ``flip=True`` and
annotations that describe the *horizontally flipped* image, in which the hand is a right hand.
With W the image width and pixel centres at integer coordinates (OpenCV's convention), a
horizontal flip maps pixel column ``c`` to ``W - 1 - c``, and the annotations are mirrored exactly:

    u' = W - 1 - u,   v' = v
    (x', y', z') = (-x, y, z)
    K' = K with cx' = W - 1 - cx (fx, fy, cy unchanged; zero skew)

so that ``u' = fx * x' / z' + cx'`` still holds: the flipped image, uv, xyz and K agree.
For ``flip=False`` samples, image and annotations are used as they are.
"""

from lgh_tf.data.synthetic import anatomy, dataset, kinematics, realistic, rendering  # noqa: F401
from lgh_tf.data.synthetic.dataset import (  # noqa: F401
    ANNOTATIONS_FILE,
    DEFAULT_NUM_SAMPLES,
    DEFAULT_WORLD,
    GENERATOR_VERSION,
    SPLIT_STREAMS,
    WORLDS,
    _generate_split,
    _image_name,
    _load_annotations,
    load_synthetic,
    render_sample,
    split_directory,
)
from lgh_tf.data.synthetic.kinematics import (  # noqa: F401
    DEPTH_RANGE,
    FOCAL_RANGE,
    FULLY_INSIDE_PROBABILITY,
    IMAGE_MARGIN,
    LEFT_HAND_PROBABILITY,
    REFERENCE_SIZE,
    VIEW_CONE_DEGREES,
    HandPose,
    _inside_image,
    _place_hand,
    _random_view,
    mirror_to_left,
    project,
    sample_hand_pose,
    sample_intrinsics,
)
from lgh_tf.data.synthetic.rendering import (  # noqa: F401
    _SUBPIXEL,
    _SUBPIXEL_BITS,
    FINGER_COLORS,
    FOREARM_COLOR,
    PALM_COLOR,
    PART_BACKGROUND,
    PART_FINGER,
    PART_PALM,
    SENSOR_NOISE_PROBABILITY,
    _fixed_point,
    apply_lighting,
    draw_background,
    draw_hand,
    flip_annotations,
    render_coded,
    render_sequence,
)

SYNTHETIC_WORLDS = tuple(WORLDS)
