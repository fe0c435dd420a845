#!/usr/bin/env python3
"""Workload simulator for the test bed.

kwok runs no containers, so something must produce the signals a real OctoLLM workload
would. This process derives them from the real state of the test bed's components, so
that a remediation done through the real APIs really moves the metric:

- HTTP traffic per service (http_requests_total, http_request_duration_seconds) from
  the *ready pods* of each Deployment in namespaces labelled sim.octollm.io/enabled=true.
  Pods carry their faults in annotations copied from the pod template, so a bad rollout
  raises the error rate and a rollback lowers it again:
    faults.octollm.io/error-rate: "0.4"   share of 5xx answers from this pod
    faults.octollm.io/latency: "2.5"      seconds for the slow share of requests
  A service without ready pods answers 503 to everything.
- CPU throttling: sim.octollm.io/cpu-demand (cores, whole workload, Deployment
  annotation) is shared by the ready pods; a pod whose share exceeds its CPU limit is
  throttled and slow. Raising the limit or scaling out really ends it.
- DB pool per service: db_pool_active_connections counts the real PostgreSQL backends
  whose application_name is the service; db_pool_max_connections is DB_POOL_SIZE from
  the ConfigMap <service>-config (label database = its DB_HOST). Pool exhaustion adds
  5xx (requests time out waiting for a connection).
- Redis traffic: GETs (SET with EX=CACHE_TTL on a miss) over a key space against the real
  Redis, so the real redis_exporter reports real hits, misses and evictions.
- node_exporter-style series per Node (instance <InternalIP>:9100 + node_uname_info),
  from the CPU and memory of the pods on it; cAdvisor-style container series.
- cert-manager's certificate metrics from the Certificate objects in the API server.
- kwok Logs objects for pods annotated faults.octollm.io/logs: <profile>, so the pod
  log API serves logs/<profile>.log (and .previous.log for --previous).

HTTP:  GET /metrics   GET /healthz   GET /state   POST /steer (JSON overrides, merged)
       POST|GET|DELETE /sinks/{name}   (webhook capture for Alertmanager/Slack/PagerDuty
       tests; PUT /sinks/{name}/fail {"status": 500, "count": 2} answers errors first)
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import random
import threading
import time
from collections import defaultdict
from pathlib import Path

from aiohttp import web

LOG = logging.getLogger("simulator")
BUCKETS = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf")]
HANDLERS = ["/api/v1/tasks", "/api/v1/health"]
FAULT = "faults.octollm.io/"
SIM = "sim.octollm.io/"


def parse_cpu(q) -> float | None:
    if q is None:
        return None
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


_MEM = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 1e3, "M": 1e6, "G": 1e9, "k": 1e3}


def parse_mem(q) -> float | None:
    if q is None:
        return None
    q = str(q)
    for suf, mul in _MEM.items():
        if q.endswith(suf):
            return float(q[: -len(suf)]) * mul
    return float(q)


def deep_merge(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        elif v is None:
            dst.pop(k, None)
        else:
            dst[k] = v
    return dst


class Snapshot:
    """What the simulator last read from the API server and PostgreSQL."""

    def __init__(self):
        self.nodes: list[dict] = []
        self.pods: list[dict] = []  # pods of enabled namespaces
        self.all_pods_by_node: dict[str, list[dict]] = defaultdict(list)
        self.deployments: list[dict] = []
        self.configmaps: dict[tuple[str, str], dict] = {}
        self.certificates: list[dict] = []
        self.pg_by_app: dict[str, int] = {}
        self.ok = False


class Simulator:
    def __init__(self, kubeconfig: str | None, pg_dsn: str | None, redis_url: str | None, logs_dir: Path):
        self.kubeconfig, self.pg_dsn, self.redis_url, self.logs_dir = kubeconfig, pg_dsn, redis_url, logs_dir
        self.snap = Snapshot()
        self.steer: dict = {"services": {}, "nodes": {}, "cache": {}}
        self.lock = threading.Lock()
        self.counters: dict[tuple, float] = defaultdict(float)  # (name, labels-tuple) -> value
        self.gauges: dict[tuple, float] = {}
        self.sinks: dict[str, list] = defaultdict(list)
        self.sink_fail: dict[str, dict] = {}
        self.started = time.time()
        self.last_tick = time.time()
        self.cache_ops = 0
        self._logs_made: set[tuple[str, str]] = set()
        self._onboarded: set[str] = set()
        self._k8s = None

    # ---------------------------------------------------------------- kube reads
    def k8s(self):
        if self._k8s is None:
            from kubernetes import client, config  # noqa: PLC0415
            config.load_kube_config(config_file=self.kubeconfig)
            api = client.ApiClient()
            self._k8s = (client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api))
        return self._k8s

    def refresh(self) -> None:
        core, apps, custom = self.k8s()
        snap = Snapshot()
        namespaces = [n.metadata.name for n in
                      core.list_namespace(label_selector="sim.octollm.io/enabled=true").items]
        snap.nodes = [n.to_dict() for n in core.list_node().items]
        for ns in namespaces:
            snap.pods += [p.to_dict() for p in core.list_namespaced_pod(ns).items]
            snap.deployments += [d.to_dict() for d in apps.list_namespaced_deployment(ns).items]
            for cm in core.list_namespaced_config_map(ns).items:
                snap.configmaps[(ns, cm.metadata.name)] = cm.data or {}
        for p in snap.pods:
            node = (p.get("spec") or {}).get("node_name")
            if node:
                snap.all_pods_by_node[node].append(p)
        try:
            snap.certificates = custom.list_cluster_custom_object(
                "cert-manager.io", "v1", "certificates").get("items", [])
        except Exception:  # noqa: BLE001 - CRDs may be absent on an existing cluster
            snap.certificates = []
        snap.pg_by_app = self.read_pg()
        snap.ok = True
        self.snap = snap
        self.sync_logs(namespaces)
        self.onboard_namespaces(core)
        try:
            self.issue_certificates()
        except Exception as exc:  # noqa: BLE001 - the next loop retries
            LOG.warning("certificate issuing failed: %s", exc)

    def read_pg(self) -> dict[str, int]:
        if not self.pg_dsn:
            return {}
        import psycopg  # noqa: PLC0415
        try:
            with psycopg.connect(self.pg_dsn, connect_timeout=2, autocommit=True,
                                 application_name="octollm-simulator") as conn:
                rows = conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                    "GROUP BY application_name").fetchall()
            return {r[0]: r[1] for r in rows if r[0]}
        except Exception as exc:  # noqa: BLE001 - a down database is a state to report
            LOG.warning("postgres read failed: %s", exc)
            return {}

    def sync_logs(self, namespaces: list[str]) -> None:
        """Give annotated pods their fault log through kwok's Logs objects."""
        custom = self.k8s()[2]
        wanted = {}
        for p in self.snap.pods:
            ann = p["metadata"].get("annotations") or {}
            prof = ann.get(FAULT + "logs")
            if prof and (self.logs_dir / f"{prof}.log").exists():
                wanted[(p["metadata"]["namespace"], p["metadata"]["name"])] = prof
        for key, prof in wanted.items():
            if key in self._logs_made:
                continue
            cur = self.logs_dir / f"{prof}.log"
            prev = self.logs_dir / f"{prof}.previous.log"
            body = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
                    "metadata": {"name": key[1], "namespace": key[0], "labels": {"sim.octollm.io/logs": prof}},
                    "spec": {"logs": [{"logsFile": str(cur), "previousLogsFile": str(prev if prev.exists() else cur)}]}}
            try:
                custom.create_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", key[0], "logs", body)
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "status", None) != 409:
                    LOG.warning("cannot create Logs for %s/%s: %s", key[0], key[1], exc)
                    continue
            self._logs_made.add(key)
        for key in list(self._logs_made - set(wanted)):
            try:
                custom.delete_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", key[0], "logs", key[1])
            except Exception:  # noqa: BLE001 - already gone with its namespace
                pass
            self._logs_made.discard(key)

    # ------------------------------------------------------------------ model
    @staticmethod
    def ready(pod: dict) -> bool:
        st = pod.get("status") or {}
        if st.get("phase") != "Running" or pod["metadata"].get("deletion_timestamp"):
            return False
        return any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])

    @staticmethod
    def owner_deployment(pod: dict) -> str | None:
        for ref in pod["metadata"].get("owner_references") or []:
            if ref["kind"] == "ReplicaSet":
                return ref["name"].rsplit("-", 1)[0]
            if ref["kind"] in ("StatefulSet", "DaemonSet"):
                return ref["name"]
        return None

    def services(self):
        """(namespace, name, deployment dict, ready pods) per Deployment."""
        pods_by = defaultdict(list)
        for p in self.snap.pods:
            dep = self.owner_deployment(p)
            if dep and self.ready(p):
                pods_by[(p["metadata"]["namespace"], dep)].append(p)
        for d in self.snap.deployments:
            ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
            yield ns, name, d, pods_by.get((ns, name), [])

    def pod_cpu(self, pod: dict, dep: dict | None, n_ready: int) -> tuple[float, float]:
        """(cores used, throttle factor >= 1 when the pod needs more than its limit)."""
        ann = pod["metadata"].get("annotations") or {}
        dann = (dep or {}).get("metadata", {}).get("annotations") or {}
        c0 = (pod["spec"].get("containers") or [{}])[0]
        limit = parse_cpu(((c0.get("resources") or {}).get("limits") or {}).get("cpu"))
        need = float(ann.get(SIM + "cpu", 0.05))
        if dann.get(SIM + "cpu-demand") and n_ready:
            need = float(dann[SIM + "cpu-demand"]) / n_ready
        if limit and need > limit:
            return limit, need / limit
        return need, 1.0

    def pod_memory(self, pod: dict) -> float:
        ann = pod["metadata"].get("annotations") or {}
        base = parse_mem(ann.get(SIM + "memory", "128Mi"))
        leak = parse_mem(ann.get(FAULT + "memory-leak", "0"))  # bytes per minute
        start = (pod.get("status") or {}).get("start_time")
        age_min = (dt.datetime.now(dt.timezone.utc) - start).total_seconds() / 60 if start else 0
        c0 = (pod["spec"].get("containers") or [{}])[0]
        limit = parse_mem(((c0.get("resources") or {}).get("limits") or {}).get("memory"))
        used = base + leak * age_min
        return min(used, limit) if limit else used

    def tick(self) -> None:
        now = time.time()
        dt_s, self.last_tick = max(0.0, min(5.0, now - self.last_tick)), now
        if not self.snap.ok:
            return
        with self.lock:
            self.gauges = {}
            self._tick_services(dt_s)
            self._tick_nodes(dt_s)
            self._tick_certs()

    def _tick_services(self, dt_s: float) -> None:
        for ns, name, dep, pods in self.services():
            dann = dep["metadata"].get("annotations") or {}
            cfg = self.snap.configmaps.get((ns, f"{name}-config"), {})
            steer = self.steer["services"].get(f"{ns}/{name}", {})
            rps = float(steer.get("rps", dann.get(SIM + "rps", 20)))
            # DB pool, from real PostgreSQL sessions
            pool_ratio = 0.0
            if "DB_POOL_SIZE" in cfg:
                db = cfg.get("DB_HOST", "postgres")
                active = self.snap.pg_by_app.get(name, 0)
                size = float(cfg["DB_POOL_SIZE"])
                self.gauges[("db_pool_active_connections", (("namespace", ns), ("service", name), ("database", db)))] = active
                self.gauges[("db_pool_max_connections", (("namespace", ns), ("service", name), ("database", db)))] = size
                pool_ratio = active / size if size else 1.0
            if not pods:
                err, slow, latency = 1.0, 0.0, 0.0
            else:
                errs, lats, slows = [], [], []
                for p in pods:
                    ann = p["metadata"].get("annotations") or {}
                    errs.append(float(ann.get(FAULT + "error-rate", 0)))
                    throttle = self.pod_cpu(p, dep, len(pods))[1]
                    lat = float(ann.get(FAULT + "latency", 0))
                    if throttle > 1.0:
                        lat = max(lat, 0.8 * throttle)
                    lats.append(lat)
                    slows.append(0.3 if lat else 0.0)
                err = sum(errs) / len(errs)
                latency = max(lats)
                slow = sum(slows) / len(slows)
            if pool_ratio >= 0.95:
                err = min(1.0, err + 0.3)
            err = float(steer.get("error_rate", err))
            if "latency" in steer:
                latency, slow = float(steer["latency"]), 0.3
            n = rps * dt_s
            for handler in HANDLERS:
                share = n * (0.9 if handler == HANDLERS[0] else 0.1)
                base = (("namespace", ns), ("service", name), ("handler", handler))
                self.counters[("http_requests_total", base + (("status", "200"),))] += share * (1 - err)
                self.counters[("http_requests_total", base + (("status", "503" if not pods else "500"),))] += share * err
                # histogram: the fast share at 40 ms, the slow share at `latency`
                fast_n, slow_n = share * (1 - slow), share * slow
                for le in BUCKETS:
                    key = ("http_request_duration_seconds_bucket", base + (("le", _fmt_le(le)),))
                    c = (fast_n if 0.04 <= le else 0) + (slow_n if latency <= le else 0)
                    self.counters[key] += c
                self.counters[("http_request_duration_seconds_count", base)] += share
                self.counters[("http_request_duration_seconds_sum", base)] += fast_n * 0.04 + slow_n * latency

    def _tick_nodes(self, dt_s: float) -> None:
        deps = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in self.snap.deployments}
        ready_count = defaultdict(int)
        for p in self.snap.pods:
            if self.ready(p):
                ready_count[(p["metadata"]["namespace"], self.owner_deployment(p))] += 1
        for node in self.snap.nodes:
            name = node["metadata"]["name"]
            alloc = (node.get("status") or {}).get("allocatable") or {}
            cores = parse_cpu(alloc.get("cpu")) or 8.0
            mem_total = parse_mem(alloc.get("memory")) or 32 * 2**30
            ip = next((a["address"] for a in (node["status"].get("addresses") or []) if a["type"] == "InternalIP"), name)
            used_cpu, used_mem = 0.2, 2 * 2**30  # system daemons
            for p in self.snap.all_pods_by_node.get(name, []):
                if (p.get("status") or {}).get("phase") != "Running":
                    continue
                key = (p["metadata"]["namespace"], self.owner_deployment(p))
                cpu = self.pod_cpu(p, deps.get(key), ready_count.get(key, 1))[0]
                mem = self.pod_memory(p)
                used_cpu += cpu
                used_mem += mem
                c0 = (p["spec"].get("containers") or [{"name": "app"}])[0]
                clabels = (("namespace", p["metadata"]["namespace"]), ("pod", p["metadata"]["name"]),
                           ("container", c0["name"]), ("node", name))
                self.counters[("container_cpu_usage_seconds_total", clabels)] += cpu * dt_s
                self.gauges[("container_memory_working_set_bytes", clabels)] = mem
                self.gauges[("container_memory_usage_bytes", clabels)] = mem
                lim = parse_mem(((c0.get("resources") or {}).get("limits") or {}).get("memory"))
                if lim:
                    self.gauges[("container_spec_memory_limit_bytes", clabels)] = lim
            st = self.steer["nodes"].get(name, {})
            cpu_frac = min(1.0, float(st.get("cpu", used_cpu / cores)))
            mem_frac = min(1.0, float(st.get("memory", used_mem / mem_total)))
            inst = (("instance", f"{ip}:9100"), ("job", "node"))
            self.gauges[("node_uname_info", inst + (("nodename", name), ("sysname", "Linux")))] = 1
            per_cpu = int(cores)
            for i in range(per_cpu):
                for mode, share in (("idle", 1 - cpu_frac), ("user", cpu_frac * 0.8), ("system", cpu_frac * 0.2)):
                    self.counters[("node_cpu_seconds_total", inst + (("cpu", str(i)), ("mode", mode)))] += share * dt_s
            self.gauges[("node_memory_MemTotal_bytes", inst)] = mem_total
            self.gauges[("node_memory_MemAvailable_bytes", inst)] = mem_total * (1 - mem_frac)
            disk = float(st.get("disk_free", 0.6))
            self.gauges[("node_filesystem_avail_bytes", inst + (("mountpoint", "/"),))] = 100 * 2**30 * disk
            self.gauges[("node_filesystem_size_bytes", inst + (("mountpoint", "/"),))] = 100 * 2**30

    def _tick_certs(self) -> None:
        for c in self.snap.certificates:
            md, st, spec = c["metadata"], c.get("status") or {}, c.get("spec") or {}
            ref = spec.get("issuerRef") or {}
            labels = (("name", md["name"]), ("namespace", md["namespace"]),
                      ("issuer_name", ref.get("name", "")), ("issuer_kind", ref.get("kind", "Issuer")),
                      ("issuer_group", ref.get("group", "cert-manager.io")))
            if st.get("notAfter"):
                exp = dt.datetime.fromisoformat(st["notAfter"].replace("Z", "+00:00")).timestamp()
                self.gauges[("certmanager_certificate_expiration_timestamp_seconds", labels)] = exp
            if st.get("renewalTime"):
                rt = dt.datetime.fromisoformat(st["renewalTime"].replace("Z", "+00:00")).timestamp()
                self.gauges[("certmanager_certificate_renewal_timestamp_seconds", labels)] = rt
            ready = next((x["status"] for x in st.get("conditions") or [] if x["type"] == "Ready"), "Unknown")
            for cond in ("True", "False", "Unknown"):
                self.gauges[("certmanager_certificate_ready_status", labels + (("condition", cond),))] = \
                    1.0 if ready == cond else 0.0

    # ----------------------------------------------------------------- RBAC
    PROTECTED = frozenset({"kube-system", "kube-public", "kube-node-lease", "cert-manager", "octollm-system", "default"})

    def onboard_namespaces(self, core) -> None:
        """Bind the runner's `octollm-runner-act` ClusterRole in every namespace tests create,
        as a cluster admin does when a namespace comes under management (rbac/README.md).
        Protected namespaces never get it, so RBAC refuses changes there."""
        from kubernetes import client  # noqa: PLC0415
        rbac = client.RbacAuthorizationV1Api(core.api_client)
        for ns in core.list_namespace().items:
            name = ns.metadata.name
            if name in self.PROTECTED or ns.status.phase != "Active" or name in self._onboarded:
                continue
            body = {"metadata": {"name": "octollm-runner-act", "labels": {"app.kubernetes.io/part-of": "octollm-alert-response"}},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "octollm-runner-act"},
                    "subjects": [{"kind": "ServiceAccount", "name": "octollm-runner", "namespace": "octollm-system"}]}
            try:
                rbac.create_namespaced_role_binding(name, body)
            except Exception as exc:  # noqa: BLE001 - 409: already bound
                if getattr(exc, "status", None) not in (409, 404, 403):
                    LOG.warning("cannot bind the runner in %s: %s", name, exc)
                    continue
            self._onboarded.add(name)
        live = {ns.metadata.name for ns in core.list_namespace().items}
        self._onboarded &= live

    # ------------------------------------------------------------- cert-manager
    def issue_certificates(self) -> None:
        """Stand-in for cert-manager's issuing controller (no ACME server is reachable here):
        while the cert-manager Deployment has a ready pod, a Certificate with the Issuing
        condition gets a CertificateRequest; when its issuer is Ready the request is issued and
        the Certificate renewed (new notAfter, revision + 1), otherwise the request fails with
        the issuer's message, as cert-manager reports it. With no ready controller pod nothing
        happens, as with the real controller: nobody creates the request."""
        core, apps, custom = self.k8s()
        certs = [c for c in self.snap.certificates
                 if any(x["type"] == "Issuing" and x["status"] == "True" for x in (c.get("status") or {}).get("conditions") or [])]
        if not certs:
            return
        try:
            cm = apps.read_namespaced_deployment("cert-manager", "cert-manager")
            controller_up = (cm.status.ready_replicas or 0) > 0
        except Exception:  # noqa: BLE001 - no cert-manager Deployment: nothing issues
            controller_up = False
        if not controller_up:
            return
        for cert in certs:
            self._issue_one(custom, cert)

    def _issue_one(self, custom, cert: dict) -> None:
        md, spec, st = cert["metadata"], cert["spec"], cert.get("status") or {}
        ns, name = md["namespace"], md["name"]
        rev = int(st.get("revision") or 0) + 1
        ref = spec.get("issuerRef") or {}
        if ref.get("kind") == "ClusterIssuer":
            issuer = custom.get_cluster_custom_object("cert-manager.io", "v1", "clusterissuers", ref["name"])
        else:
            issuer = custom.get_namespaced_custom_object("cert-manager.io", "v1", ns, "issuers", ref["name"])
        icond = next((x for x in (issuer.get("status") or {}).get("conditions") or [] if x["type"] == "Ready"), {})
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        ts = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        cr_name = f"{name}-{rev}"
        try:
            custom.get_namespaced_custom_object("cert-manager.io", "v1", ns, "certificaterequests", cr_name)
        except Exception:  # noqa: BLE001 - not there yet: create it
            body = {"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                    "metadata": {"name": cr_name, "namespace": ns,
                                 "annotations": {"cert-manager.io/certificate-name": name,
                                                 "cert-manager.io/certificate-revision": str(rev)},
                                 "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                                                      "name": name, "uid": md["uid"], "controller": True,
                                                      "blockOwnerDeletion": True}]},
                    "spec": {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K", "issuerRef": ref,
                             "usages": ["digital signature", "key encipherment"]}}
            custom.create_namespaced_custom_object("cert-manager.io", "v1", ns, "certificaterequests", body)
        if icond.get("status") == "True":
            cr_status = {"conditions": [
                {"type": "Approved", "status": "True", "reason": "cert-manager.io", "lastTransitionTime": ts},
                {"type": "Ready", "status": "True", "reason": "Issued", "message": "Certificate fetched from issuer",
                 "lastTransitionTime": ts}]}
            duration = _duration_s(spec.get("duration") or "2160h")
            before = _duration_s(spec.get("renewBefore") or f"{int(duration / 3)}s")
            not_after = now + dt.timedelta(seconds=duration)
            cert_status = {"revision": rev, "notBefore": ts, "notAfter": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "renewalTime": (not_after - dt.timedelta(seconds=before)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                           "message": "Certificate is up to date and has not expired",
                                           "lastTransitionTime": ts, "observedGeneration": md.get("generation", 1)}],
                           "lastFailureTime": None, "failedIssuanceAttempts": None}
        else:
            reason = icond.get("message") or "issuer is not ready"
            cr_status = {"conditions": [
                {"type": "Approved", "status": "True", "reason": "cert-manager.io", "lastTransitionTime": ts},
                {"type": "Ready", "status": "False", "reason": "Failed", "message": f"Failed to wait for order "
                 f"resource to become ready: {reason}", "lastTransitionTime": ts}],
                "failureTime": ts}
            conds = [x for x in st.get("conditions") or [] if x["type"] != "Issuing"]
            conds.append({"type": "Issuing", "status": "False", "reason": "Failed",
                          "message": f"The certificate request has failed to complete and will be retried: {reason}",
                          "lastTransitionTime": ts})
            cert_status = {"conditions": conds, "lastFailureTime": ts,
                           "failedIssuanceAttempts": int(st.get("failedIssuanceAttempts") or 0) + 1}
        custom.patch_namespaced_custom_object_status("cert-manager.io", "v1", ns, "certificaterequests", cr_name,
                                                     {"status": cr_status})
        # a merge patch replaces the whole conditions list, which drops the Issuing condition
        custom.patch_namespaced_custom_object_status("cert-manager.io", "v1", ns, "certificates", name,
                                                     {"status": cert_status})
        LOG.info("certificate %s/%s revision %s: %s", ns, name, rev, "issued" if icond.get("status") == "True" else "failed")

    # ------------------------------------------------------------------ cache
    def cache_loop(self) -> None:
        """Real cache traffic against Redis, shaped by CACHE_TTL and the steered key space."""
        import redis  # noqa: PLC0415
        client = redis.Redis.from_url(self.redis_url) if self.redis_url else None
        while client is not None:
            st = self.steer.get("cache", {})
            ops = int(st.get("ops_per_second", 50))
            keyspace = int(st.get("keyspace", 200))
            size = int(st.get("value_bytes", 2048))
            cfg = self.snap.configmaps.get(("octollm-prod", "orchestrator-config"), {})
            ttl = int(str(cfg.get("CACHE_TTL", "600")).rstrip("s") or 600)
            t0 = time.time()
            try:
                keys = [f"cache:orchestrator:{random.randrange(keyspace)}" for _ in range(ops)]
                got = client.mget(keys)
                pipe = client.pipeline(transaction=False)
                for k, v in zip(keys, got):
                    if v is None:
                        pipe.set(k, b"x" * size, ex=max(1, ttl))
                pipe.execute()
                self.cache_ops += ops
            except Exception as exc:  # noqa: BLE001 - Redis down is a test case
                LOG.warning("cache traffic failed: %s", exc)
            time.sleep(max(0.0, 1.0 - (time.time() - t0)))

    # ------------------------------------------------------------------ loops
    def refresh_loop(self) -> None:
        while True:
            t0 = time.time()
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep serving the last snapshot
                LOG.warning("refresh failed: %s", exc)
            time.sleep(max(0.2, 2.0 - (time.time() - t0)))

    def tick_loop(self) -> None:
        while True:
            self.tick()
            time.sleep(1.0)

    def exposition(self) -> str:
        out = []
        with self.lock:
            items = [(k, v, "counter") for k, v in self.counters.items()] + \
                    [(k, v, "gauge") for k, v in self.gauges.items()]
        seen = set()
        for (name, labels), value, kind in sorted(items, key=lambda x: x[0][0]):
            family = name
            for suf in ("_bucket", "_count", "_sum"):
                if name.startswith("http_request_duration_seconds") and name.endswith(suf):
                    family, kind = "http_request_duration_seconds", "histogram"
            if family not in seen:
                out.append(f"# TYPE {family} {kind}")
                seen.add(family)
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels)
            out.append(f"{name}{{{lab}}} {value:.6f}")
        out.append("# TYPE simulator_up gauge")
        out.append(f"simulator_up {1 if self.snap.ok else 0}")
        out.append(f"simulator_cache_ops_total {self.cache_ops}")
        return "\n".join(out) + "\n"


def _duration_s(text: str) -> float:
    """Go duration as cert-manager writes it (2160h0m0s, 720h, 90m) -> seconds."""
    total, num = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for ch in str(text):
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total += float(num) * units[ch]
            num = ""
    return total or 7776000.0


def _fmt_le(le: float) -> str:
    return "+Inf" if le == float("inf") else repr(le)


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ---------------------------------------------------------------------- HTTP
def make_app(sim: Simulator) -> web.Application:
    async def metrics(_req):
        return web.Response(text=sim.exposition(), content_type="text/plain")

    async def healthz(_req):
        return web.json_response({"ok": True, "cluster": sim.snap.ok})

    async def state(_req):
        return web.json_response({"steer": sim.steer, "pg_by_app": sim.snap.pg_by_app,
                                  "pods": len(sim.snap.pods), "nodes": len(sim.snap.nodes)})

    async def steer(req):
        body = await req.json()
        with sim.lock:
            deep_merge(sim.steer, body)
        return web.json_response(sim.steer)

    async def sink_post(req):
        name = req.match_info["name"]
        raw = await req.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        sim.sinks[name].append({"received_at": time.time(), "path": req.path, "headers": dict(req.headers),
                                "body": body})
        fail = sim.sink_fail.get(name)
        if fail and fail.get("count", 0) > 0:
            fail["count"] -= 1
            return web.json_response({"error": "injected failure"}, status=int(fail.get("status", 500)))
        return web.json_response({"ok": True})

    async def sink_get(req):
        return web.json_response(sim.sinks.get(req.match_info["name"], []))

    async def sink_delete(req):
        sim.sinks.pop(req.match_info["name"], None)
        sim.sink_fail.pop(req.match_info["name"], None)
        return web.json_response({"ok": True})

    async def sink_fail(req):
        sim.sink_fail[req.match_info["name"]] = await req.json()
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=16 * 2**20)
    app.add_routes([
        web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/state", state),
        web.post("/steer", steer),
        web.post("/sinks/{name}", sink_post), web.post("/sinks/{name}/{rest:.*}", sink_post),
        web.get("/sinks/{name}", sink_get), web.delete("/sinks/{name}", sink_delete),
        web.put("/sinks/{name}/fail", sink_fail),
    ])
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description="OctoLLM test-bed workload simulator")
    ap.add_argument("--port", type=int, default=9500)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--kubeconfig")
    ap.add_argument("--pg-dsn")
    ap.add_argument("--redis-url")
    ap.add_argument("--logs-dir", type=Path, default=Path(__file__).parent / "logs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sim = Simulator(args.kubeconfig or None, args.pg_dsn, args.redis_url, args.logs_dir)
    for target in (sim.refresh_loop, sim.tick_loop, sim.cache_loop):
        threading.Thread(target=target, daemon=True).start()
    web.run_app(make_app(sim), host=args.host, port=args.port, print=None,
                access_log=None, handle_signals=True)


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    main()
