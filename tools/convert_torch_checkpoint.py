"""Convert an authors' PyTorch checkpoint (LearnableGroups-Hand) to Keras weights.

    python tools/convert_torch_checkpoint.py IN.pth OUT.weights.h5 [--input_size 256]

Writes OUT.weights.h5 and, beside it, OUT.config.json (the inferred ModelConfig: K, fusion, widths,
temperature), which ``lgh_tf.model.io.load_model`` and ``main.py --checkpoint`` read back.
"""

import argparse
import dataclasses
import json
import pathlib
import sys

from lgh_tf.convert import CheckpointError, load_authors_checkpoint


def config_path_for(weights_path):
    weights_path = str(weights_path)
    stem = weights_path[: -len(".weights.h5")] if weights_path.endswith(".weights.h5") else weights_path
    return pathlib.Path(stem + ".config.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="authors' .pth (dict with model_state_dict and Temperature)")
    parser.add_argument("output", help="Keras weights file, must end in .weights.h5")
    parser.add_argument("--input_size", type=int, default=256, help="input side, a multiple of 64")
    args = parser.parse_args(argv)
    if not args.output.endswith(".weights.h5"):
        parser.error("output must end in .weights.h5 (Keras 3's weights format)")
    try:
        model = load_authors_checkpoint(args.checkpoint, input_size=args.input_size)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    pathlib.Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.output)
    config = dataclasses.asdict(model.config)
    config_path_for(args.output).write_text(json.dumps(config, indent=2) + "\n")
    print(
        f"wrote {args.output} and {config_path_for(args.output)}: K={config['num_groups']}, "
        f"fusion={config['fusion']}, tau={float(model.temperature.numpy()):g}, "
        f"{model.count_params():,} values"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
