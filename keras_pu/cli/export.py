"""`keras-pu export`: write a model as ONNX or a TensorFlow SavedModel.

    keras-pu --backend tensorflow export m.keras --format onnx -o m.onnx
    keras-pu --backend jax export presets/pu_unet_isic --format saved_model \\
        -o pu_unet_savedmodel --check

Which backend can write which format, and why, is in `keras_pu.export`.
"""

import sys


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a model as ONNX or a TensorFlow SavedModel",
        description="Export a .keras file, a model directory or a preset "
        "with Keras's model.export. ONNX: any backend (tf2onnx, jax2onnx or "
        "torch.onnx). SavedModel: tensorflow or jax backend. Converters: "
        'pip install "keras-pu[export]".',
    )
    parser.add_argument(
        "model",
        help="a .keras file, a Keras model directory (config.json + "
        "model.weights.h5) or a preset name",
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=("onnx", "saved_model"),
        help="artifact format",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="output path: a .onnx file, or a directory for saved_model",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing file or SavedModel folder at --output",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="run the exported artifact (onnxruntime / TensorFlow) on random "
        "images and fail unless it matches Keras within --tolerance",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest accepted |logit difference| for --check (default 1e-4)",
    )
    parser.set_defaults(run=run)


def run(args):
    from keras_pu.atomic_files import check_overwrite
    from keras_pu.export import check_export_supported
    from keras_pu.export import export_model
    from keras_pu.export import load_model_for_export
    from keras_pu.export import verify_export

    # Any other failure (damaged model, full disk) is reported in one line
    # by keras_pu.cli.errors.
    try:
        check_export_supported(args.format)
        check_overwrite(args.output, args.overwrite)
        model = load_model_for_export(args.model)
        path = export_model(model, args.output, format=args.format,
                            overwrite=args.overwrite)
    except (ValueError, ImportError) as e:
        print(f"keras-pu export: error: {e}", file=sys.stderr)
        return 2
    print(f"Exported {args.format}: {path}")
    if args.check:
        difference = verify_export(model, path, args.format)
        verdict = "OK" if difference <= args.tolerance else "MISMATCH"
        print(
            f"Check: max |logit difference| vs Keras = {difference:.3g} "
            f"(tolerance {args.tolerance:g}): {verdict}"
        )
        if difference > args.tolerance:
            return 1
    return 0
