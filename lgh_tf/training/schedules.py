"""The temperature tau of the Concrete selector (Eq. 8), annealed with the training step.

The schedule is part of the optimisation settings and lives with them in :mod:`lgh_tf.config`;
this name stays for existing imports.
"""

from lgh_tf.config import TemperatureSchedule  # noqa: F401
