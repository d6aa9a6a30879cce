"""How a calling animal radiates: the caller's directivity, per frequency band.

Three callers, one interface (an amplitude gain table over the cosine of the angle
between the animal's heading and the direction of emission, per render band):

``plausible`` (the default)
    The physics of a head: a vibrating cap (the open mouth, radius ``a_m``) on a
    rigid sphere (the head, radius ``a``). The far field is the classic series
    (Morse & Ingard, *Theoretical Acoustics*, 1968, section 7.2; Williams, *Fourier
    Acoustics*, 1999, chapter 6)::

        D(theta, f) = sum_n  u_n (-i)^n P_n(cos theta) / h_n'(k a),
        u_n = (P_{n-1}(x0) - P_{n+1}(x0)) / 2,  u_0 = (1 - x0) / 2,  x0 = cos(asin(a_m / a))

    normalized to the front (``theta = 0``). At 20-70 kHz and a gerbil-sized head
    (radius 7-12 mm) it gives about -3.5 dB at 90 deg, -8 to -14 dB at 135 deg and
    -4 to -8 dB straight behind (the bright spot: sound bends around the head),
    and it is nearly omnidirectional at 5 kHz (``k a < 1``); the mouth narrows the
    beam as frequency rises. No direction is ever silent. Each call draws its head
    and mouth radius from a small grid in the published ranges, so training sees
    the spread of real animals. Only the magnitude is kept (the few-microsecond
    path around the head is ignored).
``cardioid``
    The former engine caller: ``p + (1 - p) cos theta`` at every frequency, with a
    null straight behind when ``p = 0.5``. Harsher than any measured rodent pattern;
    kept as the physics panel's harsh row.
``omni``
    Every direction alike.

Rodent calls are described as "broadly tuned" (strongest ahead, weakest behind,
never zero) in the published measurements of mouse and rat USV directivity; bat and
dolphin emitters show the same narrowing with frequency. docs/simulation.md lists
the sources.
"""

from __future__ import annotations

import functools

import numpy as np

#: The callers a simulation can use.
CALLERS = ("plausible", "cardioid", "omni")
#: Points of the gain tables, uniform in cos(theta) from -1 (behind) to +1 (ahead).
N_COS = 65
#: Grid of head radii (mm) the plausible caller draws from (gerbil heads; mice 7-8).
HEAD_RADII_MM = (7.0, 8.25, 9.5, 10.75, 12.0)
#: Grid of mouth (cap) radii (mm) the plausible caller draws from.
MOUTH_RADII_MM = (0.5, 0.75, 1.0)


def sphere_cap_directivity(
    cos_theta: np.ndarray,
    freqs_hz: np.ndarray,
    head_radius_mm: float,
    mouth_radius_mm: float,
    speed_m_s: float = 343.0,
) -> np.ndarray:
    """Far-field amplitude of a vibrating cap on a rigid sphere, 1 on the front axis.

    Parameters
    ----------
    cos_theta
        (n_angles,) cosine of the angle from the cap's axis (the heading).
    freqs_hz
        (n_freqs,) frequencies.
    head_radius_mm, mouth_radius_mm
        Sphere (head) and cap (mouth) radius; the cap is at most a hemisphere.
    speed_m_s
        Speed of sound.

    Returns
    -------
    (n_freqs, n_angles) gain (linear amplitude).
    """
    from scipy.special import eval_legendre, spherical_jn, spherical_yn

    cos_theta = np.asarray(cos_theta, float)
    freqs = np.atleast_1d(np.asarray(freqs_hz, float))
    x0 = float(np.cos(np.arcsin(min(mouth_radius_mm / head_radius_mm, 1.0))))
    out = np.empty((len(freqs), len(cos_theta)))
    for i, f in enumerate(freqs):
        ka = max(2.0 * np.pi * f / speed_m_s * head_radius_mm / 1000.0, 1e-3)
        n_terms = int(ka) + 25
        total = np.zeros(len(cos_theta), complex)
        front = 0.0j
        for n in range(n_terms):
            dh = spherical_jn(n, ka, derivative=True) + 1j * spherical_yn(n, ka, derivative=True)
            if n == 0:
                u_n = (1.0 - x0) / 2.0
            else:
                u_n = 0.5 * (eval_legendre(n - 1, x0) - eval_legendre(n + 1, x0))
            term = u_n * (-1j) ** n / dh
            total += term * eval_legendre(n, cos_theta)
            front += term  # P_n(1) = 1
        out[i] = np.abs(total) / abs(front)
    return out


@functools.lru_cache(maxsize=64)
def _plausible_table(
    head_radius_mm: float, mouth_radius_mm: float, bands_hz: tuple[float, ...], speed_m_s: float
) -> np.ndarray:
    cos = np.linspace(-1.0, 1.0, N_COS)
    gain = sphere_cap_directivity(cos, np.asarray(bands_hz), head_radius_mm, mouth_radius_mm,
                                  speed_m_s)  # fmt: skip
    return np.ascontiguousarray(gain.T, np.float32)  # (N_COS, n_bands)


def caller_gain_tables(
    caller: str,
    n_sources: int,
    bands_hz: tuple[float, ...],
    rng: np.random.Generator,
    speed_m_s: float = 343.0,
    cardioid_p: float = 0.5,
) -> np.ndarray:
    """(n_sources, N_COS, n_bands) amplitude gain of each source towards each direction.

    Row ``j`` of a table is the gain at ``cos(theta) = -1 + 2 j / (N_COS - 1)``, where
    ``theta`` is the angle between the animal's heading and the emitted ray.

    Parameters
    ----------
    caller
        One of :data:`CALLERS`.
    n_sources
        Sources in the batch; the plausible caller draws a head and mouth per source.
    bands_hz
        Centre of each render band.
    rng
        Draws the plausible caller's head and mouth radius.
    speed_m_s
        Speed of sound (sets ``k a``).
    cardioid_p
        Pattern of the cardioid caller.
    """
    n_bands = len(bands_hz)
    if caller == "omni":
        return np.ones((n_sources, N_COS, n_bands), np.float32)
    if caller == "cardioid":
        cos = np.linspace(-1.0, 1.0, N_COS, dtype=np.float32)
        row = (cardioid_p + (1.0 - cardioid_p) * cos)[:, None]
        return np.ascontiguousarray(np.broadcast_to(row, (n_sources, N_COS, n_bands)), np.float32)
    if caller != "plausible":
        raise ValueError(f"caller must be one of {CALLERS}, not {caller!r}")
    heads = rng.integers(len(HEAD_RADII_MM), size=n_sources)
    mouths = rng.integers(len(MOUTH_RADII_MM), size=n_sources)
    speed = round(float(speed_m_s), 1)
    bands = tuple(float(b) for b in bands_hz)
    return (
        np.stack(
            [
                _plausible_table(HEAD_RADII_MM[h], MOUTH_RADII_MM[m], bands, speed)
                for h, m in zip(heads, mouths, strict=True)
            ]
        )
        if n_sources
        else np.zeros((0, N_COS, n_bands), np.float32)
    )


def mean_square_gain(table: np.ndarray) -> np.ndarray:
    """(n_bands,) mean of the squared gain over the sphere (uniform in cos theta)."""
    return np.mean(np.asarray(table, np.float64) ** 2, axis=-2)
