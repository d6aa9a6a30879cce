"""What a training run directory was made from, so that resuming it on other inputs fails.

``train_ensemble`` writes ``inputs.json`` into its output folder on the first run:
the network and training configuration digests and, per data file, its resolved path,
size and checksum (:func:`napari_gerbil.io.session.file_checksum`: size, first and
last MiB). Running again on the same folder resumes only when all of them match; any
difference (other data, a changed file, another preset or configuration) is refused
with the field that differs. A folder that already holds a model or member runs but
no ``inputs.json`` is refused as well: nothing says what it was trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text

RECORD = "inputs.json"


def _file_entry(path: str | os.PathLike) -> dict[str, Any]:
    from napari_gerbil.io.session import file_checksum

    p = Path(path).resolve()
    return {"path": str(p), "size_bytes": p.stat().st_size, "checksum": file_checksum(p)}


def describe_inputs(
    network_digest: str,
    config_digest: str,
    data_paths: Sequence[str | os.PathLike],
    rir_bank: str | os.PathLike | None = None,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a run's inputs (JSON-serializable); ``engine``: the data-engine spec."""
    engine_digest = None
    if engine is not None:
        text = json.dumps(engine, sort_keys=True, default=str)
        engine_digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return {
        "network_digest": network_digest,
        "training_digest": config_digest,
        "data": [_file_entry(p) for p in data_paths],
        "rir_bank": None if rir_bank is None else _file_entry(rir_bank),
        "engine_digest": engine_digest,
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for key, name in (
        ("network_digest", "preset / network"),
        ("training_digest", "config"),
        ("engine_digest", "--cage / --engine-config"),
    ):
        if old.get(key) != new.get(key):
            out.append((name, f"digest {old.get(key)}", f"digest {new.get(key)}"))
    old_data = [
        (d.get("path"), d.get("size_bytes"), d.get("checksum")) for d in old.get("data", [])
    ]
    new_data = [(d["path"], d["size_bytes"], d["checksum"]) for d in new["data"]]
    if [d[0] for d in old_data] != [d[0] for d in new_data]:
        out.append(("--data", str([d[0] for d in old_data]), str([d[0] for d in new_data])))
    else:
        for a, b in zip(old_data, new_data, strict=True):
            if a != b:
                out.append(("--data", f"{a[0]} as when the run started", "the file changed"))
    old_bank, new_bank = old.get("rir_bank"), new.get("rir_bank")
    if (old_bank or {}).get("checksum") != (new_bank or {}).get("checksum") or (
        (old_bank or {}).get("path") != (new_bank or {}).get("path")
    ):
        out.append(
            ("--rir-bank", str((old_bank or {}).get("path")), str((new_bank or {}).get("path")))
        )
    return out


def check_or_record_inputs(out_dir: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write ``record`` into a new run folder, or refuse resuming it on other inputs.

    Raises
    ------
    InvalidInputError
        The folder's ``inputs.json`` differs from ``record``, is unreadable, or the
        folder holds runs without one.
    """
    out_dir = Path(out_dir)
    path = out_dir / RECORD
    hint = "Train into a new --out folder; an existing run resumes only on its own inputs."
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInputError(path, "<file>", "a JSON record", str(exc)[:200]) from None
        if not isinstance(old, dict):
            raise InvalidInputError(path, "<root>", "a JSON object", type(old).__name__)
        problems = _differences(old, record)
        if problems:
            field, expected, found = problems[0]
            raise InvalidInputError(
                out_dir, field, f"the run's inputs ({expected})", found, hint=hint
            )
        return
    earlier = (out_dir / "manifest.json").exists() or any(out_dir.glob("member_*/last.pt"))
    if earlier:
        raise InvalidInputError(
            out_dir,
            RECORD,
            "a record of the inputs of the run in this folder",
            "a model or member runs without one",
            hint=hint,
        )
    atomic_write_text(path, json.dumps(record, indent=2))


def check_run_fields(rec: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Refuse a ``run.json`` whose fields do not have their types; return it.

    ``n_members`` and ``jobs`` positive integers, ``cluster`` and ``engine`` objects or
    null, ``data`` and ``sessions`` lists of paths (or null), ``rir_bank`` a path or
    null. Each error names the file and the field.
    """
    if not isinstance(rec, dict):
        raise InvalidInputError(path, "<file>", "a run record (a JSON object)", type(rec).__name__)

    def fail(field: str, expected: str) -> InvalidInputError:
        return InvalidInputError(path, field, expected, repr(rec.get(field))[:80])

    for field in ("n_members", "jobs"):
        value = rec.get(field, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail(field, "a positive integer")
    for field in ("cluster", "engine"):
        if rec.get(field) is not None and not isinstance(rec[field], dict):
            raise fail(field, "an object or null")
    for field in ("data", "sessions"):
        value = rec.get(field)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise fail(field, "a list of file paths or null")
    if rec.get("rir_bank") is not None and not isinstance(rec["rir_bank"], str):
        raise fail("rir_bank", "a file path or null")
    return rec
