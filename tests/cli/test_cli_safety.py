"""Every command: nonsense numbers refused at parse time, outputs never silently
replaced, a lock per output, one error line, `info` on prediction files, `demo`
checked before Qt."""

from __future__ import annotations

import argparse

import h5py
import pytest

from hostile_data import write_small_vcl, write_wav_session
from napari_gerbil.cli.main import build_parser, main
from napari_gerbil.io.outputs import output_lock

BAD_NUMBERS = [
    ("simulate", ["speaker", "--out", "x.h5"], "--n-calls", ["0", "-5", "nan", "1e9", "x"]),
    ("simulate", ["session", "--out", "d"], "--duration", ["nan", "inf", "-1", "0", "1e9"]),
    ("simulate", ["speaker", "--out", "x.h5"], "--seed", ["-1", str(2**40), "1.5"]),
    ("simulate", ["speaker", "--out", "x.h5"], "--snr-db", ["nan", "inf", "-inf"]),
    ("simulate", ["session", "--out", "d"], "--n-animals", ["0", "-2"]),
    ("simulate", ["session", "--out", "d"], "--call-rate", ["0", "-1", "nan"]),
    ("simulate", ["speaker", "--out", "x.h5"], "--workers", ["0", "-1"]),
    ("predict", ["--baseline", "muse", "--data", "d", "--out", "o"], "--mass",
     ["2", "1", "0", "-0.5", "nan", "inf"]),
    ("predict", ["--baseline", "muse", "--data", "d", "--out", "o"], "--batch-size",
     ["0", "-1", "nan"]),
    ("train", ["--data", "d", "--out", "o"], "--ensemble", ["0", "-1", "1000"]),
    ("train", ["--data", "d", "--out", "o"], "--epochs", ["0", "-3"]),
    ("train", ["--data", "d", "--out", "o"], "--seed", ["-1", str(2**32)]),
    ("train", ["--data", "d", "--out", "o"], "--jobs", ["0"]),
    ("evaluate", ["--data", "d", "--baseline", "muse", "--out", "o"], "--max-calls", ["-1"]),
    ("evaluate", ["--data", "d", "--baseline", "muse", "--out", "o"], "--source-height-mm",
     ["nan", "-5"]),
    ("demo", [], "--calls", ["0", "-1"]),
    ("localize", ["s", "--model", "m"], "--save-every", ["nan", "0", "-1", "inf"]),
    ("localize", ["s", "--model", "m"], "--batch-size", ["0", "-1", "nan"]),
    ("export", ["s", "--out", "o"], "--min-probability", ["2", "nan", "-0.1", "inf"]),
    ("detect", ["s"], "--threshold-db", ["nan", "inf"]),
    ("detect", ["s"], "--max-gap-ms", ["nan", "-1", "inf", "1e300"]),
    ("detect", ["s"], "--min-duration-ms", ["nan", "-1"]),
    ("detect", ["s", "--band-khz", "2"], "", ["nan", "-1"]),
    ("review-status", ["s"], "--n-uncertain", ["-1", "nan"]),
    ("session", ["create", "--audio", "a", "--cage", "paper", "--out", "o"], "--sample-rate",
     ["nan", "0", "-1", "inf"]),
    ("session", ["create", "--audio", "a", "--cage", "paper", "--out", "o"], "--video-offset",
     ["nan", "inf"]),
]  # fmt: skip


@pytest.mark.parametrize(("command", "base", "option", "values"), BAD_NUMBERS)
def test_nonsense_numbers_exit_2_naming_the_option(command, base, option, values, capsys):
    for value in values:
        argv = [command, *base, option, value] if option else [command, *base, value]
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2, (option, value)
        err = capsys.readouterr().err
        named = option or base[-2]
        assert "argument" in err and named in err and "expected" in err, err


def _all_actions(parser):
    for action in parser._actions:
        yield parser.prog, action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)


def test_no_numeric_option_is_parsed_unchecked():
    """Every numeric option uses a checked type of cli._args (no bare float / int)."""
    bare = [
        f"{prog} {'/'.join(a.option_strings) or a.dest}"
        for prog, a in _all_actions(build_parser())
        if a.type in (float, int)
    ]
    assert bare == []


def test_every_command_has_overwrite_where_it_writes_files():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("predict", "simulate", "evaluate"):
        options = {o for a in sub.choices[name]._actions for o in a.option_strings}
        assert "--overwrite" in options, name


def test_simulate_refuses_existing_outputs_before_simulating(tmp_path, capsys):
    out = tmp_path / "speaker.h5"
    out.write_bytes(b"a dataset someone made")
    assert main(["simulate", "speaker", "--n-calls", "2", "--out", str(out), "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"a dataset someone made"


def test_simulate_never_replaces_a_reviewed_session(tmp_path, capsys):
    session = write_wav_session(tmp_path, name="session.gerbil.h5", reviewed=True)
    before = session.read_bytes()
    argv = ["simulate", "session", "--duration", "1", "--out", str(tmp_path), "--quiet"]
    assert main([*argv, "--overwrite"]) == 1
    assert "reviewed" in capsys.readouterr().err
    assert session.read_bytes() == before


def test_simulate_refuses_a_locked_output(tmp_path, capsys):
    out = tmp_path / "speaker.h5"
    with output_lock(out):
        assert main(["simulate", "speaker", "--n-calls", "2", "--out", str(out), "--quiet"]) == 1
    assert "locked by another" in capsys.readouterr().err
    assert not out.exists()


def test_train_refuses_locked_out_and_out_on_an_input(tmp_path, capsys):
    data = write_small_vcl(tmp_path / "d.h5", n_calls=8)
    out = tmp_path / "model"
    with output_lock(out / "manifest.json"):
        assert main(["train", "--preset", "tiny", "--data", str(data), "--out", str(out)]) == 1
    assert "locked by another" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--data", str(data), "--out", str(data)]) == 1
    err = capsys.readouterr().err
    assert "inputs are never replaced" in err and len(err.strip().splitlines()) == 1
    argv = ["train", "--preset", "tiny", "--data", str(data), str(data), "--out", str(out)]
    assert main(argv) == 1
    assert "same file twice" in capsys.readouterr().err


def test_info_and_validate_describe_prediction_files(tmp_path, capsys):
    data = write_small_vcl(tmp_path / "d.h5", n_calls=4)
    pred = tmp_path / "p.h5"
    argv = ["predict", "--baseline", "gcc-phat", "--data", str(data), "--out", str(pred)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["info", str(pred)]) == 0
    out = capsys.readouterr().out
    assert "Predictions:" in out and "calls:            4 (4 localized)" in out
    assert "method:           gcc-phat" in out and "median" in out
    assert main(["validate", str(pred)]) == 0
    assert "valid prediction file: 4 calls" in capsys.readouterr().out
    with h5py.File(pred, "r+") as f:
        del f["errors_mm"]
        f["errors_mm"] = [1.0, 2.0]
    assert main(["validate", str(pred)]) == 1
    assert "/errors_mm" in capsys.readouterr().err


def test_demo_checks_arguments_and_display_before_qt(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert main(["demo", "--session", str(tmp_path / "missing.gerbil.h5")]) == 1
    err = capsys.readouterr().err
    assert "missing.gerbil.h5" in err and "no such file" in err
    assert main(["demo", "--model", str(tmp_path)]) == 1
    assert "manifest.json" in capsys.readouterr().err
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "display" in err and "xvfb-run" in err and len(err.strip().splitlines()) == 1


def test_unexpected_exceptions_are_one_line(monkeypatch, capsys):
    import napari_gerbil.cli.inspect as inspect_cli

    def boom(path):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(inspect_cli, "describe", boom)
    assert main(["info", "x"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "internal error: ZeroDivisionError" in err
    monkeypatch.setenv("NAPARI_GERBIL_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["info", "x"])


def test_benchmark_keeps_earlier_results(tmp_path, capsys):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "results.json").write_text("{}")
    assert main(["benchmark", "--smoke", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "results.json").read_text() == "{}"
    with pytest.raises(SystemExit):
        main(["benchmark", "--smoke", "--jobs", "0", "--out", str(out)])


def test_predict_refuses_unknown_or_missing_devices(tmp_path, capsys):
    data = write_small_vcl(tmp_path / "d.h5", n_calls=2)
    for device in ("foo", "cuda:99"):
        argv = ["predict", "--model", str(tmp_path), "--data", str(data), "--out"]
        assert main([*argv, str(tmp_path / "p.h5"), "--device", device]) == 1
        err = capsys.readouterr().err
        assert "field 'device'" in err and len(err.strip().splitlines()) == 1


def test_no_command_replaces_a_file_a_session_refers_to(built_session, tmp_path, capsys):
    """Export, predict and session create never write over the session's audio, video or
    poses, with --overwrite too (issue 20, item 1)."""
    import shutil

    from napari_gerbil.io.session import load_session, save_session

    original, truth = built_session
    shutil.copytree(original.parent, tmp_path / "rec")  # a copy: this test tries to destroy it
    session_file = tmp_path / "rec" / original.name
    session = load_session(session_file)
    for row, (animal, _) in truth.items():
        session.set_user_attribution(row, animal)
    save_session(session, session_file)
    files = [tmp_path / "rec" / name for name in ("audio.h5", "video.mp4", "poses.h5")]
    before = {f: f.read_bytes() for f in files}
    for target in files:
        commands = [
            ["export", str(session_file), "--calls", "all", "--out", str(target), "--overwrite",
             "--quiet"],
            ["predict", "--baseline", "muse", "--data", str(session_file), "--out", str(target),
             "--overwrite"],
        ]  # fmt: skip
        if target.name == "audio.h5":
            commands.append(["session", "create", "--audio", str(target), "--cage", "paper",
                             "--out", str(target), "--overwrite"])  # fmt: skip
        for argv in commands:
            assert main(argv) == 1, argv
            err = capsys.readouterr().err
            assert str(target) in err and "never replaced" in err, err
    assert all(f.read_bytes() == data for f, data in before.items())
    # the same export elsewhere works: the refusal is about the target only
    out = tmp_path / "ok.h5"
    assert main(["export", str(session_file), "--calls", "all", "--out", str(out), "--quiet"]) == 0


def test_cage_show_never_replaces_its_cage_file(tmp_path, capsys):
    from napari_gerbil.io.cage import builtin_cage, save_cage

    cage = tmp_path / "cage.svg"
    save_cage(builtin_cage("paper"), cage)  # a YAML cage file, oddly named
    before = cage.read_bytes()
    assert main(["cage", "show", str(cage), "--out", str(cage), "--overwrite"]) == 1
    assert "the input" in capsys.readouterr().err
    assert cage.read_bytes() == before
