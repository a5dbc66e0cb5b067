"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd of Debian's
`slurm-wlm` and `munge` packages, started as root in a folder of their own.

Everything the daemons use lies in that folder (key, sockets, state, spool, logs) and their
ports are free ones chosen at start (a start that loses a port to another process is tried
again), so a cluster of the machine or of another test session running beside this one is
never touched. Each daemon's id is written to DAEMONS_FILE with the id of the test process
that started it: a session killed before its teardown leaves nothing running into the next
one, which stops, by id, the daemons whose test process is gone. Clients (sbatch, squeue,
scontrol) find the cluster through SLURM_CONF (Cluster.env).
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
DAEMONS_FILE = Path("/tmp/graphvae-test-slurm.pids")
START_TIMEOUT_S = 60
STARTS = 3  # tries, each with fresh ports and folders


class CannotStart(Exception):
    """Slurm cannot run here; the message says why, in one line."""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_line(hostname):
    """This machine as slurmd sees it (CPUs, sockets, cores, memory)."""
    found = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30)
    first = found.stdout.splitlines()[0] if found.stdout else ""
    if found.returncode or not first.startswith("NodeName="):
        raise CannotStart(f"slurmd -C cannot read this machine: {found.stderr.strip()[:200]}")
    hardware = first.split(" ", 1)[1]
    return f"NodeName={hostname} NodeAddr=127.0.0.1 {hardware} State=UNKNOWN"


def slurm_conf(folder, hostname, ports):
    return "\n".join([
        "ClusterName=graphvaetest",
        f"SlurmctldHost={hostname}(127.0.0.1)",
        f"SlurmctldPort={ports[0]}", f"SlurmdPort={ports[1]}",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge",
        f"AuthInfo=socket={folder / 'munge' / 'munge.socket'}",
        f"StateSaveLocation={folder / 'state'}", f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}", f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'log' / 'slurmd.log'}",
        f"PlugStackConfig={folder / 'plugstack.conf'}",
        # No cgroups, accounting or MPI: what a container without systemd offers.
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "MpiDefault=none", "SwitchType=switch/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "SchedulerType=sched/builtin", "ReturnToService=2", "JobRequeue=1",
        # A stopped job has KillWait seconds to save before SIGKILL (real clusters: 30).
        "KillWait=15", "MinJobAge=600", "InactiveLimit=0",
        node_line(hostname),
        "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


class Cluster:
    """A running one-node cluster; stop() ends its jobs and its daemons."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.processes = {}

    @property
    def env(self):
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command, check=True):
        """A Slurm client command against this cluster; its output."""
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **self.env})
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def start(self):
        for sub in ("munge", "state", "spool", "log"):
            (self.folder / sub).mkdir(parents=True, mode=0o700, exist_ok=True)
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        (self.folder / "plugstack.conf").write_text("")
        hostname = socket.gethostname().split(".")[0]
        self.conf.write_text(slurm_conf(self.folder, hostname, (free_port(), free_port())))
        munge = self.folder / "munge"
        self.launch("munged", ["munged", "--foreground", "--force", f"--key-file={key}",
                               f"--socket={munge / 'munge.socket'}",
                               f"--pid-file={munge / 'munged.pid'}",
                               f"--seed-file={munge / 'munged.seed'}",
                               f"--log-file={self.folder / 'log' / 'munged.log'}"])
        self.wait_for(lambda: (munge / "munge.socket").exists(), "munged's socket")
        self.launch("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
        self.launch("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", hostname])
        self.wait_for(self.node_is_idle, "the node to be idle")
        return self

    def launch(self, name, command):
        log = open(self.folder / "log" / f"{name}.out", "w")
        # A session of its own: a Ctrl-C in the test's terminal reaches the teardown, which
        # stops the daemons in order, not the daemons themselves.
        self.processes[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **self.env})
        log.close()
        with DAEMONS_FILE.open("a") as pids:
            pids.write(f"{self.processes[name].pid} {os.getpid()} {name} {self.conf}\n")

    def node_is_idle(self):
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise CannotStart(f"{name} exited at start (status {process.returncode}); "
                                  f"see {self.folder / 'log'}")
        states = self.run("sinfo", "-h", "-o", "%T", check=False).split()
        return states == ["idle"]

    def wait_for(self, ready, what):
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if time.monotonic() > deadline:
                raise CannotStart(f"timed out waiting for {what}; see {self.folder / 'log'}")
            time.sleep(0.2)

    def stop(self):
        """Cancel every job and wait until none runs (their processes end with them), then
        stop the daemons, slurmd first."""
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            self.run("scancel", "--full", "--user=root", check=False)
            deadline = time.monotonic() + 60
            while self.run("squeue", "-h", "-o", "%i", check=False).strip() \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in reversed(DAEMONS):
            process = self.processes.pop(name, None)
            if process is not None:
                end(process)
        forget_pids(self.conf)


def end(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def forget_pids(conf):
    """Drop conf's daemons from DAEMONS_FILE."""
    if DAEMONS_FILE.exists():
        lines = DAEMONS_FILE.read_text().splitlines()
        DAEMONS_FILE.write_text("".join(f"{line}\n" for line in lines
                                        if not line.endswith(f" {conf}")))


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def stop_stale_daemons():
    """Stop the daemons of test sessions that ended without their teardown (killed): each by
    its id, while its test process is gone and the id is still that daemon (its command line
    names the daemon and that session's folder)."""
    if not DAEMONS_FILE.exists():
        return
    for line in DAEMONS_FILE.read_text().splitlines():
        pid, owner, name, conf = line.split(" ", 3)
        folder = str(Path(conf).parent)
        if command_line(owner) == "" and name in command_line(pid) and folder in command_line(pid):
            os.kill(int(pid), signal.SIGKILL)
            forget_pids(conf)


def start_cluster(folder):
    """A running cluster in folder, or CannotStart with the reason."""
    if os.geteuid() != 0:
        raise CannotStart("Slurm's daemons need root")
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        raise CannotStart(f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)")
    stop_stale_daemons()
    for attempt in range(STARTS):
        cluster = Cluster(Path(folder) / f"try{attempt}")
        try:
            return cluster.start()
        except CannotStart:
            cluster.stop()
            if attempt == STARTS - 1:
                raise
        except BaseException:
            cluster.stop()
            raise
