"""absl flag definitions (lgh_flags.py) and one flagfile per data set; the CLI (main.py) reads them."""
