"""Ensemble members as submitit jobs: ``train --cluster local``, ``--resume``, bad options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from napari_gerbil.cli.main import main
from napari_gerbil.io.vcl import VCLDataset

pytest.importorskip("submitit")

CONFIG = "epochs: {epochs}\nbatch_size: {batch}\nlearning_rate: 0.003\nnoise_p: 0.0\n"
CONFIG += "checkpoint_every_s: {every}\n"


def _config(path, epochs=1, batch=16, every=0.0):
    path.write_text(CONFIG.format(epochs=epochs, batch=batch, every=every))
    return str(path)


def _train(*args) -> int:
    return main(["train", "--preset", "tiny", *map(str, args)])


def _tree(model_dir):
    """Files of a model directory, relative, without the job bookkeeping."""
    skip = ("cluster", "job.json")
    return sorted(
        str(p.relative_to(model_dir))
        for p in model_dir.rglob("*")
        if p.is_file() and not any(s in p.parts for s in skip) and not p.name.startswith(".")
    )


@pytest.mark.slow
def test_cluster_local_gives_the_model_of_jobs_and_it_predicts(small_delay_dataset, tmp_path):
    from napari_gerbil.model.ensemble import load_ensemble

    cfg = _config(tmp_path / "cfg.yaml")
    common = ["--ensemble", 2, "--data", small_delay_dataset, "--config", cfg]
    assert _train(*common, "--jobs", 1, "--out", tmp_path / "jobs") == 0
    assert _train(*common, "--cluster", "local", "--out", tmp_path / "local") == 0
    a, b = tmp_path / "jobs", tmp_path / "local"
    assert _tree(a) == _tree(b)
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert sorted(ma) == sorted(mb)
    for key in ("members", "created", "napari_gerbil_version"):
        ma.pop(key), mb.pop(key)
    assert ma == mb
    assert json.loads((b / "cluster" / "jobs.json").read_text())["kind"] == "local"
    calls = [VCLDataset(small_delay_dataset).call_audio(i) for i in range(4)]
    pa = load_ensemble(a).predict(calls)
    pb = load_ensemble(b).predict(calls)  # same seeds, same data: the same members
    np.testing.assert_allclose(pa.point_mm, pb.point_mm, atol=1e-3)


def _wait_for(predicate, what, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _job(run):
    try:
        return json.loads((run / "job.json").read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_preempted_member_requeues_and_killed_member_is_resubmitted_by_resume(
    small_delay_dataset, tmp_path
):
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.training.checkpoints import read_metrics
    from napari_gerbil.training.cluster import _pid_alive

    cfg = _config(tmp_path / "cfg.yaml", epochs=3, batch=4, every=0.01)
    out = tmp_path / "model"
    args = ["--ensemble", 2, "--data", small_delay_dataset, "--config", cfg, "--out", out]
    assert _train(*args, "--cluster", "local", "--detach") == 0
    assert not (out / "manifest.json").exists()
    m0, m1 = out / "member_00", out / "member_01"
    _wait_for(lambda: _job(m0) and (m0 / "last.pt").exists(), "member_00 running")
    first = _job(m0)
    os.kill(first["pid"], signal.SIGUSR2)  # what SLURM sends before pre-empting
    _wait_for(lambda: _job(m1) and (m1 / "last.pt").exists(), "member_01 running")
    killed = _job(m1)
    os.kill(killed["pid"], signal.SIGKILL)  # a node failure: no requeue
    jobs = json.loads((out / "cluster" / "jobs.json").read_text())["members"]
    old_id = jobs["member_01"]["job_id"]
    _wait_for(lambda: not _pid_alive(int(old_id)), "the killed job's end", 30)
    assert not (m1 / "final.pt").exists()

    assert main(["train", "--resume", str(out)]) == 0
    jobs = json.loads((out / "cluster" / "jobs.json").read_text())["members"]
    assert jobs["member_01"]["job_id"] != old_id  # resubmitted
    assert _job(m0)["pid"] != first["pid"]  # requeued by submitit after the signal
    for run in (m0, m1):
        assert [m["epoch"] for m in read_metrics(run)] == [1, 2, 3]
    ensemble = load_ensemble(out)
    assert len(ensemble.members) == 2
    assert np.isfinite(
        ensemble.predict([VCLDataset(small_delay_dataset).call_audio(0)]).point_mm
    ).all()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--cluster", "local", "--partition", "gpu;rm -rf"], "--partition"),
        (["--cluster", "slurm"], "sbatch"),
        (["--partition", "gpu"], "used with --cluster"),
        (["--cluster", "local", "--jobs", "2"], "either --jobs or --cluster"),
        (["--cluster", "local", "--nproc", "2"], "not with --nproc"),
        (["--cluster", "slurm", "--cluster-config", "{yaml}"], "'partitoin'"),
    ],
)
def test_bad_cluster_options_fail_before_any_job(
    extra, field, small_delay_dataset, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    bad = tmp_path / "cluster.yaml"
    bad.write_text("partitoin: gpu\naccount: lab\n")
    extra = [e.replace("{yaml}", str(bad)) for e in extra]
    out = tmp_path / "model"
    assert _train("--data", small_delay_dataset, "--out", out, *extra) == 1
    assert field in capsys.readouterr().err
    assert not (out / "cluster").exists()
    assert not (out / "member_00").exists()


def test_negative_gpus_are_refused_by_the_parser(small_delay_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _train("--data", small_delay_dataset, "--out", tmp_path / "m", "--cluster", "local",
               "--gpus-per-member", "-1")  # fmt: skip
    assert "expected an integer in [0, inf]" in capsys.readouterr().err


def test_benchmark_full_cluster_slurm_is_refused_without_sbatch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "bench"
    assert main(["benchmark", "--full", "--cluster", "slurm", "--out", str(out)]) == 1
    assert "sbatch" in capsys.readouterr().err
    assert not (out / "models").exists()


def test_core_imports_without_submitit_and_says_what_to_install(small_delay_dataset, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["submitit"] = None  # not installed
        import pkgutil, importlib, napari_gerbil
        for m in pkgutil.walk_packages(napari_gerbil.__path__, "napari_gerbil."):
            if "._napari" not in m.name:
                importlib.import_module(m.name)
        from napari_gerbil.cli.main import main
        sys.exit(main(["train", "--data", {str(small_delay_dataset)!r}, "--out",
                       {str(tmp_path / "m")!r}, "--cluster", "local"]))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "pip install napari-gerbil[cluster]" in result.stderr
