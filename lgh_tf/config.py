"""Configuration dataclasses. Defaults are the paper's (and the authors' release where the paper is
silent)."""

import dataclasses


@dataclasses.dataclass
class ModelConfig:
    """The network. ``grouping``: "learned" (the selector of Eq. 8) or "manual" (thumb / index /
    other fingers, Table 2; needs num_groups=3)."""

    num_joints: int = 21
    num_groups: int = 3  # K; 1 is the paper's baseline, up to 21
    fusion: bool = True  # Eq. 9, cross-group feature fusion (only when K > 1)
    grouping: str = "learned"
    input_size: int = 256  # any multiple of 64
    backbone_filters: int = 256
    hourglass_depth: int = 4
    group_channels: int = 32
    trunk_hidden: int = 128
    initial_temperature: float = 5.0  # tau at step 0 (paper: 5)
    selector_seed: int | None = None
    # BatchNorm statistics over the global batch under tf.distribute (all-reduced per layer per
    # step) instead of each replica's own share; no effect on one device.
    sync_batch_norm: bool = False

    def validate(self):
        if not 1 <= self.num_groups <= self.num_joints:
            raise ValueError(f"num_groups must be in 1..{self.num_joints}, got {self.num_groups}")
        if self.grouping not in ("learned", "manual"):
            raise ValueError(f"grouping must be 'learned' or 'manual', got {self.grouping!r}")
        if self.grouping == "manual" and self.num_groups != 3:
            raise ValueError("manual grouping (thumb / index / other fingers) needs num_groups=3")
        step = 4 * 2 ** self.hourglass_depth
        if self.input_size % step:
            raise ValueError(
                f"input_size must be a multiple of {step} for an hourglass of depth "
                f"{self.hourglass_depth}, got {self.input_size}"
            )
        return self
