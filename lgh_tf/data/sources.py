"""Data set name -> Records for a split, for main.py and the tools. Synthetic data is generated into
the cache on first use; a real data set that is not on disk stops at once with a clear message."""

from lgh_tf.data import registry, synthetic

# Combined training sets: name -> [(member, weight)]. RHD + STB is the paper's training set for the
# Dexter+Object evaluation; members are drawn with equal probability.
COMBINED = {"rhd+stb": (("rhd", 1.0), ("stb", 1.0))}
# Readers that keep derived files in a cache directory (their ``cache_dir`` option).
CACHING_READERS = ("rhd",)


def load_sources(dataset, split, *, data_dir="", cache_dir="cache", seed=0, synthetic_counts=None,
                 reader_options=None, synthetic_world="coded"):
    """[(Records, weight), ...] for ``dataset`` ("synthetic", a registry name or a COMBINED name).

    ``split`` is "train" or "eval". ``data_dir`` applies to a single real data set (a combined set
    takes each member's default directory or its LGH_TF_<NAME>_DIR variable). ``cache_dir`` holds
    the synthetic hands and the readers' derived files (RHD's hand choice). ``reader_options``
    maps a data set name to keyword options of its reader, e.g. ``{"stb": {"camera": "SK_color",
    "wrist_rule": "ge2019"}}``. ``synthetic_world`` picks the synthetic renderer ("coded" or
    "realistic", see ``lgh_tf.data.synthetic``).
    """
    if dataset == "synthetic":
        counts = synthetic_counts or {}
        synthetic_split = "train" if split == "train" else "test"
        records = synthetic.load_synthetic(
            cache_dir, synthetic_split, num_samples=counts.get(synthetic_split), seed=seed,
            world=synthetic_world,
        )
        return [(records, 1.0)]

    def load(name, directory):
        options = dict((reader_options or {}).get(name, {}))
        if name in CACHING_READERS:
            options.setdefault("cache_dir", cache_dir)
        return registry.load(name, directory, split, **options)

    if dataset in COMBINED:
        return [(load(member, None), weight) for member, weight in COMBINED[dataset]]
    return [(load(dataset, data_dir or None), 1.0)]
