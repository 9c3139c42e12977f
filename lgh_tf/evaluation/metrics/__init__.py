"""Hand-pose evaluation metrics in pure numpy: EPE, PCK curves, AUC and Procrustes alignment.

Units. Every 3D function takes keypoints in **millimetres**, arrays of shape (N, J, 3) (N samples,
J joints; J = 21 in RHD order, see ``lgh_tf.data.schema``). The canonical sample stores ``xyz`` in
metres, so multiply by 1000 before calling. 2D functions take pixels, shape (N, J, 2).

Visibility. ``visible`` is a (N, J) or (J,) mask, bool or numeric (a value > 0 counts as visible).
A joint that is not visible is left out of every statistic; its ground truth may be NaN. A NaN or
inf in a counted joint of ``gt`` or ``pred`` raises ValueError naming the sample and joint.

Averaging convention (Zimmermann & Brox 2017, ``EvalUtil`` in their hand3d code; the authors of
this paper reuse it in their ``utils/eval_utils.py``, minus the visibility argument):

* errors are collected **per keypoint** (over the samples where that keypoint is counted);
* mean EPE = mean over keypoints of the per-keypoint mean error;
* median EPE = mean over keypoints of the per-keypoint **median** error (not the median of all
  errors pooled together);
* PCK(t) = mean over keypoints of the fraction of that keypoint's errors <= t (note ``<=``);
* AUC = trapezoid area under the PCK curve divided by the threshold range; since the per-keypoint
  average is linear, the mean of per-keypoint AUCs equals the AUC of the averaged curve;
* keypoints that are counted in no sample are skipped, not scored as 0.

When every joint is counted in every sample the per-keypoint and pooled means and PCKs coincide;
the medians still differ in general. ``pooled=True`` on the functions below selects the "pool all
joints" variant (one mean/median/PCK over every counted joint).

Protocols implemented here:

* ``rhd_stb_3d_protocol`` -- RHD and STB (Zimmermann & Brox 2017, followed by this paper): GT root
  and scale already applied to the prediction by the caller, 20 thresholds
  ``np.linspace(0, 50, 20)`` mm, AUC over 0-50 mm and over the thresholds from index 8 on
  (21.05-50 mm, reported as "AUC [20-50]").
* ``dexter_protocol`` -- Dexter+Object (as Yang et al. 2019): fingertips only, after a least-squares
  scale + translation ("best root and scale") alignment per sample, AUC over 0-50 mm.
* ``freihand_protocol`` -- FreiHAND (Zimmermann et al. 2019): similarity (Procrustes) alignment per
  sample, 100 thresholds ``np.linspace(0, 50, 100)`` mm, mean EPE reported in cm; unaligned too.
* ``protocol_2d`` -- 2D keypoints in pixels, 20 thresholds over 0-30 px (the authors' 2D setting).

The modules, by job: ``checks`` (input checking), ``errors`` (EPE, PCK, AUC), ``alignment``
(scale + translation, Procrustes), ``protocols`` (each benchmark's figures) and ``tables``
(``summarize``, ``format_table``); their public names are gathered here.
"""

from lgh_tf.evaluation.metrics.alignment import align_scale_translation, procrustes_align
from lgh_tf.evaluation.metrics.errors import auc, epe, mean_epe, median_epe, pck_curve, per_joint_epe
from lgh_tf.evaluation.metrics.protocols import (
    AUC_20_50_FIRST_INDEX,
    FINGERTIPS,
    FREIHAND_THRESHOLDS_MM,
    PCK_2D_THRESHOLDS_PX,
    RHD_STB_THRESHOLDS_MM,
    dexter_protocol,
    freihand_protocol,
    pck_2d,
    protocol_2d,
    rhd_stb_3d_protocol,
)
from lgh_tf.evaluation.metrics.tables import DEXTER_COLUMNS, FREIHAND_COLUMNS, RHD_STB_COLUMNS, format_table, summarize

__all__ = [
    "AUC_20_50_FIRST_INDEX",
    "DEXTER_COLUMNS",
    "FINGERTIPS",
    "FREIHAND_COLUMNS",
    "FREIHAND_THRESHOLDS_MM",
    "PCK_2D_THRESHOLDS_PX",
    "RHD_STB_COLUMNS",
    "RHD_STB_THRESHOLDS_MM",
    "align_scale_translation",
    "auc",
    "dexter_protocol",
    "epe",
    "format_table",
    "freihand_protocol",
    "mean_epe",
    "median_epe",
    "pck_2d",
    "pck_curve",
    "per_joint_epe",
    "procrustes_align",
    "protocol_2d",
    "rhd_stb_3d_protocol",
    "summarize",
]
