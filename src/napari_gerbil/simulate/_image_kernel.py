"""The CPU kernel of the image-source renderer: one fused loop over calls, mics and images.

:mod:`napari_gerbil.simulate.render` holds the physics and its torch version (GPUs);
this compiled loop does the same sum on a CPU without the large temporary arrays
(about 10x faster there). Compiled on first use and cached on disk by numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, fastmath=True, nogil=True)
def accumulate_images(  # noqa: PLR0913 - a flat kernel signature is the point
    sources_m: np.ndarray,
    headings_rad: np.ndarray,
    directional: np.ndarray,
    mics_m: np.ndarray,
    mic_directions: np.ndarray,
    mic_pattern_p: float,
    source_gain: np.ndarray,
    dims_m: np.ndarray,
    axis_n: np.ndarray,
    axis_sign: np.ndarray,
    axis_index: np.ndarray,
    reflection: np.ndarray,
    n_specular: int,
    n_coherent: int,
    taps: int,
    samples_per_m: float,
    pre_samples: int,
    end_samples: int,
    air_gain: np.ndarray,
    out: np.ndarray,
) -> None:
    """Add every image's arrival to ``out`` (n_src, n_mics, n_bands, length), in place.

    ``directional[i]`` says whether source i radiates with its gain table
    ``source_gain[i]`` (n_cos, n_bands; rows uniform in the cosine of the angle from
    its heading, -1 .. 1) facing ``headings_rad[i]`` (finite values only: fastmath
    assumes no NaN); other sources are omnidirectional.

    Images ``< n_specular`` get a Hann-windowed sinc fractional delay of ``taps``
    samples; images ``< n_coherent`` the nearest sample. Gains: band reflection
    factors x microphone and source patterns / distance.
    """
    n_src, n_mics = out.shape[0], out.shape[1]
    n_bands = out.shape[2]
    n_cos = source_gain.shape[1]
    band_gain = np.ones(n_bands)  # the source's gain towards the current image, per band
    half = taps // 2
    n_axis = len(axis_n)
    offset = np.empty((3, n_axis))
    length = out.shape[3]
    scratch = np.zeros((length, n_bands), np.float32)  # one response, bands contiguous
    for i in range(n_src):
        face_x = math.cos(headings_rad[i])
        face_y = math.sin(headings_rad[i])
        if not directional[i]:
            band_gain[:] = 1.0
        for m in range(n_mics):
            # mic -> image offset along each axis, for each 1-D image choice
            for a in range(3):
                for j in range(n_axis):
                    offset[a, j] = (
                        2.0 * axis_n[j] * dims_m[a] + axis_sign[j] * sources_m[i, a] - mics_m[m, a]
                    )
            scratch[:] = 0.0
            for k in range(n_coherent):
                ax, ay, az = axis_index[k, 0], axis_index[k, 1], axis_index[k, 2]
                dx, dy, dz = offset[0, ax], offset[1, ay], offset[2, az]
                dist = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-3)
                gain = 1.0 / dist
                if mic_pattern_p < 1.0:
                    cos_m = (
                        dx * mic_directions[m, 0]
                        + dy * mic_directions[m, 1]
                        + dz * mic_directions[m, 2]
                    ) / dist
                    gain *= mic_pattern_p + (1.0 - mic_pattern_p) * cos_m
                if directional[i]:
                    cos_s = -(dx * axis_sign[ax] * face_x + dy * axis_sign[ay] * face_y) / dist
                    u = min(max((cos_s + 1.0) * 0.5 * (n_cos - 1), 0.0), n_cos - 1.0)
                    jc = min(int(u), n_cos - 2)
                    f = u - jc
                    for b in range(n_bands):
                        lo, hi = source_gain[i, jc, b], source_gain[i, jc + 1, b]
                        band_gain[b] = lo * (1.0 - f) + hi * f
                delay = dist * samples_per_m
                if k < n_specular:
                    base = math.floor(delay)
                    frac = delay - base
                    for t in range(taps):
                        pos = int(base) + t - half + 1 + pre_samples
                        if pos < 0 or pos >= end_samples:
                            continue
                        x = t - half + 1 - frac
                        sinc = 1.0 if x == 0.0 else math.sin(math.pi * x) / (math.pi * x)
                        w = sinc * 0.5 * (1.0 + math.cos(math.pi * x / half)) * gain
                        for b in range(n_bands):
                            scratch[pos, b] += (
                                w * reflection[k, b] * air_gain[pos, b] * band_gain[b]
                            )
                else:
                    pos = int(math.floor(delay + 0.5)) + pre_samples
                    if pos < end_samples:
                        for b in range(n_bands):
                            scratch[pos, b] += (
                                gain * reflection[k, b] * air_gain[pos, b] * band_gain[b]
                            )
            for t in range(length):
                for b in range(n_bands):
                    out[i, m, b, t] = scratch[t, b]
