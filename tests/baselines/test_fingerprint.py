"""Matched-field fingerprint lookup on simulated reverberant speaker calls."""

import numpy as np
import pytest

from napari_gerbil.baselines.fingerprint import FingerprintIndex, fingerprints
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.vcl import VCLDataset


@pytest.fixture(scope="module")
def speaker(speaker_vcl_small):
    ds = VCLDataset(speaker_vcl_small)
    calls = [ds.call_audio(i) for i in range(len(ds))]
    return calls, ds.source_xy_mm(), np.array(ds.stimulus_classes)


def _take(calls, keep):
    return [call for call, k in zip(calls, keep, strict=True) if k]


def test_a_new_stimulus_at_a_known_position_is_recalled_exactly(speaker):
    calls, xy, classes = speaker
    query = classes == "noisy_high"
    index = FingerprintIndex(_take(calls, ~query), xy[~query])
    match = index.match(_take(calls, query))
    errors_mm = np.linalg.norm(match.point_mm - xy[query], axis=1)
    assert np.mean(errors_mm < 1.0) > 0.85


def test_unknown_positions_match_worse_and_are_not_recalled(speaker):
    calls, xy, classes = speaker
    positions = np.unique(np.round(xy, 1), axis=0)
    known = {tuple(p) for p in positions[::2]}
    is_known = np.array([tuple(p) in known for p in np.round(xy, 1)])
    reference = is_known & (classes != "noisy_high")
    query = classes == "noisy_high"
    index = FingerprintIndex(_take(calls, reference), xy[reference])
    match = index.match(_take(calls, query))
    seen = is_known[query]
    errors_mm = np.linalg.norm(match.point_mm - xy[query], axis=1)
    assert np.median(match.similarity[seen]) > np.median(match.similarity[~seen]) + 0.2
    assert np.median(errors_mm[~seen]) > 20.0  # no reference call is closer than 40 mm...
    assert np.median(errors_mm[seen]) < 1.0  # ...while known positions are exact


def test_fingerprints_are_unit_phases_inside_each_band(speaker):
    calls, _, _ = speaker
    prints = fingerprints(calls[:4])
    assert prints.phase.shape[0] == 4 and prints.phase.shape[2] == 6
    assert np.allclose(np.abs(prints.phase), 1.0, atol=1e-5)
    assert 0 < prints.band.mean() < 1


def test_bad_input_names_the_field(speaker):
    calls, xy, _ = speaker
    with pytest.raises(InvalidInputError, match="points_mm"):
        FingerprintIndex(calls[:3], xy[:2])
    with pytest.raises(InvalidInputError, match=r"calls\[1\]"):
        fingerprints([calls[0], calls[1][:, :3]])
    with pytest.raises(InvalidInputError, match="calls"):
        fingerprints([])
    with pytest.raises(InvalidInputError, match=r"calls\[0\]"):
        fingerprints([np.full((600, 4), np.nan)])
    short = fingerprints([calls[0][:100]])  # shorter than a frame: zero-padded, kept
    assert short.phase.shape[1:] == fingerprints(calls[:1]).phase.shape[1:]
    index = FingerprintIndex(calls[:3], xy[:3])
    with pytest.raises(InvalidInputError, match="microphone pairs"):
        index.match([calls[0][:, :3]])
