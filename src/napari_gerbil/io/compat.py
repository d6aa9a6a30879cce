"""Whether data fit a model or another dataset: channels, sample rate, arena size.

One check for every reader and the model loader (:meth:`VCLDataset.check_compatible`,
:meth:`napari_gerbil.model.ensemble.Ensemble.check_compatible`, the trainer). Unknown
values (None on either side) pass. The cage's microphone positions are compared by
:func:`napari_gerbil.io.cage.compare_geometry`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError


def check_compatible(
    source: str | os.PathLike | None,
    *,
    n_channels: int | None,
    sample_rate_hz: float | None,
    arena_dims_mm: Any = None,
    expected_n_channels: int | None = None,
    expected_sample_rate_hz: float | None = None,
    expected_arena_dims_mm: Any = None,
    what: str = "model",
) -> None:
    """Compare data properties with what ``what`` expects; unknown (None) values pass.

    Raises
    ------
    InvalidInputError
        Naming ``source``, the field and both values.
    """
    if (
        n_channels is not None
        and expected_n_channels is not None
        and int(n_channels) != int(expected_n_channels)
    ):
        raise InvalidInputError(
            source,
            "n_channels",
            f"{expected_n_channels} channels (as the {what})",
            f"{n_channels} channels",
        )
    if (
        sample_rate_hz is not None
        and expected_sample_rate_hz is not None
        and not np.isclose(sample_rate_hz, expected_sample_rate_hz, rtol=1e-6, atol=0)
    ):
        raise InvalidInputError(
            source,
            "sample_rate_hz",
            f"{expected_sample_rate_hz:g} Hz (as the {what})",
            f"{sample_rate_hz:g} Hz",
            hint="Resample the audio or use a model trained at this rate.",
        )
    if arena_dims_mm is not None and expected_arena_dims_mm is not None:
        a = np.asarray(arena_dims_mm, dtype=float)[:2]
        b = np.asarray(expected_arena_dims_mm, dtype=float)[:2]
        if not np.allclose(a, b, atol=1.0, rtol=0):
            raise InvalidInputError(
                source,
                "arena_dims_mm",
                f"floor {b.tolist()} mm (as the {what})",
                f"{a.tolist()} mm",
            )


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
