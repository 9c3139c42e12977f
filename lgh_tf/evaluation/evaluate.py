"""Evaluation of trained models on a held-out split: inputs, predict, lift to 3D (Eq. 3), score, report.

    from lgh_tf.evaluation import evaluate
    from lgh_tf.model.io import load_models
    records, scales = evaluate.load_eval_records("stb")
    dataset = evaluate.make_eval_dataset("stb", records, output_size=256, scales=scales)
    predictions, gt = evaluate.predict_dataset(load_models(["runs/a", "runs/b"]), dataset)  # ensemble
    results = evaluate.evaluate("stb", predictions, gt)
    table = evaluate.results_table({"LGH": results})
    evaluate.write_report(results, "runs/eval_stb", predictions=predictions, gt=gt)

One module per job, their names gathered here:

* ``inputs``: the evaluation split and the crop the network sees, by data set (``DATASET_CROP``);
* ``inference``: one model or an ensemble over those batches, lifted with Eq. 3 (``lgh_tf.geometry``);
* ``scoring``: each data set's protocol (``PROTOCOLS``, ``lgh_tf.evaluation.metrics``);
* ``freihand_io``: FreiHAND's ``pred.json`` for its evaluation server;
* ``report``: the paper's table layout and the files of an evaluation.

Models are loaded by ``lgh_tf.model.io`` (``load_models``), as in every other mode.
"""

from lgh_tf.evaluation import metrics
from lgh_tf.evaluation.freihand_io import (
    FREIHAND_FROM_OURS,
    FREIHAND_NUM_VERTS,
    from_freihand_order,
    to_freihand_order,
    write_freihand_submission,
)
from lgh_tf.evaluation.inference import model_input_size, predict_dataset
from lgh_tf.evaluation.inputs import (
    CROP_MODES,
    DATASET_CROP,
    DEXTER_BOX_FACTOR,
    DEXTER_MIN_CROP_PX,
    load_eval_records,
    make_eval_dataset,
    skipped_notes,
    training_data_notes,
    unusable_samples,
)
from lgh_tf.evaluation.report import TABLE_COLUMNS, results_table, write_report
from lgh_tf.evaluation.scoring import PROTOCOLS, fit_root_and_scale
from lgh_tf.evaluation.scoring import score as evaluate

# Eq. 3 and the scale-based root depth live in lgh_tf.geometry; their names stay importable here.
from lgh_tf.geometry import FALLBACK_ROOT_DEPTH_M, NOMINAL_SCALE_M, back_project, root_depth_from_scale

__all__ = [
    "CROP_MODES", "DATASET_CROP", "DEXTER_BOX_FACTOR", "DEXTER_MIN_CROP_PX", "FALLBACK_ROOT_DEPTH_M",
    "FREIHAND_FROM_OURS", "FREIHAND_NUM_VERTS", "NOMINAL_SCALE_M", "PROTOCOLS", "TABLE_COLUMNS", "back_project",
    "evaluate", "fit_root_and_scale", "from_freihand_order", "load_eval_records", "make_eval_dataset", "metrics",
    "model_input_size", "predict_dataset", "results_table", "root_depth_from_scale", "skipped_notes",
    "to_freihand_order", "training_data_notes", "unusable_samples", "write_freihand_submission", "write_report",
]
