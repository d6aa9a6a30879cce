"""``napari-gerbil models``: list the network presets with parameters and GMAC per call."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand."""
    p = subparsers.add_parser(
        "models",
        help="list network presets (params=<int> gmac=<float per 8192-sample call>)",
        description=__doc__,
    )
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from napari_gerbil.model.network import count_macs, count_parameters
    from napari_gerbil.model.presets import PRESETS

    for name, config in PRESETS.items():
        params = count_parameters(config)
        gmac = count_macs(config, 8192) / 1e9
        print(f"{name:<6} params={params} gmac={gmac:.4f} input_samples=8192")
    return 0
