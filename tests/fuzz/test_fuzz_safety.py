"""Fuzz the inputs of issue 20: cage files (alias bombs, huge numbers), ``session
create`` options, ``import-calls`` tables, ``detect`` and ``export`` options. Every
run ends with status 0, 1 or 2 and one error line, never an internal error, a hang or
a duplicated call."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_data import write_wav_session
from napari_gerbil.cli.main import main
from napari_gerbil.errors import GerbilError

pytestmark = pytest.mark.fuzz

FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(2**80), 2**80).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "-1e308", "0", "1e-320", "x", ""]),
)


def _one_clean_line(status: int, err: str) -> None:
    assert status in (0, 1, 2) and "internal error" not in err and "Traceback" not in err, err
    if status == 1:
        assert len(err.strip().splitlines()) == 1, err


def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:  # the argument parser: status 2
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


# --- cage files: alias bombs of any shape, huge numbers -------------------------------


def _bomb(levels: int, width: int, key: str) -> str:
    lines = [f"a0: &a0 [{', '.join(['1e308'] * width)}]"]
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * width) + "]")
    return "\n".join(lines) + f"\n{key}: *a{levels - 1}\n"


def test_fuzz_cage_alias_bombs_and_huge_numbers(tmp_path, capsys):
    from napari_gerbil.io.cage import builtin_cage, load_cage, save_cage

    base = tmp_path / "base.yaml"
    save_cage(builtin_cage("paper"), base)
    data = yaml.safe_load(base.read_text())

    @FUZZ
    @given(
        levels=st.integers(1, 12),
        width=st.integers(1, 12),
        key=st.sampled_from(["dims_mm", "mic_positions_mm", "mic_orientations", "name"]),
        huge=st.sampled_from(["1e308", "-1e308", ".inf", ".nan", str(2**200), "1e-320"]),
    )
    def run(levels, width, key, huge):
        path = tmp_path / "cage.yaml"
        rest = {k: v for k, v in data.items() if k != key}
        path.write_text(yaml.safe_dump(rest) + _bomb(levels, width, key).replace("1e308", huge))
        start = time.perf_counter()
        try:
            cage = load_cage(path)
        except GerbilError:
            pass
        else:
            assert np.isfinite(cage.dims).all() and (cage.dims > 0).all()
        assert time.perf_counter() - start < 3.0, (levels, width)
        status, _, err = _run(["validate", path], capsys)
        _one_clean_line(status, err)

    run()


# --- session create options -----------------------------------------------------------


def test_fuzz_session_create_options(tmp_path, capsys):
    audio = write_wav_session(tmp_path / "rec", calls=(), reviewed=False).parent / "rec.wav"

    @FUZZ
    @given(
        rate=st.one_of(st.none(), st.sampled_from(["125000", "250000"]), NUMBERS),
        offset=st.one_of(st.none(), st.sampled_from(["0", "-2.5", "1e6"]), NUMBERS),
        names=st.one_of(st.none(), st.lists(st.text(min_size=1, max_size=4), max_size=3)),
        cage=st.sampled_from(["paper", "paper8", "nope", "rec.wav"]),
        dataset=st.sampled_from(["audio", "", "/x"]),
    )
    def run(rate, offset, names, cage, dataset):
        out = tmp_path / "s.gerbil.h5"
        out.unlink(missing_ok=True)
        argv = ["session", "create", "--audio", audio, "--cage", cage, "--out", out,
                f"--audio-dataset={dataset}"]  # fmt: skip
        if rate is not None:
            argv.append(f"--sample-rate={rate}")
        if offset is not None:
            argv.append(f"--video-offset={offset}")
        if names:
            argv += ["--animal-names", *[n.replace("-", "_") or "a" for n in names]]
        status, _, err = _run(argv, capsys)
        _one_clean_line(status, err)
        if status == 0:
            assert main(["validate", str(out)]) == 0
            capsys.readouterr()

    run()


# --- import-calls tables: duplicates never counted twice ------------------------------


def test_fuzz_import_calls_tables(tmp_path, capsys):
    from napari_gerbil.io.session import load_session

    @FUZZ
    @given(
        rows=st.lists(
            st.tuples(st.integers(1, 400), st.integers(1, 30), st.sampled_from(["S", "W"])),
            max_size=12,
        ),
        raven=st.booleans(),
        repeat=st.integers(1, 3),
    )
    def run(rows, raven, repeat):
        session = write_wav_session(tmp_path / "s", calls=(), reviewed=False)
        table = tmp_path / "t.txt"
        if raven:
            lines = ["Selection\tView\tBegin Time (s)\tEnd Time (s)"]
            lines += [f"{k}\t{v}\t{a / 1000:.3f}\t{(a + d) / 1000:.3f}"
                      for k, (a, d, v) in enumerate(rows) for _ in range(repeat)]  # fmt: skip
        else:
            lines = ["start,stop"]
            lines += [f"{a / 1000:.3f},{(a + d) / 1000:.3f}" for a, d, _ in rows] * repeat
        table.write_text("\n".join(lines) + "\n")
        status, out, err = _run(["import-calls", session, table], capsys)
        _one_clean_line(status, err)
        assert status == 0, err
        calls = load_session(session).calls
        pairs = set(zip(calls.start_sample.tolist(), calls.stop_sample.tolist(), strict=True))
        assert len(pairs) == len(calls.start_sample)  # never the same call twice
        session.unlink()

    run()


# --- detect and export options on a real session --------------------------------------


def test_fuzz_detect_and_export_options(tmp_path, capsys):
    session = write_wav_session(tmp_path / "s", calls=((100, 900), (1000, 2000)))

    @FUZZ
    @given(
        option=st.sampled_from(
            [
                ("detect", "--threshold-db"),
                ("detect", "--max-gap-ms"),
                ("detect", "--min-duration-ms"),
                ("detect", "--band-khz"),
                ("export", "--min-probability"),
                ("export", "--node"),
            ]
        ),  # fmt: skip
        value=NUMBERS,
        value2=NUMBERS,
    )
    def run(option, value, value2):
        command, flag = option
        argv = [command, session, f"{flag}={value}"]
        if flag == "--band-khz":
            argv = [command, session, flag, value, value2]
        if command == "export":
            argv += ["--out", tmp_path / "x.h5", "--overwrite", "--quiet"]
        else:
            argv.append("--quiet")
        if any(a.startswith("-") and a[1:2].isalpha() for a in map(str, argv[3:4])):
            return  # argparse reads "-x" as an option
        status, _, err = _run(argv, capsys)
        _one_clean_line(status, err)

    run()
