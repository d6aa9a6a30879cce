"""Measure ``napari-gerbil cage fit`` (the numbers of docs/cage_fit.md).

Three parts, each writing a JSON file into ``--out``:

``pra``
    A pyroomacoustics speaker set (500 calls at 50 positions, sub-cardioid microphones,
    walls 0.35, floor 0.5, ceiling 0.9, microphones moved 8 mm, 25 degC) fitted from the
    built-in ``paper`` cage: each recovered parameter against the truth, and wall time.
``engine``
    Engine-rendered speaker sets in cages drawn at random (absorption, scattering,
    temperature, microphones moved up to 10 mm), each fitted the same way.
``train``
    The loop closed: one recipe (``train --cage``) trained on the start cage and on the
    fitted cage (same calls, same seeds), both evaluated with MUSE on held-out calls of
    the pyroomacoustics room (50 other positions).

Example::

    python scripts/measure_cage_fit.py pra engine train --out cage_fit_out
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from napari_gerbil.cagefit import fit_cage, write_fitted_cage
from napari_gerbil.io.cage import builtin_cage, load_cage, save_cage
from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset
from napari_gerbil.simulate.stimuli import CALL_CLASSES

sys.path.insert(0, str(Path(__file__).parent))
from make_pra_speaker_set import make_pra_speaker_set  # noqa: E402


def errors(fitted, truth) -> dict:
    """How far a fitted cage is from the truth, per parameter."""
    fa, ta = fitted.band_absorption(), truth.band_absorption()
    mic = np.linalg.norm(fitted.mics - truth.mics, axis=1)
    return {
        "walls": float(fa["walls"].mean() - ta["walls"].mean()),
        "floor": float(fa["floor"].mean() - ta["floor"].mean()),
        "ceiling": float(fa["ceiling"].mean() - ta["ceiling"].mean()),
        "scattering": float(fitted.scattering - truth.scattering),
        "temperature_c": float(fitted.temperature_c - truth.temperature_c),
        "mic_error_mm": mic.round(3).tolist(),
        "mic_error_max_mm": float(mic.max()),
    }


def part_pra(out: Path) -> dict:
    """The issue's pyroomacoustics set, fitted from ``paper``."""
    made = make_pra_speaker_set(out / "pra_speaker.h5", out / "pra_truth.yaml", overwrite=True)
    t0 = time.perf_counter()
    result = fit_cage(out / "pra_speaker.h5", "paper")
    wall = time.perf_counter() - t0
    write_fitted_cage(result, out / "pra_fitted.yaml")
    truth = load_cage(out / "pra_truth.yaml")
    res = {
        "data_s": made["seconds"],
        "fit_wall_s": wall,
        "errors": errors(result.cage, truth),
        "start_errors": errors(builtin_cage("paper"), truth),
        "residuals": result.residuals(),
    }
    return res


def random_cage(rng: np.random.Generator, max_scattering: float = 0.3):
    """The ``paper`` cage with absorption, scattering, air and microphones drawn at random."""
    start = builtin_cage("paper")
    move = rng.normal(size=(start.n_mics, 3))
    move *= rng.uniform(0.0, 10.0, (start.n_mics, 1)) / np.linalg.norm(move, axis=1, keepdims=True)
    return start.with_changes(
        absorption={
            "walls": float(rng.uniform(0.08, 0.6)),
            "floor": float(rng.uniform(0.3, 0.85)),
            "ceiling": float(rng.uniform(0.5, 0.98)),
        },
        scattering=float(rng.uniform(0.0, max_scattering)),
        temperature_c=float(rng.uniform(16.0, 30.0)),
        mic_positions_mm=(start.mics + move).tolist(),
    )


def part_engine(out: Path, n_draws: int, max_scattering: float = 0.3) -> dict:
    """Cages drawn at random, rendered by the engine, fitted from ``paper``."""
    rng = np.random.default_rng(2026 if max_scattering == 0.3 else 2027)
    tag = "" if max_scattering == 0.3 else f"s{max_scattering:g}_"
    rows = []
    for k in range(n_draws):
        truth = random_cage(rng, max_scattering)
        save_cage(truth, out / f"engine_{tag}truth_{k}.yaml")
        data = out / f"engine_{tag}speaker_{k}.h5"
        data.unlink(missing_ok=True)
        cfg = ScenarioConfig(
            scenario="speaker",
            n_calls=500,
            seed=100 + k,
            cage=str(out / f"engine_{tag}truth_{k}.yaml"),
            classes=CALL_CLASSES[:10],
        )
        simulate_dataset(data, cfg)
        t0 = time.perf_counter()
        result = fit_cage(data, "paper", seed=k)
        rows.append(
            {
                "truth": truth.to_dict(),
                "fit_wall_s": time.perf_counter() - t0,
                "errors": errors(result.cage, truth),
            }
        )
        print(k, json.dumps(rows[-1]["errors"]), f"{rows[-1]['fit_wall_s']:.0f} s", flush=True)
    worst = {
        key: float(max(abs(r["errors"][key]) for r in rows))
        for key in ("walls", "floor", "ceiling", "scattering", "temperature_c", "mic_error_max_mm")
    }
    return {"draws": rows, "worst": worst}


def _with_mics(src: Path, dst: Path, mics_mm) -> Path:
    """A copy of a VCL file whose recorded microphone positions are ``mics_mm``."""
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["mic_positions_mm"] = np.asarray(mics_mm, float)
    return dst


def part_train(out: Path, sim_calls: int, epochs: int, preset: str) -> dict:
    """One recipe on the start and the fitted cage; both on held-out pyroomacoustics calls."""
    from napari_gerbil.cli.main import main as cli

    held = out / "pra_heldout.h5"
    make_pra_speaker_set(held, out / "pra_truth_heldout.yaml", positions_seed=1, overwrite=True)
    fitted = load_cage(out / "pra_fitted.yaml")
    res: dict = {
        "recipe": {
            "preset": preset,
            "sim_calls": sim_calls,
            "epochs": epochs,
            "ensemble": 1,
            "seed": 0,
        }
    }
    for name, cage_spec, mics in (
        ("start", "paper", builtin_cage("paper").mics),
        ("fitted", str(out / "pra_fitted.yaml"), fitted.mics),
    ):
        model = out / f"model_{name}"
        shutil.rmtree(model, ignore_errors=True)
        t0 = time.perf_counter()
        cli(
            [
                "train",
                "--preset",
                preset,
                "--ensemble",
                "1",
                "--cage",
                cage_spec,
                "--sim-calls",
                str(sim_calls),
                "--epochs",
                str(epochs),
                "--seed",
                "0",
                "--out",
                str(model),
            ]
        )
        train_s = time.perf_counter() - t0
        data = _with_mics(held, out / f"heldout_{name}_geometry.h5", mics)
        ev = out / f"eval_{name}"
        shutil.rmtree(ev, ignore_errors=True)
        cli(
            [
                "evaluate",
                "--data",
                str(data),
                "--model",
                str(model),
                "--baseline",
                "muse",
                "--source-height-mm",
                "40",
                "--out",
                str(ev),
            ]
        )
        metrics = json.loads((ev / "metrics.json").read_text())
        res[name] = {"train_s": train_s, "metrics": metrics}
    return res


def main(argv=None) -> int:
    """Run the named parts; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("parts", nargs="+", choices=("pra", "engine", "train"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--draws", type=int, default=5, help="random cages of the engine part")
    p.add_argument(
        "--max-scattering",
        type=float,
        default=0.3,
        help="scattering of the engine part's cages drawn from 0 .. this",
    )
    p.add_argument("--sim-calls", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--preset", default="fast")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for part in args.parts:
        t0 = time.perf_counter()
        if part == "pra":
            res = part_pra(args.out)
        elif part == "engine":
            res = part_engine(args.out, args.draws, args.max_scattering)
        else:
            res = part_train(args.out, args.sim_calls, args.epochs, args.preset)
        res["part_wall_s"] = time.perf_counter() - t0
        name = (
            part
            if part != "engine" or args.max_scattering == 0.3
            else (f"engine_s{args.max_scattering:g}")
        )
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        print(
            part, json.dumps({k: v for k, v in res.items() if k not in ("draws",)}, indent=1)[:3000]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
