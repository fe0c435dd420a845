"""Hardening: what the runner does when what it depends on goes away under it.

Every outage is private to the test, so the shared test bed keeps running:
- the API server "stops" mid-remediation: the runner reaches the real API server through a
  TCP proxy of this test, closed between the diagnosis and the action;
- PostgreSQL goes down under the event source: a PostgreSQL of this test (initdb into tmp_path);
- Redis goes down: a redis-server of this test.
(The runner killed after the acknowledgement and duplicate deliveries are in test_rulebook.py.)
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import pytest
import yaml
from kubernetes import client, config
from module_runner import run_module  # noqa: E402

# through the collection's import path (tests/conftest.py puts .collections on sys.path)
from ansible_collections.octollm.alert_response.plugins.module_utils import ledger as ledger_mod

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "extensions" / "eda" / "plugins" / "event_source" / "alertmanager.py"

pytestmark = pytest.mark.testbed


# ---------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what, predicate, timeout=60, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 (TLS passes through). close() refuses new connections
    and drops the open ones, as a stopped server does; open() serves again on the same port."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0

    def open(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def close(self) -> None:
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                down, _addr = listener.accept()
            except OSError:
                return
            if self._listener is not listener:
                down.close()
                return
            try:
                up = socket.create_connection(self.upstream, timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            with self._lock:
                self._conns.update((down, up))
                self.accepted += 1
            for src, dst in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)


# ---------------------------------------------------------------------- 1. API server stopped mid-remediation
@pytest.fixture()
def admin(testbed):
    api = config.new_client_from_config(config_file=testbed["KUBECONFIG"])
    return client.CoreV1Api(api), client.AppsV1Api(api)


@pytest.fixture()
def fault_namespace(testbed, admin):
    """A namespace of this test (the simulator binds the runner's Role in it), deleted at the end."""
    core, _apps = admin
    name = f"fault-{secrets.token_hex(4)}"
    # a silence for this namespace only: a rulebook that someone else runs on the shared test
    # bed (the closed loop) would otherwise answer PodOOMKilled and fix the app under the test
    now = time.time()
    silence = {"matchers": [{"name": "namespace", "value": name, "isRegex": False, "isEqual": True}],
               "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
               "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1800)),
               "createdBy": "tests/integration/test_faults.py", "comment": f"fault test in {name}"}
    am_url = testbed["OCTOLLM_ALERTMANAGER_URL"]
    req = urllib.request.Request(f"{am_url}/api/v2/silences", data=json.dumps(silence).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        silence_id = json.load(resp)["silenceID"]
    try:
        labels = {"sim.octollm.io/enabled": "true", "octollm.io/test": "faults"}
        core.create_namespace({"metadata": {"name": name, "labels": labels}})
        try:
            runner = client.AuthorizationV1Api(config.new_client_from_config(config_file=testbed["OCTOLLM_RUNNER_KUBECONFIG"]))

            def runner_may_patch():
                review = runner.create_self_subject_access_review({"spec": {"resourceAttributes": {
                    "namespace": name, "verb": "patch", "group": "apps", "resource": "deployments"}}})
                return review.status.allowed
            wait_for("the runner's RoleBinding in the namespace", runner_may_patch, timeout=60)
            yield name
        finally:
            core.delete_namespace(name)
    finally:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(urllib.request.Request(f"{am_url}/api/v2/silence/{silence_id}", method="DELETE"),
                                   timeout=10).close()


@pytest.fixture()
def api_proxy(testbed, tmp_path):
    """The runner's kubeconfig pointing at a TcpProxy to the real API server."""
    kubeconfig = yaml.safe_load(Path(testbed["OCTOLLM_RUNNER_KUBECONFIG"]).read_text())
    server = urllib.parse.urlsplit(kubeconfig["clusters"][0]["cluster"]["server"])
    proxy = TcpProxy((server.hostname, server.port))
    proxy.open()
    try:
        for cluster in kubeconfig["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
        proxy.kubeconfig = tmp_path / "runner-via-proxy.kubeconfig"
        proxy.kubeconfig.write_text(yaml.safe_dump(kubeconfig))
        yield proxy
    finally:
        proxy.close()


OOM_APP = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "app", "annotations": {"sim.octollm.io/rps": "0"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "app"}},
             "template": {"metadata": {"labels": {"app": "app", "faults.octollm.io/oom": "true"},
                                       "annotations": {"faults.octollm.io/logs": "oom", "faults.octollm.io/delay": "2s"}},
                          "spec": {"terminationGracePeriodSeconds": 1,
                                   "containers": [{"name": "app", "image": "ghcr.io/octollm/app:1.0",
                                                   "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                                                 "limits": {"cpu": "500m", "memory": "256Mi"}}}]}}},
}


def crash_looping_oom(core, namespace) -> bool:
    statuses = [s for p in core.list_namespaced_pod(namespace, label_selector="app=app").items
                for s in p.status.container_statuses or []]
    return any(s.state.waiting and s.state.waiting.reason == "CrashLoopBackOff" and s.restart_count >= 2
               and s.last_state.terminated and s.last_state.terminated.reason == "OOMKilled" for s in statuses)


def start_procedure(testbed_env, tmp_path, proxy, ledger, namespace) -> subprocess.Popen:
    evars = {"namespace": namespace, "deployment": "app", "alert_response_kubeconfig": str(proxy.kubeconfig),
             "alert_response_ledger": ledger, "incident_review_dir": str(tmp_path / "reviews"),
             "incident_lock_wait": 10, "incident_assess_window": 600}
    log = open(tmp_path / f"run-{time.monotonic_ns()}.log", "w+")  # noqa: SIM115 - closed by the caller
    proc = subprocess.Popen([str(REPO / ".venv/bin/ansible-playbook"), "octollm.alert_response.pod_crashloop",
                             "-e", json.dumps(evars)], cwd=REPO, env=dict(testbed_env, OCTOLLM_LEDGER=ledger),
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        proc.log.seek(0)
        pytest.fail(f"the procedure hung for more than {timeout:g} s:\n{proc.log.read()[-4000:]}")
    proc.log.seek(0)
    out = proc.log.read()
    proc.log.close()
    return rc, out


def test_api_server_stopped_mid_remediation_fails_cleanly_then_a_rerun_fixes(
        testbed_env, tmp_path, admin, fault_namespace, api_proxy):
    core, apps = admin
    apps.create_namespaced_deployment(fault_namespace, OOM_APP)
    wait_for("the app crash-looping OOMKilled", lambda: crash_looping_oom(core, fault_namespace), timeout=90, interval=1)
    ledger = str(tmp_path / "ledger.sqlite3")
    target = f"deployment/{fault_namespace}/app"

    # run 1: the API server goes away between the diagnosis and the action
    with ledger_mod.Ledger.open(ledger) as watch:      # one reader, polled (no write lock per poll)
        proc = start_procedure(testbed_env, tmp_path, api_proxy, ledger, fault_namespace)
        try:
            deadline = time.monotonic() + 120
            while True:
                incs = watch.incidents(target_key=target)
                if incs and any(e["kind"] == "diagnosis" for e in watch.timeline(incs[0]["id"])):
                    api_proxy.close()
                    break
                assert proc.poll() is None, "the procedure ended before its diagnosis"
                assert time.monotonic() < deadline, "no diagnosis within 120 s"
                time.sleep(0.05)
            assert watch.actions() == [], "the action started before the API server went away: the test came too late"
            rc, out = finish(proc, timeout=120)
        finally:
            stop_process(proc)
    with ledger_mod.Ledger.open(ledger) as lg:
        (inc,) = lg.incidents(target_key=target)
        timeline = lg.timeline(inc["id"])
        actions = lg.actions(incident_id=inc["id"])
    kinds = [e["kind"] for e in timeline]
    diagnosis = next(e for e in timeline if e["kind"] == "diagnosis")
    assert diagnosis["data"]["cause"] == "oom", diagnosis
    # the failure is in the record, naming the API problem
    story = ([(e["kind"], e["summary"][:300]) for e in timeline], out[-3000:])
    failures = [e for e in timeline if e["kind"] in ("error", "action") and e["at"] > diagnosis["at"]]
    assert failures, story
    failure_text = json.dumps(failures).lower()
    assert "the kubernetes api server is unreachable" in failure_text, (rc, failures, out[-3000:])
    # the incident is escalated, stays open, and nothing is claimed as verified
    assert "escalation" in kinds, kinds
    assert inc["escalation_level"] not in (None, "none"), inc
    assert inc["status"] != "closed" and inc["closed_at"] is None, inc
    assert "close" not in kinds
    assert all(not e["data"].get("ok") for e in timeline if e["kind"] == "verification"), timeline
    assert not (tmp_path / "reviews").exists() or not list((tmp_path / "reviews").iterdir())
    assert apps.read_namespaced_deployment("app", fault_namespace).spec.template.spec.containers[0] \
        .resources.limits["memory"] == "256Mi"
    # the guardrail journaled the allowed action before it ran; the record marks it failed
    # without a change, so a per-incident limit would not count it against the rerun
    allowed_1 = [a for a in actions if a["verdict"] == "allowed" and a["mode"] == "remediate"]
    assert allowed_1 and [a["result"] for a in allowed_1] == ["failed"] * len(allowed_1), actions
    first_actions = len(actions)

    # run 2: the API server is back; the same playbook finishes the job
    api_proxy.open()
    proc = start_procedure(testbed_env, tmp_path, api_proxy, ledger, fault_namespace)
    try:
        rc, out = finish(proc, timeout=150)
    finally:
        stop_process(proc)
    assert rc == 0, out[-4000:]
    dep = apps.read_namespaced_deployment("app", fault_namespace)
    assert dep.spec.template.spec.containers[0].resources.limits["memory"] == "512Mi"
    with ledger_mod.Ledger.open(ledger) as lg:
        (inc,) = lg.incidents(target_key=target)
        timeline = lg.timeline(inc["id"])
        actions = lg.actions(incident_id=inc["id"])
    assert [a["action"] for a in actions[first_actions:]] == ["raise_memory_limit"], \
        ([(a["action"], a["verdict"], a["at"]) for a in actions], [(e["kind"], e["summary"][:300]) for e in timeline], story,
         out[-4000:])
    assert actions[-1]["verdict"] == "allowed" and actions[-1]["result"] == "changed", actions[-1]
    verification = [e for e in timeline if e["kind"] == "verification"][-1]
    assert verification["data"]["ok"] is True, verification
    assert inc["status"] == "closed", inc


# ---------------------------------------------------------------------- 2. PostgreSQL down under the event source
class PrivatePostgres:
    """A PostgreSQL of this test in tmp_path: trust auth, random port, socket in tmp_path."""

    def __init__(self, bindir: Path, root: Path):
        self.bindir, self.root = bindir, root
        self.data, self.sock = root / "data", root / "sock"
        self.port = free_port()
        self._prefix = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self.sock.mkdir(parents=True)
        if self._prefix:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
            for parent in [self.root, *self.root.parents]:
                if parent == Path("/"):
                    break
                if not parent.stat().st_mode & 0o001:
                    os.chmod(parent, parent.stat().st_mode | 0o001)
        subprocess.run([*self._prefix, str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True, timeout=120)
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.sock}'\n"
                     "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 20\n"
                     "shared_buffers = 16MB\n")

    def _ctl(self, *args) -> None:
        subprocess.run([*self._prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                        str(self.root / "postgres.log"), "-w", "-t", "60", *args],
                       check=True, capture_output=True, timeout=90)

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@pytest.fixture()
def private_postgres(testbed, tmp_path):
    root = Path(tempfile.mkdtemp(prefix="octollm-pg-"))  # short: the socket path has a length limit
    pg = PrivatePostgres(Path(testbed["OCTOLLM_PG_BINDIR"]), root)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        if pg.running():
            with contextlib.suppress(subprocess.SubprocessError):
                pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def load_source():
    spec = importlib.util.spec_from_file_location("octollm_alertmanager_source_faults", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def group_of(fingerprint: str) -> dict:
    alert = {"status": "firing", "labels": {"alertname": "PodCrashLoopBackOff", "namespace": "web", "pod": "pod-a",
                                            "severity": "critical"},
             "annotations": {"summary": "crash looping"}, "startsAt": "2026-11-29T03:10:03.457863357Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.local/graph", "fingerprint": fingerprint}
    return {"receiver": "eda", "status": "firing", "alerts": [alert], "groupLabels": {"alertname": "PodCrashLoopBackOff"},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager.local:9093", "version": "4",
            "groupKey": '{}:{alertname="PodCrashLoopBackOff"}', "truncatedAlerts": 0}


def test_postgres_down_under_the_event_source(private_postgres):
    am = load_source()
    fingerprint = secrets.token_hex(8)

    async def scenario():
        queue = asyncio.Queue()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        task = asyncio.create_task(am.main(queue, {"port": port, "ledger": private_postgres.dsn}))
        timeout = aiohttp.ClientTimeout(total=30)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async def get_health():
                    async with session.get(url + "/healthz") as resp:
                        return resp.status, await resp.json()

                async def post():
                    async with session.post(url + "/", json=group_of(fingerprint)) as resp:
                        return resp.status, await resp.json(), dict(resp.headers)

                deadline = time.monotonic() + 20
                while True:
                    assert not task.done(), task.result()
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        status, health = await get_health()
                        break
                    assert time.monotonic() < deadline, "the source did not come up"
                    await asyncio.sleep(0.05)
                assert status == 200 and health["ledger"]["ok"], health

                await asyncio.to_thread(private_postgres.stop)
                status, body, headers = await post()
                assert 500 <= status < 600, (status, body)
                assert "ledger" in body["error"] and "unavailable" in body["error"], body
                assert headers.get("Retry-After"), headers
                status, health = await get_health()
                assert status == 503 and health["status"] == "degraded", health
                assert health["ledger"]["ok"] is False and health["ledger"]["error"], health
                assert not task.done(), "the source stopped"
                assert queue.empty()

                await asyncio.to_thread(private_postgres.start)
                status, body, _headers = await post()
                assert status == 200 and body == {"stored": 1, "new": 1, "duplicates": 0}, (status, body)
                status, body, _headers = await post()   # Alertmanager's next retry of the same group
                assert status == 200 and body == {"stored": 1, "new": 0, "duplicates": 1}, (status, body)
                status, health = await get_health()
                assert status == 200 and health["ledger"]["ok"], health
                event = await asyncio.wait_for(queue.get(), 10)
                await asyncio.sleep(0.5)
                assert queue.empty(), "queued twice"
                assert event["alert"]["fingerprint"] == fingerprint
                assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())
    with ledger_mod.Ledger.open(private_postgres.dsn) as lg:
        rows = [a for a in lg.alerts(limit=1000) if a["fingerprint"] == fingerprint]
    assert len(rows) == 1 and rows[0]["state"] == "queued", rows


def test_postgres_activity_info_against_a_stopped_server(testbed_env, private_postgres):
    password = f"pw-{secrets.token_hex(6)}"
    dsn = f"postgresql://postgres:{password}@127.0.0.1:{private_postgres.port}/postgres"
    ok = run_module(testbed_env, "postgres_activity_info", {"dsn": dsn, "connect_timeout": 5})
    assert not ok.get("failed"), ok.get("msg")          # trust auth: the password is not checked
    private_postgres.stop()
    started = time.monotonic()
    res = run_module(testbed_env, "postgres_activity_info", {"dsn": dsn, "connect_timeout": 5})
    assert res["failed"] is True, res
    assert f"postgres@127.0.0.1:{private_postgres.port}/postgres" in res["msg"] and "check dsn" in res["msg"], res["msg"]
    assert password not in res["_stdout"]
    assert time.monotonic() - started < 60


# ---------------------------------------------------------------------- 3. Redis down
@pytest.fixture()
def private_redis(tmp_path):
    port, password = free_port(), secrets.token_hex(12)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path), "--requirepass", password],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up():
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0
        wait_for("the private redis-server", up, timeout=20, interval=0.1)
        proc.port, proc.password = port, password
        yield proc
    finally:
        stop_process(proc)


def test_redis_stats_info_against_a_stopped_server(testbed_env, private_redis):
    args = {"login_host": "127.0.0.1", "login_port": private_redis.port, "login_password": private_redis.password}
    ok = run_module(testbed_env, "redis_stats_info", args)
    assert not ok.get("failed"), ok.get("msg")
    assert ok["redis_version"] and private_redis.password not in ok["_stdout"]
    stop_process(private_redis)
    started = time.monotonic()
    res = run_module(testbed_env, "redis_stats_info", args)
    assert res["failed"] is True, res
    assert f"127.0.0.1:{private_redis.port}" in res["msg"] and "check url" in res["msg"], res["msg"]
    assert private_redis.password not in res["_stdout"]
    assert time.monotonic() - started < 60
    url = run_module(testbed_env, "redis_stats_info",
                     {"url": f"redis://:{private_redis.password}@127.0.0.1:{private_redis.port}/0"})
    assert url["failed"] is True and f"127.0.0.1:{private_redis.port}" in url["msg"], url
    assert private_redis.password not in url["_stdout"]
