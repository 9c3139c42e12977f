"""Data: the canonical sample schema, one reader per data set, and the tf.data pipeline."""
