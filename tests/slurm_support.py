"""A real one-node SLURM cluster for the tests: Debian's munged, slurmctld and slurmd, started
in a temp dir with their own munge key and socket, reachable on 127.0.0.1 only.

No cgroups (proctrack/linuxproc, task/none), no accounting database: ended jobs are read from
scontrol (for MinJobAge) and from the jobcomp/filetxt file.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "sinfo", "squeue")
PARTITION = "debug"
MAX_MINUTES = 60  # the partition's time limit, so a test can ask for more


def _login() -> str:
    """The account the daemons and jobs run as ($USER may name anyone: the tests set it)."""
    return pwd.getpwuid(os.getuid()).pw_name


def _binary(name: str) -> str | None:
    """The daemons live in /usr/sbin, which is not on every user's PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _path(name: str) -> str:
    found = _binary(name)
    assert found is not None, f"{name} is not installed"
    return found


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if _binary(name) is None]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    conf: Path
    node: str
    partition: str = PARTITION
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, sinfo, the trainer) needs to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30
        )

    def job_state(self, job_id: str) -> str:
        shown = self.run("scontrol", "show", "job", "--oneliner", job_id).stdout
        fields = dict(token.split("=", 1) for token in shown.split() if "=" in token)
        return fields.get("JobState", "UNKNOWN")

    def ended_jobs(self) -> dict[str, dict[str, str]]:
        """Ended jobs by id, from the jobcomp file (the cluster's record, like sacct's)."""
        path = self.root / "log" / "jobcomp.txt"
        jobs: dict[str, dict[str, str]] = {}
        for line in path.read_text().splitlines() if path.is_file() else []:
            fields = dict(token.split("=", 1) for token in line.split() if "=" in token)
            jobs[fields["JobId"]] = fields
        return jobs

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def _node_line(node: str) -> str:
    """This machine as slurmd sees it (`slurmd -C`: CPUs, sockets, cores, memory)."""
    found = subprocess.run([_path("slurmd"), "-C"], capture_output=True, text=True, check=True)
    hardware = found.stdout.splitlines()[0].split()
    kept = [t for t in hardware if not t.startswith(("NodeName=", "RealMemory=", "UpTime="))]
    memory = int(dict(t.split("=", 1) for t in hardware)["RealMemory"]) * 9 // 10
    return f"NodeName={node} NodeAddr=127.0.0.1 {' '.join(kept)} RealMemory={memory} State=UNKNOWN"


def _write_conf(root: Path, node: str) -> Path:
    user = _login()
    srun_ports = random.randrange(30000, 60000, 100)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=musicgenft
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SrunPortRange={srun_ports}-{srun_ports + 99}
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/run/munge.sock
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
PlugStackConfig={root}/plugstack.conf
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
MpiDefault=none
ReturnToService=2
{_node_line(node)}
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime={MAX_MINUTES} State=UP
"""
    )
    (root / "plugstack.conf").write_text("")
    return conf


def _start(cluster: Cluster, name: str, cmd: list[str]) -> None:
    out = (cluster.root / "log" / f"{name}.out").open("wb")
    cluster.daemons[name] = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_idle(cluster: Cluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        for name, daemon in cluster.daemons.items():
            if daemon.poll() is not None:
                raise RuntimeError(f"{name} exited ({daemon.returncode})\n{cluster.logs()}")
        state = cluster.run("sinfo", "--noheader", "--Node", "--format=%t").stdout.strip()
        if state == "idle":
            return
        time.sleep(0.5)
    raise RuntimeError(f"node not idle after {timeout:.0f} s (sinfo: {state!r})\n{cluster.logs()}")


def _cancel_all(cluster: Cluster, timeout: float = 20) -> None:
    cluster.run("scancel", f"--user={_login()}")
    deadline = time.monotonic() + timeout
    while cluster.run("squeue", "--noheader").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)


@contextmanager
def slurm_cluster() -> Iterator[Cluster]:
    """Start munged, slurmctld and slurmd; yield once the node is idle; stop them all."""
    # munged wants its socket's folders executable by everyone, and a short socket path.
    root = Path(tempfile.mkdtemp(prefix="mgft-slurm-", dir="/tmp"))
    root.chmod(0o755)
    for sub, mode in (("run", 0o755), ("munge", 0o700), ("state", 0o700), ("spool", 0o755),
                      ("log", 0o755)):  # fmt: skip
        (root / sub).mkdir(mode=mode)
    node = socket.gethostname().split(".")[0]
    cluster = Cluster(root=root, conf=_write_conf(root, node), node=node)
    key = root / "munge" / "munge.key"
    try:
        subprocess.run([_path("mungekey"), "--create", f"--keyfile={key}"], check=True)
        _start(cluster, "munged", [
            _path("munged"), "--foreground", f"--socket={root}/run/munge.sock", f"--key-file={key}",
            f"--log-file={root}/log/munged.log", f"--pid-file={root}/run/munged.pid",
            f"--seed-file={root}/munge/munged.seed",
        ])  # fmt: skip
        deadline = time.monotonic() + 10
        while not (root / "run" / "munge.sock").exists():
            if time.monotonic() > deadline or cluster.daemons["munged"].poll() is not None:
                raise RuntimeError(f"munged did not start\n{cluster.logs()}")
            time.sleep(0.1)
        _start(cluster, "slurmctld", [_path("slurmctld"), "-D", "-f", str(cluster.conf)])
        _start(cluster, "slurmd", [_path("slurmd"), "-D", "-N", node, "-f", str(cluster.conf)])
        _wait_idle(cluster)
        yield cluster
    finally:
        if "slurmd" in cluster.daemons:
            _cancel_all(cluster)
        for daemon in reversed(cluster.daemons.values()):
            daemon.terminate()
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        shutil.rmtree(root, ignore_errors=True)
