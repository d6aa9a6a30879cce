"""Ensemble members as cluster jobs (submitit): SLURM arrays, or local processes.

``train --cluster slurm`` submits each unfinished member as one task of a SLURM job
array; ``--cluster local`` runs the same path through submitit's local executor. A
member job runs the same member function as ``train --jobs`` (so the model directory
is the same), checkpoints every ``checkpoint_every_s``, and is a
``submitit.helpers.Checkpointable``: on pre-emption or time-out SLURM signals it and
submitit requeues it, and it resumes from its ``last.pt``. The submitted jobs are
recorded in ``<out>/cluster/jobs.json``; their logs are under ``<out>/cluster/logs``.
``train --resume DIR`` waits for members still running, resubmits the failed or
pre-empted ones and assembles the model.

submitit is optional (``pip install napari-gerbil[cluster]``): this module imports
without it, and :meth:`ClusterSpec.check` says what to install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from napari_gerbil.errors import GerbilError, InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text

try:  # the optional extra: only member jobs need it
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - exercised by the no-submitit import test
    _Checkpointable = object  # type: ignore[assignment,misc]

KINDS = ("slurm", "local")
INSTALL_HINT = "pip install napari-gerbil[cluster]"
#: One SLURM partition name, or several separated by commas.
PARTITION_RE = re.compile(r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$")
#: Keys of ``--cluster-config`` that are our own options.
OWN_KEYS = ("partition", "gpus_per_member", "cpus_per_member", "mem_gb", "time_min")
#: SLURM states in which a job will still run (anything else: resubmit the member).
LIVE_STATES = ("RUNNING", "PENDING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED")
RECORD = "jobs.json"


@dataclass
class ClusterSpec:
    """Where and with what resources each member job runs.

    Attributes
    ----------
    kind
        ``slurm`` (sbatch) or ``local`` (submitit's local executor).
    partition, gpus_per_member, cpus_per_member, mem_gb, time_min
        The job resources (``cpus_per_member`` None: the machine's CPUs shared out
        locally, 4 on SLURM).
    extra
        Further submitit SLURM parameters from ``--cluster-config`` (``account``,
        ``qos``, ``constraint``, ``setup``, ``additional_parameters`` ...).
    detach
        Return once the jobs are submitted (collect them with ``--resume``).
    poll_s
        Seconds between two looks at the jobs while waiting.
    """

    kind: str = "local"
    partition: str | None = None
    gpus_per_member: int = 0
    cpus_per_member: int | None = None
    mem_gb: float | None = None
    time_min: int = 24 * 60
    extra: dict[str, Any] = field(default_factory=dict)
    detach: bool = False
    poll_s: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def threads(self, n_members: int) -> int:
        """Torch threads of one member job."""
        if self.cpus_per_member is not None:
            return int(self.cpus_per_member)
        if self.kind == "slurm":
            return 4
        return max(1, (os.cpu_count() or 1) // max(1, n_members))

    def check(self, source: str | None = None) -> ClusterSpec:
        """Refuse bad options before anything is submitted (InvalidInputError)."""
        require_submitit()
        if self.kind not in KINDS:
            raise InvalidInputError(source, "--cluster", "slurm or local", repr(self.kind))
        checks = [
            ("--gpus-per-member", self.gpus_per_member, 0, int),
            ("--cpus-per-member", self.cpus_per_member, 1, int),
            ("--mem-gb", self.mem_gb, 0, float),
            ("--time-min", self.time_min, 1, int),
        ]
        for name, value, low, kind in checks:
            if value is None:
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and (kind is float or float(value).is_integer())
            if not ok or value < low or (name == "--mem-gb" and value <= 0):
                want = "a positive number" if name == "--mem-gb" else f"an integer >= {low}"
                raise InvalidInputError(source, name, want, repr(value))
        if self.partition is not None and not PARTITION_RE.match(str(self.partition)):
            raise InvalidInputError(
                source,
                "--partition",
                "a SLURM partition name, or names separated by commas (letters, digits, _ . -)",
                repr(self.partition),
            )
        check_slurm_keys(self.extra, source)
        if self.kind == "slurm" and shutil.which("sbatch") is None:
            raise InvalidInputError(
                source,
                "--cluster",
                "slurm where 'sbatch' is on PATH (run on the cluster's login node)",
                "no sbatch found",
                hint="use '--cluster local' to run the member jobs on this machine",
            )
        return self

    def executor(self, folder: Path, n_members: int):
        """A submitit executor for the member jobs, logs under ``folder``."""
        import submitit

        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=self.kind)
        params: dict[str, Any] = {
            "name": "gerbil-member",
            "timeout_min": int(self.time_min),
            "cpus_per_task": self.threads(n_members),
            "gpus_per_node": int(self.gpus_per_member),
            "tasks_per_node": 1,
            "nodes": 1,
        }
        if self.mem_gb is not None:
            params["mem_gb"] = float(self.mem_gb)
        if self.kind == "slurm":
            if self.partition is not None:
                params["slurm_partition"] = self.partition
            params.update({f"slurm_{k}": v for k, v in self.extra.items()})
        executor.update_parameters(**params)
        return executor


def require_submitit() -> None:
    """Raise a clear error when the optional ``submitit`` is not installed."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise InvalidInputError(
            None,
            "--cluster",
            "the optional package submitit",
            "not installed",
            hint=f"install it with: {INSTALL_HINT}",
        ) from None


def check_slurm_keys(extra: dict[str, Any], source: str | None) -> None:
    """Every key of ``--cluster-config`` must be a submitit SLURM parameter."""
    if not extra:
        return
    import submitit

    valid = set(submitit.SlurmExecutor._valid_parameters())
    for key in extra:
        if key not in valid:
            raise InvalidInputError(
                source,
                str(key),
                f"one of {', '.join(OWN_KEYS)} or a submitit SLURM parameter "
                f"({', '.join(sorted(valid))})",
                repr(key),
            )


def load_cluster_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``--cluster-config`` YAML mapping (keys: :data:`OWN_KEYS` + SLURM ones)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInputError(path, "<file>", "a YAML mapping", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise InvalidInputError(path, "<root>", "a YAML mapping", type(data).__name__)
    return data


def build_spec(
    kind: str,
    config_path: str | os.PathLike | None = None,
    detach: bool = False,
    **options: Any,
) -> ClusterSpec:
    """The checked spec of ``--cluster KIND``: the YAML's values, then the options given."""
    source = None if config_path is None else str(config_path)
    extra = load_cluster_config(config_path) if config_path is not None else {}
    own = {k: extra.pop(k) for k in OWN_KEYS if k in extra}
    own.update({k: v for k, v in options.items() if v is not None})
    spec = ClusterSpec(kind=kind, extra=extra, detach=detach, **own)
    return spec.check(source)


# -- the member job -------------------------------------------------------------------


class MemberTask(_Checkpointable):
    """One ensemble member as a submitit job; requeued (and resumed) on pre-emption.

    ``checkpoint`` (from ``Checkpointable``) resubmits the same call: the member then
    resumes from the ``last.pt`` it wrote at most ``checkpoint_every_s`` ago.
    """

    def __call__(self, args: tuple) -> str:
        """Train the member of ``args`` (the ``--jobs`` tuple); note where it runs."""
        from napari_gerbil.training.loop import member_job

        run_dir = Path(args[7])
        run_dir.mkdir(parents=True, exist_ok=True)
        where = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "job_id": os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
            "started": time.time(),
        }
        atomic_write_text(run_dir / "job.json", json.dumps(where))
        return member_job(args)


def member_finished(run_dir: str | os.PathLike) -> bool:
    """Whether a member run has completed (its ``final.pt`` exists)."""
    return (Path(run_dir) / "final.pt").exists()


def _pid_alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # our own child that exited: reap it
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_alive(kind: str, folder: Path, job_id: str) -> bool:
    """Whether a recorded job may still run (then it is waited for, not resubmitted)."""
    if kind == "local":
        return job_id.isdigit() and _pid_alive(int(job_id))
    import submitit

    try:
        state = submitit.SlurmJob(folder / "%j", job_id).state
    except Exception:  # sacct unreachable: do not double-submit, ask the user
        return True
    return state.split()[0].upper() in LIVE_STATES


def _read_record(folder: Path) -> dict[str, Any]:
    path = folder / RECORD
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidInputError(path, "<file>", "JSON", str(exc)[:200]) from None
    return data if isinstance(data, dict) else {}


def run_members(
    out_dir: Path,
    member_args: Sequence[tuple],
    spec: ClusterSpec,
    report: Callable[[str], None] | None = None,
) -> bool:
    """Submit the unfinished members, wait for them; True when all have finished.

    ``member_args`` are the per-member argument tuples of the ``--jobs`` path. Members
    whose recorded job still runs are waited for, finished ones skipped, the others
    (new, failed, cancelled, pre-empted beyond requeueing) submitted as one job array.
    With ``spec.detach`` it returns False right after submitting.
    """
    say = report or (lambda message: None)
    folder = Path(out_dir) / "cluster"
    logs = folder / "logs"
    record = _read_record(folder)
    members = record.get("members", {}) if record.get("kind") == spec.kind else {}
    threads = spec.threads(len(member_args))
    args = [(*a[:9], threads, a[10]) for a in member_args]
    runs = [Path(a[7]) for a in args]
    todo, waiting = [], {}
    for k, run in enumerate(runs):
        old = members.get(run.name)
        if member_finished(run):
            continue
        if old and job_alive(spec.kind, logs, str(old["job_id"])):
            waiting[run.name] = str(old["job_id"])
            say(f"{run.name}: job {old['job_id']} still running; waiting for it")
        else:
            todo.append(k)
    jobs: dict[str, Any] = {}
    if todo:
        executor = spec.executor(logs, len(args))
        with executor.batch():  # one job array on SLURM
            submitted = [executor.submit(MemberTask(), args[k]) for k in todo]
        for k, job in zip(todo, submitted, strict=True):
            jobs[runs[k].name] = job
            members[runs[k].name] = {"job_id": str(job.job_id), "submitted": time.time()}
            say(f"{runs[k].name}: submitted as {spec.kind} job {job.job_id}")
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"kind": spec.kind, "members": members}, indent=2)
        atomic_write_text(folder / RECORD, text)
    if spec.detach:
        say(f"detached; logs in {logs}; collect with: napari-gerbil train --resume {out_dir}")
        return False
    failed = _wait(spec, logs, runs, jobs, waiting, say)
    if failed:
        listing = "; ".join(f"{name} ({why})" for name, why in failed.items())
        raise GerbilError(
            f"{len(failed)} member job(s) did not finish: {listing}. Logs: {logs}. Resubmit "
            f"them with: napari-gerbil train --resume {out_dir}"
        )
    return True


def _wait(spec, logs, runs, jobs, waiting, say) -> dict[str, str]:
    """Poll the jobs until none runs; report each member's epochs; return failures."""
    from napari_gerbil.training.checkpoints import read_metrics

    seen: dict[str, str] = {}
    failed: dict[str, str] = {}
    active = {run.name for run in runs if not member_finished(run)}
    while active:
        for run in runs:
            name = run.name
            if name not in active:
                continue
            if name in jobs:
                job = jobs[name]
                running = not job.done()
                job_id = str(job.job_id)
            else:
                job_id = waiting[name]
                running = job_alive(spec.kind, logs, job_id)
            epochs = len(read_metrics(run))
            line = f"{name}: {epochs} epoch(s) done ({'running' if running else 'ended'})"
            if seen.get(name) != line:
                say(line)
                seen[name] = line
            if running:
                continue
            active.discard(name)
            if not member_finished(run):
                why = f"job {job_id} ended before the last epoch"
                if name in jobs:
                    try:
                        exc = jobs[name].exception()
                    except Exception as err:  # no result at all: killed
                        exc = err
                    if exc is not None:
                        why += ": " + " ".join(str(exc).split())[-300:]
                failed[name] = why
        if active:
            time.sleep(spec.poll_s)
    return failed
