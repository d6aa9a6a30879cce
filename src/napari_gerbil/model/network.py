"""The localization network: raw-waveform gated blocks and/or GCC-PHAT features -> 5 numbers.

The network maps one call, z-scored audio shaped (batch, n_channels, n_samples), to
5 unconstrained outputs that :mod:`napari_gerbil.model.gaussian` turns into the mean
and Cholesky factor of a 2-D Gaussian in scaled arena coordinates.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import nn

from napari_gerbil.model.presets import NetworkConfig

#: Number of raw outputs: mean (2) + Cholesky factor (3).
N_OUTPUTS = 5
#: softplus^-1(1): raw diagonal output giving a unit Cholesky diagonal.
SOFTPLUS_INV_1 = math.log(math.e - 1)
#: Initial softmax temperature of an SRP map normalized to [0, 1].
SRP_INIT_TEMPERATURE = 60.0
#: softplus^-1(0.25): initial Cholesky diagonal of SRP networks (a quarter of the scale).
SRP_INIT_DIAG_RAW = math.log(math.exp(0.25) - 1)


class GatedBlock(nn.Module):
    """``tanh(f(x)) * sigmoid(g(x)) + h(x)``, optional average pooling, then batch norm.

    The three convolutions share hyperparameters but not weights; they are stored as
    one convolution with ``3 * out_channels`` outputs (identical parameters and MACs).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: bool = False,
    ) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2  # "same" for odd kernels, stride 1
        self.conv = nn.Conv1d(in_channels, 3 * out_channels, kernel_size, stride, padding, dilation)
        self.pool = nn.AvgPool1d(2, 2) if downsample else nn.Identity()
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the gated block to (B, C, T)."""
        f, g, h = self.conv(x).chunk(3, dim=1)
        return self.norm(self.pool(torch.tanh(f) * torch.sigmoid(g) + h))


class GCCPHAT(nn.Module):
    """Generalized cross-correlation with phase transform for every microphone pair.

    Output shape (batch, n_pairs, 2 * max_lag + 1), lags -max_lag .. +max_lag samples.
    Zero-padding to ``n_fft >= n_samples + max_lag`` avoids circular wrap-around.
    """

    def __init__(self, n_channels: int, max_lag_samples: int) -> None:
        super().__init__()
        pairs = list(itertools.combinations(range(n_channels), 2))
        self.register_buffer("first", torch.tensor([p[0] for p in pairs]), persistent=False)
        self.register_buffer("second", torch.tensor([p[1] for p in pairs]), persistent=False)
        self.n_pairs = len(pairs)
        self.max_lag = max_lag_samples
        self.macs = 0  # filled by forward: FFT cost estimate for MAC counting

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """GCC-PHAT lag curves of every pair of (B, C, T) audio."""
        n_samples = x.shape[-1]
        n_fft = 1 << math.ceil(math.log2(n_samples + self.max_lag))
        spec = torch.fft.rfft(x, n=n_fft)
        # PHAT: X_a conj(X_b) / |X_a conj(X_b)| = (X_a / |X_a|) conj(X_b / |X_b|).
        mag = spec.abs()
        white = spec / (mag + 1e-6 * mag.mean(dim=-1, keepdim=True) + 1e-20)
        corr = torch.fft.irfft(white[:, self.first] * white[:, self.second].conj(), n=n_fft)
        lag = self.max_lag
        out = torch.cat([corr[..., n_fft - lag :], corr[..., : lag + 1]], dim=-1)
        # Estimate: 2.5 n log2 n real MACs per real FFT, 6 per complex bin of a cross term.
        fft_macs = 2.5 * n_fft * math.log2(n_fft)
        self.macs = int((x.shape[1] + self.n_pairs) * fft_macs + 6 * self.n_pairs * spec.shape[-1])
        return out


class SoftArgmaxLags(nn.Module):
    """Read GCC-PHAT lag curves pair by pair.

    A small conv stack (weights shared by the pairs) gives ``gcc_heads`` logit curves
    over the lags; each contributes its soft-argmax (expected lag, scaled to [-1, 1])
    and its log-sum-exp (peak strength).

    Input (B, n_pairs, n_lags) -> features (B, n_pairs * 2 * gcc_heads).
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        k = config.gcc_kernel_size
        for ch in config.gcc_channels:
            layers += [nn.Conv1d(prev, ch, k, padding=k // 2), nn.BatchNorm1d(ch), nn.ReLU()]
            prev = ch
        layers.append(nn.Conv1d(prev, config.gcc_heads, k, padding=k // 2))
        self.net = nn.Sequential(*layers)
        lags = torch.linspace(-1.0, 1.0, 2 * config.gcc_max_lag_samples + 1)
        self.register_buffer("lags", lags, persistent=False)

    def forward(self, gcc: torch.Tensor) -> torch.Tensor:
        """Features (B, P * 2 * heads) of lag curves (B, P, n)."""
        b, p, n = gcc.shape
        logits = self.net(gcc.reshape(b * p, 1, n) * math.sqrt(n))  # (B*P, H, n)
        weights = torch.softmax(logits, dim=-1)
        expected = (weights * self.lags).sum(-1)  # type: ignore[operator]
        strength = torch.logsumexp(logits, dim=-1) - math.log(n)
        return torch.cat([expected, strength], dim=-1).reshape(b, -1)


class LagCNN(nn.Module):
    """Read the GCC-PHAT lag curves of all pairs jointly.

    Each curve is scaled to a peak of 1; the pairs are the input channels of a 1-D
    convolution stack over the lags (conv, batch norm, ReLU; strides ``gcc_strides``),
    flattened.

    In a reverberant cage the curves hold the direct-path peak *and* the reflections'
    peaks, whose pattern across the six pairs also depends on the source position; a
    joint reading can use both, where a per-pair peak pick (soft-argmax, MUSE) is
    misled by the strongest reflection.

    Input (B, n_pairs, n_lags) -> features (B, n_features).
    """

    def __init__(self, config: NetworkConfig, n_pairs: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = n_pairs
        k = config.gcc_kernel_size
        n_lags = 2 * config.gcc_max_lag_samples + 1
        strides = config.gcc_strides or (1,) + (2,) * (len(config.gcc_channels) - 1)
        for ch, stride in zip(config.gcc_channels, strides, strict=True):
            layers += [nn.Conv1d(prev, ch, k, stride, k // 2), nn.BatchNorm1d(ch), nn.ReLU()]
            n_lags = (n_lags + 2 * (k // 2) - k) // stride + 1
            prev = ch
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.n_features = prev * n_lags

    def forward(self, gcc: torch.Tensor) -> torch.Tensor:
        """Flattened features of lag curves (B, P, n)."""
        peak = gcc.abs().amax(dim=-1, keepdim=True)
        return self.net(gcc / (peak + 1e-12))


class SRPMap(nn.Module):
    """The MUSE steered response power map of each call on a floor grid (no parameters).

    Wraps :func:`napari_gerbil.baselines.localize` (band-limited, 8x upsampled
    cross-correlations summed over microphone pairs). Output (batch, 1, ny, nx), each
    map min-max normalized to [0, 1]; ``points`` (ny * nx, 2) are the cell centres in
    scaled units. Computed in numpy without gradients.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        from napari_gerbil.baselines.geometry import FloorGrid
        from napari_gerbil.io.arena import default_cage
        from napari_gerbil.model.gaussian import label_scale_mm

        cage = default_cage()
        self.mics_mm = np.asarray(config.mic_positions_mm or cage.mic_positions_mm, float)
        self.dims_mm = np.asarray(config.arena_dims_mm or cage.dims_mm, float)
        self.config = config
        grid = FloorGrid.from_arena(self.dims_mm, config.srp_resolution_mm)
        self.shape = grid.shape
        points = grid.points_mm()[:, :2] / label_scale_mm(self.dims_mm)
        self.register_buffer("points", torch.tensor(points, dtype=torch.float32), persistent=False)

    def macs(self, n_samples: int) -> int:
        """Estimated cost (multiply-adds) of one map.

        FFTs of the channels, 8x upsampled inverse FFTs of the pairs (2.5 n log2 n
        each), and one lookup-add per pair and grid cell.
        """
        n_mics = len(self.mics_mm)
        n_pairs = n_mics * (n_mics - 1) // 2
        n_fft = 1 << math.ceil(math.log2(n_samples + 1))
        ffts = n_mics * 2.5 * n_fft * math.log2(n_fft)
        iffts = n_pairs * 2.5 * 8 * n_fft * math.log2(8 * n_fft)
        return int(ffts + iffts + n_pairs * self.points.shape[0])  # type: ignore[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """SRP maps (B, 1, ny, nx) of (B, C, T) audio."""
        if x.is_meta:
            return torch.empty(x.shape[0], 1, *self.shape, device=x.device)
        from napari_gerbil.baselines.localize import localize

        cfg = self.config
        audio = x.detach().float().cpu().numpy().transpose(0, 2, 1)
        result = localize(
            "muse",
            audio,
            self.mics_mm,
            cfg.sample_rate_hz,
            self.dims_mm,
            speed_of_sound=cfg.speed_of_sound_m_s,
            source_height_mm=cfg.srp_height_mm,
            resolution_mm=cfg.srp_resolution_mm,
            keep_maps=True,
        )
        maps = torch.from_numpy(np.ascontiguousarray(result.power_maps, dtype=np.float32))
        return maps.reshape(x.shape[0], 1, *self.shape).to(x.device)


class SRPReader(nn.Module):
    """Read an SRP map.

    Logits = ``t * map + conv(map)`` (the convolution starts at 0), softmax over the
    grid; features (x, y) soft-argmax in scaled units and the softmax's normalized
    entropy (the map's ambiguity). At initialization the soft-argmax is the map's
    (sharply weighted) peak.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        for ch in config.srp_channels:
            layers += [nn.Conv2d(prev, ch, 5, padding=2), nn.ReLU()]
            prev = ch
        last = nn.Conv2d(prev, 1, 5, padding=2)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)  # type: ignore[arg-type]
        self.net = nn.Sequential(*layers, last)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(SRP_INIT_TEMPERATURE)))

    def forward(self, maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Soft-argmax (x, y) and normalized entropy of SRP ``maps`` over grid ``points``."""
        logits = (self.log_temperature.exp() * maps + self.net(maps)).flatten(1)  # (B, G)
        weights = torch.softmax(logits, dim=-1)
        xy = weights @ points
        # Normalized entropy in [0, 1]: 0 = one sharp peak, 1 = a flat map.
        entropy = -(weights * torch.log_softmax(logits, dim=-1)).sum(-1, keepdim=True)
        return torch.cat([xy, entropy / math.log(logits.shape[1])], dim=1)


class LocalizerNet(nn.Module):
    """One ensemble member: (batch, n_channels, n_samples) z-scored audio -> (batch, 5)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        blocks = []
        in_ch = config.n_channels
        strides = config.conv_strides or (1,) * len(config.conv_channels)
        downs = config.conv_downsample or tuple(i % 2 == 1 for i in range(len(strides)))
        for out_ch, stride, down in zip(config.conv_channels, strides, downs, strict=True):
            blocks.append(
                GatedBlock(
                    in_ch, out_ch, config.conv_kernel_size, stride, config.conv_dilation, down
                )
            )
            in_ch = out_ch
        self.raw = nn.Sequential(*blocks) if blocks else None
        n_features = config.conv_channels[-1] if blocks else 0

        self.gcc = None
        if config.gcc_max_lag_samples > 0:
            self.gcc = GCCPHAT(config.n_channels, config.gcc_max_lag_samples)
            self.gcc_net: nn.Module
            if config.gcc_reader == "cnn":
                self.gcc_net = LagCNN(config, self.gcc.n_pairs)
                n_features += self.gcc_net.n_features
            else:
                self.gcc_net = SoftArgmaxLags(config)
                n_features += self.gcc.n_pairs * 2 * config.gcc_heads
        if config.energy_features:
            n_features += config.n_channels
        self.srp = None
        if config.srp_resolution_mm > 0:
            self.srp = SRPMap(config)
            self.srp_net = SRPReader(config)
            n_features += 3

        head: list[nn.Module] = []
        for hidden in config.head_hidden:
            head += [nn.Linear(n_features, hidden), nn.ReLU()]
            n_features = hidden
        last = nn.Linear(n_features, N_OUTPUTS)
        # Start near N(0, I) in scaled units (the whole arena), so that the first SGD
        # steps on the NLL are gentle; with an SRP branch, near N(map peak, 0.25^2 I).
        diag = SOFTPLUS_INV_1 if config.srp_resolution_mm <= 0 else SRP_INIT_DIAG_RAW
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.copy_(torch.tensor([0.0, 0.0, diag, 0.0, diag]))
        head.append(last)
        self.head = nn.Sequential(*head)

    def shared_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameter-free features of ``x`` (GCC-PHAT curves, SRP map).

        The members of an ensemble can share them: pass them to :meth:`forward` as
        keywords.
        """
        out = {}
        if self.gcc is not None:
            out["gcc_features"] = self.gcc(x)
        if self.srp is not None:
            out["srp_map"] = self.srp(x)
        return out

    def forward(
        self,
        x: torch.Tensor,
        gcc_features: torch.Tensor | None = None,
        srp_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Map audio (batch, n_channels, n_samples) to raw outputs (batch, 5).

        ``gcc_features`` / ``srp_map`` may pass precomputed ``self.gcc(x)`` /
        ``self.srp(x)`` (see :meth:`shared_features`).
        """
        features = []
        srp_xy = None
        if self.raw is not None:
            features.append(self.raw(x).mean(dim=-1))
        if self.gcc is not None:
            gcc = self.gcc(x) if gcc_features is None else gcc_features
            features.append(self.gcc_net(gcc))
        if self.config.energy_features:
            features.append(torch.log(x.square().mean(dim=-1) + 1e-6))
        if self.srp is not None:
            srp = self.srp_net(self.srp(x) if srp_map is None else srp_map, self.srp.points)
            srp_xy = srp[:, :2]
            features.append(srp)
        out = self.head(torch.cat(features, dim=1))
        if srp_xy is not None:  # the head learns a correction of the map's soft-argmax
            out = torch.cat([out[:, :2] + srp_xy, out[:, 2:]], dim=1)
        return out


def build_network(config: NetworkConfig) -> LocalizerNet:
    """Build a freshly initialized network for ``config``."""
    return LocalizerNet(config)


def count_parameters(config: NetworkConfig) -> int:
    """Number of trainable parameters (built on the meta device: no memory, instant)."""
    with torch.device("meta"):
        net = LocalizerNet(config)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def count_macs(config: NetworkConfig, n_samples: int | None = None) -> int:
    """Multiply-accumulates of one call through the network.

    Counts every convolution and linear layer exactly from the shapes of a forward
    pass on the meta device, plus an estimate of the GCC-PHAT FFTs. Elementwise
    operations, pooling and batch norm are not counted.
    """
    n_samples = n_samples or config.input_length_samples
    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            total += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    with torch.device("meta"):
        net = LocalizerNet(config).eval()
        handles = [m.register_forward_hook(hook) for m in net.modules()]
        net(torch.empty(1, config.n_channels, n_samples))
    for handle in handles:
        handle.remove()
    if net.gcc is not None:
        total += net.gcc.macs
    if net.srp is not None:
        total += net.srp.macs(n_samples)
    return int(total)
