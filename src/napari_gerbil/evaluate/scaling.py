"""Learning curve and distribution shifts, on positions never trained on.

- :func:`learning_curve`: one model per number of distinct training positions (the
  same simulated calls every epoch), each judged on a fixed test set drawn from a seed
  stream no training run uses; a power law ``error = a * n ** -b`` fitted to the
  medians says how many positions 10 mm and 5 mm would take.
- :func:`shift_matrix`: a model trained with domain randomization in one cage, tested
  on calls simulated in changed cages (other absorption, moved microphones, other
  dims) while the files still carry the nominal geometry: what a lab gets when its
  real cage is not the one it described.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from napari_gerbil.io.cage import Cage, load_cage

#: Test streams: seeds no training run draws from (training uses seed * 1000 + member).
TEST_SEED = 2 * 10**9


def engine_test_set(
    cage: Cage, n_calls: int, seed: int = TEST_SEED, randomize: bool = False
) -> tuple[list[np.ndarray], np.ndarray]:
    """(calls, true xy (n, 2) mm) simulated in ``cage``; nominal acoustics by default."""
    from napari_gerbil.simulate.engine import DataEngine, EngineConfig

    engine = DataEngine(cage, EngineConfig(calls_per_room=32, randomize=randomize), seed)
    calls, xy = [], []
    for index in range(-(-n_calls // 32)):
        batch = engine.batch(index)
        calls += batch.audio
        xy.append(batch.locations_mm[:, :2])
    return calls[:n_calls], np.concatenate(xy)[:n_calls]


def _scores(ensemble, calls, truth) -> dict:
    pred = ensemble.predict(calls)
    err = np.linalg.norm(pred.point_mm - truth, axis=-1)
    return {"median_error_mm": float(np.median(err)), "p90_error_mm": float(np.percentile(err, 90))}


def fit_power_law(sizes: Sequence[float], errors_mm: Sequence[float]) -> dict:
    """Least-squares fit of ``log error = log a - b log n``; sizes for 10 and 5 mm.

    The extrapolations are None when the fit does not fall with size (b <= 0) or
    fewer than two points are given.
    """
    n = np.asarray(sizes, float)
    e = np.asarray(errors_mm, float)
    keep = (n > 0) & (e > 0) & np.isfinite(e)
    if keep.sum() < 2:
        return {"a": None, "b": None, "positions_for_10mm": None, "positions_for_5mm": None}
    slope, intercept = np.polyfit(np.log(n[keep]), np.log(e[keep]), 1)
    a, b = float(np.exp(intercept)), float(-slope)

    def needed(target: float) -> float | None:
        """Positions the fit needs for ``target`` mm (None: not falling, or beyond 1e15)."""
        if b <= 0:
            return None
        log_n = np.log(a / target) / b
        return float(np.exp(log_n)) if log_n < np.log(1e15) else None

    return {"a": a, "b": b, "positions_for_10mm": needed(10.0), "positions_for_5mm": needed(5.0)}


def learning_curve(
    cage: Cage | str,
    network,
    training,
    sizes: Sequence[int],
    out_dir: str | os.PathLike,
    test_calls: int = 256,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Median test error against the number of distinct training positions.

    Parameters
    ----------
    cage
        Where training and test calls are simulated.
    network, training
        Preset and :class:`~napari_gerbil.training.config.TrainingConfig` (epochs etc.).
    sizes
        Distinct training positions of each model (its calls are the same every epoch).
    out_dir
        Model directories go to ``out_dir/n<size>`` (resumed when present).
    test_calls
        Calls of the test set (positions never trained on, nominal acoustics).
    """
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.simulate.engine import EngineConfig
    from napari_gerbil.training.ensembles import train_ensemble

    cage = load_cage(cage)
    calls, truth = engine_test_set(cage, test_calls)
    points = []
    for size in sizes:
        engine = {
            "cage": cage.to_dict(),
            "config": EngineConfig().to_dict(),
            "seed": int(training.seed),
            "fixed_train": True,
            "held_out_calls": max(64, min(1024, size // 8)),
        }
        model = train_ensemble(
            network,
            training.replace(sim_calls_per_epoch=int(size)),
            [],
            Path(out_dir) / f"n{size}",
            1,
            engine=engine,
            show_progress=False,
        )
        scores = _scores(load_ensemble(model), calls, truth)
        points.append({"positions": int(size), **scores})
        if log is not None:
            log(f"learning curve: {size} positions -> median {scores['median_error_mm']:.1f} mm")
    fit = fit_power_law([p["positions"] for p in points], [p["median_error_mm"] for p in points])
    return {"cage": cage.name, "test_calls": test_calls, "points": points, "power_law": fit}


#: The shifted cages of the shift matrix: name -> change applied to the nominal cage.
SHIFT_CASES = (
    "in_distribution",
    "cage",
    "damped",
    "reverberant",
    "bare",
    "mic_positions",
    "cage_size",
)


def shifted_cages(cage: Cage) -> dict[str, Cage]:
    """The physical cages of :data:`SHIFT_CASES` (files keep the nominal geometry)."""
    from napari_gerbil.io.cage import preset_absorption
    from napari_gerbil.simulate.scenarios import shifted_cage

    out = {"in_distribution": cage}
    for preset in ("cage", "damped", "reverberant", "bare"):
        out[preset] = cage.with_changes(absorption=preset_absorption(preset))
    out["mic_positions"] = shifted_cage(cage, "mic_positions")
    out["cage_size"] = shifted_cage(cage, "cage_size")
    return out


def shift_matrix(model_dir: str | os.PathLike, cage: Cage | str, test_calls: int = 256) -> dict:
    """Median error of one model on each shifted cage, and its ratio to in-distribution.

    The in-distribution test set is drawn with the same domain randomization the model
    was trained with; the shifted ones in the nominal acoustics of each changed cage.
    """
    from napari_gerbil.model.ensemble import load_ensemble

    ensemble = load_ensemble(model_dir)
    cage = load_cage(cage)
    rows = {}
    for name, physical in shifted_cages(cage).items():
        calls, truth = engine_test_set(
            physical, test_calls, TEST_SEED + 7, randomize=name == "in_distribution"
        )
        rows[name] = _scores(ensemble, calls, truth)
    base = rows["in_distribution"]["median_error_mm"]
    for row in rows.values():
        row["ratio_to_in_distribution"] = row["median_error_mm"] / base if base > 0 else None
    return {"model": str(model_dir), "cage": cage.name, "test_calls": test_calls, "rows": rows}


def plot_learning_curve(curve: dict, out: Path) -> Path:
    """Log-log plot of the median errors with the fitted power law and 10/5 mm lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.array([p["positions"] for p in curve["points"]], float)
    e = np.array([p["median_error_mm"] for p in curve["points"]], float)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(n, e, "o-", label="median test error (new positions)")
    fit = curve["power_law"]
    if fit["b"] is not None and fit["b"] > 0:
        hi = max(n.max(), fit["positions_for_5mm"] or n.max())
        grid = np.geomspace(n.min(), min(hi, 1e9), 50)
        ax.loglog(grid, fit["a"] * grid ** -fit["b"], "--", label=f"fit: n^-{fit['b']:.2f}")
    for target in (10.0, 5.0):
        ax.axhline(target, color="0.6", lw=0.8)
    ax.set_xlabel("distinct training positions")
    ax.set_ylabel("median error (mm)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    from napari_gerbil.io.atomic import atomic_path

    with atomic_path(out, suffix=".png") as tmp:  # a full disk: one error naming ``out``
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out
