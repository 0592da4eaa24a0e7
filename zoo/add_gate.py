#!/usr/bin/env python
"""Records a preset's image-level gate (chosen on validation images) and the
test metrics measured with it, then regenerates its card.

    keras-pu evaluate zoo/resunet_efficientnet_lite0_busi --data BUSI --split val -o ev_val
    keras-pu calibrate ev_val -o gate.json
    keras-pu evaluate zoo/resunet_efficientnet_lite0_busi --data BUSI --split test \\
        --gate "$(python -c 'import json;print(json.load(open("gate.json"))["min_peak_probability"])')" -o ev_test_gated
    python zoo/add_gate.py resunet_efficientnet_lite0_busi --gate gate.json \\
        --metrics ev_test_gated/metrics.json
"""

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's keras_pu, not an installed one


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset", help="a trained preset in the registry")
    parser.add_argument("--gate", required=True,
                        help="postprocess.json written by `keras-pu calibrate`")
    parser.add_argument("--metrics", required=True,
                        help="metrics JSON of `keras-pu evaluate --split test --gate G`")
    parser.add_argument("--registry", help="registry JSON (default: the checkout's)")
    parser.add_argument("--zoo-dir", help="preset folders (default: zoo/)")
    args = parser.parse_args(argv)

    from keras_pu.zoo.errors import ZooError
    from tools.zoo.packaging import add_gate

    try:
        add_gate(args.preset, args.gate, args.metrics, args.registry,
                 args.zoo_dir or ROOT / "zoo")
    except ZooError as e:
        print(f"add_gate: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
