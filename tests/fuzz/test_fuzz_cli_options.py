"""Fuzz the CLI's numeric options: every value is either parsed to a sensible number or
refused by the argument parser (exit 2, naming the option); never accepted as NaN, inf,
a negative count or an out-of-range probability or seed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_gerbil.cli.main import build_parser

pytestmark = pytest.mark.fuzz


def _int_in(lo, hi=None):
    def ok(text):
        try:
            v = int(text)
        except ValueError:
            return False
        return v >= lo and (hi is None or v <= hi)

    return ok


def _float_in(lo=None, hi=None, lo_open=False, hi_open=False):
    def ok(text):
        try:
            v = float(text)
        except ValueError:
            return False
        if not math.isfinite(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return not (hi is not None and (v >= hi if hi_open else v > hi))

    return ok


PREDICT = ["predict", "--baseline", "muse", "--data", "d", "--out", "o"]
SIMULATE = ["simulate", "speaker", "--out", "x.h5"]
SESSION = ["simulate", "session", "--out", "d"]
TRAIN = ["train", "--data", "d", "--out", "o"]
SESSION_CREATE = ["session", "create", "--audio", "a", "--cage", "paper", "--out", "o"]
EVALUATE = ["evaluate", "--data", "d", "--baseline", "muse", "--out", "o"]

#: (base argv, option, dest, rule for a valid value)
OPTIONS = [
    (PREDICT, "--mass", "mass", _float_in(0, 1, lo_open=True, hi_open=True)),
    (PREDICT, "--batch-size", "batch_size", _int_in(1)),
    (SIMULATE, "--n-calls", "n_calls", _int_in(1, 1_000_000)),
    (SIMULATE, "--seed", "seed", _int_in(0, 2**32 - 1)),
    (SIMULATE, "--snr-db", "snr_db", _float_in()),
    (SIMULATE, "--workers", "workers", _int_in(1)),
    (SESSION, "--duration", "duration", _float_in(0, 3600, lo_open=True)),
    (SESSION, "--call-rate", "call_rate", _float_in(0, lo_open=True)),
    (SESSION, "--n-animals", "n_animals", _int_in(1, 64)),
    (TRAIN, "--ensemble", "ensemble", _int_in(1, 100)),
    (TRAIN, "--epochs", "epochs", _int_in(1)),
    (TRAIN, "--seed", "seed", _int_in(0, 2**32 - 1)),
    (TRAIN, "--jobs", "jobs", _int_in(1)),
    (EVALUATE, "--max-calls", "max_calls", _int_in(0)),
    (EVALUATE, "--source-height-mm", "source_height_mm", _float_in(0)),
    (["validate", "f"], "--tolerance-mm", "tolerance_mm", _float_in(0)),
    (["demo"], "--calls", "calls", _int_in(1, 100_000)),
    (["localize", "s", "--model", "m"], "--save-every", "save_every", _float_in(0, 1e6, True)),
    (["localize", "s", "--model", "m"], "--batch-size", "batch_size", _int_in(1, 65536)),
    (["export", "s", "--out", "o"], "--min-probability", "min_probability", _float_in(0, 1)),
    (["detect", "s"], "--threshold-db", "threshold_db", _float_in()),
    (["detect", "s"], "--max-gap-ms", "max_gap_ms", _float_in(0, 60_000)),
    (["detect", "s"], "--min-duration-ms", "min_duration_ms", _float_in(0, 60_000)),
    (["review-status", "s"], "--n-uncertain", "n_uncertain", _int_in(0)),
    (SESSION_CREATE, "--sample-rate", "sample_rate", _float_in(0, 1e8, lo_open=True)),
    (SESSION_CREATE, "--video-offset", "video_offset", _float_in()),
]

VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "0", "-0", "1", "0.5", "1.0", "", " 3"]),
    st.text(max_size=6),
)


@pytest.mark.parametrize(("base", "option", "dest", "valid"), OPTIONS, ids=[o[1] for o in OPTIONS])
def test_numeric_options(base, option, dest, valid, capsys):
    parser = build_parser()

    @settings(max_examples=15, deadline=None, derandomize=True, database=None)
    @given(value=VALUES)
    def run(value):
        if value.startswith("-") and not value[1:2].isdigit() and value not in ("-inf", "-0"):
            return  # argparse reads "-x" as another option, not a value
        try:
            args = parser.parse_args([*base, f"{option}={value}"])
        except SystemExit as exc:
            assert exc.code == 2
            err = capsys.readouterr().err
            assert option in err, err
            assert not valid(value), f"{option}={value!r} refused"
            return
        assert valid(value), f"{option}={value!r} accepted as {getattr(args, dest)!r}"
        parsed = getattr(args, dest)
        assert isinstance(parsed, (int, float)) and math.isfinite(parsed)

    run()
