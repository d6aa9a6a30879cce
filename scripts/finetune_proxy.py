"""How much of the simulation-to-cage gap fine-tuning on a few hundred real calls closes.

A proxy for a lab's first week (issue: "From simulation to a lab's own recordings"):
the lab describes its cage as the built-in ``paper`` cage, but the real one is more
reverberant (another absorption preset) and its microphones sit a few mm from where
it measured them. All files carry the *described* geometry, as a lab's would.

- ``untuned``: trained by the data engine on the described cage (domain randomization on);
- ``tuned``: ``untuned`` fine-tuned on ``--finetune-calls`` calls from the real cage
  (``napari_gerbil.training.trainer.finetune``, the parent's recipe at a tenth of its
  learning rate);
- ``in_domain``: the same network trained from scratch, with the same recipe, on as
  many distinct real-cage positions as ``untuned`` saw simulated ones (what a lab with
  that much real data would get).

All three are judged on the same real-cage calls at positions none of them trained on.
Prints the median errors and the share of the gap fine-tuning recovers::

    python scripts/finetune_proxy.py [--preset srp] [--calls 2048] [--epochs 2] \
        [--finetune-calls 300] [--out finetune_proxy] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.evaluate.scaling import TEST_SEED, engine_test_set
from napari_gerbil.io.cage import builtin_cage, preset_absorption
from napari_gerbil.io.outputs import check_output_path
from napari_gerbil.io.vcl import write_vcl
from napari_gerbil.model.ensemble import load_ensemble
from napari_gerbil.model.presets import get_preset
from napari_gerbil.simulate.engine import DataEngine, EngineConfig
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.ensembles import train_ensemble
from napari_gerbil.training.finetune import finetune

#: What a run writes into --out (an existing one is replaced only with --overwrite).
PROTECTED_OUTPUTS = (
    "untuned", "tuned", "in_domain", "real_finetune.h5", "real_large.h5", "result.json"
)  # fmt: skip
#: Microphone position errors (mm) of the "real" cage relative to the described one.
MIC_ERRORS_MM = np.array([[4.0, -3.0, 0.0], [-3.0, -4.0, 2.0], [3.0, 4.0, -2.0], [-4.0, 3.0, 0.0]])


def real_cage(described):
    """The described cage with the ``reverberant`` absorption and moved microphones."""
    return described.with_changes(
        absorption=preset_absorption("reverberant"),
        mic_positions_mm=(described.mics + MIC_ERRORS_MM).tolist(),
    )


def write_real_calls(path: Path, described, real, n_calls: int, seed: int) -> Path:
    """``n_calls`` calls rendered in ``real`` (nominal acoustics), labelled as ``described``."""
    engine = DataEngine(real, EngineConfig(randomize=False), seed)
    audio, xyz = [], []
    for index in range(-(-n_calls // engine.config.calls_per_room)):
        batch = engine.batch(index)
        audio += batch.audio
        xyz.append(batch.locations_mm)
    return write_vcl(
        path,
        audio[:n_calls],
        np.concatenate(xyz)[:n_calls, None, :2],
        node_names=["source"],
        sample_rate_hz=125000.0,
        arena_dims_mm=described.dims,
        mic_positions_mm=described.mics,
        scenario="robot",
        provenance={"finetune_proxy": "real cage", "seed": seed},
    )


def median_error(model_dir: Path, calls, truth) -> float:
    """Median distance (mm) of the ensemble's point estimates to the truth."""
    point = load_ensemble(model_dir).predict(calls).point_mm
    return float(np.median(np.linalg.norm(point - truth, axis=1)))


def main() -> None:
    """Train the three models, score them, print and save the numbers."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="srp")
    p.add_argument("--calls", type=int, default=2048, help="simulated calls per epoch")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--finetune-calls", type=int, default=300)
    p.add_argument("--test-calls", type=int, default=512)
    p.add_argument("--out", type=Path, default=Path("finetune_proxy"))
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    args = p.parse_args()
    try:
        check_output_path(
            args.out, directory=True, overwrite=args.overwrite, protected=PROTECTED_OUTPUTS
        )
    except InvalidInputError as err:
        raise SystemExit(f"error: {err}") from None
    if args.overwrite:  # start from scratch: trained models would otherwise resume
        for name in PROTECTED_OUTPUTS:
            target = args.out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    t0 = time.perf_counter()
    described = builtin_cage("paper")
    real = real_cage(described)
    network = get_preset(args.preset)
    config = TrainingConfig(epochs=args.epochs, batch_size=16, sim_calls_per_epoch=args.calls)
    engine = {
        "cage": described.to_dict(),
        "cage_source": described.name,
        "config": EngineConfig().to_dict(),
        "seed": 0,
    }
    untuned = args.out / "untuned"
    train_ensemble(network, config, [], untuned, 1, engine=engine, show_progress=False)
    # different seeds: the fine-tuning and in-domain calls are never test positions
    small = write_real_calls(
        args.out / "real_finetune.h5", described, real, args.finetune_calls, 11
    )
    tuned = finetune(untuned, [small], args.out / "tuned")
    # as many distinct training positions as `untuned` saw (80% of the file trains)
    n_large = int(np.ceil(args.calls * args.epochs / 0.8))
    large = write_real_calls(args.out / "real_large.h5", described, real, n_large, 12)
    in_domain = args.out / "in_domain"
    train_ensemble(network, config, [large], in_domain, 1, show_progress=False)
    calls, truth = engine_test_set(real, args.test_calls, TEST_SEED + 11)
    errors = {
        name: median_error(Path(d), calls, truth)
        for name, d in (("untuned", untuned), ("tuned", tuned), ("in_domain", in_domain))
    }
    gap = errors["untuned"] - errors["in_domain"]
    result = {
        **{f"{k}_median_mm": v for k, v in errors.items()},
        "recovered_share_of_gap": (errors["untuned"] - errors["tuned"]) / gap if gap > 0 else None,
        "preset": args.preset,
        "sim_calls": args.calls * args.epochs,
        "finetune_calls": args.finetune_calls,
        "test_calls": args.test_calls,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
