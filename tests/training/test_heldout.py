"""Fine-tuning judged on held-out reviewed calls.

Overconfidence is measured and calibrated away (the sets keep holding the sources).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.mixture import MixturePrediction
from napari_gerbil.training.heldout import (
    MIN_REVIEWED_CALLS,
    FinetuneReport,
    HeldoutScore,
    check_enough_reviewed,
    compare_on_heldout,
    fit_heldout_temperature,
    score,
    write_temperature,
)

DIMS_MM = (600.0, 400.0, 350.0)


def _gaussians(truth_mm, sigma_mm, rng, spread_mm=30.0):
    """Two-member mixtures whose means miss ``truth_mm`` by ~``spread_mm``."""
    n = len(truth_mm)
    means = truth_mm[:, None, :] + rng.normal(0, spread_mm, (n, 1, 2)) + rng.normal(0, 3, (n, 2, 2))
    chol = np.broadcast_to(np.eye(2) * sigma_mm, (n, 2, 2, 2)).copy()
    return MixturePrediction(means, chol)


def test_an_overconfident_model_is_widened_until_its_sets_hold_the_sources():
    rng = np.random.default_rng(0)
    fit_truth = rng.uniform([-250, -150], [250, 150], (30, 2))
    test_truth = rng.uniform([-250, -150], [250, 150], (40, 2))
    calibrated = score(_gaussians(test_truth, 30.0, rng), test_truth, DIMS_MM)
    overconfident = _gaussians(fit_truth, 5.0, rng)
    assert score(overconfident, fit_truth, DIMS_MM).coverage_95 < 0.3
    t = fit_heldout_temperature(overconfident, fit_truth, DIMS_MM)
    assert t > 10  # covariance x t: sigma 5 mm -> > 16 mm
    test = _gaussians(test_truth, 5.0, rng)
    assert score(test, test_truth, DIMS_MM, temperature=t).coverage_95 >= (
        calibrated.coverage_95 - 0.10
    )
    # an underconfident model is never narrowed on a few held-out calls
    assert fit_heldout_temperature(_gaussians(fit_truth, 200.0, rng), fit_truth, DIMS_MM) == 1.0


def test_fine_tuning_needs_enough_reviewed_calls_and_says_how_many_more():
    check_enough_reviewed(MIN_REVIEWED_CALLS)
    with pytest.raises(InvalidInputError, match="Review 7 more"):
        check_enough_reviewed(MIN_REVIEWED_CALLS - 7)


@pytest.mark.slow
def test_fine_tune_overconfidence_is_reproduced_and_fixed(tiny_ensemble_dir, tmp_path):
    """10 reviewed calls from two animals' usual spots, fine-tuned hard.

    The raw model's 95% sets shrink and miss the sources; with the temperature fitted on
    held-out reviewed calls, coverage on new calls stays within 10 points of the old
    model's.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "tests_root_conftest", Path(__file__).parents[1] / "conftest.py"
    )
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    _arena, _call_audio = helpers._arena, helpers._call_audio
    from napari_gerbil.io.vcl import write_vcl
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.finetune import finetune

    rng = np.random.default_rng(2)
    arena = _arena()
    spots = np.array([[-150.0, -60.0], [160.0, 70.0]])

    def calls_near(n):
        xy = spots[np.arange(n) % 2] + rng.normal(0, 25, (n, 2))
        audio = [_call_audio(p, arena.mic_positions_mm, 2500, rng) for p in xy]
        return [(a + 0.002 * rng.standard_normal(a.shape)).astype(np.float32) for a in audio], xy

    reviewed, reviewed_xy = calls_near(MIN_REVIEWED_CALLS)
    heldout, heldout_xy = calls_near(20)
    new_calls, new_xy = calls_near(20)
    data = write_vcl(
        tmp_path / "reviewed.h5",
        reviewed,
        reviewed_xy[:, None, :],
        node_names=["nose"],
        sample_rate_hz=125000.0,
        arena_dims_mm=arena.dims_mm,
        mic_positions_mm=arena.mic_positions_mm,
    )
    config = TrainingConfig(
        epochs=60,
        batch_size=16,
        optimizer="adam",
        learning_rate=0.01,  # hard: 10x the default, on 10 calls
        device="cpu",
        checkpoint_every_s=1e9,
    )
    new_dir = finetune(tiny_ensemble_dir, [data], tmp_path / "ft", config, show_progress=False)
    old, new = load_ensemble(tiny_ensemble_dir), load_ensemble(new_dir)
    report = compare_on_heldout(old, new, heldout, heldout_xy, arena.dims_mm)
    write_temperature(new_dir, report.temperature, report.to_dict())

    before = score(old.predict(new_calls), new_xy, arena.dims_mm)
    raw = score(new.predict(new_calls, temperature=1.0), new_xy, arena.dims_mm)
    assert raw.coverage_95 <= before.coverage_95 - 0.10  # overconfidence reproduced
    assert raw.median_set_area_cm2 < 0.7 * before.median_set_area_cm2
    kept = score(load_ensemble(new_dir).predict(new_calls), new_xy, arena.dims_mm)
    assert kept.temperature == 1.0 and load_ensemble(new_dir).temperature == report.temperature
    print(report.summary(), before, raw, kept, sep="\n")  # shown with -s
    assert kept.coverage_95 >= before.coverage_95 - 0.10  # fixed
    assert report.after_raw.coverage_95 < report.after.coverage_95
    manifest = json.loads((new_dir / "manifest.json").read_text())
    assert manifest["heldout_calibration"]["before"]["n_calls"] == 20
    assert "held-out reviewed calls" in report.summary()


@pytest.mark.parametrize(("n_heldout", "judged"), [(2, False), (9, False), (10, True)])
def test_the_report_withholds_its_verdict_on_too_few_heldout_calls(n_heldout, judged):
    def scored(error_mm: float) -> HeldoutScore:
        return HeldoutScore(n_heldout, error_mm, 0.9, 40.0, 1.0)

    report = FinetuneReport(scored(80.0), scored(60.0), scored(60.0), 1.2)
    text = report.summary()
    assert report.judged is judged
    assert f"on {n_heldout} held-out reviewed calls" in text
    assert ("too few held-out calls to judge" in text) is not judged
    if not judged:
        assert f"review {5 * (10 - n_heldout)} more" in text
