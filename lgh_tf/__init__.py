"""lgh_tf: learnable joint groups for 3D hand pose estimation (Li, Gao, Sang, AAAI 2021)."""

import os as _os

__version__ = "0.1.0"

# The shipped demo model (tools/build_demo.py), package data: found beside this file in a checkout
# and in an installed wheel alike, whatever the working folder.
DEMO_MODEL = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "demo", "synthetic_demo")
