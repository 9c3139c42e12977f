"""Deployment: SavedModel export for TF Serving (``saved_model``) and TFLite conversion (``tflite``).

    from lgh_tf.export import export_saved_model, convert_all, run_tflite
    path = export_saved_model(model, "saved_models/lgh")          # saved_models/lgh/1
    convert_all(path, ["float32", "int8"])                          # path/tflite/model_*.tflite
"""

from lgh_tf.export.saved_model import (  # noqa: F401
    OUTPUTS,
    SIGNATURES,
    ExportedModel,
    InferenceModule,
    export_saved_model,
    random_ops,
    read_export_info,
)
from lgh_tf.export.tflite import (  # noqa: F401
    VARIANTS,
    TFLiteRunner,
    check_variants,
    convert,
    convert_all,
    run_tflite,
)
