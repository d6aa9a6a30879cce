"""The rig planner: how many microphones, and where, before a lab buys them.

For each candidate rig (a cage file or a built-in cage: the room and its microphones),
:func:`plan_rigs` simulates 2- and 3-animal sessions with plausible callers, fits the
steered response's attribution calibration on fresh simulated calls in that rig (no
model is needed), and scores the sessions' calls: the share assigned at p >= 0.95 and
the share of those right, by distance between the animals, with MUSE's median
localization error on the same calls. It is the attribution panel
(:func:`napari_gerbil.evaluate.attribution_panel.attribution_panel`) with the rigs as
rooms and one caller; every rig sees the same seeds (the same walks and call times).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.progress import ProgressCallback

#: Files :func:`plan_rigs` writes in its output folder.
PLAN_OUTPUTS = ("plan.json", "plan.md", "plan.png")


def check_rigs(rigs: Sequence[str]) -> list[Any]:
    """Load every rig (one clear error for a bad one) and refuse repeats.

    Returns
    -------
    The :class:`~napari_gerbil.io.cage.Cage` of each rig, in order.
    """
    from napari_gerbil.io.cage import load_cage

    if not rigs:
        raise InvalidInputError(None, "rigs", "one or more cage files or built-in cages", "none")
    names = [Path(r).stem if Path(r).suffix else str(r) for r in rigs]
    if len(set(names)) != len(names):
        repeat = next(n for n in names if names.count(n) > 1)
        raise InvalidInputError(None, "rigs", "each rig once (names differ)", repr(repeat))
    return [load_cage(r) for r in rigs]


def plan_rigs(
    rigs: Sequence[str],
    out_dir: str | Path,
    *,
    duration_s: float = 120.0,
    seed: int = 700,
    n_animals: Sequence[int] = (2, 3),
    calibration_calls: int = 768,
    scorer: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Score attribution by the steered response in each rig, and write the comparison.

    Parameters
    ----------
    rigs
        Cage files or built-in cage names (e.g. ``paper``, ``paper8``, ``paper16``).
    out_dir
        Folder for ``plan.json``, ``plan.md``, ``plan.png`` and the simulated sessions
        (``sessions/``, reused when their settings match).
    duration_s, seed, n_animals
        Session length, first seed and animals per session (one session each).
    calibration_calls
        Fresh simulated calls the calibration is fitted on, per rig.
    scorer
        A learned scorer (``scorer.pt``): scored too in the rigs it was trained for.
    log, progress
        A line per step; the share of steps done.

    Returns
    -------
    ``{"rigs": {name: {"n_mics", "<k>_animals": {"assigned", "right", "n",
    "by_distance_cm"}, "muse_median_error_mm"[, "scorer": {"<k>_animals": ...}]}},
    "duration_s", "seed", "n_animals"}``: the steered response's figures, and the
    scorer's where it fits the rig.
    """
    from napari_gerbil.evaluate.attribution_panel import attribution_panel, row_name

    cages = check_rigs(rigs)
    out = Path(out_dir)
    panel = attribution_panel(
        out / "sessions",
        [str(r) for r in rigs],
        callers=("plausible",),
        n_animals=n_animals,
        duration_s=duration_s,
        seed=seed,
        calibration_calls=calibration_calls,
        scorer=scorer,
        log=log,
        progress=progress,
    )
    table: dict[str, Any] = {}
    for rig, cage in zip(rigs, cages, strict=True):
        row = panel["physics"][row_name(str(rig), "plausible")]
        name = row_name(str(rig), "plausible").split(" / ")[0]
        table[name] = {
            "n_mics": cage.n_mics,
            "muse_median_error_mm": row["muse_median_error_mm"],
            **{f"{k}_animals": row[f"{k}_animals"]["srp"] for k in n_animals},
        }
        if "scorer" in row[f"{n_animals[0]}_animals"]:
            table[name]["scorer"] = {f"{k}_animals": row[f"{k}_animals"]["scorer"]
                                     for k in n_animals}  # fmt: skip
    plan = {
        "rigs": table,
        "method": "srp",
        "caller": "plausible",
        "duration_s": duration_s,
        "seed": seed,
        "n_animals": list(n_animals),
        "calibration_calls": calibration_calls,
    }
    write_plan(plan, out)
    return plan


def write_plan(plan: dict[str, Any], out: Path) -> None:
    """``plan.json``, ``plan.md`` (the table) and ``plan.png`` (the figure), atomically."""
    from napari_gerbil.io.atomic import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "plan.json", json.dumps(plan, indent=1, default=_plain) + "\n")
    atomic_write_text(out / "plan.md", "\n".join(plan_table(plan)) + "\n")
    plot_plan(plan, out / "plan.png")


def plan_table(plan: dict[str, Any]) -> list[str]:
    """The plan as markdown lines: one row per rig and session, then by distance."""
    bins = ("0-5", "5-10", "10-20", "20+")
    lines = [
        f"Steered response, plausible callers, {plan['duration_s']:g} s sessions "
        f"(seed {plan['seed']}); assigned at p >= 0.95.",
        "",
        "| rig | mics | method | animals | assigned | right | "
        + " | ".join(f"{b} cm" for b in bins) + " | MUSE median (mm) |",
        "| --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in bins) + " | --- |",
    ]  # fmt: skip
    for name, row in plan["rigs"].items():
        for method, figures in (("srp", row), ("scorer", row.get("scorer"))):
            if figures is None:
                continue
            for k in plan["n_animals"]:
                r = figures[f"{k}_animals"]
                cells = [
                    f"{_pct(d['assigned'])} / {_pct(d['right'])}"
                    for d in (r["by_distance_cm"][b] for b in bins)
                ]
                lines.append(
                    f"| {name} | {row['n_mics']} | {method} | {k} | {_pct(r['assigned'])} | "
                    f"{_pct(r['right'])} | "
                    + " | ".join(cells)
                    + f" | {_mm(row['muse_median_error_mm'])} |"
                )
    lines += ["", "By distance: assigned / right, distance from the caller to the nearest "
              "other animal."]  # fmt: skip
    return lines


def plot_plan(plan: dict[str, Any], path: Path) -> Path:
    """Assigned and right by distance between animals, one line per rig (2 animals)."""
    from matplotlib.figure import Figure

    from napari_gerbil.io.atomic import atomic_path

    bins = ("0-5", "5-10", "10-20", "20+")
    key = f"{plan['n_animals'][0]}_animals"
    fig = Figure(figsize=(9.0, 3.6))
    ax_a, ax_m = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = np.arange(len(bins))
    for name, row in plan["rigs"].items():
        r = row[key]["by_distance_cm"]
        assigned = [np.nan if r[b]["assigned"] is None else r[b]["assigned"] for b in bins]
        right = [np.nan if r[b]["right"] is None else r[b]["right"] for b in bins]
        (line,) = ax_a.plot(x, assigned, "o-", label=f"{name} ({row['n_mics']} mics) assigned")
        ax_a.plot(x, right, "s--", color=line.get_color(), alpha=0.6, label=f"{name} right")
    ax_a.axhline(0.95, color="0.5", lw=0.8, ls=":")
    ax_a.set_xticks(x, bins)
    ax_a.set_ylim(0, 1.05)
    ax_a.set_xlabel("distance to the nearest other animal (cm)")
    ax_a.set_ylabel(f"share of calls ({plan['n_animals'][0]} animals)")
    ax_a.legend(fontsize=6)
    ax_a.grid(alpha=0.3)
    names = list(plan["rigs"])
    mics = [plan["rigs"][n]["n_mics"] for n in names]
    muse = [plan["rigs"][n]["muse_median_error_mm"] or np.nan for n in names]
    ax_m.bar(np.arange(len(names)), muse, color="0.6")
    ax_m.set_xticks(
        np.arange(len(names)), [f"{n}\n{m} mics" for n, m in zip(names, mics, strict=True)]
    )
    ax_m.set_ylabel("MUSE median error (mm)")
    ax_m.grid(alpha=0.3, axis="y")
    fig.suptitle("Rig plan: steered-response attribution, plausible callers", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def _pct(value: Any) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.0f}%"


def _mm(value: Any) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.0f}"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)
