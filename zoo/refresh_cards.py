#!/usr/bin/env python
"""Regenerates the model cards of all trained presets from the registry.

    python zoo/refresh_cards.py

Run it after the registry changed in a way the cards show (a dataset's
recorded experiments, a preset's training notes) without re-adding the
presets. Each changed card gets its new sha256 in the registry, and its
pinned revision is reset until `zoo/publish.py` uploads it again. The
README's presets table is regenerated too.
"""

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's keras_pu, not an installed one


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", help="registry JSON (default: the checkout's)")
    parser.add_argument("--zoo-dir", help="preset folders (default: zoo/)")
    parser.add_argument(
        "--readme", default=str(ROOT / "README.md"),
        help="README whose presets table is regenerated ('' to skip)",
    )
    args = parser.parse_args(argv)

    from keras_pu.zoo.errors import ZooError
    from tools.zoo.packaging import refresh_cards

    try:
        changed = refresh_cards(
            args.registry, args.zoo_dir or ROOT / "zoo", args.readme or None
        )
    except ZooError as e:
        print(f"refresh_cards: error: {e}", file=sys.stderr)
        return 1
    print(f"{len(changed)} card(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
