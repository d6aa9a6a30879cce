"""Network presets: the paper's Table 1 structure, MAC counts, the Gaussian head."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from napari_gerbil.cli.main import main
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.gaussian import CHOL_FLOOR, raw_to_gaussian
from napari_gerbil.model.network import GatedBlock, build_network, count_macs, count_parameters
from napari_gerbil.model.presets import PRESETS, get_preset

TABLE_1_CHANNELS = [32, 32, 64, 64, 128, 128, 256, 256, 512, 512]


def _table1_parameter_count(n_mics: int = 4, kernel: int = 33) -> int:
    """Parameters implied by Table 1: 3 convs + batch norm per block, linear to 5."""
    total, prev = 0, n_mics
    for ch in TABLE_1_CHANNELS:
        total += 3 * (prev * ch * kernel + ch) + 2 * ch
        prev = ch
    return total + prev * 5 + 5


def _table1_macs(n_samples: int = 8192, n_mics: int = 4, kernel: int = 33) -> int:
    total, prev, length = 0, n_mics, n_samples
    for i, ch in enumerate(TABLE_1_CHANNELS):
        total += 3 * length * prev * ch * kernel
        prev = ch
        if i % 2 == 1:
            length //= 2
    return total + prev * 5


def test_paper_preset_has_table_1_structure():
    with torch.device("meta"):  # structure only: no memory, no initialization time
        net = build_network(PRESETS["paper"])
    blocks = [m for m in net.modules() if isinstance(m, GatedBlock)]
    assert len(blocks) == 10
    for i, (block, ch) in enumerate(zip(blocks, TABLE_1_CHANNELS, strict=True)):
        conv = block.conv
        assert conv.out_channels == 3 * ch  # f, g and h convolutions
        assert conv.kernel_size == (33,) and conv.stride == (1,) and conv.dilation == (1,)
        assert conv.padding == (16,)  # "same"
        assert isinstance(block.pool, nn.AvgPool1d) == (i % 2 == 1)
        assert block.norm.num_features == ch
    assert net.gcc is None and not net.config.energy_features
    assert [m.out_features for m in net.head if isinstance(m, nn.Linear)] == [5]
    assert count_parameters(PRESETS["paper"]) == _table1_parameter_count()
    assert count_macs(PRESETS["paper"]) == _table1_macs()
    assert 38e9 < count_macs(PRESETS["paper"]) < 39e9


def test_gated_block_computes_tanh_sigmoid_gate_plus_residual_then_pool_and_norm():
    torch.manual_seed(0)
    block = GatedBlock(2, 3, 5, downsample=True).eval()
    x = torch.randn(1, 2, 16)
    w = block.conv.weight
    b = block.conv.bias
    f, g, h = (
        nn.functional.conv1d(x, w[k * 3 : (k + 1) * 3], b[k * 3 : (k + 1) * 3], padding=2)
        for k in range(3)
    )
    expected = block.norm(nn.functional.avg_pool1d(torch.tanh(f) * torch.sigmoid(g) + h, 2))
    torch.testing.assert_close(block(x), expected)


def test_fast_is_over_100x_cheaper_than_paper_and_tiny_is_smaller_still():
    paper = count_macs(PRESETS["paper"])
    assert count_macs(PRESETS["fast"]) * 100 <= paper
    assert count_macs(PRESETS["tiny"]) < count_macs(PRESETS["fast"])
    assert count_parameters(PRESETS["fast"]) * 20 < count_parameters(PRESETS["paper"])
    assert count_macs(PRESETS["srp"]) * 100 <= paper


@pytest.mark.parametrize("name", ["fast", "srp", "tiny"])
def test_presets_map_audio_to_five_outputs(name):
    net = build_network(get_preset(name, input_length_samples=2048)).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 4, 2048))
    assert out.shape == (3, 5) and torch.isfinite(out).all()


def test_models_command_prints_params_and_gmac_per_preset(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    found = {}
    for line in lines:
        m = re.match(r"(\w+)\s+params=(\d+) gmac=([\d.]+)", line)
        assert m, line
        found[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    assert set(found) == {"paper", "fast", "gcc", "srp", "tiny"}
    assert found["gcc"][1] < found["fast"][1] / 4  # cheap enough to train at scale on a CPU
    assert found["paper"][0] == _table1_parameter_count()
    assert abs(found["paper"][1] - _table1_macs() / 1e9) < 1e-3


def test_cholesky_diagonal_is_positive_for_any_output():
    raw = torch.tensor(
        [[0, 0, -1e4, 5, -1e4], [0, 0, 1e4, -3, 1e4], [1, 2, -88.0, 0, -104.0]],
        dtype=torch.float32,
    )
    raw = torch.cat([raw, torch.randn(1000, 5) * 50])
    mean, chol = raw_to_gaussian(raw)
    diag = torch.diagonal(chol, dim1=-2, dim2=-1)
    assert (diag >= CHOL_FLOOR).all()
    assert (chol[:, 0, 1] == 0).all()
    assert torch.equal(mean, raw[:, :2])


@pytest.mark.parametrize(
    "changes",
    [
        {"conv_channels": (), "gcc_max_lag_samples": 0, "srp_resolution_mm": 0.0},
        {"mic_positions_mm": ((0.0, 0.0, 300.0),) * 3},
        {"conv_channels": (4, 4), "conv_strides": (1,)},
        {"gcc_max_lag_samples": 9000},
        {"n_channels": 0},
        {"gcc_max_lag_samples": 64, "gcc_channels": (8,), "gcc_reader": "peak"},
        {"gcc_max_lag_samples": 64, "gcc_channels": (8, 8), "gcc_strides": (1,)},
    ],
)
def test_inconsistent_network_configs_are_rejected(changes):
    with pytest.raises(InvalidInputError):
        get_preset("fast", **changes)


def test_unknown_preset_is_rejected():
    with pytest.raises(InvalidInputError, match="preset"):
        get_preset("huge")


def test_untrained_srp_net_starts_at_the_steered_response_peak():
    """The SRP read-out starts at the MUSE map's peak.

    An untrained ``srp`` net already localizes clean delayed chirps (mean in mm =
    scaled mean * label scale).
    """
    from napari_gerbil.baselines.synthetic import delayed_chirps
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.model.gaussian import label_scale_mm
    from napari_gerbil.model.preprocess import crop_or_pad

    cage = default_cage()
    sources = np.array([[-180.0, 90.0, 40.0], [150.0, -100.0, 40.0], [20.0, 60.0, 40.0]])
    audio = delayed_chirps(sources, cage.mic_positions_mm, 125000.0, 343.2, n_samples=8192)
    x = torch.from_numpy(np.stack([crop_or_pad(a, 8192).T for a in audio]))
    torch.manual_seed(0)
    net = build_network(get_preset("srp")).eval()
    with torch.no_grad():
        mean, _ = raw_to_gaussian(net(x, **net.shared_features(x)))
    error_mm = np.linalg.norm(mean.numpy() * label_scale_mm(cage.dims_mm) - sources[:, :2], axis=1)
    assert (error_mm < 40.0).all(), error_mm  # centre guess: 63..201 mm


def test_gcc_phat_peaks_at_the_delay_between_channels():
    from napari_gerbil.model.network import GCCPHAT

    rng = np.random.default_rng(0)
    source = rng.standard_normal(4096 + 64)
    delays = [0, 7, -12, 30]  # samples; channel c hears source[t - delay_c]
    x = np.stack([source[32 - d : 32 - d + 4096] for d in delays]).astype(np.float32)
    x += 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    gcc = GCCPHAT(4, max_lag_samples=50)
    curves = gcc(torch.from_numpy(x)[None])[0]  # (6 pairs, 101 lags)
    lags = curves.argmax(dim=-1).numpy() - 50
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    assert lags.tolist() == [delays[a] - delays[b] for a, b in pairs]


def test_lag_cnn_reads_all_pairs_jointly_and_ignores_curve_scale():
    from napari_gerbil.model.network import LagCNN

    config = get_preset("tiny", gcc_reader="cnn", gcc_channels=(8, 8, 16), gcc_max_lag_samples=32)
    reader = LagCNN(config, n_pairs=6).eval()
    curves = torch.randn(2, 6, 65)
    with torch.no_grad():
        features = reader(curves)
        scaled = reader(curves * torch.tensor([1.0, 3.0, 0.5, 2.0, 1.0, 7.0])[:, None])
    assert features.shape == (2, reader.n_features) == (2, 16 * 17)
    torch.testing.assert_close(features, scaled)
    changed = curves.clone()
    changed[:, 5] = torch.randn(2, 65)  # one pair changes: the joint features change
    with torch.no_grad():
        assert not torch.allclose(reader(changed), features)
