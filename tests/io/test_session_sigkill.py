"""A session file survives SIGKILL at any moment of a save: old or new, never broken."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import h5py
import numpy as np
import pytest

from napari_gerbil.io.audio import AudioSource
from napari_gerbil.io.session import (
    AudioRef,
    CallTable,
    PredictedAttribution,
    Predictions,
    Session,
    load_session,
    save_session,
)

N_KILLS = 40


def _big_session(audio_ref, cage, seed: int) -> Session:
    """A session with enough predictions (~2 MB) that a save takes several ms."""
    rng = np.random.default_rng(seed)
    n, m = 3000, 10
    start = np.arange(n) * 100
    chol = np.tile(np.eye(2) * 10.0, (n, m, 1, 1))
    means = rng.uniform(-250, 250, (n, m, 2))
    probs = rng.dirichlet(np.ones(2), n)
    return Session(
        audio=audio_ref,
        arena=cage,
        calls=CallTable.from_samples(start, start + 50),
        animal_names=["a", "b"],
        fps=30.0,
        predictions=Predictions(means.mean(1), means, chol, rng.uniform(1, 9, n), f"v{seed}"),
        predicted=PredictedAttribution(probs.argmax(1), probs),
        provenance={"seed": seed},
    )


def _save_forever(path, sessions, first, completed) -> None:
    """Child: alternately save sessions[first], the other one, ... counting saves."""
    i = 0
    while True:
        save_session(sessions[(first + i) % 2], path)
        i += 1
        completed.value = i


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")
def test_sigkill_during_save_leaves_old_or_new_session(tmp_path, cage):
    audio_path = tmp_path / "rec.h5"
    with h5py.File(audio_path, "w") as f:
        f["audio"] = np.zeros((300_100, 4), np.float32)
        f.attrs["sample_rate_hz"] = 125000.0
    ref = AudioRef.from_source(AudioSource.open(audio_path))
    sessions = [_big_session(ref, cage, 0), _big_session(ref, cage, 1)]
    assert sessions[0] != sessions[1]
    path = tmp_path / "s.gerbil.h5"
    save_session(sessions[0], path)
    state = 0  # which session the file holds
    ctx = multiprocessing.get_context("fork")
    rng = np.random.default_rng(1234)
    seen, leftovers = set(), 0
    for _ in range(N_KILLS):
        completed = ctx.Value("i", 0, lock=False)
        first = 1 - state  # every save changes the file
        proc = ctx.Process(target=_save_forever, args=(path, sessions, first, completed))
        proc.start()
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        k = completed.value
        # after k completed saves the file holds state(k); the (k+1)-th may have
        # been renamed into place just before the kill.
        allowed = {state if k == 0 else (first + k - 1) % 2, (first + k) % 2}
        loaded = load_session(path)  # never unreadable
        match = [i for i in (0, 1) if loaded == sessions[i]]
        assert match, "the file is neither the old nor the new session"
        assert match[0] in allowed, (k, match, state)
        state = match[0]
        seen.add(state)
        stale = [p for p in tmp_path.iterdir() if p.name.startswith(".s.gerbil.h5.")]
        leftovers += len(stale)
        for p in stale:  # temporary files of interrupted saves
            p.unlink()
    assert seen == {0, 1}  # saves did complete, and kills hit both contents
    assert leftovers > 0  # some kills landed in the middle of writing a file
