"""``napari-gerbil info`` and ``napari-gerbil validate``: describe and check any file.

Recognised inputs: VCL training datasets (ours or plain vocalocator files), session
files (``*.gerbil.h5``), recordings (WAV or HDF5 with an ``/audio`` dataset), SLEAP pose
files (``.slp`` or analysis ``.h5``), model directories (with ``manifest.json``), RIR
banks (``/rir``, ``/rir_length_idx``, ``/locations``), the ground truth of simulated
sessions (``*.truth.h5``) and prediction files (``napari-gerbil predict``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gerbil.cli._args import nonnegative_float
from napari_gerbil.cli._describe import DESCRIBE, _prediction_arrays, _rate
from napari_gerbil.errors import InvalidInputError

KINDS = ("vcl", "session", "audio", "poses", "model", "rir_bank", "truth", "cage", "predictions")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` and ``validate`` subcommands."""
    p = subparsers.add_parser(
        "info",
        help="describe a dataset, session, recording, pose file or model directory",
        description=__doc__,
    )
    p.add_argument("path", type=Path, help="file or model directory")
    p.set_defaults(func=_info_command)
    v = subparsers.add_parser(
        "validate",
        help="check a file completely; exit 0 if valid, 1 with the problem otherwise",
        description=__doc__,
    )
    v.add_argument("path", type=Path, help="file or model directory")
    v.add_argument(
        "--tolerance-mm",
        type=nonnegative_float,
        default=None,
        help="how far beyond the arena walls a VCL or RIR-bank location may lie (default 10 mm)",
    )
    v.set_defaults(func=_validate_command)


# ---------------------------------------------------------------------------------------
# recognising files
# ---------------------------------------------------------------------------------------


def detect_kind(path: str | Path) -> str:
    """What ``path`` is: one of :data:`KINDS`; :class:`InvalidInputError` otherwise."""
    path = Path(path)
    if path.is_dir():
        from napari_gerbil.model.manifest import MANIFEST, is_model_dir

        if is_model_dir(path):
            return "model"
        raise InvalidInputError(path, MANIFEST, "a model directory", "a folder without it")
    from napari_gerbil.io.inputs import check_input_file

    if not path.exists():
        raise InvalidInputError(path, "<file>", "an existing file or model directory", "nothing")
    check_input_file(path, "<file>", "file or model directory")
    suffix = path.suffix.lower()
    if suffix in (".wav", ".wave"):
        return "audio"
    if suffix in (".yaml", ".yml", ".json"):
        return "cage"  # the only YAML input of info/validate; load_cage names what is wrong
    if suffix == ".slp":
        return "poses"
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InvalidInputError(
            path, "<file>", "an HDF5, WAV or .slp file, or a model directory", "unreadable"
        ) from None
    from napari_gerbil.io.h5values import hdf5_errors

    with f, hdf5_errors(path):
        fmt = f.attrs.get("napari_gerbil_format", "")
        fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else str(fmt)
        names = set(f.keys())
    if fmt == "session":
        return "session"
    if fmt == "vcl" or (names & {"length_idx", "len_idx"}):
        return "vcl"
    if {"rir", "rir_length_idx"} <= names:
        return "rir_bank"
    if fmt:
        from napari_gerbil.simulate.truth import TRUTH_FORMAT

        if fmt == TRUTH_FORMAT:
            return "truth"
    if {"tracks", "node_names"} <= names:
        return "poses"
    if "point_predictions" in names:
        return "predictions"
    if "audio" in names:
        return "audio"
    raise InvalidInputError(
        path,
        "<file>",
        "a VCL dataset (/audio + /length_idx), session, recording, SLEAP analysis file, "
        "RIR bank (/rir + /rir_length_idx) or simulation truth file",
        f"an HDF5 file with {sorted(names)}",
    )


# ---------------------------------------------------------------------------------------
# descriptions (lists of lines, so the GUI and tests can use them)
# ---------------------------------------------------------------------------------------


def describe(path: str | Path) -> list[str]:
    """Lines describing any recognised file (see :func:`detect_kind`)."""
    return DESCRIBE[detect_kind(path)](path)


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------


def validate(path: str | Path, tolerance_mm: float | None = None) -> str:
    """Check ``path`` completely; return a one-line summary or raise InvalidInputError."""
    from napari_gerbil.io.vcl import LOCATION_TOLERANCE_MM

    path = Path(path)
    kind = detect_kind(path)
    tol = LOCATION_TOLERANCE_MM if tolerance_mm is None else tolerance_mm
    if kind == "vcl":
        from napari_gerbil.io.vcl import validate_vcl

        s = validate_vcl(path, tolerance_mm=tol)
        return (
            f"valid VCL dataset: {s['n_calls']} calls, {s['n_channels']} channels, "
            f"{s['total_samples']} samples, sample rate {_rate(s['sample_rate_hz'])}"
        )
    if kind == "session":
        from napari_gerbil.io.checks import check_session
        from napari_gerbil.io.session import load_session

        session = load_session(path)
        check_session(session, path, calls_audio=True)
        return (
            f"valid session: {session.n_calls} calls, all referenced files present and unchanged, "
            "finite audio in every call, the video clock covers every call"
        )
    if kind == "cage":
        from napari_gerbil.io.cage import load_cage

        cage = load_cage(path)
        size = " x ".join(f"{v:g}" for v in cage.dims_mm)
        return f"valid cage file: {size} mm, {cage.n_mics} microphones"
    if kind == "audio":
        from napari_gerbil.io.audio import AudioSource

        src = AudioSource.open(path)  # an empty recording is refused here
        src.read(0, min(src.n_samples, 1024))
        return f"valid recording: {src.n_channels} channels, {src.duration_s:.3f} s"
    if kind == "poses":
        from napari_gerbil.io.tracks import load_poses

        poses = load_poses(path)
        return f"valid poses: {poses.n_frames} frames, {poses.n_tracks} tracks"
    if kind == "rir_bank":
        from napari_gerbil.simulate.rir_bank import validate_rir_bank

        s = validate_rir_bank(path, tolerance_mm=tol)
        return (
            f"valid RIR bank: {s['n_positions']} positions, {s['n_mics']} microphones, "
            f"{s['total_samples']} samples, sample rate {_rate(s['sample_rate_hz'])}"
        )
    if kind == "truth":
        from napari_gerbil.simulate.truth import load_truth

        truth = load_truth(path)
        return (
            f"valid simulation truth: {len(truth.animal)} calls, "
            f"{len(truth.animal_names)} animals, {len(truth.poses_mm)} pose frames"
        )
    if kind == "predictions":
        d = _prediction_arrays(path)
        return f"valid prediction file: {len(d['point_predictions'])} calls"
    from napari_gerbil.model.ensemble import load_ensemble  # torch: only here

    ens = load_ensemble(path, verify=True)
    text = f"valid model directory: {ens.n_members} members, checksums verified"
    from napari_gerbil.attribute import CALIBRATION_FILE, load_calibration

    if (path / CALIBRATION_FILE).exists():
        calibration = load_calibration(path)  # names attribution.yaml and the field
        fitted = calibration.fitted_cage
        text += f"; {CALIBRATION_FILE}: method {calibration.method}"
        text += f", fitted in {fitted}" if fitted else ""
    return text


def _info_command(args: argparse.Namespace) -> int:
    print("\n".join(describe(args.path)))
    return 0


def _validate_command(args: argparse.Namespace) -> int:
    print(validate(args.path, args.tolerance_mm))
    return 0
