"""``napari-gerbil benchmark``: the paper's figures on simulated data, with one command."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from napari_gerbil.cli._args import add_overwrite, positive_int
from napari_gerbil.cli._cluster import add_cluster_options, cluster_spec

#: Files ``benchmark`` writes in ``--out`` that count as earlier results.
OUTPUTS = ("results.json", "report.md")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` command."""
    p = subparsers.add_parser(
        "benchmark",
        help="simulate, train, run baselines and write the benchmark report",
        description="Simulate the speaker/robot/animal datasets, train single models and "
        "ensembles, run MUSE and GCC-PHAT on the same test calls, and write figures, "
        "results.json and report.md.",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--smoke",
        action="store_const",
        const="smoke",
        dest="scale",
        help="tiny end-to-end check (about a minute)",
    )
    size.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="scale",
        help="reduced scale, about 45 minutes on 2 CPU cores (default)",
    )
    size.add_argument("--full", action="store_const", const="full", dest="scale",
                      help="paper scale; uses a GPU when present")  # fmt: skip
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--data-dir", help="keep / reuse the simulated datasets here")
    p.add_argument("--jobs", type=positive_int, help="ensemble members trained at once (processes)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="training device")
    add_overwrite(p)
    add_cluster_options(p, detach=False)
    p.set_defaults(func=run, scale="quick")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark at the chosen scale."""
    from napari_gerbil.evaluate.benchmark import SCALES, run_benchmark

    spec = cluster_spec(args)  # refused before anything is simulated or submitted
    if spec is not None and args.jobs:
        from napari_gerbil.errors import InvalidInputError

        raise InvalidInputError(None, "--jobs", "either --jobs or --cluster", "both")
    scale = SCALES[args.scale]
    if args.jobs:
        scale = scale.replace(jobs=args.jobs)
    if args.device:
        scale = scale.replace(device=args.device)
    from napari_gerbil.io.outputs import check_output_path, output_lock

    out = Path(args.out)
    check_output_path(out, overwrite=args.overwrite, directory=True, protected=OUTPUTS)
    if args.data_dir is not None:
        check_output_path(args.data_dir, overwrite=True, directory=True, field="--data-dir")
    command = "napari-gerbil " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with output_lock(out / OUTPUTS[0]):
        results = run_benchmark(args.out, scale, args.data_dir, command=command, cluster=spec)
    for check in results["checks"]:
        print(("PASS " if check["passed"] else "FAIL ") + f"{check['claim']}: {check['measured']}")
    return 0
