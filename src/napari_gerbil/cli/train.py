"""``napari-gerbil train``: train an ensemble (or fine-tune one, or build the demo model).

Examples::

    napari-gerbil train --preset fast --ensemble 10 --data speaker.h5 --out models/fast10
    napari-gerbil train --preset tiny --ensemble 3 --rir-bank bank.h5 --out models/sim
    napari-gerbil train --finetune models/fast10 --data corrections.h5
    napari-gerbil train --demo
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a deep ensemble, fine-tune one, or (re)build the demo model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="fast", help="network preset: paper, fast, srp or tiny")
    p.add_argument("--ensemble", type=int, default=1, metavar="N", help="number of members")
    p.add_argument("--data", type=Path, nargs="*", default=[], help="VCL training datasets")
    p.add_argument("--rir-bank", type=Path, help="train on calls rendered from this RIR bank")
    p.add_argument("--out", type=Path, help="model directory to write (resumes if present)")
    p.add_argument("--config", type=Path, help="TrainingConfig YAML file")
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--jobs", type=int, default=1, help="members trained in parallel processes")
    p.add_argument("--finetune", type=Path, metavar="MODEL_DIR", help="fine-tune this model")
    p.add_argument("--demo", action="store_true", help="(re)build the demo ensemble")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from napari_gerbil.errors import InvalidInputError
    from napari_gerbil.model.presets import get_preset
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.trainer import finetune, train_ensemble

    if args.demo:
        from napari_gerbil.training.demo import ensure_demo_ensemble

        print(ensure_demo_ensemble(rebuild=True))
        return 0
    config = TrainingConfig.load(args.config) if args.config else TrainingConfig()
    if args.epochs is not None:
        config = config.replace(epochs=args.epochs)
    if args.seed is not None:
        config = config.replace(seed=args.seed)
    config.validate(str(args.config) if args.config else None)
    if args.finetune:
        out = finetune(args.finetune, args.data, args.out, config if args.config else None)
        print(out)
        return 0
    if args.out is None:
        raise InvalidInputError(None, "--out", "a model directory", "none")
    if not args.data and args.rir_bank is None:
        raise InvalidInputError(None, "--data", "VCL datasets or --rir-bank", "neither")
    out = train_ensemble(
        get_preset(args.preset),
        config,
        args.data,
        args.out,
        args.ensemble,
        rir_bank=args.rir_bank,
        jobs=args.jobs,
    )
    print(out)
    return 0
