"""Trajectories: a robot's random walk and animals that alternate resting and running.

Positions are (x, y) in mm in the arena frame; headings are radians (0 = +x,
counter-clockwise). Walls reflect the walker, so it stays ``margin_mm`` inside.
"""

from __future__ import annotations

import numpy as np

from napari_gerbil.errors import InvalidInputError


def _reflect(value: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold positions back inside [-limit, limit]; returns (positions, flipped mask)."""
    out = value.copy()
    flipped = np.zeros(value.shape, bool)
    for _ in range(4):
        hi, lo = out > limit, out < -limit
        out = np.where(hi, 2 * limit - out, np.where(lo, -2 * limit - out, out))
        flipped ^= hi | lo
    return np.clip(out, -limit, limit), flipped


def random_walk(
    n_steps: int,
    dt_s: float,
    half_extent_mm: np.ndarray,
    rng: np.random.Generator,
    speed_mm_s: float = 80.0,
    turn_sd_rad_s: float = 2.0,
    margin_mm: float = 30.0,
    rest_prob_s: float = 0.0,
    start_mm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Correlated random walk with reflecting walls and optional resting bouts.

    Parameters
    ----------
    n_steps
        Number of samples of the trajectory.
    dt_s
        Time between samples.
    half_extent_mm
        (2,) half length and half width of the floor.
    speed_mm_s
        Typical running speed (each bout draws its own around it).
    turn_sd_rad_s
        Heading diffusion (radians per sqrt(second)).
    rest_prob_s
        Rate (per second) of switching between running and resting; 0 = never rests.

    Returns
    -------
    (positions_mm (n_steps, 2), headings_rad (n_steps,))
    """
    if n_steps < 1 or dt_s <= 0:
        raise InvalidInputError(None, "n_steps/dt_s", ">= 1 and > 0", f"{n_steps}, {dt_s}")
    limit = np.asarray(half_extent_mm, dtype=float) - margin_mm
    if (limit <= 0).any():
        raise InvalidInputError(None, "margin_mm", "smaller than half the floor", str(margin_mm))
    pos = np.empty((n_steps, 2))
    head = np.empty(n_steps)
    p = rng.uniform(-limit, limit) if start_mm is None else np.asarray(start_mm, float)
    h = rng.uniform(-np.pi, np.pi)
    running, speed = True, speed_mm_s
    sd = turn_sd_rad_s * np.sqrt(dt_s)
    for i in range(n_steps):
        if rest_prob_s > 0 and rng.random() < rest_prob_s * dt_s:
            running = not running
            speed = speed_mm_s * rng.uniform(0.5, 1.5)
        h += rng.normal(0.0, sd * (1.0 if running else 0.3))
        if running:
            step = speed * dt_s * np.array([np.cos(h), np.sin(h)])
            p, flipped = _reflect(p + step, limit)
            if flipped[0]:
                h = np.pi - h
            if flipped[1]:
                h = -h
        pos[i] = p
        head[i] = np.angle(np.exp(1j * h))
    return pos, head
