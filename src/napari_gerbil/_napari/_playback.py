"""Play an audible buffer through the sound card (``sounddevice``), or say why not."""

from __future__ import annotations

#: The buffer played last (tests and the benchmark look at it; None before any).
last_played = None


def play(buffer, what: str) -> str:
    """Start playing ``buffer`` without waiting.

    ``buffer`` is an :class:`~napari_gerbil.signal.playback.AudibleBuffer`. Returns the
    message to show: what plays, or why nothing does.
    """
    global last_played
    last_played = buffer
    try:
        import sounddevice
    except OSError as exc:  # the package is there, the PortAudio library is not
        return (
            f"cannot play {what}: no audio library ({exc}); install PortAudio "
            "(Debian/Ubuntu: sudo apt install libportaudio2, or scripts/install_system_deps.sh)"
        )
    except ImportError:
        return (
            f"cannot play {what}: the sounddevice package is not installed "
            "(pip install sounddevice)"
        )
    try:
        sounddevice.play(buffer.samples, buffer.sample_rate_hz)
    except Exception as exc:  # PortAudioError (no output device) and friends
        return f"cannot play {what}: no audio output device ({exc})"
    return f"playing {what}, {buffer.description} ({buffer.duration_s:.2f} s)"
