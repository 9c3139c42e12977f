"""lgh_tf: learnable joint groups for 3D hand pose estimation (Li, Gao, Sang, AAAI 2021)."""

__version__ = "0.1.0"
