"""What ``napari-gerbil info`` says about each kind of file: one describer per kind.

:data:`DESCRIBE` maps a kind of :func:`napari_gerbil.cli.inspect.detect_kind` to its
describer, which returns the lines to print.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError

MODEL_FORMAT = "napari-gerbil-model"


def _rate(rate: float | None) -> str:
    return "unknown" if rate is None else f"{rate:g} Hz"


def _counts(values: Any) -> str:
    return ", ".join(f"{k} ({v})" for k, v in sorted(Counter(values).items()))


def _range_line(axis: str, values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return f"    {axis}: no finite values"
    return f"    {axis}: {finite.min():9.1f} .. {finite.max():9.1f} mm"


def describe_vcl(path: str | Path) -> list[str]:
    """Lines describing a VCL dataset (works without our metadata)."""
    from napari_gerbil.io.vcl import VCLDataset

    with VCLDataset(path) as ds:
        sr = ds.sample_rate_hz
        lengths = ds.call_lengths_samples
        lines = [
            f"VCL dataset: {ds.path}",
            f"  format:           {ds.file_format or 'vocalocator (no napari-gerbil metadata)'}",
            f"  calls:            {ds.n_calls}",
            f"  channels:         {ds.n_channels}",
            f"  sample rate:      {_rate(sr)}",
            f"  total samples:    {ds.total_samples}"
            + ("" if sr is None else f" ({ds.total_samples / sr:.3f} s of audio)"),
        ]
        if len(lengths):
            stats = [lengths.min(), int(np.median(lengths)), lengths.max()]
            text = " / ".join(str(int(v)) for v in stats) + " samples (min / median / max)"
            if sr is not None:
                text += " = " + " / ".join(f"{1000 * v / sr:.1f}" for v in stats) + " ms"
            lines.append(f"  call length:      {text}")
        loc = ds.locations_mm
        if loc is None:
            lines.append("  locations:        none (unlabelled calls)")
        else:
            kind = "multi-animal" if loc.ndim == 4 else "single-animal"
            lines.append(f"  locations:        {kind}, shape {loc.shape}, ranges over all nodes:")
            for i, axis in enumerate("xyz"[: loc.shape[-1]]):
                lines.append(_range_line(axis, loc[..., i]))
        lines.append(f"  nodes:            {', '.join(ds.node_names)}")
        dims = ds.arena_dims_mm
        lines.append(
            "  arena:            "
            + ("unknown" if dims is None else " x ".join(f"{v:g}" for v in dims) + " mm")
        )
        mics = ds.mic_positions_mm
        lines.append(f"  microphones:      {'unknown' if mics is None else len(mics)}")
        lines.append(f"  scenario:         {ds.scenario or 'unknown'}")
        if ds.stimulus_classes is not None:
            lines.append(f"  stimulus classes: {_counts(ds.stimulus_classes)}")
        if ds.provenance:
            lines.append(f"  provenance:       {', '.join(sorted(ds.provenance))}")
    return lines


def _code_counts(codes: np.ndarray, names: list[str]) -> str:
    from napari_gerbil.io.session import AMBIGUOUS, NOT_REVIEWED, UNASSIGNED

    special = {UNASSIGNED: "unassigned", AMBIGUOUS: "ambiguous", NOT_REVIEWED: "not reviewed"}
    label = [names[c] if c >= 0 else special.get(int(c), str(c)) for c in codes]
    return _counts(label) or "none"


def describe_session(path: str | Path) -> list[str]:
    """Lines describing a session file and the state of the files it references."""
    from napari_gerbil.io.session import load_session

    s = load_session(path)
    status = s.verify_files()
    audio = s.audio
    where = ", ".join(f"{ref.path} [{status[f'audio[{i}]']}]" for i, ref in enumerate(audio.files))
    lines = [
        f"Session: {s.path}",
        f"  schema:           {s.schema_version}",
        f"  audio:            {where}" + (f" dataset {audio.dataset}" if audio.dataset else ""),
        f"                    {audio.n_channels} channels, {_rate(audio.sample_rate_hz)}, "
        f"{audio.n_samples} samples ({audio.n_samples / audio.sample_rate_hz:.2f} s)",
    ]
    for role in ("video", "tracks"):
        ref = getattr(s, role)
        lines.append(
            f"  {role + ':':17} " + ("none" if ref is None else f"{ref.path} [{status[role]}]")
        )
    arena = s.arena
    lines.append(
        f"  arena:            {' x '.join(f'{v:g}' for v in arena.dims_mm)} mm, "
        f"{arena.n_mics} mics, video calibration: "
        + ("yes" if arena.arena_to_pixels is not None else "no")
    )
    if s.frame_times_s is not None:
        timing = f"{len(s.frame_times_s)} frame timestamps"
    elif s.fps is not None:
        timing = f"{s.fps:g} fps, frame 0 at {s.video_offset_s:g} s"
    else:
        timing = "no video clock"
    lines.append(f"  video clock:      {timing}")
    from napari_gerbil.io.checks import session_timing_problems

    for field, expected, found in session_timing_problems(s):
        lines.append(f"  WARNING {field}: {found} (expected {expected}); run validate")
    lines.append(f"  animals:          {', '.join(s.animal_names) or 'none'}")
    lines.append(f"  calls:            {s.n_calls}")
    if s.predictions is None:
        lines.append("  predictions:      none")
    else:
        p = s.predictions
        done = np.isfinite(p.point_mm).all(axis=1)
        area = p.set_area_mm2[done]
        lines.append(
            f"  predictions:      {int(done.sum())} / {s.n_calls} calls, {p.n_members} members, "
            f"model {p.model_version or 'unknown'}"
            + (f", median 95% set area {np.median(area):.0f} mm^2" if len(area) else "")
        )
    if s.predicted is not None:
        lines.append(f"  predicted:        {_code_counts(s.predicted.animal, s.animal_names)}")
    reviewed = s.user.reviewed
    lines.append(
        f"  reviewed:         {int(reviewed.sum())} / {s.n_calls}"
        + (f" ({_code_counts(s.user.animal[reviewed], s.animal_names)})" if reviewed.any() else "")
    )
    if np.isfinite(s.user.edit_time_s).any():
        last = dt.datetime.fromtimestamp(np.nanmax(s.user.edit_time_s), dt.timezone.utc)
        lines.append(f"  last edit:        {last.isoformat(timespec='seconds')}")
    if s.provenance:
        lines.append(f"  provenance:       {json.dumps(s.provenance, sort_keys=True)[:200]}")
    return lines


def describe_audio(path: str | Path) -> list[str]:
    """Lines describing a recording (WAV or HDF5 ``/audio``)."""
    from napari_gerbil.io.audio import AudioSource

    src = AudioSource.open(path)
    return [
        f"Recording: {path}" + (f" dataset {src.dataset}" if src.dataset else ""),
        f"  channels:         {src.n_channels}",
        f"  sample rate:      {_rate(src.sample_rate_hz)}",
        f"  samples:          {src.n_samples} ({src.duration_s:.3f} s)",
    ]


def describe_poses(path: str | Path) -> list[str]:
    """Lines describing a SLEAP pose file."""
    from napari_gerbil.io.tracks import load_poses

    poses = load_poses(path)
    tracked = np.isfinite(poses.xy_px).all(axis=-1).mean() if poses.xy_px.size else 0.0
    return [
        f"Poses: {path}",
        f"  frames:           {poses.n_frames}",
        f"  tracks:           {', '.join(poses.track_names)}",
        f"  nodes:            {', '.join(poses.node_names)}",
        f"  points present:   {100 * tracked:.1f}%",
        f"  video:            {poses.video_path or 'unknown'}",
    ]


def describe_model(path: str | Path) -> list[str]:
    """Lines listing a model directory's manifest (no torch needed)."""
    path = Path(path)
    from napari_gerbil.model.manifest import read_manifest_json

    manifest = read_manifest_json(path)
    if manifest.get("format") != MODEL_FORMAT:  # same as model.ensemble (no torch here)
        raise InvalidInputError(
            path / "manifest.json", "format", repr(MODEL_FORMAT), repr(manifest.get("format"))
        )
    lines = [f"Model directory: {path}"]
    for key, value in manifest.items():
        if key == "members" and isinstance(value, list):
            text = f"{len(value)} files"
        elif isinstance(value, (dict, list)):
            text = json.dumps(value)
            text = text if len(text) <= 90 else text[:87] + "..."
        else:
            text = str(value)
        lines.append(f"  {key + ':':17} {text}")
    return lines


def describe_rir_bank(path: str | Path) -> list[str]:
    """Lines describing an RIR bank (impulse responses per source position)."""
    from napari_gerbil.simulate.rir_bank import RIRBank

    bank = RIRBank.open(path)
    lengths = np.diff(bank.length_idx)
    directional = int(np.isfinite(bank.headings_rad).sum())
    lines = [
        f"RIR bank: {path}",
        f"  positions:        {len(bank)} ({directional} directional)",
        f"  microphones:      {bank.n_mics}",
        f"  sample rate:      {_rate(bank.sample_rate_hz)}",
        f"  response length:  {lengths.min()} .. {lengths.max()} samples",
        "  locations:        ranges:",
    ]
    for i, axis in enumerate("xyz"[: bank.locations_mm.shape[1]]):
        lines.append(_range_line(axis, bank.locations_mm[:, i]))
    if bank.acoustics:
        lines.append(f"  acoustics:        {json.dumps(bank.acoustics, sort_keys=True)[:200]}")
    return lines


def describe_truth(path: str | Path) -> list[str]:
    """Lines describing the ground truth of a simulated session."""
    from napari_gerbil.simulate.truth import load_truth

    truth = load_truth(path)
    names = truth.animal_names
    return [
        f"Simulation truth: {path}",
        f"  animals:          {', '.join(names)}",
        f"  calls:            {len(truth.animal)} ({_counts(names[a] for a in truth.animal)})",
        f"  pose frames:      {len(truth.poses_mm)}",
        f"  stimulus classes: {_counts(truth.stimulus_class) or 'none'}",
    ]


def _prediction_arrays(path: Path) -> dict[str, Any]:
    """The datasets and attributes of a prediction file, shapes checked."""
    import h5py

    from napari_gerbil.io.h5values import hdf5_errors
    from napari_gerbil.io.vcl.read import _open_h5

    with _open_h5(Path(path)) as f, hdf5_errors(path):
        out: dict[str, Any] = {"attrs": {k: f.attrs[k] for k in f.attrs}}
        point = f.get("point_predictions")
        if not isinstance(point, h5py.Dataset) or point.ndim != 2 or point.shape[1] != 2:
            raise InvalidInputError(
                path, "/point_predictions", "a dataset of shape (n, 2) mm", repr(point)
            )
        n = point.shape[0]
        expected = {
            "point_predictions": (n, 2),
            "confidence_set_areas": (n,),
            "distances_to_furthest_point": (n,),
            "scaled_locations": (n, 2),
            "errors_mm": (n,),
            "location_in_confidence_set": (n,),
            "hdr_levels": (n,),
        }
        for name, shape in expected.items():
            obj = f.get(name)
            if obj is None:
                continue
            if not isinstance(obj, h5py.Dataset) or obj.shape != shape:
                found = obj.shape if isinstance(obj, h5py.Dataset) else "a group"
                raise InvalidInputError(path, f"/{name}", f"shape {shape}", f"{found}")
            if obj.dtype.kind not in "fiub":
                raise InvalidInputError(path, f"/{name}", "numbers", f"dtype {obj.dtype}")
            out[name] = obj[()]
        for name in ("member_means_mm", "member_chol_mm"):
            obj = f.get(name)
            if isinstance(obj, h5py.Dataset):
                if obj.ndim < 3 or obj.shape[0] != n:
                    raise InvalidInputError(path, f"/{name}", f"{n} rows", f"shape {obj.shape}")
                out["n_members"] = int(obj.shape[1])
    return out


def _attr_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def describe_predictions(path: str | Path) -> list[str]:
    """Lines describing a prediction file written by ``napari-gerbil predict``."""
    d = _prediction_arrays(Path(path))
    attrs = d["attrs"]
    n = len(d["point_predictions"])
    done = int(np.isfinite(d["point_predictions"]).all(axis=1).sum())
    lines = [
        f"Predictions: {path}",
        f"  method:           {_attr_text(attrs.get('method', 'unknown'))}",
        f"  model:            {_attr_text(attrs.get('model', 'unknown')) or 'unknown'}",
        f"  source:           {_attr_text(attrs.get('source', 'unknown')) or 'unknown'}",
        f"  created:          {_attr_text(attrs.get('created', 'unknown'))}",
        f"  calls:            {n} ({done} localized)",
    ]
    if "n_members" in d:
        lines.append(f"  members:          {d['n_members']}")
    area = d.get("confidence_set_areas")
    if area is not None and np.isfinite(area).any():
        mass = attrs.get("mass", "")
        lines.append(
            f"  set area:         median {np.nanmedian(area):.0f} mm^2 "
            f"({_attr_text(mass)} confidence set)"
        )
    err = d.get("errors_mm")
    if err is not None and np.isfinite(err).any():
        finite = err[np.isfinite(err)]
        lines.append(
            f"  error:            median {np.median(finite):.1f} mm, "
            f"p90 {np.percentile(finite, 90):.1f} mm ({len(finite)} calls with a truth)"
        )
    inside = d.get("location_in_confidence_set")
    if inside is not None and len(inside):
        lines.append(f"  set coverage:     {np.mean(inside):.3f}")
    if "ece" in attrs:
        lines.append(f"  ECE:              {float(attrs['ece']):.3f}")
    return lines


def describe_cage(path: str | Path) -> list[str]:
    """A cage file: size, microphones, acoustics."""
    from napari_gerbil.io.cage import load_cage

    cage = load_cage(path)
    lines = [
        f"cage file {path}",
        f"  size {' x '.join(f'{v:g}' for v in cage.dims_mm)} mm (x, y, z); shoebox",
        f"  {cage.n_mics} microphones (pattern p = {cage.mic_pattern_p:g}):",
    ]
    for k, (m, o) in enumerate(zip(cage.mics, cage.orientations(), strict=True)):
        lines.append(f"    {k}: at {np.round(m, 1).tolist()} mm pointing {np.round(o, 2).tolist()}")
    for group, value in cage.absorption.items():
        lines.append(f"  absorption {group}: {value}")
    lines.append(
        f"  scattering {cage.scattering:g}; air {cage.temperature_c:g} C, "
        f"{cage.humidity_pct:g} % RH ({cage.describe()['speed_of_sound_m_s']} m/s)"
    )
    return lines


DESCRIBE = {
    "cage": describe_cage,
    "vcl": describe_vcl,
    "session": describe_session,
    "audio": describe_audio,
    "poses": describe_poses,
    "model": describe_model,
    "rir_bank": describe_rir_bank,
    "truth": describe_truth,
    "predictions": describe_predictions,
}
