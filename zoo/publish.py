#!/usr/bin/env python
"""Publishes a preset folder to the Hugging Face Hub and pins it.

    hf auth login                      # a token with write access to the org
    python zoo/publish.py pu_unet_kvasir

Checks zoo/<preset>/ against the registry's sha256s, uploads it to the
preset's repository (e.g. keras-pu/pu_unet_kvasir) as one commit, downloads
every file back at that commit and verifies it, then records the commit sha
as the preset's pinned revision in keras_pu/zoo/registry.json and refreshes
the presets table in README.md. Commit the registry change: from then on
`keras_pu.zoo.load("<preset>")` fetches exactly that commit.

HF_ENDPOINT selects another Hub-compatible server, as for huggingface_hub.
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
    parser.add_argument("preset", nargs="+", help="preset name(s)")
    parser.add_argument("--private", action="store_true", help="create private repos")
    parser.add_argument("--registry", help="registry JSON (default: the checkout's)")
    parser.add_argument("--zoo-dir", help="preset folders (default: zoo/)")
    parser.add_argument(
        "--readme", default=str(ROOT / "README.md"),
        help="README whose presets table is regenerated ('' to skip)",
    )
    args = parser.parse_args(argv)

    from keras_pu.zoo.errors import ZooError
    from tools.zoo.publishing import publish

    for name in args.preset:
        try:
            publish(
                name,
                registry_path=args.registry,
                zoo_dir=args.zoo_dir or ROOT / "zoo",
                readme_path=args.readme or None,
                private=args.private,
            )
        except ZooError as e:
            print(f"publish: error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
