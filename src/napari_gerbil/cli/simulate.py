"""``napari-gerbil simulate``: physically simulated datasets and sessions.

``speaker``, ``robot`` and ``animal`` write a VCL training dataset (``--out file.h5``);
``session`` writes audio, video, poses, a session file and a ground-truth file
(``--out DIR`` or ``--out DIR/NAME.gerbil.h5``). The same seed gives the same output.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from napari_gerbil.cli._args import (
    add_overwrite,
    finite_float,
    float_range,
    int_range,
    positive_float,
    positive_int,
    seed,
)
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.simulate.caller import CALLERS

#: Largest simulated session (s) and dataset (calls): beyond, the output would not fit.
MAX_DURATION_S = 3600.0
MAX_N_CALLS = 1_000_000

KINDS = ("speaker", "robot", "animal", "session")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate a training dataset (speaker/robot/animal) or a review session",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--out", type=Path, required=True, help="output file (or session folder)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--n-calls", type=int_range(1, MAX_N_CALLS), default=None, help="calls in a dataset"
    )
    size.add_argument(
        "--duration",
        type=float_range(0.0, MAX_DURATION_S, low_open=True),
        default=None,
        help="session length (s)",
    )
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument(
        "--cage",
        default="paper",
        help="a cage file (YAML) or a built-in cage name (default: paper)",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="replace the cage's absorption: cage, anechoic, damped, reverberant, bare",
    )
    p.add_argument(
        "--shift",
        default="none",
        help="dataset variant: none, absorption, damped, cage_size, mic_positions",
    )
    p.add_argument(
        "--caller",
        choices=CALLERS,
        default="plausible",
        help="how a calling animal radiates: plausible (a mouth on a rigid head, the default), "
        "cardioid (the harsh former caller, a null behind) or omni",
    )
    p.add_argument("--snr-db", type=finite_float, default=None, help="SNR of a loud call")
    p.add_argument("--n-animals", type=int_range(1, 64), default=2, help="animals in a session")
    p.add_argument("--call-rate", type=positive_float, default=0.5, help="calls/s per animal")
    p.add_argument("--rir-bank", type=Path, default=None, help="also keep the RIR bank here")
    p.add_argument(
        "--workers", type=positive_int, default=None, help="processes (default: all CPUs)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overwrite(p)
    p.set_defaults(func=_simulate_command)


#: Files a simulated session NAME writes in its folder.
SESSION_OUTPUTS = (".gerbil.h5", ".audio.h5", ".mp4", ".slp", ".truth.h5")


def _simulate_command(args: argparse.Namespace) -> int:
    from napari_gerbil.io.outputs import check_output_path, output_lock
    from napari_gerbil.simulate.room import RenderConfig
    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset
    from napari_gerbil.simulate.session import SessionConfig, simulate_session

    progress = not args.quiet
    if args.kind == "session":
        if args.n_calls is not None:
            raise InvalidInputError(None, "--n-calls", "--duration for a session", "--n-calls")
        cfg = SessionConfig(
            n_animals=args.n_animals,
            duration_s=args.duration if args.duration is not None else 20.0,
            seed=args.seed,
            call_rate_hz=args.call_rate,
            cage=str(args.cage),
            absorption_preset=args.preset,
            render=RenderConfig(caller=args.caller),
        )
        if args.snr_db is not None:
            cfg = cfg.replace(snr_db=args.snr_db)
        out = Path(args.out)
        if out.name.endswith(".gerbil.h5"):
            out_dir, name = out.parent, out.name[: -len(".gerbil.h5")]
        else:
            out_dir, name = out, "session"
        workers = args.workers or (os.cpu_count() or 1)
        outputs = [out_dir / f"{name}{ext}" for ext in SESSION_OUTPUTS]
        for path in outputs:
            check_output_path(path, overwrite=args.overwrite)
        with output_lock(outputs[0]):
            paths = simulate_session(out_dir, cfg, name=name, progress=progress, n_workers=workers)
        print(f"session {paths.session}\ntruth   {paths.truth}")
        return 0
    if args.duration is not None:
        raise InvalidInputError(None, "--duration", f"--n-calls for {args.kind}", "--duration")
    scenario = ScenarioConfig(
        scenario=args.kind,
        n_calls=args.n_calls,
        seed=args.seed,
        shift=args.shift,
        snr_db=args.snr_db,
        cage=str(args.cage),
        absorption_preset=args.preset,
        render=RenderConfig(caller=args.caller),
    )
    check_output_path(args.out, overwrite=args.overwrite)
    if args.rir_bank is not None:
        check_output_path(
            args.rir_bank, overwrite=args.overwrite, inputs=[args.out], field="--rir-bank"
        )
        if Path(args.rir_bank).absolute() == Path(args.out).absolute():
            raise InvalidInputError(args.rir_bank, "--rir-bank", "a path other than --out", "--out")
    with output_lock(args.out):
        out = simulate_dataset(
            args.out,
            scenario,
            rir_bank_path=args.rir_bank,
            progress=progress,
            n_workers=args.workers,
        )
    print(f"dataset {out}")
    return 0
