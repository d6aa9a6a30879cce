"""``napari-gerbil train``: train an ensemble (or fine-tune one, or build the demo model).

Examples::

    napari-gerbil train --preset fast --ensemble 10 --data speaker.h5 --out models/fast10
    napari-gerbil train --preset fast --ensemble 5 --cage my_cage.yaml --sim-calls 20000 \
        --epochs 10 --out models/mycage   # fresh simulated calls every epoch
    napari-gerbil train --init models/mycage --data my_speaker.h5 --out models/mycage-real
    napari-gerbil train --preset tiny --ensemble 3 --rir-bank bank.h5 --out models/sim
    napari-gerbil train --finetune models/fast10 --data corrections.h5
    napari-gerbil train --finetune models/fast10 --sessions day1.gerbil.h5 day2.gerbil.h5 \
        --epochs 3   # the tracked animals at each call as weak labels
    napari-gerbil train --demo
    napari-gerbil train --preset fast --ensemble 10 --cage paper --cluster slurm \
        --partition gpu --gpus-per-member 1 --out models/fast10   # docs/cluster.md
    napari-gerbil train --resume models/fast10   # collect / resubmit the members
    napari-gerbil train --preset fast --cage paper --nproc 2 --out models/ddp  # torchrun
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from napari_gerbil.cli._args import UniqueValues, int_range, positive_int, seed
from napari_gerbil.cli._cluster import add_cluster_options, cluster_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a deep ensemble, fine-tune one, or (re)build the demo model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="fast", help="network preset: paper, fast, srp or tiny")
    p.add_argument(
        "--ensemble", type=int_range(1, 100), default=1, metavar="N", help="number of members"
    )
    p.add_argument("--data", type=Path, nargs="*", default=[], help="VCL training datasets")
    p.add_argument(
        "--sessions",
        type=Path,
        nargs="*",
        action=UniqueValues,
        default=[],
        metavar="SESSION",
        help="session files (.gerbil.h5): train on their calls, the tracked animals at each "
        "call as weak labels (reviewed calls: the user's animal)",
    )
    p.add_argument("--rir-bank", type=Path, help="train on calls rendered from this RIR bank")
    p.add_argument(
        "--cage",
        help="train on fresh calls simulated in this cage (a cage file or built-in name)",
    )
    p.add_argument(
        "--sim-calls",
        type=positive_int,
        metavar="N",
        help="simulated calls per epoch (with --cage)",
    )
    p.add_argument(
        "--engine-config", type=Path, help="EngineConfig YAML (randomization ranges, renderer)"
    )
    p.add_argument(
        "--no-randomize",
        action="store_true",
        help="simulate the nominal cage only (no domain randomization)",
    )
    p.add_argument("--init", type=Path, metavar="MODEL_DIR", help="start from a trained ensemble")
    p.add_argument("--out", type=Path, help="model directory to write (resumes if present)")
    p.add_argument("--config", type=Path, help="TrainingConfig YAML file")
    p.add_argument("--epochs", type=positive_int, help="override the config's epochs")
    p.add_argument("--seed", type=seed, help="override the config's seed")
    p.add_argument(
        "--jobs", type=positive_int, default=1, help="members trained in parallel processes"
    )
    p.add_argument("--finetune", type=Path, metavar="MODEL_DIR", help="fine-tune this model")
    p.add_argument("--demo", action="store_true", help="(re)build the demo ensemble")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override the config's device")
    p.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the run in DIR: keep finished members, resubmit the others",
    )
    p.add_argument(
        "--nproc",
        type=positive_int,
        metavar="N",
        help="train data-parallel over N processes (launches torchrun; gloo on CPUs)",
    )
    add_cluster_options(p)
    p.set_defaults(func=_command)


def _launch_torchrun(args: argparse.Namespace) -> int:
    """Run this command again under ``torchrun --nproc_per_node N`` (without --nproc)."""
    import subprocess
    import sys

    argv = list(getattr(args, "argv", None) or [])
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", str(args.nproc), "-m", "napari_gerbil", *rest]
    return subprocess.call(command)


def _command(args: argparse.Namespace) -> int:
    from napari_gerbil.errors import InvalidInputError
    from napari_gerbil.io.inputs import check_input_file
    from napari_gerbil.io.outputs import output_lock
    from napari_gerbil.model.presets import get_preset
    from napari_gerbil.training import distributed
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.ensembles import train_ensemble
    from napari_gerbil.training.finetune import finetune

    if args.demo:
        from napari_gerbil.training.demo import ensure_demo_ensemble

        print(ensure_demo_ensemble(rebuild=True))
        return 0
    torchrun = distributed.env_world_size() > 1
    spec = cluster_spec(args)  # every cluster check, before anything is submitted
    if args.jobs > 1 and spec is not None:
        raise InvalidInputError(None, "--jobs", "either --jobs or --cluster", "both")
    if args.nproc is not None or torchrun:
        for flag, bad in (
            ("--cluster", spec is not None), ("--jobs", args.jobs > 1),
            ("--finetune", args.finetune is not None), ("--init", args.init is not None),
            ("--resume", args.resume is not None),
        ):  # fmt: skip
            if bad:
                raise InvalidInputError(None, flag, "not with --nproc / torchrun", flag)
    if args.nproc is not None and args.nproc > 1 and not torchrun:
        return _launch_torchrun(args)
    if args.resume is not None:
        return _resume(args, spec)
    named = [("--data", p) for p in args.data] + [("--rir-bank", args.rir_bank)]
    named += [("--sessions", p) for p in args.sessions]
    named += [("--config", args.config), ("--engine-config", args.engine_config)]
    for option, path in named:
        if path is not None:
            check_input_file(path, option)
    config = TrainingConfig.load(args.config) if args.config else TrainingConfig()
    if args.epochs is not None:
        config = config.replace(epochs=args.epochs)
    if args.seed is not None:
        config = config.replace(seed=args.seed)
    if args.device is not None:
        config = config.replace(device=args.device)
    if args.sim_calls is not None:
        if args.cage is None:
            raise InvalidInputError(None, "--sim-calls", "used with --cage", "no --cage")
        config = config.replace(sim_calls_per_epoch=args.sim_calls)
    config.validate(str(args.config) if args.config else None)
    engine = _engine_spec(args, config)
    if args.finetune or args.init:
        if args.finetune and args.init:
            raise InvalidInputError(None, "--init", "either --init or --finetune", "both")
        lock = (
            output_lock(Path(args.out) / "manifest.json")
            if args.out is not None
            else contextlib.nullcontext()
        )
        if args.out is not None:
            _check_out_dir(
                args.out,
                [*args.data, *args.sessions, args.config, args.engine_config,
                 args.finetune or args.init],
            )  # fmt: skip
        overrides = {}  # without --config: the parent's config, with these options
        if args.config is None:
            for key, value in (
                ("epochs", args.epochs), ("device", args.device),
                ("sim_calls_per_epoch", args.sim_calls),
            ):  # fmt: skip
                if value is not None:
                    overrides[key] = value
        with lock:
            out = finetune(
                args.finetune or args.init,
                args.data,
                args.out,
                config if args.config else None,
                engine=engine,
                sessions=args.sessions or None,
                overrides=overrides,
                report=_say,
            )
        print(out)
        return 0
    if args.out is None:
        raise InvalidInputError(None, "--out", "a model directory", "none")
    if not args.data and args.rir_bank is None and engine is None and not args.sessions:
        raise InvalidInputError(
            None, "--data", "VCL datasets, --sessions, --cage or --rir-bank", "none"
        )
    inputs = [*args.data, *args.sessions, args.rir_bank, args.config, args.engine_config]
    _check_out_dir(args.out, inputs)
    ctx = distributed.init_from_env(config.device)
    main = ctx is None or ctx.main
    lock = output_lock(Path(args.out) / "manifest.json") if main else contextlib.nullcontext()
    try:
        with lock:
            out = train_ensemble(
                get_preset(args.preset),
                config,
                args.data,
                args.out,
                args.ensemble,
                rir_bank=args.rir_bank,
                engine=engine,
                sessions=args.sessions or None,
                jobs=args.jobs,
                cluster=spec,
                report=_say,
            )
    finally:
        distributed.close()
    if main:
        print(out)
    return 0


def _say(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def _resume(args: argparse.Namespace, spec) -> int:
    """``train --resume DIR``: the recorded run, members finished / waited / resubmitted."""
    from napari_gerbil.errors import InvalidInputError
    from napari_gerbil.io.outputs import output_lock
    from napari_gerbil.training.ensembles import resume_ensemble

    for flag, value in (
        ("--out", args.out), ("--data", args.data), ("--rir-bank", args.rir_bank),
        ("--sessions", args.sessions),
        ("--cage", args.cage), ("--config", args.config), ("--init", args.init),
        ("--finetune", args.finetune), ("--epochs", args.epochs), ("--seed", args.seed),
    ):  # fmt: skip
        if value:
            raise InvalidInputError(
                None, flag, "no data or training options with --resume (they are recorded)", flag
            )
    with output_lock(Path(args.resume) / "manifest.json", field="--resume"):
        jobs = args.jobs if args.jobs > 1 else None
        out = resume_ensemble(args.resume, cluster=spec, jobs=jobs, report=_say)
    print(out)
    return 0


def _engine_spec(args: argparse.Namespace, config) -> dict | None:
    """The data-engine source of ``--cage`` (None without it)."""
    from napari_gerbil.errors import InvalidInputError
    from napari_gerbil.io.cage import load_cage
    from napari_gerbil.simulate.engine import EngineConfig

    if args.cage is None:
        for flag in ("engine_config", "no_randomize"):
            if getattr(args, flag):
                raise InvalidInputError(
                    None, "--" + flag.replace("_", "-"), "used with --cage", "no --cage"
                )
        return None
    if args.rir_bank is not None:
        raise InvalidInputError(None, "--cage", "either --cage or --rir-bank", "both")
    cage = load_cage(args.cage)
    engine_config = EngineConfig.load(args.engine_config) if args.engine_config else EngineConfig()
    if args.no_randomize:
        engine_config = engine_config.replace(randomize=False)
    return {
        "cage": cage.to_dict(),
        "cage_source": cage.name,
        "config": engine_config.to_dict(),
        "seed": config.seed,
    }


def _check_out_dir(out: Path, inputs: list) -> None:
    """``--out`` is a folder (new or a run of these inputs), never an input file."""
    from napari_gerbil.io.outputs import check_output_path

    check_output_path(out, directory=True, inputs=[p for p in inputs if p is not None])
