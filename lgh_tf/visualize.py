"""Pictures a person would rather look at than read: the joint grouping (paper Fig. 4 style) and
skeleton overlays. matplotlib with the Agg backend only; functions return RGB uint8 arrays."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lgh_tf.data.schema import BONES, FINGER_JOINTS, JOINT_NAMES, NUM_JOINTS  # noqa: E402

# The paper's Fig. 4 colours groups red, green, blue; more groups continue with tab10.
GROUP_COLOURS = ("#d62728", "#2ca02c", "#1f77b4") + tuple(
    matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab10").colors[3:]
) + tuple(matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20b").colors)

# A flat open right hand, palm facing the viewer, wrist at the bottom (arbitrary units).
_FINGER_BASES = {"thumb": (-2.2, 1.2), "index": (-1.1, 4.0), "middle": (0.0, 4.2), "ring": (1.1, 4.0), "little": (2.1, 3.5)}
_FINGER_DIRECTIONS = {"thumb": (-0.75, 0.66), "index": (-0.12, 1.0), "middle": (0.0, 1.0), "ring": (0.12, 1.0), "little": (0.28, 1.0)}
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
    axis.set_title(title, fontsize=10)
    axis.set_aspect("equal")
    axis.axis("off")
    figure.tight_layout()
    return figure_to_array(figure)


def grouping_text(groups):
    """One line per group naming its joints."""
    return "\n".join(
        f"group {k + 1}: " + ", ".join(JOINT_NAMES[j] for j in joints) for k, joints in enumerate(groups)
    )
