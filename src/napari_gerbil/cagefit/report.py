"""The fit report (``cage fit --report DIR``): fit.json, report.md and two figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_gerbil.cagefit.features import BLOCK_SAMPLES, RATIO_BAND_EDGES_HZ, mic_pairs
from napari_gerbil.cagefit.fit import CageFitResult
from napari_gerbil.cagefit.geometry import predict_tdoa_samples

#: Files a report writes into its folder.
REPORT_FILES = ("fit.json", "report.md", "decay.png", "tdoa.png", "ratios.png")


def write_report(result: CageFitResult, folder: str | Path) -> list[Path]:
    """Write :data:`REPORT_FILES` into ``folder`` (created), atomically each."""
    from napari_gerbil.io.atomic import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    atomic_write_text(folder / "fit.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(folder / "report.md", report_markdown(summary))
    _decay_figure(result, folder / "decay.png")
    _tdoa_figure(result, folder / "tdoa.png")
    _ratio_figure(result, folder / "ratios.png")
    return [folder / name for name in REPORT_FILES]


def report_markdown(summary: dict) -> str:
    """The report's text: parameters with uncertainties, residuals per feature."""
    lines = [
        "# Cage fit",
        "",
        f"Data `{summary['data']}`: {summary['n_calls']} calls at {summary['n_positions']} "
        f"positions. Start cage `{summary['start_cage']}`; fitted: "
        f"{', '.join(summary['fitted'])}. {summary['wall_s']} s, "
        f"{summary['engine_evaluations']} engine evaluations ({summary['optimizer']}).",
        "",
        "| parameter | unit | start | fitted | sd (bootstrap over positions) |",
        "|---|---|---|---|---|",
    ]
    for row in summary["parameters"]:
        sd = "-" if not np.isfinite(row["sd"]) else f"{row['sd']:.3g}"
        lines.append(
            f"| {row['name']} | {row['unit']} | {row['start']:.4g} | {row['fitted']:.4g} | {sd} |"
        )
    if summary.get("caveat"):
        lines += ["", f"**Note:** {summary['caveat']}."]
    lines += ["", "| feature | RMS residual, start cage | fitted cage |", "|---|---|---|"]
    for name, v in summary["residuals"].items():
        lines.append(f"| {name} | {v['start']:.3f} | {v['fitted']:.3f} |")
    lines += [
        "",
        "Standard deviations: a linearized bootstrap over positions (the Jacobian at the "
        "optimum; each resample one Gauss-Newton step). The decay after the calls' offsets "
        "was not fitted: it checks the fitted cage on what the fit never saw.",
        "",
        "![decay after the offset, recorded vs rendered](decay.png)",
        "",
        "![time differences](tdoa.png)",
        "",
        "![level ratios between microphones](ratios.png)",
        "",
    ]
    return "\n".join(lines)


def _decay_figure(result: CageFitResult, path: Path) -> None:
    """Recorded vs start vs fitted mean energy decay after the offset, per microphone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_gerbil.io.atomic import atomic_path

    check = result.decay
    n_mics = result.cage.n_mics
    fig, axes = plt.subplots(1, n_mics, figsize=(3.2 * n_mics, 3.2), sharey=True)
    axes = np.atleast_1d(axes)
    for m, ax in enumerate(axes):
        if check is not None:
            t_ms = (np.arange(check.recorded.shape[1]) + 0.5) * BLOCK_SAMPLES / 125.0
            for curves, label, style in (
                (check.recorded, "recorded", "k-"),
                (check.start, "start cage", "C1--"),
                (check.fitted, "fitted cage", "C0-"),
            ):
                ax.plot(t_ms, curves[m], style, label=label)
        ax.set_title(f"microphone {m}")
        ax.set_xlabel("time after the call's offset (ms)")
    axes[0].set_ylabel("energy re the last ms of the call (dB)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _tdoa_figure(result: CageFitResult, path: Path) -> None:
    """Measured time differences against the start and fitted cages' predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_gerbil.io.atomic import atomic_path

    measured = result.geometry.measured_samples
    pairs = mic_pairs(result.cage.n_mics)
    rate = _sample_rate(result)
    start = predict_tdoa_samples(
        result.positions_mm, result.start.mics, result.start.temperature_c, rate
    )
    fitted = predict_tdoa_samples(
        result.positions_mm, result.cage.mics, result.cage.temperature_c, rate
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, pred, title in ((axes[0], start, "start cage"), (axes[1], fitted, "fitted cage")):
        for p, (i, j) in enumerate(pairs):
            ax.scatter(pred[:, p], measured[:, p] - pred[:, p], s=10, label=f"mics {i}-{j}")
        rms = np.sqrt(np.nanmean((measured - pred) ** 2))
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_title(f"{title}: RMS {rms:.2f} samples")
        ax.set_xlabel("predicted time difference (samples)")
    axes[0].set_ylabel("measured - predicted (samples)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _sample_rate(result: CageFitResult) -> float:
    from napari_gerbil.io.vcl import VCLDataset

    with VCLDataset(result.data_path) as ds:
        return float(ds.sample_rate_hz or 125000.0)


def _ratio_figure(result: CageFitResult, path: Path) -> None:
    """Each microphone's level re the others against frequency: recorded, start, fitted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_gerbil.io.atomic import atomic_path

    room = result.room
    edges = np.asarray(RATIO_BAND_EDGES_HZ) / 1000.0
    centres = 0.5 * (edges[:-1] + edges[1:])
    n_mics = result.cage.n_mics
    # the position where the start cage is furthest off: where the fit changed most
    miss = np.nanmean((room.data_ratios - room.start_ratios) ** 2, axis=(1, 2))
    p = int(np.nanargmax(miss)) if np.isfinite(miss).any() else 0
    gains = np.asarray(room.gains_db)
    fig, axes = plt.subplots(1, n_mics, figsize=(3.2 * n_mics, 3.2), sharey=True)
    axes = np.atleast_1d(axes)
    for m, ax in enumerate(axes):
        ax.plot(centres, room.data_ratios[p, :, m], "k.-", label="recorded")
        ax.plot(centres, room.start_ratios[p, :, m], "C1--", label="start cage")
        ax.plot(centres, room.fitted_ratios[p, :, m] + gains[m], "C0-", label="fitted cage")
        ax.set_title(f"microphone {m}")
        ax.set_xlabel("frequency (kHz)")
    xyz = np.round(result.positions_mm[p]).astype(int).tolist()
    axes[0].set_ylabel(f"level re the mean of the microphones (dB)\nsource at {xyz} mm")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
