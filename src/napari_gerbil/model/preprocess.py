"""Turn one call's audio into the network input: crop/pad, then z-score.

Training crops at a random offset, prediction at the centre; both z-score the
cropped audio over all channels and samples together (keeping the level differences
between channels), then zero-pad calls shorter than the input length (at the end
when training, centred for prediction).
"""

from __future__ import annotations

import numpy as np

from napari_gerbil.errors import InvalidInputError


def crop_or_pad(audio: np.ndarray, length_samples: int, offset: int | None = None) -> np.ndarray:
    """Crop or zero-pad (n_samples, n_channels) audio to ``length_samples`` and z-score it.

    Parameters
    ----------
    audio
        (n_samples, n_channels) float audio of one call.
    length_samples
        Output length.
    offset
        For a longer call, the first sample of the crop; for a shorter one, where the
        call starts inside the padded output. ``None``: centred.

    Returns
    -------
    (length_samples, n_channels) float32, z-scored over the call's samples.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] < 1:
        raise InvalidInputError(
            None, "audio", "(n_samples >= 1, n_channels) samples", f"shape {audio.shape}"
        )
    n = audio.shape[0]
    if n >= length_samples:
        start = (n - length_samples) // 2 if offset is None else int(offset)
        seg = zscore(audio[start : start + length_samples])
        return seg
    start = (length_samples - n) // 2 if offset is None else int(offset)
    out = np.zeros((length_samples, audio.shape[1]), dtype=np.float32)
    out[start : start + n] = zscore(audio)
    return out


def zscore(audio: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over all channels and samples together (float32)."""
    audio = np.asarray(audio, dtype=np.float32)
    std = float(audio.std())
    return (audio - audio.mean()) / (std if std > 0 else 1.0)
