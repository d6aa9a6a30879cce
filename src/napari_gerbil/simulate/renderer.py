"""A vectorized image-source renderer for shoebox cages, in torch (CPU or GPU).

Why not pyroomacoustics for every call: it computes one response at a time (about 47
responses/s here at reflection order 20), which caps training data at a few thousand
positions. A shoebox's image sources are closed form, so here a whole batch of
source positions is rendered at once:

1. **Specular part** (reflection order <= ``specular_order``): every image source of
   every call, with its per-band amplitude ``prod R_s(f)^hits_s`` (pressure
   reflection ``R = sqrt(1 - absorption)``, energy share ``1 - scattering`` kept
   specular), ISO 9613-1 air absorption ``exp(-a(f) d)``, spherical spreading
   ``1 / (4 pi d)``, the microphone's cardioid-family pattern and the caller's
   per-band directivity (:mod:`napari_gerbil.simulate.caller`), is
   placed with a Hann-windowed sinc fractional delay (exact arrival times) into one
   buffer per frequency band.
2. **Diffuse part**: Gaussian noise with a per-band energy envelope (from one
   representative source of the batch: the late field hardly depends on where the
   source is), the statistical late reverberation of hybrid room-acoustics models.
   The scattered share of every reflection leaves the image's path and feeds a
   diffuse field: the images at distance ``c t`` sample the rays at time ``t``, so
   their mean scattered share gives the energy scattered by then; that energy then
   decays as a diffuse field does (Eyring: ``exp(c S ln(1 - mean absorption) t /
   4V)``) instead of along the image's path. Images of orders above
   ``coherent_order`` add their specular energy to the noise.
3. The band buffers are combined in the frequency domain with a partition of unity of
   smooth (log-frequency hat) band filters, times the microphones' zero-phase
   high-pass, then convolved with the stimuli by FFT.

Frame: arena mm (origin at the floor centre); internally metres from the cage corner,
like pyroomacoustics. Sample 0 of a response is the emission time.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.cage import BAND_CENTRES_HZ
from napari_gerbil.simulate.air import air_absorption_nepers_per_m
from napari_gerbil.simulate.caller import caller_gain_tables, mean_square_gain
from napari_gerbil.simulate.room import RenderConfig, Room
from napari_gerbil.simulate.shoebox import (
    RENDER_BANDS_HZ,
    band_filters,
    eyring_rate_per_s,
    fast_fft_size,
    highpass_power,
    image_table,
    interp_log,
)


class ImageSourceRenderer:
    """Render impulse responses and recordings of a batch of sources in one room.

    Parameters
    ----------
    room
        Geometry and acoustics.
    sample_rate_hz
        Sampling rate.
    config
        Orders, lengths, filters.
    device
        torch device (``"cpu"`` or ``"cuda"``).
    kernel
        How the image sum runs on a CPU: ``compiled`` (a numba loop, fastest) or
        ``torch`` (the tensor code GPUs use; for cross-checks).
    """

    def __init__(
        self,
        room: Room,
        sample_rate_hz: float = 125000.0,
        config: RenderConfig | None = None,
        device: str | torch.device = "cpu",
        kernel: str = "compiled",
    ) -> None:
        if kernel not in ("compiled", "torch"):
            raise InvalidInputError(None, "kernel", "'compiled' or 'torch'", repr(kernel))
        #: ``compiled`` (numba loop, CPU only) or ``torch`` (any device).
        self.kernel = kernel
        self.room = room
        self.config = config or RenderConfig()
        self.fs = float(sample_rate_hz)
        self.device = torch.device(device)
        cfg = self.config
        axis_table, axis_index, hits = image_table(cfg.max_order)
        centres = np.asarray(RENDER_BANDS_HZ)
        self.n_bands = len(centres)
        alpha = np.stack(
            [interp_log(centres, np.asarray(BAND_CENTRES_HZ), a) for a in room.absorption]
        )
        log_r = 0.5 * np.log(np.clip(1.0 - alpha, 1e-12, 1.0))
        order = hits.sum(axis=1)
        self.n_images = len(order)
        self.n_specular = int((order <= cfg.specular_order).sum())
        self.n_coherent = int((order <= cfg.coherent_order).sum())
        if (alpha >= 1.0).all():  # anechoic: only the direct sound exists
            self.n_specular = self.n_coherent = 1
        self._axis_n = torch.as_tensor(axis_table[:, 0], dtype=torch.float32, device=self.device)
        self._axis_sign = torch.as_tensor(axis_table[:, 1], dtype=torch.float32, device=self.device)
        self._axis_index = torch.as_tensor(axis_index, dtype=torch.long, device=self.device)
        self._order = torch.as_tensor(order, dtype=torch.float32, device=self.device)
        # per-band pressure reflection factor of every image: prod_s R_s(f)^hits_s, with
        # R = sqrt(1 - absorption) and the energy share 1 - scattering kept specular
        reflection = np.exp(hits.astype(np.float64) @ log_r)  # (n_images, n_bands)
        self._energy_reflection = torch.as_tensor(
            reflection**2, dtype=torch.float32, device=self.device
        )
        specular = reflection * np.sqrt((1.0 - room.scattering) ** order)[:, None]
        self._reflection_np = np.ascontiguousarray(specular[: self.n_coherent], dtype=np.float32)
        self._reflection = torch.as_tensor(self._reflection_np, device=self.device)
        # specular energy of incoherent orders, rendered as noise
        self._noise_share = torch.as_tensor(
            (1.0 - room.scattering) ** order, dtype=torch.float32, device=self.device
        )
        # per-reflection (geometric mean) energy reflection of each image's path
        with np.errstate(divide="ignore", invalid="ignore"):
            self._mean_reflection = np.where(
                order[:, None] > 0, reflection ** (2.0 / np.maximum(order, 1))[:, None], 1.0
            )
        self._diffuse_decay_per_s = eyring_rate_per_s(room.dims_m, alpha, room.speed_m_s)
        air = (
            air_absorption_nepers_per_m(
                centres, temperature_c=room.temperature_c, humidity_pct=room.humidity_pct
            )
            if cfg.air_absorption
            else np.zeros_like(centres)
        )
        self.c = room.speed_m_s
        self.rir_samples = int(round(cfg.max_rir_s * self.fs))
        self.pre_samples = 128  # room before t = 0 for sinc taps and zero-phase filters
        self.buffer_samples = fast_fft_size(self.rir_samples + 2 * self.pre_samples)
        # air absorption as a function of arrival time: a path of c t metres
        t_s = np.clip(np.arange(self.buffer_samples) - self.pre_samples, 0, None) / self.fs
        air_gain = np.exp(-np.outer(t_s * self.c, air))  # (buffer, n_bands), stored transposed
        self._air_gain_np = np.ascontiguousarray(air_gain, dtype=np.float32)  # (buffer, n_bands)
        self._air_gain = torch.as_tensor(air_gain.T, dtype=torch.float32, device=self.device)
        freqs = np.fft.rfftfreq(self.buffer_samples, 1.0 / self.fs)
        filters = band_filters(freqs) * highpass_power(freqs, cfg.highpass_hz)[None, :]
        self._band_filters = torch.as_tensor(filters, dtype=torch.complex64, device=self.device)
        self._mics = torch.as_tensor(room.mics_m, dtype=torch.float32, device=self.device)
        self._mic_dirs = torch.as_tensor(
            room.mic_directions, dtype=torch.float32, device=self.device
        )
        self._mic_gains = torch.as_tensor(room.mic_gains, dtype=torch.float32, device=self.device)
        self._dims = torch.as_tensor(room.dims_m, dtype=torch.float32, device=self.device)
        half = cfg.fractional_delay_taps // 2
        self._tap_offsets = torch.arange(
            -half + 1, half + 1, device=self.device, dtype=torch.float32
        )

    @property
    def n_mics(self) -> int:
        """Number of microphones."""
        return self.room.n_mics

    # -- geometry -----------------------------------------------------------------------

    def _check_sources(self, sources_mm: np.ndarray) -> np.ndarray:
        src = np.asarray(sources_mm, dtype=float).reshape(-1, 3)
        room_m = self.room.to_room_m(src)
        if not np.isfinite(room_m).all() or ((room_m <= 0) | (room_m >= self.room.dims_m)).any():
            bad = int(
                np.argmax(
                    ((room_m <= 0) | (room_m >= self.room.dims_m) | ~np.isfinite(room_m)).any(1)
                )
            )
            raise InvalidInputError(
                None,
                "source_mm",
                "points strictly inside the cage",
                f"{np.round(src[bad], 1).tolist()}",
            )
        return room_m

    def _image_gains(
        self,
        src_m: torch.Tensor,
        headings_rad: torch.Tensor,
        sel: slice,
        tables: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Delays in samples (n_src, n_img, n_mics) and gains (n_src, n_img, n_mics, n_bands).

        Gains hold the microphone pattern / distance and, for sources with a heading,
        their caller gain ``tables`` (n_src, n_cos, n_bands) towards each image.
        Geometry is separable per axis: the few distinct 1-D image coordinates are
        computed once and gathered. Band reflection factors and air absorption are
        applied elsewhere.
        """
        index = self._axis_index[sel]  # (n_img, 3)
        # (n_src, n_axis, n_mics) mic -> image offset along each axis
        offsets = []
        for a in range(3):
            coord = 2.0 * self._axis_n * self._dims[a] + self._axis_sign * src_m[:, a : a + 1]
            offsets.append(coord[:, :, None] - self._mics[None, None, :, a])

        def gather(table: torch.Tensor, a: int) -> torch.Tensor:
            return table.index_select(1, index[:, a])  # (n_src, n_img, n_mics)

        squared = gather(offsets[0] ** 2, 0) + gather(offsets[1] ** 2, 1)
        dist = torch.sqrt(squared + gather(offsets[2] ** 2, 2)).clamp_min(1e-3)
        gain = 1.0 / dist  # 1/d spreading, as pyroomacoustics
        p = self.room.mic_pattern_p
        if p < 1.0:
            cos = sum(gather(offsets[a] * self._mic_dirs[:, a], a) for a in range(3)) / dist
            gain = gain * (p + (1.0 - p) * cos)
        gain = gain[..., None]  # (n_src, n_img, n_mics, 1): bands broadcast
        directional = torch.isfinite(headings_rad)
        if tables is not None and bool(directional.any()):
            h = torch.nan_to_num(headings_rad)
            facing = (torch.cos(h), torch.sin(h))
            # leaving the real source towards the mic: the image -> mic direction mirrored
            cos_s = (
                sum(
                    gather(
                        -offsets[a] * self._axis_sign[None, :, None] * facing[a][:, None, None], a
                    )
                    for a in range(2)
                )
                / dist
            )
            n_cos = tables.shape[1]
            u = ((cos_s + 1.0) * 0.5 * (n_cos - 1)).clamp(0.0, n_cos - 1.0)
            lo = u.floor().long().clamp_max(n_cos - 2)
            frac = (u - lo)[..., None]
            rows = tables[:, None, :, :]  # (n_src, 1, n_cos, n_bands)

            def pick(index: torch.Tensor) -> torch.Tensor:
                flat = index.reshape(len(index), 1, -1, 1).expand(-1, 1, -1, tables.shape[2])
                return torch.gather(rows, 2, flat).reshape(*index.shape, tables.shape[2])

            src_gain = pick(lo) * (1.0 - frac) + pick(lo + 1) * frac
            gain = gain * torch.where(directional[:, None, None, None], src_gain, 1.0)
        return dist * (self.fs / self.c), gain

    # -- responses ----------------------------------------------------------------------

    def _band_buffers(
        self,
        src_m: torch.Tensor,
        headings_rad: torch.Tensor,
        tables: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """(n_src, n_mics, n_bands, buffer) band-wise responses, t = 0 at ``pre_samples``.

        ``tables`` (n_src, n_cos, n_bands): each source's caller gain (used where its
        heading is finite).
        """
        n_src, n_mics = len(src_m), self.n_mics
        length = self.buffer_samples
        if self.device.type == "cpu" and self.kernel == "compiled":
            buf = self._accumulate_compiled(src_m, headings_rad, tables)  # air included
        else:
            buf = self._accumulate_torch(src_m, headings_rad, tables) * self._air_gain
        # (n_mics, B, length)
        envelope = self._diffuse_envelope(src_m[:1], headings_rad[:1], tables[:1])
        if envelope is not None:
            noise = torch.randn(n_src, n_mics, 1, length, generator=generator, device=self.device)
            buf += (envelope * self._air_gain)[None] * noise
        return buf  # (n_src, n_mics, n_bands, length)

    def _accumulate_compiled(
        self, src_m: torch.Tensor, headings_rad: torch.Tensor, tables: torch.Tensor
    ) -> torch.Tensor:
        """Image sum by the compiled CPU kernel: (n_src, n_mics, n_bands, buffer)."""
        from napari_gerbil.simulate._image_kernel import accumulate_images

        room = self.room
        out = np.zeros((len(src_m), self.n_mics, self.n_bands, self.buffer_samples), np.float32)
        accumulate_images(
            src_m.numpy().astype(np.float64),
            np.nan_to_num(headings_rad.numpy().astype(np.float64)),
            np.isfinite(headings_rad.numpy()),
            np.ascontiguousarray(room.mics_m, np.float64),
            np.ascontiguousarray(room.mic_directions, np.float64),
            float(room.mic_pattern_p),
            np.ascontiguousarray(tables.cpu().numpy(), np.float32),
            np.ascontiguousarray(room.dims_m, np.float64),
            self._axis_n.numpy().astype(np.float64),
            self._axis_sign.numpy().astype(np.float64),
            self._axis_index.numpy(),
            self._reflection_np,
            self.n_specular,
            self.n_coherent,
            self.config.fractional_delay_taps,
            self.fs / self.c,
            self.pre_samples,
            self.pre_samples + self.rir_samples,
            self._air_gain_np,
            out,
        )
        return torch.from_numpy(out)

    def _accumulate_torch(
        self, src_m: torch.Tensor, headings_rad: torch.Tensor, tables: torch.Tensor
    ) -> torch.Tensor:
        """Image sum with torch tensors (GPUs): (n_src, n_mics, n_bands, buffer)."""
        n_src, n_mics, n_bands, length = len(src_m), self.n_mics, self.n_bands, self.buffer_samples
        buf = torch.zeros(n_src * n_mics * length, n_bands, device=self.device)
        mic_rows = (
            torch.arange(n_src, device=self.device)[:, None, None] * n_mics
            + torch.arange(n_mics, device=self.device)[None, None, :]
        ) * length  # (n_src, 1, n_mics) first row of each response
        end = self.pre_samples + self.rir_samples
        spec = slice(0, self.n_specular)
        delay, gain = self._image_gains(src_m, headings_rad, spec, tables)
        base = torch.floor(delay)
        taps = self._tap_offsets  # (T,)
        x = taps - (delay - base)[..., None]  # sample offset from the true delay
        half = self.config.fractional_delay_taps / 2.0
        weights = torch.sinc(x) * (0.5 * (1.0 + torch.cos(math.pi * x / half)))
        pos = (base[..., None] + taps + self.pre_samples).long()  # (n_src, n_img, n_mics, T)
        weights = weights * ((pos >= 0) & (pos < end))  # nothing outside the response
        rows = mic_rows[..., None] + pos.clamp(0, length - 1)
        values = (
            weights[..., None]
            * gain[:, :, :, None, :]
            * self._reflection[spec][None, :, None, None, :]
        )
        buf.index_add_(0, rows.reshape(-1), values.reshape(-1, n_bands))
        if self.n_coherent > self.n_specular:
            late = slice(self.n_specular, self.n_coherent)
            delay, gain = self._image_gains(src_m, headings_rad, late, tables)
            pos = torch.floor(delay + 0.5).long() + self.pre_samples
            gain = gain * (pos < end)[..., None]
            rows = mic_rows + pos.clamp(0, length - 1)
            values = (gain * self._reflection[late][None, :, None, :]).expand(*gain.shape[:3], -1)
            buf.index_add_(0, rows.reshape(-1), values.reshape(-1, n_bands))
        return buf.view(n_src, n_mics, length, n_bands).permute(0, 1, 3, 2)

    def _diffuse_envelope(
        self, src_m: torch.Tensor, headings_rad: torch.Tensor, tables: torch.Tensor
    ) -> torch.Tensor | None:
        """(n_mics, n_bands, buffer) RMS envelope of the noise tail (None if there is none).

        The tail holds the diffuse field fed by the scattered share of every reflection
        (:meth:`_scattered_energy`) and the specular energy of orders above
        ``coherent_order``.
        """
        binw = self.config.tail_bin_samples
        n_bins = self.buffer_samples // binw
        hist = torch.zeros(self.n_mics, n_bins, self.n_bands, device=self.device)
        last_bin = (self.rir_samples + self.pre_samples) // binw
        if self.n_coherent < self.n_images:
            sel = slice(self.n_coherent, self.n_images)
            delay, gain = self._image_gains(src_m, headings_rad, sel, tables)
            share = self._energy_reflection[sel] * self._noise_share[sel, None]
            energy = gain[0] ** 2 * share[:, None, :]
            bins = (delay[0] / binw).long()  # (n, M)
            keep = bins < last_bin
            mic_idx = torch.arange(self.n_mics, device=self.device)[None, :].expand_as(bins)
            hist.view(-1, self.n_bands).index_add_(0, (mic_idx * n_bins + bins)[keep], energy[keep])
        if self.room.scattering > 0 and self.n_images > 1:
            source_ms = (
                mean_square_gain(tables[0].cpu().numpy())
                if bool(torch.isfinite(headings_rad[0]))
                else None
            )
            hist += self._scattered_energy(src_m, n_bins, source_ms)[None]
        hist[:, last_bin:] = 0.0
        if not bool((hist > 0).any()):
            return None
        # energy per bin -> RMS per sample; linear interpolation between bin centres
        rms = torch.sqrt(hist / binw)  # (M, n_bins, B)
        t = (torch.arange(self.buffer_samples, device=self.device) - self.pre_samples) / binw - 0.5
        lo = t.floor().clamp(0, n_bins - 1).long()
        hi = (lo + 1).clamp_max(n_bins - 1)
        w = (t - t.floor()).clamp(0, 1)[:, None]
        env = rms[:, lo] * (1 - w) + rms[:, hi] * w
        env[:, : self.pre_samples] = 0.0
        env[:, self.pre_samples + self.rir_samples :] = 0.0
        return env.permute(0, 2, 1)

    def _scattered_energy(
        self, src_m: torch.Tensor, n_bins: int, source_ms: np.ndarray | None
    ) -> torch.Tensor:
        """(n_bins, n_bands) diffuse-field energy per time bin at an omni-equivalent mic.

        The images at distance ``r`` from a microphone, each weighted ``V / (4 pi r^2
        dr)``, sample the rays that have travelled ``r``: their mean cumulative
        scattered share (every reflection ``k`` of a path with per-reflection energy
        reflection ``rho`` scatters ``s rho^k (1 - s)^(k - 1)``) is the energy
        scattered by ``t = r / c``. Its increments feed a diffuse field that decays at
        the Eyring rate; its energy density reaches a microphone as ``4 pi c / V``
        (the image sources' ``1 / d`` convention) times the microphone's (and a
        directional source's, ``source_ms`` per band) mean-square pattern. Beyond the
        distance where the image set stops being complete (``max_order``), the scattered
        share is held.
        """
        room, cfg = self.room, self.config
        s = float(room.scattering)
        binw = cfg.tail_bin_samples
        sel = slice(1, self.n_images)  # every reflection; the direct path never scatters
        nan = torch.full((1,), float("nan"), device=self.device)
        delay, _ = self._image_gains(src_m[:1], nan, sel)
        order = self._order[sel].double()[:, None]
        rho = torch.as_tensor(self._mean_reflection[sel], device=self.device).double()
        q = rho * (1.0 - s)
        cumulative = s * rho * (1.0 - q**order) / (1.0 - q).clamp_min(1e-9)  # (n, B)
        volume = float(np.prod(room.dims_m))
        bin_m = binw * self.c / self.fs
        r_m = (delay[0].double() * self.c / self.fs).clamp_min(bin_m)  # (n, M)
        weight = volume / (4.0 * math.pi * r_m**2 * bin_m)
        bins = (delay[0] / binw).long().clamp_max(n_bins - 1)
        shells = torch.zeros(
            self.n_mics * n_bins, self.n_bands, dtype=torch.float64, device=self.device
        )
        mic_idx = torch.arange(self.n_mics, device=self.device)[None, :].expand_as(bins)
        values = weight[..., None] * cumulative[:, None, :]  # (n, M, B)
        rows = (mic_idx * n_bins + bins).reshape(-1)
        shells.index_add_(0, rows, values.reshape(-1, self.n_bands))
        scattered = shells.view(self.n_mics, n_bins, self.n_bands).mean(dim=0)  # (n_bins, B)
        # the image set is complete up to the shortest path of order max_order + 1
        complete_m = (cfg.max_order + 1) / float(np.sqrt((1.0 / room.dims_m**2).sum()))
        complete_bin = int((complete_m - float(room.dims_m.max())) / bin_m)
        if 1 <= complete_bin < n_bins:
            scattered[complete_bin:] = scattered[complete_bin - 1]
        scattered = torch.cummax(scattered, dim=0).values
        injected = torch.diff(scattered, dim=0, prepend=torch.zeros_like(scattered[:1]))
        keep = torch.as_tensor(
            np.exp(-self._diffuse_decay_per_s * binw / self.fs), device=self.device
        )
        field = torch.zeros_like(injected)
        level = torch.zeros(self.n_bands, dtype=torch.float64, device=self.device)
        for k in range(n_bins):
            level = level * keep + injected[k]
            field[k] = level
        p = room.mic_pattern_p
        pattern = np.full(self.n_bands, p**2 + (1.0 - p) ** 2 / 3.0)  # mean square, sphere
        if source_ms is not None:
            pattern = pattern * source_ms
        pattern_t = torch.as_tensor(pattern, dtype=torch.float64, device=self.device)
        scale = 4.0 * math.pi * self.c / (self.fs * volume) * binw * pattern_t
        return (field * scale).to(torch.float32).to(self.device)

    def _combine(self, buf: torch.Tensor) -> torch.Tensor:
        """Band buffers -> (n_src, n_mics, buffer) responses (t = 0 at ``pre_samples``)."""
        spec = torch.fft.rfft(buf, dim=-1)  # (N, M, B, F)
        total = (spec * self._band_filters[None, None]).sum(dim=2)
        h = torch.fft.irfft(total, n=self.buffer_samples, dim=-1)
        return h * self._mic_gains[None, :, None]

    def rirs(
        self,
        sources_mm: np.ndarray,
        headings_rad: np.ndarray | None = None,
        seed: int | None = 0,
    ) -> np.ndarray:
        """Impulse responses (n_src, rir_samples, n_mics) float32; sample 0 = emission.

        Parameters
        ----------
        sources_mm
            (n_src, 3) source positions, arena frame.
        headings_rad
            (n_src,) horizontal direction each directional source faces (NaN = omni).
        seed
            Seed of the diffuse tail's noise.
        """
        h = self._rir_tensor(sources_mm, headings_rad, seed)
        out = h[..., self.pre_samples : self.pre_samples + self.rir_samples]
        return out.permute(0, 2, 1).cpu().numpy()

    def _rir_tensor(self, sources_mm, headings_rad, seed) -> torch.Tensor:
        src = self._check_sources(sources_mm)
        n = len(src)
        heads = (
            np.full(n, np.nan)
            if headings_rad is None or self.config.caller == "omni"
            else np.asarray(headings_rad, float).reshape(n)
        )
        # each source's caller: a pure function of the seed (heads and mouths vary)
        tables = caller_gain_tables(
            self.config.caller,
            n,
            RENDER_BANDS_HZ,
            np.random.default_rng([0 if seed is None else int(seed) % (2**63), 0xCA11]),
            self.c,
            self.config.source_pattern_p,
        )
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(seed) % (2**63))
        src_t = torch.as_tensor(src, dtype=torch.float32, device=self.device)
        heads_t = torch.as_tensor(heads, dtype=torch.float32, device=self.device)
        tables_t = torch.as_tensor(tables, device=self.device)
        return self._combine(self._band_buffers(src_t, heads_t, tables_t, gen))

    def expected_energy_spectra(self, sources_mm: np.ndarray, n_fft: int) -> np.ndarray:
        """(n_src, n_fft // 2 + 1, n_mics) expected ``|H(f)|^2`` of omnidirectional sources.

        The deterministic part (image sources) exactly, plus the diffuse tail's expected
        energy: with unit white noise shared by the bands, ``E|T(f)|^2 = sum_bc F_b(f)
        F_c(f) sum_t e_b(t) e_c(t)`` for band filters ``F`` and envelopes ``e``. A fit
        that compares single rendered draws with a recording prefers settings with less
        randomness (their draws stray less); the expectation has none.
        """
        src = torch.as_tensor(
            self._check_sources(sources_mm), dtype=torch.float32, device=self.device
        )
        n = len(src)
        heads = torch.full((n,), float("nan"), device=self.device)
        tables = torch.as_tensor(
            caller_gain_tables("omni", n, RENDER_BANDS_HZ, np.random.default_rng(0), self.c),
            device=self.device,
        )
        if self.device.type == "cpu" and self.kernel == "compiled":
            buf = self._accumulate_compiled(src, heads, tables)
        else:
            buf = self._accumulate_torch(src, heads, tables) * self._air_gain
        window = slice(self.pre_samples, self.pre_samples + self.rir_samples)
        h = self._combine(buf)[..., window]  # (n_src, n_mics, rir_samples)
        energy = torch.abs(torch.fft.rfft(h, n=n_fft, dim=-1)) ** 2  # (n_src, M, F)
        envelope = self._diffuse_envelope(src[:1], heads[:1], tables[:1])
        if envelope is not None:
            e = (envelope * self._air_gain)[..., window]  # (M, B, T)
            gram = torch.einsum("mbt,mct->mbc", e, e)  # (M, B, B)
            freqs = np.fft.rfftfreq(n_fft, 1.0 / self.fs)
            filters = band_filters(freqs) * highpass_power(freqs, self.config.highpass_hz)
            f_t = torch.as_tensor(filters, dtype=torch.float32, device=self.device)  # (B, F)
            tail = torch.einsum("bf,cf,mbc->mf", f_t, f_t, gram) * self._mic_gains[:, None] ** 2
            energy = energy + tail[None]
        return energy.permute(0, 2, 1).cpu().numpy()

    def render(
        self,
        sources_mm: np.ndarray,
        stimuli: list[np.ndarray],
        headings_rad: np.ndarray | None = None,
        tail_samples: int = 1250,
        seed: int | None = 0,
    ) -> list[np.ndarray]:
        """The microphones' recordings of each stimulus played at its source (no noise).

        Parameters
        ----------
        stimuli
            One (n_i,) waveform per source, emitted at sample 0.
        tail_samples
            Reverberation kept after each stimulus ends.

        Returns
        -------
        list of float32 (n_i + tail_samples, n_mics), sample 0 = emission time.
        """
        if len(stimuli) != len(np.asarray(sources_mm).reshape(-1, 3)):
            raise InvalidInputError(None, "stimuli", "one stimulus per source", f"{len(stimuli)}")
        h = self._rir_tensor(sources_mm, headings_rad, seed)  # (N, M, L) t0 at pre
        lengths = [len(s) for s in stimuli]
        longest = max(lengths)
        n_fft = fast_fft_size(longest + self.buffer_samples)
        stim = torch.zeros(len(stimuli), longest, device=self.device)
        for i, s in enumerate(stimuli):
            stim[i, : len(s)] = torch.as_tensor(np.asarray(s, np.float32), device=self.device)
        y = torch.fft.irfft(
            torch.fft.rfft(h, n=n_fft, dim=-1) * torch.fft.rfft(stim, n=n_fft, dim=-1)[:, None],
            n=n_fft,
            dim=-1,
        )
        start = self.pre_samples
        y_np = y.cpu().numpy()
        return [
            np.ascontiguousarray(y_np[i, :, start : start + n + tail_samples].T, np.float32)
            for i, n in enumerate(lengths)
        ]

    def direct_delay_samples(self, source_mm: np.ndarray) -> np.ndarray:
        """(n_mics,) straight-line travel time from one source to each microphone."""
        src = self.room.to_room_m(np.asarray(source_mm, float).reshape(3))
        return np.linalg.norm(self.room.mics_m - src[None], axis=1) / self.c * self.fs
