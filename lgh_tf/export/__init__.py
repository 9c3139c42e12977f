"""Deployment: SavedModel export for TF Serving (``saved_model``) and TFLite conversion (``tflite``).

    from lgh_tf.export import export_saved_model, convert_all, run_tflite
    path = export_saved_model(model, "saved_models/lgh")          # saved_models/lgh/1
    convert_all(path, ["float32", "int8"])                          # path/tflite/model_*.tflite

or both from one ``lgh_tf.config.ExportConfig``: ``export(model, ExportConfig(tflite=("float32",)))``.
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


def export(model, config):
    """Exports ``model`` as ``config`` (an ``lgh_tf.config.ExportConfig``) says and returns the version
    directory. Its TFLite variants are converted inside the staging directory, so the version appears
    complete, with every file its ``export_info.json`` lists."""
    config.validate()

    def convert_tflite(staging):
        convert_all(staging, config.tflite, representative_samples=config.representative_samples,
                    cache_dir=config.cache_dir)

    return export_saved_model(model, config.export_dir, version=config.version,
                              fold_batch_norms=config.fold_batch_norms, precision=config.precision,
                              before_publish=convert_tflite if config.tflite else None)
