"""Data-parallel training of one member under torchrun (gloo on CPUs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from napari_gerbil.cli.main import main
from napari_gerbil.training.checkpoints import read_metrics
from napari_gerbil.training.distributed import ShardedBatchSampler, shard_bounds

CONFIG = (
    "epochs: 2\nbatch_size: 4\nlearning_rate: 0.003\nnoise_p: 0.0\ncheckpoint_every_s: 0.01\n"
    "device: cpu\n"
)


def _args(data, cfg, out):
    return ["train", "--preset", "tiny", "--data", str(data), "--config", str(cfg),
            "--out", str(out)]  # fmt: skip


def _torchrun(args, **kw):
    """``torchrun --nproc_per_node 2 -m napari_gerbil ARGS`` in its own process group."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "napari_gerbil", *args]  # fmt: skip
    return subprocess.Popen(command, env=env, start_new_session=True, **kw)


@pytest.fixture(scope="module")
def single(small_delay_dataset, tmp_path_factory):
    """The single-process run of the same member (the reference)."""
    root = tmp_path_factory.mktemp("ddp")
    (root / "cfg.yaml").write_text(CONFIG)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_args(small_delay_dataset, root / "cfg.yaml", root / "single")) == 0
    finally:
        torch.set_num_threads(threads)
    return root


def test_shards_cover_each_global_batch_once():
    keys = list(range(23))
    shards = [list(ShardedBatchSampler(keys, 4, r, 3)) for r in range(3)]
    sampler = ShardedBatchSampler(keys, 4, 0, 3)
    assert sampler.global_sizes == [4, 4, 4, 4, 4, 3]
    for b in range(6):
        merged = [k for r in range(3) for k in shards[r][b]]
        assert merged == keys[4 * b : 4 * b + 4]
    assert shard_bounds(5, 1, 2) == (2, 5)
    assert list(ShardedBatchSampler(list(range(9)), 4, 1, 2)) == [[2, 3], [6, 7]]  # 1 < 2 ranks


@pytest.mark.slow
def test_two_process_gloo_member_follows_the_single_process_loss_curve(single, small_delay_dataset):
    from napari_gerbil.io.vcl import VCLDataset
    from napari_gerbil.model.ensemble import load_ensemble

    out = single / "ddp"
    proc = _torchrun(_args(small_delay_dataset, single / "cfg.yaml", out))
    assert proc.wait(timeout=240) == 0
    ref, got = read_metrics(single / "single" / "member_00"), read_metrics(out / "member_00")
    assert [m["epoch"] for m in got] == [1, 2]
    for a, b in zip(ref, got, strict=True):  # BatchNorm statistics are per shard
        assert b["train_nll"] == pytest.approx(a["train_nll"], rel=2e-2)
        assert b["val_nll"] == pytest.approx(a["val_nll"], rel=2e-2)
    calls = [VCLDataset(small_delay_dataset).call_audio(i) for i in range(3)]
    assert load_ensemble(out).predict(calls).point_mm.shape == (3, 2)


@pytest.mark.slow
def test_two_process_run_killed_mid_epoch_resumes(single, small_delay_dataset):
    out = single / "killed"
    args = _args(small_delay_dataset, single / "cfg.yaml", out)
    proc = _torchrun(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    state: dict = {}
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            state = torch.load(out / "member_00" / "last.pt", weights_only=False)
        except Exception:  # not there yet, or being replaced
            state = {}
        if state.get("epoch") == 1 and state.get("step_in_epoch", 0) > 0:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
    proc.wait()
    assert not (out / "member_00" / "final.pt").exists()
    assert [m["epoch"] for m in read_metrics(out / "member_00")] == [1]
    assert _torchrun(args).wait(timeout=240) == 0
    got = read_metrics(out / "member_00")
    ref = read_metrics(single / "single" / "member_00")
    assert [m["epoch"] for m in got] == [1, 2]
    assert got[-1]["train_nll"] == pytest.approx(ref[-1]["train_nll"], rel=2e-2)
    assert (out / "manifest.json").exists()
