# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every benchmark shares: the test bed's environment, a bench identity for the
runner's ServiceAccount (so that the audit log tells our requests from other engineers'),
ansible-rulebook processes on free ports, Alertmanager-shaped payloads, Kubernetes setup
and cleanup with the admin kubeconfig, and the audit log reader.

Nothing here asserts; the benchmarks in this folder use it (bench/run.py runs them)."""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
RULEBOOK = REPO / "rulebooks" / "alertmanager.yml"
# the collection's import path (make setup links it): plugins/module_utils itself on sys.path
# would shadow the redis package with module_utils/redis.py
sys.path.insert(0, str(REPO / ".collections"))
from ansible_collections.octollm.alert_response.plugins.module_utils import ledger as ledger_mod  # noqa: E402

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
# every object a benchmark creates carries this label, so that cleanup finds them all
BENCH_LABEL = "bench.octollm.io/run"
# bench nodes carry this taint: nothing of the other engineers' tests lands on them
BENCH_TAINT = {"key": "bench.octollm.io/dedicated", "value": "true", "effect": "NoSchedule"}
# Bench node names sort after the test bed's node-NNNNNN: tests that pick "the first Ready
# nodes" by sorted name (tests/integration/test_guardrail_module.py) never pick ours.
NODE_PREFIX = "xbench"
BENCH_TOLERATION = {"key": "bench.octollm.io/dedicated", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def now_iso(offset: float = 0.0) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation, as numpy's default."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: list[float]) -> float | None:
    return pct(values, 0.5)


def rnd(value, digits: int = 3):
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------ environment
def testbed_env() -> dict:
    path = Path(os.environ.get("OCTOLLM_TESTBED_DIR", REPO / ".testbed")) / "testbed.json"
    if not path.exists():
        raise SystemExit(f"no test bed ({path} is missing): run `make testbed-up` first")
    env = json.loads(path.read_text())
    if not env.get("OCTOLLM_TESTBED_READY"):
        raise SystemExit("the test bed is not ready (`.venv/bin/python tests/testbed/testbed.py status`)")
    return env


def process_env(tb: dict, **extra) -> dict:
    """os.environ + the test bed + the repo's ansible.cfg, for ansible-* subprocesses."""
    env = dict(os.environ)
    env.update(tb)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def machine(tb: dict | None = None) -> dict:
    """The machine and the versions every figure depends on."""
    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    versions = {}
    for name, cmd in (("ansible_core", [str(VENV_BIN / "ansible"), "--version"]),
                      ("ansible_rulebook", [str(VENV_BIN / "ansible-rulebook"), "--version"])):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False).stdout
            m = re.search(r"\[(?:core )?([0-9][^\]]*)\]", out)
            versions[name] = m.group(1) if m else out.splitlines()[0] if out else None
            if name == "ansible_rulebook":
                j = re.search(r"Java version = (\S+)", out)
                versions["java"] = j.group(1) if j else None
                d = re.search(r"Drools_jpy version = (\S+)", out)
                versions["drools_jpy"] = d.group(1) if d else None
    if tb:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([tb["OCTOLLM_KUBECTL"], "--kubeconfig", tb["KUBECONFIG"], "version", "-o", "json"],
                                 capture_output=True, text=True, timeout=30, check=False).stdout
            versions["kube_apiserver"] = json.loads(out)["serverVersion"]["gitVersion"]
    load = os.getloadavg()
    return {"cpu_model": cpu, "cores": os.cpu_count(), "ram_gib": mem, "kernel": platform.release(),
            "python": platform.python_version(), **versions,
            "loadavg_at_start": [round(x, 2) for x in load]}


def others_running() -> list[str]:
    """Other engineers' test processes on the machine (molecule, pytest, ansible-playbook not
    ours): the figures are measured under load when any run."""
    mine = {os.getpid(), os.getppid()}
    out = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) in mine:
            continue
        with contextlib.suppress(OSError):
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env_marker = b"OCTOLLM_BENCH_CHILD=1" in (pid_dir / "environ").read_bytes()
            if env_marker:
                continue
            if re.search(r"molecule (test|converge)|pytest|tests/run-all", cmd):
                out.append(cmd[:160])
    return out


# ------------------------------------------------------------------ Kubernetes
class Rest:
    """Plain JSON REST on the API server with the admin kubeconfig (setup and cleanup
    only: not audited, no client-side validation, thread-safe pooled session)."""

    def __init__(self, kubeconfig: str):
        import requests
        from requests.adapters import HTTPAdapter
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx = next(x["context"] for x in cfg["contexts"] if x["name"] == cfg["current-context"])
        cluster = next(x["cluster"] for x in cfg["clusters"] if x["name"] == ctx["cluster"])
        user = next(x["user"] for x in cfg["users"] if x["name"] == ctx["user"])
        self.server = cluster["server"].rstrip("/")
        self.s = requests.Session()
        self.s.trust_env = False  # REQUESTS_CA_BUNDLE would replace the cluster CA
        self.s.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=32))
        self.s.verify = cluster.get("certificate-authority") or True
        if user.get("client-certificate"):
            self.s.cert = (user["client-certificate"], user["client-key"])
        if user.get("token"):
            self.s.headers["Authorization"] = f"Bearer {user['token']}"

    def req(self, method: str, path: str, body=None, params=None, ok=(200, 201, 202), content_type=None):
        headers = {"Content-Type": content_type} if content_type else {}
        r = self.s.request(method, self.server + path, json=body, params=params, headers=headers, timeout=120)
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else {}

    def get(self, path, params=None, ok=(200,)):
        return self.req("GET", path, params=params, ok=ok)

    def create(self, path, body):
        return self.req("POST", path, body)

    def delete(self, path, params=None):
        return self.req("DELETE", path, params=params, ok=(200, 202, 404))

    def merge_patch(self, path, body):
        return self.req("PATCH", path, body, content_type="application/merge-patch+json")

    def list_all(self, path, params=None) -> list[dict]:
        params = dict(params or {}, limit=500)
        items = []
        while True:
            page = self.get(path, params)
            items += page.get("items") or []
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items
            params["continue"] = cont


def _ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


class Kube:
    """Admin access (setup and cleanup; not audited) and the bench's runner identity."""

    def __init__(self, tb: dict, workdir: Path):
        self.tb = tb
        self.kubectl = tb["OCTOLLM_KUBECTL"]
        self.admin_kubeconfig = tb["KUBECONFIG"]
        self.rest = Rest(self.admin_kubeconfig)
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:6]
        self.runner_kubeconfig, self.credential_id = self._bench_identity()

    def _bench_identity(self) -> tuple[Path, str]:
        """A kubeconfig for the runner's ServiceAccount (same RBAC as the shared runner
        kubeconfig) with a token of its own: the audit log names the token (credential-id
        JTI=...), so our requests are counted apart from other engineers' runs."""
        token = self.kubectl_run("-n", "octollm-system", "create", "token", "octollm-runner",
                                 "--duration=6h").stdout.strip()
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        cfg = yaml.safe_load(Path(self.tb["OCTOLLM_RUNNER_KUBECONFIG"]).read_text())
        cfg["users"] = [{"name": "octollm-runner", "user": {"token": token}}]
        path = self.workdir / "runner-bench.kubeconfig"
        path.write_text(yaml.safe_dump(cfg))
        os.chmod(path, 0o600)
        return path, f"JTI={claims['jti']}"

    def kubectl_run(self, *args, check=True, stdin=None, timeout=600):
        return subprocess.run([self.kubectl, "--kubeconfig", self.admin_kubeconfig, *args], input=stdin,
                              capture_output=True, text=True, check=check, timeout=timeout)

    # namespaces ---------------------------------------------------------------
    def create_namespace(self, prefix: str, labels: dict | None = None) -> str:
        name = f"{prefix}-{self.run_id}-{uuid.uuid4().hex[:4]}"
        self.rest.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": name, "labels": {BENCH_LABEL: self.run_id, "octollm.io/test": "bench", **(labels or {})}}})
        return name

    def delete_namespace(self, name: str, wait: float = 600) -> None:
        self.rest.delete(f"/api/v1/namespaces/{name}")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.rest.req("GET", f"/api/v1/namespaces/{name}", ok=(200, 404)).get("kind") != "Namespace":
                return
            time.sleep(1)
        log(f"namespace {name} still terminating after {wait:.0f} s")

    def bench_namespaces(self, run_id: str | None = None) -> list[str]:
        sel = BENCH_LABEL if run_id == "*" else f"{BENCH_LABEL}={run_id or self.run_id}"
        return [n["metadata"]["name"] for n in self.rest.list_all("/api/v1/namespaces", {"labelSelector": sel})]

    # nodes -----------------------------------------------------------------------
    def node_manifest(self, name: str, index: int, pods: int = 110) -> dict:
        """tests/testbed/testbed.py node_manifest, under our prefix, tainted for the bench
        only and labelled for cleanup."""
        sys.path.insert(0, str(REPO / "tests" / "testbed"))
        import testbed  # the test bed's own manifest shape
        m = testbed.node_manifest(index % 250)
        m["metadata"]["name"] = name
        m["metadata"]["labels"]["kubernetes.io/hostname"] = name
        m["metadata"]["labels"][BENCH_LABEL] = self.run_id
        cidr = f"10.{100 + index // 250}.{index % 250}.0/24"
        m["spec"] = {"taints": [BENCH_TAINT], "podCIDR": cidr, "podCIDRs": [cidr]}
        m["status"]["addresses"] = [{"address": f"198.18.{index // 250}.{index % 250 + 1}", "type": "InternalIP"},
                                    {"address": name, "type": "Hostname"}]
        for key in ("allocatable", "capacity"):
            m["status"][key] = dict(m["status"][key], pods=str(pods), cpu="64", memory="256Gi")
        return m

    def create_nodes(self, names: list[str], pods_per_node: int = 110, workers: int = 8, first_index: int = 0,
                     labels: dict | None = None) -> None:
        def one(i_name):
            i, name = i_name
            m = self.node_manifest(name, first_index + i, pods_per_node)
            m["metadata"]["labels"].update(labels or {})
            self.rest.create("/api/v1/nodes", m)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, enumerate(names)))

    def wait_nodes_ready(self, names: list[str], timeout: float = 300) -> None:
        want = set(names)
        ready: set = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = {n["metadata"]["name"] for n in self.rest.list_all(
                "/api/v1/nodes", {"labelSelector": f"{BENCH_LABEL}={self.run_id}"}) if _ready(n)}
            if want <= ready:
                return
            time.sleep(2)
        raise RuntimeError(f"{len(want - ready)} bench node(s) not Ready after {timeout:.0f} s")

    def delete_bench_nodes(self, run_id: str | None = None, wait: float = 300, selector: str | None = None) -> int:
        """Delete every node of this run (or of any bench run with run_id='*')."""
        selector = selector or (BENCH_LABEL if run_id == "*" else f"{BENCH_LABEL}={run_id or self.run_id}")
        names = [n["metadata"]["name"] for n in self.rest.list_all("/api/v1/nodes", {"labelSelector": selector})]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: self.rest.delete(f"/api/v1/nodes/{n}"), names))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.rest.get("/api/v1/nodes", {"labelSelector": selector,
                                                                             "limit": 1}).get("items"):
            time.sleep(1)
        return len(names)

    # workloads ----------------------------------------------------------------------
    def oom_deployment(self, ns: str, name: str, replicas: int = 1, delay: str = "2s",
                       node_selector: dict | None = None) -> dict:
        """The OOM fault of the pod_crashloop scenario: limit 256Mi, OOMKilled until the
        limit is raised to 512Mi or more (kwok stage octollm-pod-oomkilled)."""
        spec = {"terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "ghcr.io/octollm/app:1.0",
                                "resources": {"requests": {"cpu": "10m", "memory": "128Mi"},
                                              "limits": {"cpu": "500m", "memory": "256Mi"}}}]}
        if node_selector:
            spec["nodeSelector"] = node_selector
            spec["tolerations"] = [BENCH_TOLERATION]
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": {BENCH_LABEL: self.run_id},
                             "annotations": {"sim.octollm.io/rps": "0"}},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name, "faults.octollm.io/oom": "true"},
                                                   "annotations": {"faults.octollm.io/logs": "oom",
                                                                   "faults.octollm.io/delay": delay}},
                                      "spec": spec}}}

    def create_deployments(self, docs: list[dict], workers: int = 8) -> None:
        def one(doc):
            self.rest.create(f"/apis/apps/v1/namespaces/{doc['metadata']['namespace']}/deployments", doc)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, docs))

    def crashlooping(self, ns: str, min_restarts: int = 1) -> dict[str, int]:
        """Deployment name -> number of its pods waiting in CrashLoopBackOff with restarts."""
        out: dict[str, int] = {}
        for p in self.rest.list_all(f"/api/v1/namespaces/{ns}/pods"):
            app = (p["metadata"].get("labels") or {}).get("app")
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                waiting = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
                if waiting == "CrashLoopBackOff" and (cs.get("restartCount") or 0) >= min_restarts:
                    out[app] = out.get(app, 0) + 1
                    break
        return out

    def wait_crashlooping(self, ns: str, want: dict[str, int], timeout: float = 300, min_restarts: int = 1) -> None:
        deadline = time.monotonic() + timeout
        got: dict[str, int] = {}
        while time.monotonic() < deadline:
            got = self.crashlooping(ns, min_restarts)
            if all(got.get(k, 0) >= v for k, v in want.items()):
                return
            time.sleep(2)
        short = {k: (got.get(k, 0), v) for k, v in want.items() if got.get(k, 0) < v}
        raise RuntimeError(f"not crash-looping after {timeout:.0f} s (have, want): {dict(list(short.items())[:5])}")


# ------------------------------------------------------------------ audit log
class Audit:
    """The runner's API requests (the test bed's audit policy logs only its
    ServiceAccount), restricted to the bench's own token."""

    def __init__(self, path: str, credential_id: str):
        self.path, self.credential_id = path, credential_id
        self.offset = self._size()

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def mark(self) -> int:
        return self._size()

    def events(self, since_offset: int | None = None) -> list[dict]:
        out = []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset if since_offset is None else since_offset)
                for line in f:
                    if self.credential_id.encode() not in line:
                        continue
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("stage") != "ResponseComplete":
                        continue
                    ev["_t"] = parse_ts(ev.get("requestReceivedTimestamp") or ev["stageTimestamp"])
                    out.append(ev)
        except FileNotFoundError:
            pass
        return out

    @staticmethod
    def summary(events: list[dict]) -> dict:
        verbs: dict[str, int] = {}
        resources: dict[str, int] = {}
        for ev in events:
            verbs[ev.get("verb", "?")] = verbs.get(ev.get("verb", "?"), 0) + 1
            res = (ev.get("objectRef") or {}).get("resource", "?")
            resources[res] = resources.get(res, 0) + 1
        return {"total": len(events), "by_verb": verbs, "by_resource": resources}


def first_write(events: list[dict], namespace: str, name: str | None = None) -> dict | None:
    """The first write of the runner in a namespace (optionally on one object name)."""
    for ev in sorted(events, key=lambda e: e["_t"]):
        ref = ev.get("objectRef") or {}
        if ev.get("verb") in WRITE_VERBS and ref.get("namespace") == namespace \
                and (name is None or ref.get("name") == name):
            return ev
    return None


# ------------------------------------------------------------------ payloads
def wire_alert(fingerprint: str, labels: dict, status: str = "firing", starts: str | None = None) -> dict:
    return {"status": status, "labels": labels,
            "annotations": {"summary": f"{labels.get('pod', labels.get('alertname'))} bench alert",
                            "runbook_url": "https://runbooks/bench"},
            "startsAt": starts or now_iso(-60), "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.bench/graph?g0.expr=up", "fingerprint": fingerprint}


def group(alerts: list[dict], status: str = "firing") -> dict:
    common = {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {}
    return {"version": "4", "status": status, "receiver": "octollm", "alerts": alerts,
            "groupKey": "{}:" + json.dumps(common), "truncatedAlerts": 0, "groupLabels": common,
            "commonLabels": common, "commonAnnotations": {}, "externalURL": "http://alertmanager.bench:9093"}


def crash_labels(ns: str, deployment: str, pod: str, node: str = "node-000001") -> dict:
    return {"alertname": "PodCrashLoopBackOff", "severity": "critical", "namespace": ns, "pod": pod,
            "container": "app", "owner_kind": "Deployment", "owner_name": deployment, "node": node}


def post(url: str, payload, token: str, timeout: float = 60, retries: int = 60) -> dict:
    """POST a delivery; retry 503 (back-pressure) as Alertmanager does."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    for _n in range(retries):
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read()
            try:
                return json.loads(text)
            except ValueError:
                return {"body": text[:200].decode(errors="replace")}
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
            time.sleep(1)
    raise RuntimeError(f"{url} answered 503 {retries} times")


# ------------------------------------------------------------------ rulebooks
def inventory_folder(path: Path, group_vars: dict) -> Path:
    """An inventory FOLDER (ansible-rulebook copies a folder with its group_vars; a file
    alone)."""
    (path / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python")}}}}))
    (path / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(group_vars))
    return path


def none_variant(rulebook: Path = RULEBOOK) -> list[dict]:
    """The shipped rulebook with every action replaced by `none` (conditions, throttles,
    order and source unchanged)."""
    doc = yaml.safe_load(rulebook.read_text())
    for ruleset in doc:
        for rule in ruleset["rules"]:
            rule.pop("actions", None)
            rule["action"] = {"none": {}}
    return doc


class RulebookProcess:
    """ansible-rulebook in its own session (killed by process group), output to a log
    file, optionally read line by line with arrival times (`watch`)."""

    def __init__(self, workdir: Path, rulebook: Path | str, env: dict, inventory: Path | None = None,
                 vars_file: Path | None = None, extra_args=(), watch: tuple[str, ...] = ()):
        self.workdir, self.rulebook, self.env = workdir, rulebook, dict(env, OCTOLLM_BENCH_CHILD="1")
        self.inventory, self.vars_file, self.extra_args = inventory, vars_file, list(extra_args)
        self.watch = watch
        self.seen: dict[str, list[float]] = {w: [] for w in watch}
        self.log = workdir / f"rulebook-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen | None = None
        self.t_start = self.t_exit = None
        self.cpu_s: float | None = None  # CPU seconds of the process tree, once it ended
        self._reader = None

    def start(self) -> RulebookProcess:
        cmd = [str(VENV_BIN / "ansible-rulebook"), "-r", str(self.rulebook)]
        if self.inventory:
            cmd += ["-i", str(self.inventory)]
        if self.vars_file:
            cmd += ["--vars", str(self.vars_file)]
        cmd += self.extra_args
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        with open(self.log, "wb") as out:
            for line in self.proc.stdout:
                t = time.perf_counter()
                out.write(line)
                if self.watch:
                    text = line.decode(errors="replace")
                    for w in self.watch:
                        if w in text:
                            self.seen[w].append(t)
        self.t_exit = time.perf_counter()

    def _reap(self, timeout: float) -> bool:
        """Wait up to timeout for the process to end; keeps the CPU time of the process
        and of every descendant it waited for (its playbooks and their modules)."""
        deadline = time.monotonic() + timeout
        while self.proc.returncode is None:
            try:
                pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            except ChildProcessError:
                self.proc.returncode = self.proc.returncode if self.proc.returncode is not None else -1
                break
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_s = ru.ru_utime + ru.ru_stime
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def alive(self) -> bool:
        return self.proc is not None and not self._reap(0)

    def tail(self, n: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-n:]
        return ""

    def wait_healthy(self, url: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"ansible-rulebook exited {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the event source did not answer on {url} within {timeout:.0f} s:\n{self.tail()}")

    def wait_exit(self, timeout: float = 600) -> int:
        if not self._reap(timeout):
            self.stop()
            raise RuntimeError(f"ansible-rulebook did not stop within {timeout:.0f} s:\n{self.tail()}")
        self._reader.join(10)
        return self.proc.returncode

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            if not self._reap(30):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self._reap(30)
        if self._reader:
            self._reader.join(10)


def run_cpu(cmd: list[str], env: dict, cwd=None, timeout: float = 900) -> dict:
    """Run a command; its exit code, output, wall time and CPU seconds (user + system of
    the command and every descendant it waited for). CPU time does not grow when other
    engineers' tests load the machine; wall time does."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=dict(env, OCTOLLM_BENCH_CHILD="1"), cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _pid, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
    return {"rc": proc.returncode, "out": text, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime}


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000))
    return path


# ------------------------------------------------------------------ ledger
def ledger_runs(location: str, marker: str = "evidence") -> dict:
    """Per target: incidents, their status, and how many playbook runs reached them (one
    timeline entry of kind `marker` per run: `evidence` for full procedures, the
    `dispatched to` note in dispatch-only mode)."""
    out: dict[str, dict] = {}
    with ledger_mod.Ledger.open(location) as lg:
        for inc in lg.incidents(limit=1000000):
            entry = out.setdefault(inc["target_key"], {"incidents": 0, "runs": 0, "closed": 0, "closed_at": []})
            entry["incidents"] += 1
            if inc.get("status") in ("closed", "resolved"):
                entry["closed"] += 1
                if inc.get("closed_at"):
                    entry["closed_at"].append(inc["closed_at"])
            for e in lg.timeline(inc["id"]):
                if marker == "dispatched":
                    if e["kind"] == "note" and "dispatched to" in (e.get("summary") or ""):
                        entry["runs"] += 1
                elif e["kind"] == marker:
                    entry["runs"] += 1
    return out


TEMPDIRS: list[Path] = []


def tempdir(prefix: str) -> Path:
    """A temporary folder (ledgers, rulebook logs, inventories); bench/run.py removes them
    at the end unless a benchmark failed."""
    path = Path(tempfile.mkdtemp(prefix=f"octollm-bench-{prefix}-"))
    TEMPDIRS.append(path)
    return path


# ------------------------------------------------------------------ shared pieces
POOL_LABEL = "bench.octollm.io/pool"


def work_pool(kube: Kube, count: int = 2, pods_per_node: int = 500) -> tuple[list[str], dict]:
    """A few bench nodes of our own (tainted: only our pods land there, and no other
    engineer's drain touches our pods). Returns their names and the nodeSelector. Kept to
    at most 3 nodes: other engineers' tests compute NotReady shares over every node."""
    names = [f"{NODE_PREFIX}-{kube.run_id}-w{i}" for i in range(count)]
    docs = []
    for i, name in enumerate(names):
        m = kube.node_manifest(name, 240 + i, pods_per_node)
        m["metadata"]["labels"][POOL_LABEL] = kube.run_id
        docs.append(m)
    for m in docs:
        kube.rest.create("/api/v1/nodes", m)
    kube.wait_nodes_ready(names, 120)
    return names, {POOL_LABEL: kube.run_id}


def procedure_group_vars(tb: dict, kube: Kube, ledger: str, workdir: Path, **extra) -> dict:
    """The playbooks' settings for a bench run: the local inventory's pod_crashloop
    windows, our runner identity and ledger, remediate mode, reviews in the workdir."""
    gv = yaml.safe_load((REPO / "inventories" / "local" / "group_vars" / "all" / "pod_crashloop.yml").read_text())
    gv.update({"alert_response_kubeconfig": str(kube.runner_kubeconfig), "alert_response_ledger": ledger,
               "alert_response_mode": "remediate", "alert_response_prometheus_url": tb["OCTOLLM_PROMETHEUS_URL"],
               "incident_review_dir": str(workdir / "reviews")})
    gv.update(extra)
    return gv


def wait_for(what: str, fn, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
