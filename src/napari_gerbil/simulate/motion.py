"""Trajectories: a robot's random walk and animals that alternate resting and running.

Positions are (x, y) in mm in the arena frame; headings are radians (0 = +x,
counter-clockwise). Walls reflect the walker, so it stays ``margin_mm`` inside.
"""

from __future__ import annotations

import math

import numpy as np

from napari_gerbil.errors import InvalidInputError


def _reflect_scalar(value: float, limit: float) -> tuple[float, bool]:
    """Fold a coordinate back inside [-limit, limit]; returns (coordinate, flipped)."""
    flipped = False
    for _ in range(4):
        if value > limit:
            value, flipped = 2 * limit - value, not flipped
        elif value < -limit:
            value, flipped = -2 * limit - value, not flipped
        else:
            break
    return min(max(value, -limit), limit), flipped


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
    h = float(rng.uniform(-np.pi, np.pi))
    running, speed = True, speed_mm_s
    sd = turn_sd_rad_s * np.sqrt(dt_s)
    # plain floats in the loop: ~10x faster than 2-element arrays for long walks
    x, y = float(p[0]), float(p[1])
    lim = (float(limit[0]), float(limit[1]))
    for i in range(n_steps):
        if rest_prob_s > 0 and rng.random() < rest_prob_s * dt_s:
            running = not running
            speed = speed_mm_s * rng.uniform(0.5, 1.5)
        h += rng.normal(0.0, sd * (1.0 if running else 0.3))
        if running:
            x, flip_x = _reflect_scalar(x + speed * dt_s * math.cos(h), lim[0])
            y, flip_y = _reflect_scalar(y + speed * dt_s * math.sin(h), lim[1])
            if flip_x:
                h = math.pi - h
            if flip_y:
                h = -h
        pos[i] = x, y
        head[i] = math.atan2(math.sin(h), math.cos(h))
    return pos, head
