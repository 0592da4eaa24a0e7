"""`keras-pu zoo list|info|download`: the presets of the model zoo.

    keras-pu zoo list                 # status, dataset, size and Dice of each preset
    keras-pu zoo info pu_unet_busi    # everything the registry knows, licence included
    keras-pu zoo download pu_unet_busi  # fill the Hugging Face cache (then HF_HUB_OFFLINE=1 works)
"""

import json
import sys


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "zoo",
        help="list, describe and download pretrained presets",
        description="The keras-pu model zoo: pretrained presets on the "
        "Hugging Face Hub, pinned and verified by sha256.",
    )
    actions = parser.add_subparsers(dest="zoo_command", metavar="ACTION")

    p = actions.add_parser("list", help="the presets and their status")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--with-weights", action="store_true",
        help="only presets that have trained weights",
    )

    p = actions.add_parser("info", help="everything about one preset")
    p.add_argument("name", help="preset name")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = actions.add_parser(
        "download",
        help="fetch and verify a preset's files (for offline use)",
    )
    p.add_argument("name", help="preset name or hf://org/repo[@revision]")
    p.add_argument("--revision", help="Hub revision (default: the pinned one)")
    p.add_argument("--cache-dir", help="Hugging Face cache (default: HF_HUB_CACHE)")
    p.add_argument("--local-dir", help="also copy the files into this folder")
    p.add_argument(
        "--force", action="store_true", help="download even if cached"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")

    parser.set_defaults(run=run, zoo_parser=parser)


def run(args):
    from keras_pu.zoo.errors import ZooError

    if args.zoo_command is None:
        args.zoo_parser.print_help()
        return 2
    try:
        if args.zoo_command == "list":
            return _list(args)
        if args.zoo_command == "info":
            return _info(args)
        return _download(args)
    except (ZooError, ValueError) as e:
        print(f"keras-pu zoo {args.zoo_command}: error: {e}", file=sys.stderr)
        return 2


def _list(args):
    from keras_pu.zoo import catalog

    rows = [catalog.info(n) for n in catalog.list_presets(args.with_weights)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [("PRESET", "STATUS", "DATASET", "INPUT", "PARAMS", "DICE")]
    for row in rows:
        metrics = row["metrics"]
        dice = (
            f"{metrics['values']['dice']:.3f}"
            if metrics and "dice" in metrics["values"]
            else "not trained yet" if row["status"] == "not trained" else "-"
        )
        table.append(
            (
                row["name"] + (" *" if row["recommended"] else ""),
                row["status"],
                _dataset_label(row["dataset"]),
                "x".join(str(v) for v in row["input_size"]),
                f"{row['parameters']:,}",
                dice,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if any(row["recommended"] for row in rows):
        print("\n* the preset to use for its dataset's task "
              "(keras_pu.zoo.recommended()).")
    if rows:
        print(f"\nWeights: {rows[0]['weights_terms']}")
    print("`keras-pu zoo info NAME` shows a preset's dataset, licence and files.")
    return 0


def _info(args):
    from keras_pu.zoo import catalog

    data = catalog.info(args.name)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    ds = data["dataset"]
    arch = data["architecture"]
    hub = data["hub"]
    lines = [
        f"{data['name']}  [{data['status']}]",
        f"  {data['description']}",
        "",
        f"  Load:          {data['load']}",
        f"  Architecture:  keras_pu.models.{arch['class_name']}, "
        f"{data['parameters']:,} parameters",
        f"                 {json.dumps(arch['config'])}",
        f"  Input:         {data['input_size'][0]}x{data['input_size'][1]} "
        f"{data['preprocessing']['color_mode'].upper()}, pixels scaled to "
        f"{data['preprocessing']['pixel_range']}",
        f"  Hub:           {hub['url']} "
        + (f"@ {hub['revision']}" if hub["revision"] else "(not published)"),
        "",
        f"  Dataset:       {_dataset_label(ds)} — {ds['task']} ({ds['url']})",
        f"  Data note:     {ds['data_note']}",
        f"  Data licence:  {ds['licence']}",
        f"  Weights:       {data['weights_terms']}",
        f"  Cite:          {ds['citation']}",
        "",
    ]
    if data["metrics"]:
        m = data["metrics"]
        lines.append(f"  Test metrics ({m.get('split') or 'test'} split):")
        for key, value in m["values"].items():
            lines.append(f"    {key:<12} {value:.4f}")
        if data["postprocess"]:
            gate = data["postprocess"]["gate"]["min_peak_probability"]
            lines.append(
                f"  With its image-level gate {gate:.4f} (--gate model, "
                "chosen on the val split):"
            )
            for key, value in data["postprocess"]["test_metrics"]["values"].items():
                lines.append(f"    {key:<12} {value:.4f}")
    else:
        lines.append("  Test metrics:  not trained yet")
    ref = ds["paper_reference"]
    lines.append(
        f"  Paper ({ref['model']}, {ref['source']}, {ref['dataset']}): "
        + ", ".join(f"{k} {v:g}" for k, v in ref["metrics"].items())
    )
    if data["files"]:
        lines += ["", "  Files (sha256):"]
        for name, rec in data["files"].items():
            lines.append(f"    {name:<18} {rec['size']:>10,} B  {rec['sha256']}")
    print("\n".join(lines))
    return 0


def _dataset_label(dataset):
    if dataset.get("stand_in_for"):
        return f"{dataset['name']} (stand-in for {dataset['stand_in_for']})"
    return dataset["name"]


def _download(args):
    from keras_pu.zoo.loading import download

    folder = download(
        args.name,
        revision=args.revision,
        cache_dir=args.cache_dir,
        local_dir=args.local_dir,
        force_download=args.force,
        progress=not args.quiet,
    )
    print(folder)
    return 0
