#!/usr/bin/env python3
"""The local test bed: a real Kubernetes control plane (kwok nodes), PostgreSQL, Redis,
their exporters, kube-state-metrics, a workload simulator, Prometheus and Alertmanager,
all on 127.0.0.1.

    testbed.py up        start everything (a no-op when it is already up and healthy)
    testbed.py down      stop every process it started, by PID
    testbed.py status    health of each component
    testbed.py env       print the env file (KEY=value, shell-sourceable)
    testbed.py restart-simulator   restart the workload simulator on its port

State lives in $OCTOLLM_TESTBED_DIR (default: <repo>/.testbed): the env file
`testbed.env` (and `testbed.json`), logs/, pids/ and the data folders. Binaries come
from build.sh's cache ($OCTOLLM_TESTBED_CACHE, default ~/.cache/octollm-testbed).

TESTBED_PROVIDER=kwok (default) builds and starts the control plane here;
TESTBED_PROVIDER=existing uses the cluster of the current KUBECONFIG and
TESTBED_PROVIDER=kind creates a kind cluster (needs Docker and kind; not on CI). Both
start the same services around it; fault injection through kwok Stages needs kwok.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STATE = Path(os.environ.get("OCTOLLM_TESTBED_DIR", REPO / ".testbed")).resolve()
ENV_FILE = STATE / "testbed.env"
JSON_FILE = STATE / "testbed.json"
PIDS = STATE / "pids"
LOGS = STATE / "logs"
CLUSTER = "octollm"
# 4 nodes: one NotReady node is 25 %, under the runbook's 30 % gate, so the single-node
# branch (cordon, drain) is reachable; 2 of 4 is 50 %, over it.
NODES = int(os.environ.get("OCTOLLM_TESTBED_NODES", "4"))
# Test-bed clocks: the runbook's windows and `for:` durations scaled down so alerts fire
# in seconds (see rescale_rules); evaluation every 2 s.
WINDOW_SCALE = float(os.environ.get("OCTOLLM_RULES_WINDOW_SCALE", "10"))
FOR_SCALE = float(os.environ.get("OCTOLLM_RULES_FOR_SCALE", "60"))
PROVIDER = os.environ.get("TESTBED_PROVIDER", "kwok")
VENV_PY = Path(sys.executable)


def log(msg: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class TestbedError(RuntimeError):
    pass


# --------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, check=True, env=None, capture=True, timeout=600, **kw):
    res = subprocess.run(
        [str(c) for c in cmd], env=env, text=True, timeout=timeout, check=False,
        stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None, **kw)
    if check and res.returncode != 0:
        raise TestbedError(f"{' '.join(map(str, cmd))} failed ({res.returncode}): {(res.stderr or '')[-2000:]}")
    return res


def spawn(name: str, cmd, env=None, user: str | None = None, cwd=None) -> int:
    """Start a long-running process detached from us, with its log and PID file."""
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    cmd = [str(c) for c in cmd]
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    out = open(LOGS / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd, start_new_session=True)
    (PIDS / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def wait_for(what: str, check, timeout: float = 60, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(interval)
    raise TestbedError(f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last}" if last else ""))


def http_ok(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def read_env() -> dict:
    if JSON_FILE.exists():
        return json.loads(JSON_FILE.read_text())
    return {}


def write_env(env: dict) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    JSON_FILE.write_text(json.dumps(env, indent=2, sort_keys=True))
    lines = [f"{k}={_shell_quote(str(v))}" for k, v in sorted(env.items())]
    ENV_FILE.write_text("\n".join(lines) + "\n")
    os.chmod(ENV_FILE, 0o600)
    os.chmod(JSON_FILE, 0o600)


def _shell_quote(v: str) -> str:
    return v if re.fullmatch(r"[A-Za-z0-9_./:@%+=,-]*", v) else "'" + v.replace("'", "'\"'\"'") + "'"


def is_root() -> bool:
    return os.geteuid() == 0


# ------------------------------------------------------------------------- Kubernetes
class Kube:
    def __init__(self, kubectl: Path, kubeconfig: Path):
        self.kubectl, self.kubeconfig = kubectl, kubeconfig

    def __call__(self, *args, check=True, stdin: str | None = None, timeout=300):
        return run([self.kubectl, "--kubeconfig", self.kubeconfig, *args], check=check,
                   input=stdin, timeout=timeout)

    def apply(self, docs, server_side=False):
        if isinstance(docs, dict):
            docs = [docs]
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs, sort_keys=False)
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", "--force-conflicts"]
        return self(*args, stdin=text)

    def json(self, *args):
        return json.loads(self(*args, "-o", "json").stdout)


def kwok_config(bins: dict, workdir: Path) -> Path:
    k8s, etcd, kwok = Path(bins["K8S_BIN"]), Path(bins["ETCD_BIN"]), Path(bins["KWOK_BIN"])
    cfg = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "kubeApiserverBinary": str(k8s / "kube-apiserver"),
            "kubeControllerManagerBinary": str(k8s / "kube-controller-manager"),
            "kubeSchedulerBinary": str(k8s / "kube-scheduler"),
            "kubectlBinary": str(k8s / "kubectl"),
            "kwokControllerBinary": str(kwok / "kwok"),
            "etcdBinary": str(etcd / "etcd"),
        },
        "componentsPatches": [
            # no default route on this machine: tell the apiserver where it lives
            {"name": "kube-apiserver", "extraArgs": [
                {"key": "advertise-address", "value": "127.0.0.1"},
            ]},
            {"name": "kube-controller-manager", "extraArgs": [
                # taint NotReady nodes within seconds, not the default 25 s
                {"key": "node-monitor-period", "value": "5s"},
                {"key": "horizontal-pod-autoscaler-sync-period", "value": "5s"},
            ]},
        ],
    }
    path = workdir / "kwokctl.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


AUDIT_POLICY = {
    # Count what the runner does (its own ServiceAccount), nothing else: the test bed's
    # controllers and kwok write constantly and would drown the figures.
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "users": ["system:serviceaccount:octollm-system:octollm-runner"]},
        {"level": "None"},
    ],
}


def start_kwok(bins: dict, env: dict) -> None:
    workdir = STATE / "kwok"
    workdir.mkdir(parents=True, exist_ok=True)
    k8s = Path(bins["K8S_BIN"])
    kwokctl = Path(bins["KWOK_BIN"]) / "kwokctl"
    cfg = kwok_config(bins, workdir)
    policy = workdir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False))
    kenv = dict(os.environ, KWOK_WORKDIR=str(workdir), PATH=f"{k8s}:{os.environ['PATH']}")
    run([kwokctl, "--name", CLUSTER, "delete", "cluster"], check=False, env=kenv)
    log("starting the control plane (kwokctl --runtime binary)")
    run([kwokctl, "-c", cfg, "--name", CLUSTER, "create", "cluster",
         "--enable-crds", "Stage,Logs,ClusterLogs",
         "--kube-audit-policy", policy,
         "--kubeconfig", "", "--wait", "2m", "--timeout", "5m"], env=kenv, timeout=400)
    cdir = workdir / "clusters" / CLUSTER
    env.update({
        "KUBECONFIG": str(cdir / "kubeconfig.yaml"),
        "OCTOLLM_KUBECTL": str(k8s / "kubectl"),
        "OCTOLLM_KWOKCTL": str(kwokctl),
        "OCTOLLM_KWOK_WORKDIR": str(workdir),
        "OCTOLLM_AUDIT_LOG": str(cdir / "logs" / "audit.log"),
        "OCTOLLM_TESTBED_PROVIDER": "kwok",
    })


def kwok_stages(bins: dict) -> list[Path]:
    src = Path(bins["KWOK_SRC"]) / "kustomize" / "stage"
    upstream = [
        src / "node/fast/node-initialize.yaml",
        src / "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        src / "node/chaos/node-not-ready.yaml",
        src / "pod/fast/pod-complete.yaml",
        src / "pod/fast/pod-delete.yaml",
        src / "volume/fast/storage-class.yaml",
        src / "volume/fast/pvc-provision.yaml",
        src / "volume/fast/pv-bind.yaml",
        src / "volume/fast/pv-delete.yaml",
        src / "volume/fast/pvc-delete.yaml",
    ]
    return [p for p in upstream if p.exists()] + sorted((HERE / "stages").glob("*.yaml"))


def node_manifest(i: int) -> dict:
    name = f"node-{i:06d}"
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name, "type": "kwok",
                "node-role.kubernetes.io/agent": "",
                "topology.kubernetes.io/zone": f"zone-{'abc'[i % 3]}",
            },
        },
        "spec": {"podCIDR": f"10.0.{i}.0/24", "podCIDRs": [f"10.0.{i}.0/24"]},
        "status": {
            "addresses": [{"address": f"192.0.2.{10 + i}", "type": "InternalIP"},
                          {"address": "localhost", "type": "Hostname"}],
            # a plausible machine so that "top pods by CPU" and pressure are meaningful
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                         "kubeletVersion": "v1.36.3", "containerRuntimeVersion": "kwok"},
        },
    }


def setup_cluster(bins: dict, env: dict) -> None:
    kube = Kube(Path(env["OCTOLLM_KUBECTL"]), Path(env["KUBECONFIG"]))
    if env.get("OCTOLLM_TESTBED_PROVIDER") == "kwok":
        log("applying kwok Stages (normal lifecycle + faults)")
        # pod-ready comes from stages/pod-ready.yaml (upstream + fault exclusions)
        for path in kwok_stages(bins):
            kube("apply", "-f", path)
        log(f"creating {NODES} simulated nodes")
        kube.apply([node_manifest(i) for i in range(NODES)])
        wait_for("nodes Ready", lambda: all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
            for n in kube.json("get", "nodes")["items"]) and len(kube.json("get", "nodes")["items"]) >= NODES,
            timeout=60)
    crds = Path(bins["CERT_MANAGER_CRDS"])
    log("installing cert-manager CRDs")
    for path in sorted(crds.glob("*.yaml")):
        kube("apply", "--server-side", "--force-conflicts", "-f", path)
    kube("wait", "--for=condition=Established", "crd/certificates.cert-manager.io",
         "crd/clusterissuers.cert-manager.io", "--timeout=60s")
    log("creating the sample OctoLLM workloads")
    manifests = HERE / "manifests"
    for path in sorted(manifests.glob("*.yaml")):
        kube("apply", "-f", path)
    log("granting the runner the collection's least-privilege RBAC (rbac/)")
    rbac = REPO / "rbac"
    for path in ("serviceaccount.yaml", "clusterrole-observe.yaml", "clusterrole-nodes.yaml", "clusterrole-act.yaml",
                 "clusterrolebindings.yaml", "optional/cert-manager-restart.yaml"):
        kube("apply", "-f", rbac / path)
    for ns in ("octollm-prod", "octollm-staging"):
        kube("-n", ns, "create", "rolebinding", "octollm-runner-act", "--clusterrole=octollm-runner-act",
             "--serviceaccount=octollm-system:octollm-runner", check=False)
    logs_default(kube)
    set_cert_status(kube)
    for dep in ("orchestrator", "reflex-layer", "api-gateway"):
        kube("-n", "octollm-prod", "rollout", "status", f"deployment/{dep}", "--timeout=120s")
    kube("-n", "octollm-prod", "rollout", "status", "statefulset/postgres", "--timeout=120s")
    runner_kubeconfig(kube, env)


def logs_default(kube: Kube) -> None:
    """Every pod in the sample namespaces logs like a healthy service (kwok serves it
    through the real log API); the simulator's log agent gives faulty pods their own."""
    kube.apply({
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs",
        "metadata": {"name": "octollm-default-logs"},
        "spec": {"selector": {"matchNamespaces": ["octollm-prod", "octollm-staging", "cert-manager"]},
                 "logs": [{"logsFile": str(HERE / "logs" / "healthy.log"),
                           "previousLogsFile": str(HERE / "logs" / "healthy.log")}]},
    })


def _ts(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_cert_status(kube: Kube) -> None:
    """cert-manager's controller does not run here: give the sample issuer and certificate
    the status it would write (tests move notAfter to simulate expiry)."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ready = [{"type": "Ready", "status": "True", "reason": "ACMEAccountRegistered",
              "message": "The ACME account was registered with the ACME server",
              "lastTransitionTime": _ts(now), "observedGeneration": 1}]
    patch = json.dumps({"status": {"conditions": ready, "acme": {"uri": "https://acme.invalid/acct/1"}}})
    kube("patch", "clusterissuer", "letsencrypt-prod", "--subresource=status", "--type=merge", "-p", patch)
    not_after = now + dt.timedelta(days=60)
    cert = {"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                        "message": "Certificate is up to date and has not expired",
                        "lastTransitionTime": _ts(now), "observedGeneration": 1}],
        "notBefore": _ts(not_after - dt.timedelta(days=90)), "notAfter": _ts(not_after),
        "renewalTime": _ts(not_after - dt.timedelta(days=30)), "revision": 1}}
    kube("-n", "octollm-prod", "patch", "certificate", "api-gateway-tls", "--subresource=status",
         "--type=merge", "-p", json.dumps(cert))


def runner_kubeconfig(kube: Kube, env: dict) -> None:
    """A kubeconfig for the runner's ServiceAccount (token only, no client cert), so the
    audit log counts the runner's requests and RBAC applies to it."""
    token = kube("-n", "octollm-system", "create", "token", "octollm-runner", "--duration=48h").stdout.strip()
    admin = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]["cluster"]
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "users": [{"name": "octollm-runner", "user": {"token": token}}],
        "contexts": [{"name": "octollm-runner", "context": {"cluster": CLUSTER, "user": "octollm-runner"}}],
        "current-context": "octollm-runner",
    }
    path = STATE / "runner.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    os.chmod(path, 0o600)
    env["OCTOLLM_RUNNER_KUBECONFIG"] = str(path)


# ------------------------------------------------------------------------- PostgreSQL
def pg_bindir() -> Path:
    cands = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not cands:
        raise TestbedError("PostgreSQL server binaries not found under /usr/lib/postgresql; run `make system-deps`")
    return cands[-1].parent


def start_postgres(env: dict) -> None:
    bindir = pg_bindir()
    user = "postgres" if is_root() else None
    data, sock = STATE / "postgres" / "data", STATE / "postgres" / "sock"
    shutil.rmtree(STATE / "postgres", ignore_errors=True)
    data.mkdir(parents=True)
    sock.mkdir(parents=True)
    port = free_port()
    pw = {r: secrets.token_hex(12) for r in ("postgres", "octollm_runner", "octollm_ledger", "app")}
    pwfile = STATE / "postgres" / "pwfile"
    pwfile.write_text(pw["postgres"] + "\n")
    if user:
        run(["chown", "-R", f"{user}:", STATE / "postgres"])
        # the postgres user must be able to reach its data folder
        for p in [STATE] + list(STATE.parents):
            if p == Path("/"):
                break
            if not (p.stat().st_mode & 0o001):
                os.chmod(p, p.stat().st_mode | 0o001)
    prefix = ["runuser", "-u", user, "--"] if user else []
    run(prefix + [bindir / "initdb", "-D", data, "-U", "postgres", "--pwfile", pwfile,
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
    conf = data / "postgresql.conf"
    with open(conf, "a") as f:
        f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{sock}'\n"
                "max_connections = 100\nshared_preload_libraries = 'pg_stat_statements'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "log_min_messages = warning\n")
    spawn("postgres", [bindir / "postgres", "-D", data], user=user)
    wait_for("PostgreSQL", lambda: run([bindir / "pg_isready", "-h", "127.0.0.1", "-p", port], check=False)
             .returncode == 0, timeout=30)
    stmts = [
        f"CREATE ROLE octollm_runner LOGIN PASSWORD '{pw['octollm_runner']}'",
        "GRANT pg_read_all_stats, pg_signal_backend TO octollm_runner",
        f"CREATE ROLE octollm_ledger LOGIN PASSWORD '{pw['octollm_ledger']}'",
        "CREATE DATABASE octollm_ledger OWNER octollm_ledger",
        f"CREATE ROLE app LOGIN PASSWORD '{pw['app']}'",
        "CREATE DATABASE octollm OWNER app",
    ]
    args = [a for st in stmts for a in ("-c", st)]
    run(prefix + [bindir / "psql", "-h", sock, "-p", port, "-U", "postgres", "-d", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-q", *args])
    run(prefix + [bindir / "psql", "-h", sock, "-p", port, "-U", "postgres", "-d", "octollm", "-q",
                  "-c", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;"])
    base = f"127.0.0.1:{port}"
    env.update({
        "OCTOLLM_PG_PORT": str(port),
        "OCTOLLM_PG_ADMIN_DSN": f"postgresql://postgres:{pw['postgres']}@{base}/postgres",
        "OCTOLLM_PG_DSN": f"postgresql://octollm_runner:{pw['octollm_runner']}@{base}/octollm",
        "OCTOLLM_PG_APP_DSN": f"postgresql://app:{pw['app']}@{base}/octollm",
        "OCTOLLM_PG_LEDGER_DSN": f"postgresql://octollm_ledger:{pw['octollm_ledger']}@{base}/octollm_ledger",
        "OCTOLLM_PG_BINDIR": str(bindir),
    })


def start_postgres_exporter(env: dict) -> None:
    port = free_port()
    exe = shutil.which("prometheus-postgres-exporter")
    if not exe:
        raise TestbedError("prometheus-postgres-exporter not found; run `make system-deps`")
    penv = dict(os.environ, DATA_SOURCE_NAME=env["OCTOLLM_PG_ADMIN_DSN"] + "?sslmode=disable")
    spawn("postgres-exporter", [exe, f"--web.listen-address=127.0.0.1:{port}"], env=penv)
    env["OCTOLLM_PG_EXPORTER_URL"] = f"http://127.0.0.1:{port}"
    wait_for("postgres_exporter", lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), timeout=30)


# ------------------------------------------------------------------------------ Redis
def start_redis(env: dict) -> None:
    port = free_port()
    pw = secrets.token_hex(12)
    rdir = STATE / "redis"
    shutil.rmtree(rdir, ignore_errors=True)
    rdir.mkdir(parents=True)
    conf = rdir / "redis.conf"
    # small maxmemory so tests can produce real evictions; no persistence
    conf.write_text(f"bind 127.0.0.1\nport {port}\nrequirepass {pw}\ndir {rdir}\nsave \"\"\n"
                    "appendonly no\nmaxmemory 16mb\nmaxmemory-policy allkeys-lru\nprotected-mode yes\n")
    os.chmod(conf, 0o600)
    spawn("redis", ["redis-server", conf])
    import redis  # noqa: PLC0415 - venv dependency, only needed here
    wait_for("Redis", lambda: redis.Redis(port=port, password=pw).ping(), timeout=20)
    env.update({"OCTOLLM_REDIS_URL": f"redis://:{pw}@127.0.0.1:{port}/0", "OCTOLLM_REDIS_PORT": str(port)})
    eport = free_port()
    exe = shutil.which("prometheus-redis-exporter")
    if not exe:
        raise TestbedError("prometheus-redis-exporter not found; run `make system-deps`")
    spawn("redis-exporter", [exe, f"-redis.addr=redis://127.0.0.1:{port}",
                             f"-web.listen-address=127.0.0.1:{eport}"],
          env=dict(os.environ, REDIS_PASSWORD=pw))
    env["OCTOLLM_REDIS_EXPORTER_URL"] = f"http://127.0.0.1:{eport}"
    wait_for("redis_exporter", lambda: http_ok(f"http://127.0.0.1:{eport}/metrics"), timeout=20)


# ------------------------------------------------------------------ metrics & alerts
def start_ksm(bins: dict, env: dict) -> None:
    port, tport = free_port(), free_port()
    spawn("kube-state-metrics", [
        Path(bins["KSM_BIN"]) / "kube-state-metrics", f"--kubeconfig={env['KUBECONFIG']}",
        "--host=127.0.0.1", f"--port={port}", "--telemetry-host=127.0.0.1", f"--telemetry-port={tport}",
        # labels procedures and rules rely on
        "--metric-labels-allowlist=pods=[app],deployments=[app]",
    ])
    env["OCTOLLM_KSM_URL"] = f"http://127.0.0.1:{port}"
    wait_for("kube-state-metrics", lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=30)


def start_simulator(env: dict, port: int | None = None) -> None:
    port = port or free_port()
    spawn("simulator", [VENV_PY, HERE / "simulator.py", "--port", port,
                        "--kubeconfig", env.get("KUBECONFIG", ""), "--logs-dir", HERE / "logs",
                        "--pg-dsn", env["OCTOLLM_PG_ADMIN_DSN"], "--redis-url", env["OCTOLLM_REDIS_URL"]])
    env["OCTOLLM_SIMULATOR_URL"] = f"http://127.0.0.1:{port}"
    wait_for("workload simulator", lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=30)


_DUR = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _secs(text: str) -> int:
    m = _DUR.match(text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * _UNIT[m.group(2)]


def rescale_rules(src: Path, dst: Path, window_scale: float, for_scale: float) -> None:
    """Copy the shipped rules with shorter range windows and `for:` durations so the
    test bed reaches the same verdicts in seconds. Expressions are otherwise unchanged."""
    doc = yaml.safe_load(src.read_text())

    def window(m):
        return f"[{max(20, int(_secs(m.group(1)) / window_scale))}s]"

    for group in doc["groups"]:
        group["interval"] = "2s"
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[(\d+[smhd])\]", window, rule["expr"])
            if "for" in rule:
                rule["for"] = f"{max(4, int(_secs(rule['for']) / for_scale))}s"
    dst.write_text(yaml.safe_dump(doc, sort_keys=False, width=200))


def _host(url: str) -> str:
    return url.split("//", 1)[1]


def start_prometheus(env: dict) -> None:
    pdir = STATE / "prometheus"
    shutil.rmtree(pdir, ignore_errors=True)
    (pdir / "data").mkdir(parents=True)
    port = free_port()
    rules = pdir / "alert-response.rules.yml"
    rescale_rules(REPO / "prometheus" / "alert-response.rules.yml", rules, WINDOW_SCALE, FOR_SCALE)
    cfg = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s", "scrape_timeout": "2s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{env['OCTOLLM_AM_PORT']}"]}]}]},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
            # kube-state-metrics and the simulator label series with the object's own
            # namespace: keep it (honor_labels) instead of renaming it exported_namespace
            {"job_name": "kube-state-metrics", "honor_labels": True,
             "static_configs": [{"targets": [_host(env["OCTOLLM_KSM_URL"])]}]},
            {"job_name": "simulator", "honor_labels": True,
             "static_configs": [{"targets": [_host(env["OCTOLLM_SIMULATOR_URL"])]}]},
            {"job_name": "redis", "static_configs": [{
                "targets": [_host(env["OCTOLLM_REDIS_EXPORTER_URL"])],
                "labels": {"namespace": "octollm-prod", "cache": "octollm-prod/redis", "statefulset": "redis"}}]},
            {"job_name": "postgres", "static_configs": [{
                "targets": [_host(env["OCTOLLM_PG_EXPORTER_URL"])],
                "labels": {"namespace": "octollm-prod", "database": "postgres", "statefulset": "postgres"}}]},
        ],
    }
    (pdir / "prometheus.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run(["promtool", "check", "config", pdir / "prometheus.yml"])
    spawn("prometheus", ["prometheus", f"--config.file={pdir / 'prometheus.yml'}",
                         f"--storage.tsdb.path={pdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                         "--storage.tsdb.retention.time=6h", "--web.enable-lifecycle",
                         "--web.enable-admin-api"])
    env["OCTOLLM_PROMETHEUS_URL"] = f"http://127.0.0.1:{port}"
    wait_for("Prometheus", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=60)


def alertmanager_config(env: dict) -> dict:
    eda = f"http://127.0.0.1:{env['OCTOLLM_EDA_PORT']}/alertmanager"
    return {
        "route": {
            "receiver": "octollm",
            # one notification group per target: the rulebook throttles per target anyway
            "group_by": ["alertname", "namespace", "owner_name", "node", "name", "cache", "database",
                         "persistentvolumeclaim", "horizontalpodautoscaler", "configmap"],
            "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h",
        },
        "receivers": [{"name": "octollm", "webhook_configs": [
            # the event source of the running rulebook (docs/rulebook.md)
            {"url": eda, "send_resolved": True, "max_alerts": 0,
             "http_config": {"authorization": {"type": "Bearer", "credentials": env["OCTOLLM_EDA_TOKEN"]}}},
            # a capture for tests that only need to see what Alertmanager sends
            {"url": f"{env['OCTOLLM_SIMULATOR_URL']}/sinks/alertmanager", "send_resolved": True},
        ]}],
    }


def start_alertmanager(env: dict) -> None:
    adir = STATE / "alertmanager"
    shutil.rmtree(adir, ignore_errors=True)
    (adir / "data").mkdir(parents=True)
    port = env["OCTOLLM_AM_PORT"]
    (adir / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(env), sort_keys=False))
    exe = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not exe:
        raise TestbedError("prometheus-alertmanager not found; run `make system-deps`")
    spawn("alertmanager", [exe, f"--config.file={adir / 'alertmanager.yml'}",
                           f"--storage.path={adir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                           "--cluster.listen-address=", "--log.level=info"])
    env["OCTOLLM_ALERTMANAGER_URL"] = f"http://127.0.0.1:{port}"
    wait_for("Alertmanager", lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=30)


# ------------------------------------------------------------------------- providers
def provider_cluster(bins: dict, env: dict) -> None:
    if PROVIDER == "kwok":
        start_kwok(bins, env)
    elif PROVIDER == "existing":
        kc = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        if not Path(kc).exists():
            raise TestbedError("TESTBED_PROVIDER=existing needs KUBECONFIG pointing at a cluster")
        env.update({"KUBECONFIG": kc, "OCTOLLM_KUBECTL": str(Path(bins["K8S_BIN"]) / "kubectl"),
                    "OCTOLLM_TESTBED_PROVIDER": "existing"})
    elif PROVIDER == "kind":
        if not (shutil.which("kind") and shutil.which("docker")):
            raise TestbedError("TESTBED_PROVIDER=kind needs `kind` and a running Docker engine")
        kc = STATE / "kind.kubeconfig"
        run(["kind", "create", "cluster", "--name", CLUSTER, "--kubeconfig", kc], timeout=600)
        env.update({"KUBECONFIG": str(kc), "OCTOLLM_KUBECTL": str(Path(bins["K8S_BIN"]) / "kubectl"),
                    "OCTOLLM_TESTBED_PROVIDER": "kind"})
    else:
        raise TestbedError(f"unknown TESTBED_PROVIDER={PROVIDER!r}: use kwok, existing or kind")


# ------------------------------------------------------------------------- commands
def build() -> dict:
    res = run([HERE / "build.sh"], capture=True, timeout=3600)
    sys.stderr.write(res.stderr)
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


def status() -> dict:
    env = read_env()
    out = {}
    for pidfile in sorted(PIDS.glob("*.pid")) if PIDS.exists() else []:
        pid = int(pidfile.read_text() or 0)
        out[pidfile.stem] = pid_alive(pid)
    if env.get("KUBECONFIG") and env.get("OCTOLLM_KUBECTL"):
        r = run([env["OCTOLLM_KUBECTL"], "--kubeconfig", env["KUBECONFIG"], "get", "--raw", "/readyz"],
                check=False, timeout=10)
        out["kube-apiserver"] = r.returncode == 0
    for key, path in (("OCTOLLM_PROMETHEUS_URL", "/-/ready"), ("OCTOLLM_ALERTMANAGER_URL", "/-/ready"),
                      ("OCTOLLM_SIMULATOR_URL", "/healthz"), ("OCTOLLM_KSM_URL", "/healthz")):
        if env.get(key):
            out[key.replace("OCTOLLM_", "").replace("_URL", "").lower()] = http_ok(env[key] + path)
    return out


def healthy() -> bool:
    st = status()
    return (read_env().get("OCTOLLM_TESTBED_READY") == "1" and all(st.values())
            and set(EXPECTED) <= set(st))


EXPECTED = ("kube-apiserver", "postgres", "postgres-exporter", "redis", "redis-exporter",
            "kube-state-metrics", "simulator", "prometheus", "alertmanager")


def up() -> None:
    if healthy():
        log(f"already up; env file: {ENV_FILE}")
        return
    t0 = time.monotonic()
    down(quiet=True)
    STATE.mkdir(parents=True, exist_ok=True)
    bins = build()
    env = {"OCTOLLM_TESTBED_DIR": str(STATE), "OCTOLLM_EDA_PORT": str(free_port()),
           "OCTOLLM_EDA_TOKEN": secrets.token_urlsafe(24), "OCTOLLM_AM_PORT": str(free_port())}
    for k in ("K8S_BIN", "ETCD_BIN", "KWOK_BIN", "KSM_BIN"):
        env[f"OCTOLLM_{k}"] = bins[k]
    try:
        provider_cluster(bins, env)
        setup_cluster(bins, env)
        start_postgres(env)
        start_postgres_exporter(env)
        start_redis(env)
        start_ksm(bins, env)
        start_simulator(env)
        start_alertmanager(env)
        start_prometheus(env)
        write_env(env)
        wait_for("Prometheus targets up", lambda: targets_up(env), timeout=60)
        env["OCTOLLM_TESTBED_READY"] = "1"
        write_env(env)
    except Exception:
        write_env(env)
        log(f"start-up failed; logs in {LOGS} and {STATE / 'kwok' / 'clusters' / CLUSTER / 'logs'}")
        raise
    log(f"up in {time.monotonic() - t0:.1f}s; env file: {ENV_FILE}")


def targets_up(env: dict) -> bool:
    with urllib.request.urlopen(env["OCTOLLM_PROMETHEUS_URL"] + "/api/v1/targets", timeout=3) as r:
        data = json.load(r)
    active = data["data"]["activeTargets"]
    return len(active) >= 5 and all(t["health"] == "up" for t in active)


def down(quiet: bool = False) -> None:
    env = read_env()
    stopped = []
    if PIDS.exists():
        pids = {p.stem: int(p.read_text() or 0) for p in PIDS.glob("*.pid")}
        for name, pid in pids.items():
            if pid and pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                stopped.append(name)
        deadline = time.monotonic() + 15
        for name, pid in pids.items():
            while pid and pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid and pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            (PIDS / f"{name}.pid").unlink(missing_ok=True)
    kwokctl = env.get("OCTOLLM_KWOKCTL")
    workdir = env.get("OCTOLLM_KWOK_WORKDIR")
    if kwokctl and workdir and Path(kwokctl).exists() and (Path(workdir) / "clusters" / CLUSTER).exists():
        run([kwokctl, "--name", CLUSTER, "delete", "cluster"], check=False,
            env=dict(os.environ, KWOK_WORKDIR=workdir))
        stopped.append("kwok cluster")
    if env.get("OCTOLLM_TESTBED_PROVIDER") == "kind" and shutil.which("kind"):
        run(["kind", "delete", "cluster", "--name", CLUSTER], check=False)
    for name in ("testbed.env", "testbed.json"):
        (STATE / name).unlink(missing_ok=True)
    if not quiet:
        log("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def restart_simulator() -> None:
    """Restart only the simulator (after changing simulator.py), on the same port."""
    env = read_env()
    if not env.get("OCTOLLM_SIMULATOR_URL"):
        raise TestbedError("the test bed is not up: run `make testbed-up`")
    pidfile = PIDS / "simulator.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text() or 0)
        if pid and pid_alive(pid):
            os.killpg(pid, signal.SIGTERM)
            wait_for("the old simulator to stop", lambda: not pid_alive(pid), timeout=15)
    start_simulator(env, port=int(env["OCTOLLM_SIMULATOR_URL"].rsplit(":", 1)[1]))
    log("simulator restarted")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "status", "env", "restart-simulator"])
    args = ap.parse_args()
    try:
        if args.command == "up":
            up()
        elif args.command == "down":
            down()
        elif args.command == "status":
            st = status()
            for k, v in st.items():
                print(f"{k:24} {'up' if v else 'DOWN'}")
            return 0 if st and all(st.values()) else 1
        elif args.command == "restart-simulator":
            restart_simulator()
        elif args.command == "env":
            if not ENV_FILE.exists():
                print("test bed is not up: run `make testbed-up`", file=sys.stderr)
                return 1
            sys.stdout.write(ENV_FILE.read_text())
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
