"""Pictures a person would rather look at than read: the joint grouping (paper Fig. 4 style) and
skeleton overlays. matplotlib with the Agg backend only; functions return RGB uint8 arrays."""

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lgh_tf.data.schema import BONES, FINGER_JOINTS, JOINT_NAMES, NUM_JOINTS  # noqa: E402
from lgh_tf.files import portable_path  # noqa: E402


def portable_title(title: str) -> str:
    """A picture's title naming no machine: each absolute path in it made ``files.portable_path``."""
    return re.sub(r"(?<![\w.~])/[^\s,;:()]+", lambda m: portable_path(m.group(0)), title or "")

# The paper's Fig. 4 colours groups red, green, blue; more groups continue with tab10's others.
_PAPER_COLOURS = ("#d62728", "#2ca02c", "#1f77b4")
GROUP_COLOURS = _PAPER_COLOURS + tuple(
    colour for colour in (matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab10").colors)
    if colour not in _PAPER_COLOURS
) + tuple(matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20b").colors)

# A flat open right hand, palm facing the viewer, wrist at the bottom (arbitrary units).
_FINGER_BASES = {
    "thumb": (-2.2, 1.2), "index": (-1.1, 4.0), "middle": (0.0, 4.2), "ring": (1.1, 4.0), "little": (2.1, 3.5),
}
_FINGER_DIRECTIONS = {
    "thumb": (-0.75, 0.66), "index": (-0.12, 1.0), "middle": (0.0, 1.0), "ring": (0.12, 1.0), "little": (0.28, 1.0),
}
_FINGER_STEPS = {"thumb": 1.1, "index": 1.2, "middle": 1.3, "ring": 1.2, "little": 1.0}


def template_hand_2d():
    """(21, 2) positions of a flat open hand in RHD joint order, y pointing up."""
    points = np.zeros((NUM_JOINTS, 2))
    for finger, joints in FINGER_JOINTS.items():
        base = np.array(_FINGER_BASES[finger])
        direction = np.array(_FINGER_DIRECTIONS[finger])
        direction = direction / np.linalg.norm(direction)
        for k, joint in enumerate(reversed(joints)):  # MCP first, tip last
            points[joint] = base + k * _FINGER_STEPS[finger] * direction
    return points


def groups_to_assignment(groups):
    """[[joints of group 0], ...] -> (21,) group index of every joint."""
    assignment = np.full(NUM_JOINTS, -1)
    for k, joints in enumerate(groups):
        assignment[list(joints)] = k
    return assignment


def figure_to_array(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    plt.close(figure)
    buffer.seek(0)
    image = plt.imread(buffer, format="png")
    return (image[..., :3] * 255).round().astype(np.uint8)


def grouping_figure(groups, title="Learned joint groups", probabilities=None):
    """The hand skeleton with each joint coloured by its group (paper Fig. 4). RGB uint8.

    ``probabilities`` (21, K), e.g. softmax(theta / tau), adds each joint's confidence as a label.
    """
    assignment = groups_to_assignment(groups)
    points = template_hand_2d()
    figure, axis = plt.subplots(figsize=(4, 4.6), dpi=100)
    for parent, child in BONES:
        axis.plot(*points[[parent, child]].T, color="#888888", linewidth=3, zorder=1)
    for joint in range(NUM_JOINTS):
        colour = GROUP_COLOURS[assignment[joint] % len(GROUP_COLOURS)] if assignment[joint] >= 0 else "black"
        axis.scatter(*points[joint], s=160, color=colour, edgecolors="black", zorder=2)
        if probabilities is not None:
            axis.annotate(f"{probabilities[joint].max():.2f}", points[joint], xytext=(7, -3),
                          textcoords="offset points", fontsize=7)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", markersize=9, markeredgecolor="black",
                   color=GROUP_COLOURS[k % len(GROUP_COLOURS)], label=f"group {k + 1} ({len(g)})")
        for k, g in enumerate(groups)
    ]
    axis.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)
    axis.set_title(portable_title(title), fontsize=10)
    axis.set_aspect("equal")
    axis.axis("off")
    figure.tight_layout()
    return figure_to_array(figure)


def grouping_text(groups):
    """One line per group naming its joints."""
    return "\n".join(
        f"group {k + 1}: " + ", ".join(JOINT_NAMES[j] for j in joints) for k, joints in enumerate(groups)
    )


def grouping_firmness_text(probabilities):
    """One line per joint: its group (argmax), softmax(theta) of that group and the margin over the
    runner-up. ``probabilities`` (21, K), e.g. ``selector_log.firmness(theta)["probabilities"]``."""
    probabilities = np.asarray(probabilities, np.float64)
    ordered = np.sort(probabilities, axis=-1)
    margin = ordered[:, -1] - (ordered[:, -2] if probabilities.shape[-1] > 1 else 0.0)
    lines = [f"{'joint':<12} group  p(group)  margin"]
    for joint, p in enumerate(probabilities):
        name = JOINT_NAMES[joint] if joint < len(JOINT_NAMES) else str(joint)
        lines.append(f"{name:<12} {p.argmax() + 1:>5}  {p.max():8.3f}  {margin[joint]:6.3f}")
    return "\n".join(lines)


def selector_trajectories_figure(steps, probabilities, settled=None, tau=None, title="", names=None, order=None,
                                 columns=7):
    """softmax(theta) of every joint against the step: one panel per joint (a line per group, in
    the groups' colours; hand joints: the wrist first, then a row per finger from the tip), a
    dashed line where the joint's group settled (``settled`` (N,) steps, -1: not settled), and
    ``tau`` (T,) in a panel of its own. Other outputs: ``names`` (N,) and the panel ``order``
    (joint indices, row by row, ``columns`` to a row; None: empty slot). RGB uint8."""
    steps = np.asarray(steps, float)
    probabilities = np.asarray(probabilities, float)
    num_joints, num_groups = probabilities.shape[1:]
    hand = names is None and order is None and num_joints == NUM_JOINTS
    if hand:  # the wrist and tau in the first row, then one finger per row (RHD order)
        columns, names = 4, JOINT_NAMES
        slots = [0, -1, None, None] + list(range(1, NUM_JOINTS))
    else:
        names = names or [f"output {j}" for j in range(num_joints)]
        slots = list(range(num_joints) if order is None else order) + [-1]
    rows = -(-len(slots) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 1.45 * rows + 0.5), dpi=90,
                                sharex=True, squeeze=False)
    for slot, axis in zip(slots + [None] * (rows * columns - len(slots)), axes.flat):
        if slot is None or (slot == -1 and tau is None):
            axis.axis("off")
            continue
        if slot == -1:
            axis.plot(steps, np.asarray(tau, float), color="black", linewidth=1.0)
            axis.set_title("tau", fontsize=7)
            axis.tick_params(labelsize=6)
            axis.grid(alpha=0.3)
            continue
        joint = slot
        for k in range(num_groups):
            axis.plot(steps, probabilities[:, joint, k], color=GROUP_COLOURS[k % len(GROUP_COLOURS)],
                      linewidth=1.0)
        name = names[joint]
        if settled is not None and settled[joint] >= 0:
            axis.axvline(settled[joint], color="black", linestyle="--", linewidth=0.8)
            name += f", settled @{int(settled[joint])}"
        elif settled is not None:
            name += ", not settled"
        axis.set_title(name, fontsize=7)
        axis.set_ylim(0, 1.02)
        axis.tick_params(labelsize=6)
        axis.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=GROUP_COLOURS[k % len(GROUP_COLOURS)], label=f"group {k + 1}")
               for k in range(num_groups)]
    handles.append(plt.Line2D([], [], color="black", linestyle="--", label="settled (argmax fixed, p > 0.9)"))
    figure.legend(handles=handles, loc="lower center", fontsize=7, ncol=len(handles), frameon=False)
    figure.suptitle(portable_title(title) or "softmax(theta) per joint", fontsize=9)
    # Fixed margins in inches, not tight_layout: the grid is regular, and tight_layout draws the
    # figure once more (half the time of a picture written at every evaluation).
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=0.55 / width, right=1 - 0.1 / width, bottom=0.65 / height, top=1 - 0.55 / height,
                           wspace=0.22, hspace=0.6)
    return figure_to_array(figure)


# ---------------------------------------------------------------------------------------------
# Evaluation curves and prediction pictures
# ---------------------------------------------------------------------------------------------

# Skeleton colours by finger (RGB), the palm/wrist bones grey.
FINGER_COLOURS = {
    "thumb": (230, 40, 40),
    "index": (240, 190, 20),
    "middle": (40, 190, 60),
    "ring": (40, 120, 240),
    "little": (200, 50, 220),
}
PALM_COLOUR = (150, 150, 150)


def _joint_finger(joint):
    for finger, joints in FINGER_JOINTS.items():
        if joint in joints:
            return finger
    return None


def bone_colour(parent, child):
    """RGB colour of a bone: its finger's colour (the wrist -> MCP bones too)."""
    finger = _joint_finger(child) or _joint_finger(parent)
    return FINGER_COLOURS.get(finger, PALM_COLOUR)


def pck_curves_figure(panels, title=""):
    """PCK curves, one panel per entry of ``panels``: ``(panel title, x label, curves)`` with
    ``curves`` a list of ``(label, thresholds, pck, auc or None)``. RGB uint8."""
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), dpi=100,
                                squeeze=False)
    for axis, (panel_title, xlabel, curves) in zip(axes[0], panels):
        for label, thresholds, pck, area in curves:
            text = label if area is None else f"{label} (AUC {area:.3f})"
            axis.plot(np.asarray(thresholds, float), np.asarray(pck, float), linewidth=2, label=text)
        axis.set_xlabel(xlabel, fontsize=9)
        axis.set_ylabel("PCK", fontsize=9)
        axis.set_ylim(0.0, 1.02)
        axis.grid(alpha=0.3)
        axis.set_title(panel_title, fontsize=10)
        axis.legend(loc="lower right", fontsize=8)
    if title:
        figure.suptitle(portable_title(title), fontsize=10)
    figure.tight_layout()
    return figure_to_array(figure)


def per_joint_error_figure(errors, ylabel="mean error [mm]", title=""):
    """Bar chart of ``{joint name: error or None}`` coloured by finger. RGB uint8."""
    names = list(errors)
    values = [np.nan if errors[n] is None else float(errors[n]) for n in names]
    colours = []
    for name in names:
        joint = JOINT_NAMES.index(name) if name in JOINT_NAMES else -1
        colours.append(np.array(FINGER_COLOURS.get(_joint_finger(joint), PALM_COLOUR)) / 255.0)
    figure, axis = plt.subplots(figsize=(max(4.0, 0.35 * len(names) + 1.5), 3.6), dpi=100)
    axis.bar(range(len(names)), np.nan_to_num(values), color=colours, edgecolor="black", linewidth=0.5)
    axis.set_xticks(range(len(names)))
    axis.set_xticklabels(names, rotation=70, ha="right", fontsize=7)
    axis.set_ylabel(ylabel, fontsize=9)
    axis.grid(axis="y", alpha=0.3)
    if title:
        axis.set_title(portable_title(title), fontsize=10)
    figure.tight_layout()
    return figure_to_array(figure)


def draw_skeleton(image, uv, visible=None, thickness=None):
    """A copy of RGB ``image`` (H, W, 3) with the 21-joint skeleton ``uv`` (pixels) drawn over it,
    each finger in its colour (``FINGER_COLOURS``). RGB uint8."""
    import cv2

    canvas = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3]).copy()
    uv = np.asarray(uv, dtype=np.float64)
    visible = np.ones(len(uv), bool) if visible is None else np.asarray(visible, bool)
    if thickness is None:
        thickness = max(1, int(round(max(canvas.shape[:2]) / 160)))
    shift = 4  # sub-pixel precision of cv2 drawing
    points = np.round(np.nan_to_num(uv) * (1 << shift)).astype(np.int64)
    points = np.clip(points, -(1 << 25), 1 << 25)  # cv2 wants int32 coordinates
    for parent, child in BONES:
        if visible[parent] and visible[child]:
            cv2.line(canvas, tuple(int(c) for c in points[parent]), tuple(int(c) for c in points[child]),
                     bone_colour(parent, child), thickness, cv2.LINE_AA, shift)
    for joint in range(len(uv)):
        if visible[joint]:
            colour = FINGER_COLOURS.get(_joint_finger(joint), PALM_COLOUR)
            center = tuple(int(c) for c in points[joint])
            cv2.circle(canvas, center, (thickness + 1) << shift, colour, -1, cv2.LINE_AA, shift)
            cv2.circle(canvas, center, (thickness + 1) << shift, (0, 0, 0), 1, cv2.LINE_AA, shift)
    return canvas


def skeleton_3d_figure(points, title="", axis_labels=("x", "y", "z"),
                       views=((0.0, -90.0), (25.0, -35.0)), view_names=("camera view", "oblique view")):
    """The skeleton ``points`` (21, 3) in 3D from two viewpoints. RGB uint8.

    ``points`` are camera-like coordinates (x right, y down, z away from the camera), e.g. xyz in
    metres or a 2.5D (u, v, scaled relative depth). They are drawn with z as matplotlib's depth
    axis and -y up, so the first view ((elev, azim) = (0, -90)) shows the hand as the camera
    sees it and the second one from above and to the side.
    """
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3d projection)

    points = np.asarray(points, dtype=np.float64)
    shown = np.stack([points[:, 0], points[:, 2], -points[:, 1]], axis=1)
    low, high = np.nanmin(shown, axis=0), np.nanmax(shown, axis=0)
    centre = 0.5 * (low + high)
    radius = 0.5 * float(np.nanmax(high - low))
    radius = radius if np.isfinite(radius) and radius > 0 else 1.0
    colours = [np.array(FINGER_COLOURS.get(_joint_finger(j), PALM_COLOUR)) / 255.0
               for j in range(len(shown))]
    figure = plt.figure(figsize=(8.4, 4.4), dpi=100)
    for k, ((elev, azim), name) in enumerate(zip(views, view_names)):
        axis = figure.add_subplot(1, len(views), k + 1, projection="3d")
        for parent, child in BONES:
            axis.plot(*shown[[parent, child]].T, color=np.array(bone_colour(parent, child)) / 255.0,
                      linewidth=2.5)
        axis.scatter(*shown.T, c=colours, s=18, edgecolors="black", linewidths=0.4, depthshade=False)
        for setter, c in zip((axis.set_xlim, axis.set_ylim, axis.set_zlim), centre):
            setter(c - radius, c + radius)
        axis.set_box_aspect((1, 1, 1))
        axis.set_proj_type("ortho")
        axis.view_init(elev=elev, azim=azim)
        axis.set_xlabel(axis_labels[0], fontsize=8)
        axis.set_ylabel(axis_labels[2], fontsize=8)
        axis.set_zlabel(f"-{axis_labels[1]}", fontsize=8)
        axis.tick_params(labelsize=6)
        axis.set_title(name, fontsize=9)
    if title:
        figure.suptitle(portable_title(title), fontsize=10)
    figure.tight_layout()
    return figure_to_array(figure)


# ---------------------------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------------------------

def _smooth(values, weight=0.9):
    """Exponential moving average (TensorBoard's smoothing), NaN-tolerant."""
    smoothed, last = [], None
    for value in values:
        if np.isfinite(value):
            last = value if last is None else weight * last + (1.0 - weight) * value
        smoothed.append(np.nan if last is None else last)
    return np.asarray(smoothed)


def learning_curves_figure(history, title="", targets=None):
    """Loss terms, 2D and 3D error (training and held-out) and tau against the step. RGB uint8.

    ``history``: ``{"train": {"step": [...], name: [...]}, "eval": {"step": [...], name: [...]}}``
    with per-step training values (loss, loss_xy, loss_z, error_2d_px, error_3d_mm, temperature) and
    held-out figures at a few steps. ``targets``: optional ``{"error_2d_px": px, "error_3d_mm": mm}``
    drawn as dashed lines.
    """
    train, held_out = history.get("train", {}), history.get("eval", {})
    targets = targets or {}
    panels = [("loss terms (training)", "loss")]
    panels += [(f"{label}", key) for key, label in (("error_2d_px", "2D error [px]"),
                                                       ("error_3d_mm", "3D error [mm]"))
               if key in train or key in held_out]
    if "temperature" in train:
        panels.append(("tau (Eq. 8)", "temperature"))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.6), dpi=100,
                                squeeze=False)
    train_steps = np.asarray(train.get("step", []), float)
    for axis, (panel_title, key) in zip(axes[0], panels):
        if key == "loss":
            for name, label in (("loss", "loss"), ("loss_xy", "XY term [mm]"),
                                ("loss_z", "Z term [mm], before beta")):
                if name in train and len(train[name]):
                    values = np.asarray(train[name], float)
                    line, = axis.plot(train_steps, values, alpha=0.25, linewidth=0.8)
                    axis.plot(train_steps, _smooth(values), color=line.get_color(), label=label)
            loss = np.asarray(train.get("loss", [1.0]), float)
            if np.nanmin(loss) > 0 and np.nanmax(loss) > 20 * np.nanmin(loss):
                axis.set_yscale("log")  # Eq. 10 falls by orders of magnitude; stage 1 does not
        elif key == "temperature":
            axis.plot(train_steps, np.asarray(train[key], float), color="black")
        else:
            if key in train and len(train[key]):
                values = np.asarray(train[key], float)
                axis.plot(train_steps, values, color="#1f77b4", alpha=0.25, linewidth=0.8)
                axis.plot(train_steps, _smooth(values), color="#1f77b4", label="training (batch)")
            if key in held_out and len(held_out[key]):
                steps = np.asarray(held_out["step"], float)
                values = np.asarray(held_out[key], float)
                axis.plot(steps, values, "o-", color="#d62728", label="held-out")
                axis.annotate(f"{values[-1]:.1f}", (steps[-1], values[-1]), xytext=(4, 4),
                              textcoords="offset points", fontsize=8, color="#d62728")
            if key in targets:
                axis.axhline(targets[key], color="#2ca02c", linestyle="--", linewidth=1,
                             label=f"target {targets[key]:g}")
            axis.set_ylim(bottom=0)
        axis.set_xlabel("step", fontsize=9)
        axis.set_title(panel_title, fontsize=10)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    if title:
        figure.suptitle(portable_title(title), fontsize=10)
    figure.tight_layout()
    return figure_to_array(figure)
