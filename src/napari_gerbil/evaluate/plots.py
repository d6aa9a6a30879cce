"""Benchmark figures (matplotlib object API with the Agg canvas: no GUI, no pyplot)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from napari_gerbil.evaluate.metrics import error_cdf
from napari_gerbil.io.atomic import atomic_path

#: Line colours per method, so every figure uses the same one.
METHOD_COLOURS = {
    "single": "tab:orange",
    "ensemble": "tab:blue",
    "ensemble_t": "tab:cyan",
    "muse": "tab:red",
    "gcc_phat": "tab:green",
    "muse_jackknife": "tab:purple",
    "fingerprint": "tab:gray",
    "srp_phat": "tab:brown",
}


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    FigureCanvasAgg(fig)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def plot_error_cdfs(errors_mm: dict[str, np.ndarray], path, title: str = "") -> Path:
    """Error CDF per method (paper Fig. 2D), log error axis."""
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    for name, err in errors_mm.items():
        x, f = error_cdf(np.maximum(err, 1e-2))
        med = float(np.median(err))
        ax.step(x, f, where="post", color=METHOD_COLOURS.get(name), label=f"{name} ({med:.1f})")
    ax.set_xscale("log")
    ax.set_xlabel("error (mm)")
    ax.set_ylabel("fraction of calls")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="method (median mm)", fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_calibration(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, title="") -> Path:
    """Observed coverage vs nominal mass per model (paper Fig. 2E)."""
    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", label="calibrated")
    for name, (nominal, coverage) in curves.items():
        ax.plot(nominal, coverage, marker="o", ms=3, color=METHOD_COLOURS.get(name), label=name)
    ax.set_xlabel("nominal mass of the confidence set")
    ax.set_ylabel("fraction of calls inside")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_confidence_sets(examples: list[dict], arena_dims_mm, path, title: str = "") -> Path:
    """Example 95% sets, one row per call, one column per model (paper Fig. 2B/C).

    Each example maps a model name to ``{"polygons_mm": [...], "means_mm": (M, 2),
    "area_mm2": float}`` and has a ``"true_mm"`` (2,) entry.
    """
    names = [k for k in examples[0] if k != "true_mm"]
    half = np.asarray(arena_dims_mm, dtype=float)[:2] / 2
    fig = Figure(figsize=(3.2 * len(names), 2.3 * len(examples)))
    axes = fig.subplots(len(examples), len(names), squeeze=False)
    for row, example in enumerate(examples):
        true = np.asarray(example["true_mm"])
        for col, name in enumerate(names):
            ax = axes[row, col]
            item = example[name]
            x0, y0 = -half
            ax.add_patch(Rectangle((x0, y0), *(2 * half), fill=False, color="0.3"))
            for poly in item["polygons_mm"]:
                ax.add_patch(
                    Polygon(
                        poly,
                        closed=True,
                        alpha=0.35,
                        lw=1,
                        color=METHOD_COLOURS.get(name, "tab:blue"),
                    )
                )
            means = np.asarray(item["means_mm"]).reshape(-1, 2)
            ax.plot(means[:, 0], means[:, 1], "k.", ms=3)
            ax.plot(*true, marker="x", color="crimson", ms=7, mew=2)
            ax.set_xlim(-half[0], half[0])
            ax.set_ylim(-half[1], half[1])
            ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
            ax.set_title(f"{name}: {item['area_mm2']:.0f} mm$^2$", fontsize=8)
    fig.suptitle(title or "95% confidence sets (x = truth, dots = member means)", fontsize=9)
    return _save(fig, path)


def plot_matrix(
    values: np.ndarray,
    row_labels,
    col_labels,
    path,
    title: str = "",
    xlabel: str = "test",
    ylabel: str = "train",
    unit: str = "median error (mm)",
) -> Path:
    """Heat map of a train x test matrix (paper Fig. 3A/B), log colour scale, values printed."""
    vals = np.asarray(values, dtype=float)
    fig = Figure(figsize=(1.0 + 0.55 * vals.shape[1], 0.8 + 0.5 * vals.shape[0]))
    ax = fig.add_subplot()
    finite = vals[np.isfinite(vals) & (vals > 0)]
    norm = (
        LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * 1.01))
        if finite.size
        else None
    )
    im = ax.imshow(vals, cmap="viridis", norm=norm)
    for (r, c), v in np.ndenumerate(vals):
        if np.isfinite(v):
            ax.text(
                c,
                r,
                f"{v:.0f}" if v >= 10 else f"{v:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color="w",
            )
    ax.set_xticks(range(vals.shape[1]), col_labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(vals.shape[0]), row_labels, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(im, ax=ax, label=unit, shrink=0.8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_scaling(n_train, errors_mm, fit: dict | None, path, title: str = "") -> Path:
    """Test error vs training-set size, log-log, with the power-law fit (paper Fig. 3C)."""
    n = np.asarray(n_train, dtype=float)
    e = np.asarray(errors_mm, dtype=float)
    fig = Figure(figsize=(4.2, 3.4))
    ax = fig.add_subplot()
    ax.plot(n, e, "o", color="tab:blue", label="measured")
    if fit is not None:
        xs = np.geomspace(n.min(), n.max(), 50)
        ax.plot(
            xs,
            fit["a"] * xs ** (-fit["b"]),
            color="0.3",
            label=f"{fit['a']:.3g} n^-{fit['b']:.2f} (R2 {fit['r2']:.2f})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training calls")
    ax.set_ylabel("median test error (mm)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_attribution(panel: dict, path, title: str = "") -> Path:
    """Share of calls assigned and share right, by distance between animals, per method.

    ``panel`` is :func:`napari_gerbil.evaluate.attribution_panel.attribution_panel`'s
    result; one row of panels per room, one column per caller (2-animal sessions).
    """
    physics = panel["physics"]
    rooms = list(dict.fromkeys(r.get("cage", n) for n, r in physics.items()))
    callers = list(dict.fromkeys(r.get("caller", "") for r in physics.values()))
    key = f"{panel['n_animals'][0]}_animals"
    fig = Figure(figsize=(3.6 * len(callers), 3.0 * len(rooms) + 0.4))
    colours = {"srp": "tab:blue", "mixture": "tab:orange", "combined": "tab:green",
               "scorer": "tab:red"}  # fmt: skip
    for cage in physics:
        row = physics[cage]
        cell = rooms.index(row.get("cage", cage)) * len(callers)
        cell += callers.index(row.get("caller", ""))
        ax = fig.add_subplot(len(rooms), len(callers), cell + 1)
        methods = row[key]
        bins = list(next(iter(methods.values()))["by_distance_cm"])
        width = 0.8 / max(1, len(methods))
        for m_index, (name, scores) in enumerate(methods.items()):
            x = np.arange(len(bins)) + (m_index - (len(methods) - 1) / 2) * width
            assigned = [scores["by_distance_cm"][b]["assigned"] for b in bins]
            right = [scores["by_distance_cm"][b]["right"] for b in bins]
            colour = colours.get(name, "0.4")
            ax.bar(x, np.nan_to_num(assigned), width, color=colour, alpha=0.45,
                   label=f"{name} assigned")  # fmt: skip
            ax.plot(x, right, "o", color=colour, label=f"{name} right")
        ax.axhline(0.95, color="0.5", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(bins)), bins)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("distance to the nearest other animal (cm)")
        ax.set_title(f"{cage}", fontsize=9)
        if cell == 0:
            ax.set_ylabel("share of calls (bars assigned, dots right)")
            ax.legend(fontsize=6, loc="lower right")
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
