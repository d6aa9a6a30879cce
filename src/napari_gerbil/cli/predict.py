"""``napari-gerbil predict``: localize every call of a VCL dataset or a session file.

Writes an HDF5 prediction file with vocalocator's names (``point_predictions``,
``confidence_set_areas``, ``location_in_confidence_set`` when the truth is known,
``raw_model_output``) plus ours; see :mod:`napari_gerbil.model.predict`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import add_overwrite, positive_int, probability_open


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict", help="localize the calls of a dataset or session", description=__doc__
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="model directory")
    src.add_argument("--baseline", choices=("muse", "gcc-phat"), help="classical localizer")
    p.add_argument("--data", type=Path, required=True, help="VCL dataset or session file")
    p.add_argument("--out", type=Path, required=True, help="prediction file (.h5) to write")
    p.add_argument("--mass", type=probability_open, default=0.95, help="confidence set probability")
    p.add_argument("--batch-size", type=positive_int, default=64)
    add_overwrite(p)
    p.add_argument("--device", default="cpu", help="torch device for the model")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from napari_gerbil.io.outputs import check_input_file, check_output_path
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.model.predict import predict_file

    # cheap checks first: a bad --data or --out fails before the model is loaded
    check_input_file(args.data, "--data", "VCL dataset or session file")
    check_output_path(args.out, overwrite=args.overwrite, inputs=[args.data])
    ensemble = load_ensemble(args.model, device=args.device) if args.model else None
    bars = []  # opened on the first progress report: errors before it print one line

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc="calls", unit="call", total=total))
        bars[0].update(done - bars[0].n)

    try:
        result = predict_file(
            args.data,
            args.out,
            ensemble=ensemble,
            baseline=args.baseline,
            mass=args.mass,
            batch_size=args.batch_size,
            progress=progress,
            overwrite=args.overwrite,
        )
    finally:
        for bar in bars:
            bar.close()
    line = f"{len(result.point_mm)} calls -> {args.out}"
    errors = None if result.errors_mm is None else result.errors_mm[np.isfinite(result.errors_mm)]
    if errors is not None and len(errors):
        line += f"; median error {np.median(errors):.1f} mm"
    if result.in_set is not None and len(result.in_set):
        line += f"; {args.mass:.0%} set coverage {result.in_set.mean():.3f}"
    print(line)
    return 0
