"""Network presets: the one place where architectures are defined.

``paper``
    The supplement's Table 1 exactly: 10 gated blocks (``tanh(f) * sigmoid(g) + h``
    from three convolutions of the block input), kernel 33, stride 1, dilation 1,
    "same" padding, channels 32,32,64,64,128,128,256,256,512,512, average pooling
    (kernel 2, stride 2) before batch norm on blocks 2, 4, 6, 8, 10, mean over time,
    linear layer to 5 outputs. 51,828,293 parameters, 38.3 GMAC per 8192-sample call.
    A GPU model.
``fast``
    The CPU preset, chosen by measurement; two parameter-free physical front ends, both
    read by small networks:

    - GCC-PHAT cross-correlations of the 6 microphone pairs over +-128 lags (+-1 ms),
      each curve scaled to a peak of 1, read *jointly* by a strided 1-D convolution
      stack (pairs as channels, 64-64-128-128, kernel 7);
    - the ``srp`` branch below (MUSE map on a 5 mm grid, soft-argmax read-out);

    then an MLP (256) on both plus the channels' log energies gives the covariance and
    a correction of the map's soft-argmax. In the simulated reverberant cage the
    strongest GCC peak of a pair is mostly a reflection (within 3 samples of the true
    delay for ~12% of pairs), which misleads peak pickers; the joint reading can use
    the pattern of direct and reflected peaks but, alone, needs calls from nearby
    positions in training, while the SRP anchor carries over to new positions.
    Measured on the ``--quick`` train+validation files (Adam 1e-3, 10 epochs, one
    member, validation median error at the last epoch / best): speaker (60 positions)
    GCC branch alone 57 mm, both 54 / 47 mm; robot (random positions) GCC alone 109
    mm, both 85 / 65 mm. MUSE on the test files: 54 and 89 mm. See docs/benchmark.md.
``gcc``
    For training at simulation scale on a CPU: the ``fast`` preset's joint GCC-PHAT
    reader alone (no SRP map), over +-256 lags (+-2 ms: every microphone pair of cages
    up to ~85 cm across), channels 32-32-64-64, MLP 256. About 10x cheaper than
    ``fast``, so the data engine can feed it hundreds of thousands of fresh positions.
``srp``
    The MUSE steered-response-power map of the call on a 5 mm floor grid (no
    parameters, shared by the members of an ensemble), read by a small 2-D convolution
    stack whose soft-argmax (initially the map's peak) is the mean, plus a small MLP for
    a correction and the covariance: ~71 mm median error after 768 training calls
    (speaker, 40 positions; MUSE 68 mm). It inherits MUSE's reflections; kept as a
    baseline-anchored model; the demo ensemble uses it.
``tiny``
    For tests: the GCC-PHAT branch and a small MLP; trains in seconds on a CPU.

Run ``napari-gerbil models`` for the measured parameter count and GMAC of each.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari_gerbil.config import Config
from napari_gerbil.errors import InvalidInputError


@dataclass
class NetworkConfig(Config):
    """Architecture of one ensemble member.

    Attributes
    ----------
    name
        Preset name (informational).
    n_channels
        Microphone channels of the input.
    input_length_samples
        Samples per call the network sees (calls are cropped / padded to it).
    conv_channels
        Output channels of the gated raw-waveform blocks (empty: no raw branch).
    conv_kernel_size, conv_dilation
        Kernel size and dilation of every gated block.
    conv_strides
        Stride of each gated block (empty: all 1).
    conv_downsample
        Whether each block average-pools (kernel 2, stride 2) before batch norm
        (empty: every second block, as in the paper).
    gcc_max_lag_samples
        Half-width of the GCC-PHAT lag window (0: no GCC-PHAT branch).
    gcc_channels
        Channels of the convolutions reading each pair's lag curve (shared by pairs).
    gcc_kernel_size
        Kernel size of those convolutions.
    gcc_heads
        Soft-argmax heads per pair (each gives an expected lag and a peak strength).
    gcc_reader
        How the lag curves are read: ``softargmax`` (pair by pair, shared weights,
        ``gcc_heads`` expected lags and peak strengths per pair) or ``cnn`` (all pairs
        jointly, a strided 1-D convolution stack over the lags, flattened).
    gcc_strides
        Strides of the ``cnn`` reader's convolutions (empty: 1, then 2 for the others).
    energy_features
        Append each channel's log mean square (the z-score keeps level differences).
    head_hidden
        Hidden sizes of the MLP head before the final linear layer to 5 outputs.
    srp_resolution_mm
        Cell size of the steered-response-power branch (0: off): the MUSE map of the
        call (:func:`napari_gerbil.baselines.localize`, no parameters) on a floor grid,
        read by a small 2-D convolution stack whose soft-argmax is added to the mean.
    srp_channels
        Channels of that 2-D convolution stack (kernel 5).
    mic_positions_mm, arena_dims_mm, sample_rate_hz
        Geometry of the SRP branch; empty: the default cage. Training fills them in
        from the data, so a saved model carries its own geometry.
    speed_of_sound_m_s, srp_height_mm
        Speed of sound and assumed source height of the SRP map.
    """

    name: str = "custom"
    n_channels: int = 4
    input_length_samples: int = 8192
    conv_channels: tuple[int, ...] = ()
    conv_kernel_size: int = 33
    conv_dilation: int = 1
    conv_strides: tuple[int, ...] = ()
    conv_downsample: tuple[bool, ...] = ()
    gcc_max_lag_samples: int = 0
    gcc_channels: tuple[int, ...] = ()
    gcc_kernel_size: int = 7
    gcc_heads: int = 2
    gcc_reader: str = "softargmax"
    gcc_strides: tuple[int, ...] = ()
    energy_features: bool = False
    head_hidden: tuple[int, ...] = ()
    srp_resolution_mm: float = 0.0
    srp_channels: tuple[int, ...] = ()
    mic_positions_mm: tuple[tuple[float, ...], ...] = ()
    arena_dims_mm: tuple[float, ...] = ()
    sample_rate_hz: float = 125000.0
    speed_of_sound_m_s: float = 343.2
    srp_height_mm: float = 40.0

    def validate(self, source: str | None = None) -> NetworkConfig:
        """Raise :class:`InvalidInputError` if the fields are inconsistent."""
        n = len(self.conv_channels)
        if self.n_channels < 1:
            raise InvalidInputError(source, "n_channels", ">= 1", str(self.n_channels))
        if self.input_length_samples < 64:
            raise InvalidInputError(
                source, "input_length_samples", ">= 64", str(self.input_length_samples)
            )
        for field in ("conv_strides", "conv_downsample"):
            value = getattr(self, field)
            if value and len(value) != n:
                raise InvalidInputError(
                    source, field, f"empty or {n} values (one per conv block)", str(value)
                )
        if n == 0 and self.gcc_max_lag_samples <= 0 and self.srp_resolution_mm <= 0:
            raise InvalidInputError(
                source,
                "conv_channels / gcc_max_lag_samples",
                "a raw branch, a GCC-PHAT branch or an SRP branch",
                "neither",
            )
        if self.gcc_max_lag_samples and self.n_channels < 2:
            raise InvalidInputError(source, "n_channels", ">= 2 for GCC-PHAT", "1")
        if self.gcc_max_lag_samples >= self.input_length_samples:
            raise InvalidInputError(
                source,
                "gcc_max_lag_samples",
                f"< input_length_samples ({self.input_length_samples})",
                str(self.gcc_max_lag_samples),
            )
        if self.gcc_reader not in ("softargmax", "cnn"):
            raise InvalidInputError(
                source, "gcc_reader", "softargmax or cnn", repr(self.gcc_reader)
            )
        if self.gcc_strides and len(self.gcc_strides) != len(self.gcc_channels):
            raise InvalidInputError(
                source,
                "gcc_strides",
                f"empty or {len(self.gcc_channels)} values (one per gcc_channels entry)",
                str(self.gcc_strides),
            )
        if self.srp_resolution_mm < 0:
            raise InvalidInputError(
                source, "srp_resolution_mm", ">= 0 (0: no SRP branch)", str(self.srp_resolution_mm)
            )
        mics = self.mic_positions_mm
        if mics and (len(mics) != self.n_channels or any(len(m) != 3 for m in mics)):
            raise InvalidInputError(
                source,
                "mic_positions_mm",
                f"empty or {self.n_channels} (x, y, z) rows (n_channels)",
                str(mics),
            )
        return self


PAPER = NetworkConfig(
    name="paper",
    conv_channels=(32, 32, 64, 64, 128, 128, 256, 256, 512, 512),
    conv_kernel_size=33,
    conv_dilation=1,
)

FAST = NetworkConfig(
    name="fast",
    gcc_max_lag_samples=128,
    gcc_channels=(64, 64, 128, 128),
    gcc_kernel_size=7,
    gcc_reader="cnn",
    energy_features=True,
    head_hidden=(256,),
    srp_resolution_mm=5.0,
    srp_channels=(8, 8),
)

SRP = NetworkConfig(
    name="srp",
    srp_resolution_mm=5.0,
    srp_channels=(8, 8),
    head_hidden=(32,),
)

GCC = NetworkConfig(
    name="gcc",
    gcc_max_lag_samples=256,
    gcc_channels=(32, 32, 64, 64),
    gcc_kernel_size=7,
    gcc_reader="cnn",
    energy_features=True,
    head_hidden=(256,),
)

TINY = NetworkConfig(
    name="tiny",
    gcc_max_lag_samples=320,
    gcc_channels=(8,),
    gcc_kernel_size=9,
    gcc_heads=2,
    energy_features=True,
    head_hidden=(64,),
)

#: The presets by name.
PRESETS: dict[str, NetworkConfig] = {
    "paper": PAPER, "fast": FAST, "gcc": GCC, "srp": SRP, "tiny": TINY
}  # fmt: skip


def get_preset(name: str, **overrides) -> NetworkConfig:
    """Return a copy of the preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise InvalidInputError(None, "preset", f"one of {sorted(PRESETS)}", repr(name))
    return PRESETS[name].replace(**overrides).validate()
