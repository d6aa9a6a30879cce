"""The cluster options shared by ``train`` and ``benchmark`` (``--cluster slurm|local``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from napari_gerbil.cli._args import nonnegative_int, positive_float, positive_int

#: ``dest`` of the resource options (None when not given).
RESOURCE_OPTIONS = ("partition", "gpus_per_member", "cpus_per_member", "mem_gb", "time_min")


def add_cluster_options(parser: argparse.ArgumentParser, detach: bool = True) -> None:
    """Add ``--cluster`` and its resource options (see docs/cluster.md)."""
    g = parser.add_argument_group("cluster (members as submitit jobs; docs/cluster.md)")
    g.add_argument(
        "--cluster",
        choices=("slurm", "local"),
        help="train each member as a job: a SLURM array, or local submitit processes",
    )
    g.add_argument("--partition", help="SLURM partition(s), comma-separated")
    g.add_argument("--gpus-per-member", type=nonnegative_int, metavar="N")
    g.add_argument("--cpus-per-member", type=positive_int, metavar="N")
    g.add_argument("--mem-gb", type=positive_float, metavar="GB")
    g.add_argument("--time-min", type=positive_int, metavar="MIN", help="job time limit")
    g.add_argument(
        "--cluster-config",
        type=Path,
        metavar="YAML",
        help="further SLURM settings (account, qos, constraint, setup, ...)",
    )
    if detach:
        g.add_argument(
            "--detach",
            action="store_true",
            help="return once submitted; collect with 'train --resume DIR'",
        )


def cluster_spec(args: argparse.Namespace) -> Any:
    """The checked ClusterSpec of the options (None without ``--cluster``).

    Resource options without ``--cluster`` are refused; every check runs before
    anything is submitted.
    """
    from napari_gerbil.errors import InvalidInputError

    given = [k for k in (*RESOURCE_OPTIONS, "cluster_config") if getattr(args, k) is not None]
    if getattr(args, "detach", False):
        given.append("detach")
    if args.cluster is None:
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise InvalidInputError(None, flag, "used with --cluster slurm|local", "no --cluster")
        return None
    from napari_gerbil.io.inputs import check_input_file
    from napari_gerbil.training.cluster import build_spec

    if args.cluster_config is not None:
        check_input_file(args.cluster_config, "--cluster-config")
    options = {k: getattr(args, k) for k in RESOURCE_OPTIONS}
    return build_spec(
        args.cluster, args.cluster_config, detach=getattr(args, "detach", False), **options
    )
