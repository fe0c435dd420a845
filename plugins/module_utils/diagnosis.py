# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Diagnosis as data: log-line classification and the cause rules of the procedures.

Pure functions (no Ansible import, no I/O, no clock unless ``now`` is omitted). The
evidence modules (``workload_info``, ``node_info``) classify log tails with
``classify_lines``; the roles map evidence to ONE cause of the shared vocabulary
(runbook matrix 6.1) through the filter ``octollm.alert_response.diagnose``, which calls
the ``*_cause`` functions below.

Every cause function returns::

    {"cause": "oom", "reasons": ["pod app-1 container app: last terminated OOMKilled", ...],
     "details": {...what remediation needs: containers and limits, revisions, services...}}

Reasons are sentences naming the evidence. Two outcomes are not faults:
``no_fault`` (the symptom is gone: nothing to do) and the hand-overs to the procedure
that owns the real cause (``node_not_ready`` in pod_crashloop for runbook scenario 1,
``db_pool_exhausted`` in high_error_rate for scenario 2, ``cache_ineffective`` under
scenario 3 in high_latency); ``details.handover`` names the procedure.
"""
from __future__ import annotations

import math
import re
import time

NO_FAULT = "no_fault"
UNDETERMINED = "undetermined"

# ----------------------------------------------------------------------------- logs
# Log classes, most specific first: a line may carry several (a pool timeout is not a
# refused connection, so pool patterns never mention "refused").
LOG_PATTERNS = {
    "pool_exhausted": (
        r"unable to acquire (a )?connection from (the )?pool", r"connection pool (timeout|exhausted)",
        r"pool (is )?exhausted", r"too many clients already", r"remaining connection slots are reserved",
        r"timed? ?out waiting for (a )?(free )?connection",
    ),
    "connection_refused": (
        r"connection refused", r"\beconnrefused\b", r"no route to host", r"could not connect to",
        r"connection reset by peer", r"name or service not known", r"no such host",
    ),
    "oom": (
        r"out of memory", r"\boom[- ]?kill", r"cannot allocate memory", r"outofmemoryerror",
        r"\bmemoryerror\b", r"memory limit exceeded",
    ),
    "panic": (
        r"\bpanic:", r"\bpanic\(", r"runtime error", r"segmentation (fault|violation)", r"\bsigsegv\b",
        r"traceback \(most recent call last\)", r"nullpointerexception", r"unhandled exception",
        r"\bfatal error:",
    ),
    "permission_denied": (
        r"permission denied", r"\beacces\b", r"operation not permitted", r"\bis forbidden\b", r"access denied",
    ),
    "rate_limited": (
        r"rate[- ]?limit", r"\b429\b", r"too many requests", r"quota exceeded",
    ),
    "config_error": (
        r"invalid configuration", r"\b(setting|variable|key|option) \S+ (is )?(missing|not set|required)",
        r"missing required (setting|variable|key|option|config)", r"config(uration)? (file )?not found",
    ),
}
LOG_CLASSES = tuple(LOG_PATTERNS)
_COMPILED = {cls: re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE)
             for cls, pats in LOG_PATTERNS.items()}
# CRI log prefix ("2026-11-29T03:00:00.000Z stdout F "), when a log source keeps it
_CRI_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\S+ (stdout|stderr) [FP] ")
MAX_EXAMPLE_CHARS = 300


def classify_line(line) -> list:
    """The log classes one line belongs to (possibly none, possibly several)."""
    text = _CRI_PREFIX.sub("", str(line or ""), count=1)
    return [cls for cls, rx in _COMPILED.items() if rx.search(text)]


def classify_lines(lines, max_examples=3) -> dict:
    """Counts per class and a few example lines per class (truncated), for the record.

    ``lines`` is a list of strings or one string with newlines.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    counts, examples = {}, {}
    total = 0
    for line in lines or []:
        if not str(line).strip():
            continue
        total += 1
        for cls in classify_line(line):
            counts[cls] = counts.get(cls, 0) + 1
            if len(examples.setdefault(cls, [])) < max_examples:
                text = _CRI_PREFIX.sub("", str(line), count=1).strip()
                examples[cls].append(text[:MAX_EXAMPLE_CHARS])
    return {"lines": total, "counts": counts, "examples": examples}


def merge_counts(*counts) -> dict:
    """Sum several {class: n} dicts."""
    out = {}
    for c in counts:
        for k, v in (c or {}).items():
            out[k] = out.get(k, 0) + int(v or 0)
    return out


# ----------------------------------------------------------------------- quantities
_BIN = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DEC = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_QTY = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]{0,2})\s*$")


def split_quantity(value):
    """("512", "Mi") for "512Mi"; raises ValueError for anything else."""
    m = _QTY.match(str(value))
    if not m or (m.group(2) and m.group(2) not in _BIN and m.group(2) not in _DEC):
        raise ValueError(f"not a Kubernetes quantity: {value!r} (e.g. 512Mi, 1Gi, 500m, 2)")
    return m.group(1), m.group(2)


def quantity(value) -> float:
    """A Kubernetes quantity as a float: bytes for memory, cores for CPU."""
    number, suffix = split_quantity(value)
    return float(number) * (_BIN.get(suffix) or _DEC.get(suffix) or 1.0)


def scale_quantity(value, factor) -> str:
    """``value`` times ``factor`` in the same unit: 256Mi x2 = 512Mi, 500m x2 = 1000m, 1 x2 = 2."""
    number, suffix = split_quantity(value)
    scaled = float(number) * float(factor)
    text = str(int(scaled)) if scaled == int(scaled) else f"{scaled:.3f}".rstrip("0").rstrip(".")
    return text + suffix


# ------------------------------------------------------------------------- helpers
def _result(cause, reasons, **details) -> dict:
    return {"cause": cause, "reasons": list(reasons), "details": details}


def _num(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) or math.isinf(out) else out


def _opts(defaults, options):
    merged = dict(defaults)
    unknown = sorted(set(options or {}) - set(defaults))
    if unknown:
        raise ValueError(f"unknown diagnosis option(s) {unknown}; known: {sorted(defaults)}")
    merged.update({k: v for k, v in (options or {}).items() if v is not None})
    return merged


def onset_of_latest_run(samples, threshold, above=True):
    """Where the latest continuous run beyond ``threshold`` started.

    ``samples`` are ``[[t, "value"], ...]`` (a Prometheus range result). Returns
    ``{"onset": t | None, "beyond_now": bool, "duration_s": float, "since_start": bool}``:
    ``onset`` is the first sample of the run that reaches the last sample; ``since_start``
    says the run already covered the first sample, so the real onset is earlier than the
    range (unknown). Missing/NaN samples end a run.
    """
    pts = [(float(t), _num(v)) for t, v in samples or []]
    if not pts:
        return {"onset": None, "beyond_now": False, "duration_s": 0.0, "since_start": False}

    def beyond(x):
        return x is not None and (x > threshold if above else x < threshold)

    if not beyond(pts[-1][1]):
        return {"onset": None, "beyond_now": False, "duration_s": 0.0, "since_start": False}
    i = len(pts) - 1
    while i > 0 and beyond(pts[i - 1][1]):
        i -= 1
    return {"onset": pts[i][0], "beyond_now": True, "duration_s": pts[-1][0] - pts[i][0], "since_start": i == 0}


def rollout_before_onset(rollout, onset, window_s, tolerance_s=60.0):
    """(bool, reason): did the latest revision start shortly before the symptom?

    ``rollout``: ``{"revision", "created_epoch", "previous_revision"}``; ``onset``: epoch
    (None = unknown, older than the look-back). The revision must be created at most
    ``window_s`` before the onset (matrix 7.17: "recent" has no figure in the runbook,
    default 2 h) and not later than ``tolerance_s`` after it.
    """
    if not rollout or _num(rollout.get("created_epoch")) is None:
        return False, "no revision of the workload is known"
    created = float(rollout["created_epoch"])
    rev = rollout.get("revision")
    if onset is None:
        return False, f"revision {rev} exists but the symptom's onset is older than the look-back window"
    delta = float(onset) - created
    if delta < -tolerance_s:
        return False, f"revision {rev} was created {-delta:.0f} s after the symptom started"
    if delta > window_s:
        return False, f"revision {rev} was created {delta:.0f} s before the onset (> {window_s:g} s: not recent)"
    return True, f"revision {rev} was created {max(delta, 0):.0f} s before the symptom started"


# -------------------------------------------------------------------- pod_crashloop
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable")
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError")
CRASHLOOP_DEFAULTS = {
    "rollout_window_s": 7200,   # matrix 7.17
    "memory_factor": 2,          # runbook: 512Mi -> 1Gi
}


def _pod_reasons(pod, field):
    return [(c.get("name"), c.get(field)) for c in pod.get("containers") or [] if c.get(field)]


def _events(ev, *reasons):
    return [e for e in ev.get("events") or [] if e.get("reason") in reasons]


def _previous_revision(ev):
    """(current, previous) revision dicts of the workload, newest first in ev["revisions"]."""
    revs = sorted(ev.get("revisions") or [], key=lambda r: int(r.get("revision") or 0), reverse=True)
    current = next((r for r in revs if r.get("current")), revs[0] if revs else None)
    if current is None:
        return None, None
    older = [r for r in revs if int(r.get("revision") or 0) < int(current.get("revision") or 0)]
    return current, (older[0] if older else None)


def _node_handover(problem):
    on_bad = [p for p in problem if p.get("node") and p.get("node_ready") not in (True, None)]
    if problem and len(on_bad) == len(problem):
        nodes = sorted({p["node"] for p in on_bad})
        return _result("node_not_ready",
                       [f"all {len(problem)} failing pod(s) run on NotReady node(s) {', '.join(nodes)}: the node "
                        "takes its pods down (runbook scenario 1); no per-pod action, the node_not_ready "
                        "procedure leads"], handover="node_not_ready", nodes=nodes,
                       pods=[p["name"] for p in on_bad])
    return None


def _crash_image(ev, problem):
    hits = [(p["name"], c, r) for p in problem for c, r in _pod_reasons(p, "waiting_reason") if r in IMAGE_REASONS]
    events = [e for e in ev.get("events") or [] if e.get("reason") in ("ErrImagePull", "Failed", "BackOff")
              and "image" in str(e.get("message", "")).lower()]
    if not hits and not events:
        return None
    reasons = [f"pod {p} container {c}: waiting {r}" for p, c, r in hits[:3]]
    reasons += [f"event {e['reason']} on {e.get('name')}: {str(e.get('message'))[:160]}" for e in events[:2]]
    current, previous = _previous_revision(ev)
    known_good = None
    if previous and int(previous.get("ready_replicas") or 0) > 0 and previous.get("images") != (current or {}).get("images"):
        known_good = {"revision": previous["revision"], "images": previous.get("images"),
                      "containers": previous.get("containers") or []}
        reasons.append(f"revision {previous['revision']} runs {int(previous['ready_replicas'])} Ready pod(s) with "
                       f"{', '.join(previous.get('images') or [])}: a known-good image")
    else:
        reasons.append("no previous revision with Ready pods: no known-good image to go back to")
    images = sorted({c.get("image") for c in ev.get("containers") or [] if c.get("image")})
    return _result("image_pull", reasons, images=images, known_good=known_good,
                   current_revision=(current or {}).get("revision"))


def _crash_config(ev, problem):
    hits = [(p["name"], c, r) for p in problem for c, r in _pod_reasons(p, "waiting_reason") if r in CONFIG_REASONS]
    missing = [r for r in ev.get("config_refs") or [] if not r.get("optional") and
               (r.get("exists") is False or r.get("missing_keys"))]
    if not hits and not missing:
        return None
    reasons = [f"pod {p} container {c}: waiting {r}" for p, c, r in hits[:3]]
    for r in missing:
        if r.get("exists") is False:
            reasons.append(f"{r['kind']} {r['name']} is referenced ({', '.join(r.get('via') or [])}) but does not exist")
        else:
            reasons.append(f"{r['kind']} {r['name']} lacks key(s) {', '.join(r['missing_keys'])}")
    return _result("config_error", reasons, missing=[{k: r.get(k) for k in ("kind", "name", "exists", "missing_keys")}
                                                     for r in missing])


def _crash_volume(ev, problem):
    bad = [v for v in ev.get("volumes") or [] if v.get("claim") and v.get("phase") != "Bound"]
    events = _events(ev, "FailedMount", "FailedAttachVolume")
    sched = [e for e in _events(ev, "FailedScheduling") if "persistentvolumeclaim" in str(e.get("message", "")).lower()]
    if not bad and not events and not sched:
        return None
    reasons = []
    for v in bad:
        state = "does not exist" if v.get("exists") is False else f"is {v.get('phase') or 'not Bound'}"
        extra = ""
        if v.get("storage_class") and v.get("storage_class_exists") is False:
            extra = f" (StorageClass {v['storage_class']} does not exist)"
        reasons.append(f"PersistentVolumeClaim {v['claim']} {state}{extra}")
    reasons += [f"event {e['reason']} on {e.get('name')}: {str(e.get('message'))[:160]}" for e in (events + sched)[:2]]
    return _result("volume_mount", reasons, claims=[v.get("claim") for v in bad])


def _crash_oom(ev, problem, o):
    hits = [(p["name"], c, r) for p in problem for c, r in _pod_reasons(p, "last_terminated_reason") + _pod_reasons(
        p, "terminated_reason") if r == "OOMKilled"]
    events = _events(ev, "OOMKilling", "OOMKilled")
    logs = (ev.get("log_classes") or {}).get("oom", 0)
    if not hits and not events and not logs:
        return None
    reasons = [f"pod {p} container {c}: last terminated OOMKilled" for p, c, _reason in hits[:3]]
    reasons += [f"event {e['reason']} on {e.get('name')}" for e in events[:2]]
    if logs:
        reasons.append(f"{logs} log line(s) say out of memory")
    names = list(dict.fromkeys(c for _pod, c, _reason in hits)) or [c.get("name") for c in (ev.get("containers") or [])[:1]]
    raises = []
    for c in ev.get("containers") or []:
        if c.get("name") not in names:
            continue
        current = ((c.get("resources") or {}).get("limits") or {}).get("memory")
        if current:
            raises.append({"container": c["name"], "current_memory": current,
                           "new_memory": scale_quantity(current, o["memory_factor"])})
            reasons.append(f"container {c['name']} memory limit {current}")
        else:
            reasons.append(f"container {c['name']} has no memory limit: the node ran out of memory, not the limit")
    return _result("oom", reasons, raises=raises)


def _crash_logs(ev, problem, o):
    classes = ev.get("log_classes") or {}
    deps = ev.get("dependencies") or []
    down = [d for d in deps if d.get("exists") is False or int(d.get("ready_endpoints") or 0) == 0]
    if classes.get("connection_refused"):
        reasons = [f"{classes['connection_refused']} log line(s) show refused connections"]
        reasons += [_dep_state(d) for d in deps]
        return _result("dependency_unavailable", reasons, restart=_restartable(down),
                       down=[d.get("service") for d in down])
    if classes.get("panic"):
        return _code_bug(ev, classes, o)
    if classes.get("permission_denied"):
        fm = _events(ev, "FailedMount")
        if not fm:
            return _result("permission_denied", [f"{classes['permission_denied']} log line(s) say permission denied "
                                                 "and no volume failed to mount (RBAC or file permissions; the "
                                                 "runbook gives no fix)"])
    if classes.get("config_error"):
        return _result("config_error", [f"{classes['config_error']} log line(s) report missing or invalid "
                                        "configuration"], missing=[])
    if down:
        reasons = ["no log line names the cause"] + [_dep_state(d) for d in down]
        return _result("dependency_unavailable", reasons, restart=_restartable(down),
                       down=[d.get("service") for d in down])
    return None


def _dep_state(d):
    if d.get("exists") is False:
        return f"dependency Service {d.get('service')} does not exist"
    return (f"dependency Service {d.get('service')} has {int(d.get('ready_endpoints') or 0)} ready endpoint(s)"
            + (f" ({(d.get('workload') or {}).get('kind')} {(d.get('workload') or {}).get('name')})"
               if d.get("workload") else ""))


def _restartable(down):
    out = []
    for d in down:
        w = d.get("workload") or {}
        if w.get("kind") in ("Deployment", "StatefulSet") and w.get("name"):
            out.append({"kind": w["kind"], "name": w["name"], "service": d.get("service")})
    return out


def _code_bug(ev, classes, o):
    reasons = [f"{classes['panic']} log line(s) show a panic or runtime error"]
    current, previous = _previous_revision(ev)
    rollback = None
    if current and previous:
        age = _num(current.get("age_s"))
        if age is not None and age <= o["rollout_window_s"]:
            rollback = {"from_revision": current["revision"], "to_revision": previous["revision"]}
            reasons.append(f"revision {current['revision']} ({', '.join(current.get('images') or [])}) rolled out "
                           f"{age:.0f} s ago, after revision {previous['revision']}")
        else:
            reasons.append(f"revision {current['revision']} is older than {o['rollout_window_s']:g} s: "
                           "not a recent rollout")
    else:
        reasons.append("no previous revision to roll back to")
    return _result("code_bug", reasons, rollback=rollback,
                   images=(current or {}).get("images") or [])


def crashloop_cause(evidence, options=None) -> dict:
    """pod_crashloop (runbook section 1): one cause from a ``workload_info`` result.

    Precedence (ours; the runbook gives none): the node hand-over (every failing pod on
    a NotReady node, scenario 1), then causes that stop a container from starting
    (image_pull, config_error, volume_mount), then oom, then what the logs say
    (connection refused -> dependency_unavailable, panic -> code_bug, permission denied ->
    permission_denied, configuration -> config_error), then a dependency Service without
    ready endpoints, else undetermined. No failing pod -> no_fault.
    """
    o = _opts(CRASHLOOP_DEFAULTS, options)
    ev = evidence.get("workload", evidence) if isinstance(evidence, dict) else {}
    if not ev or ev.get("exists") is False:
        return _result(UNDETERMINED, [f"the workload {ev.get('namespace')}/{ev.get('name')} was not found"])
    problem = [p for p in ev.get("pods") or [] if p.get("problem")]
    if not problem:
        n = len(ev.get("pods") or [])
        return _result(NO_FAULT, [f"all {n} pod(s) Ready, no container waiting or crashing"])
    for rule in (_node_handover, lambda p: _crash_image(ev, p), lambda p: _crash_config(ev, p),
                 lambda p: _crash_volume(ev, p), lambda p: _crash_oom(ev, p, o), lambda p: _crash_logs(ev, p, o)):
        found = rule(problem)
        if found:
            return found
    waiting = sorted({r for p in problem for _name, r in _pod_reasons(p, "waiting_reason")})
    return _result(UNDETERMINED, [f"{len(problem)} pod(s) failing (waiting: {', '.join(waiting) or 'none'}) and no "
                                  "rule matched the evidence: a new issue for the runbook"])


# -------------------------------------------------------------------- node_not_ready
NODE_DEFAULTS = {"heartbeat_stale_s": 60}
_PRESSURE = (("NetworkUnavailable", "network_unavailable"), ("DiskPressure", "disk_pressure"),
             ("MemoryPressure", "memory_pressure"), ("PIDPressure", "pid_pressure"))


def node_cause(evidence, options=None) -> dict:
    """node_not_ready (runbook section 2): one cause from a ``node_info`` result.

    Order of the matrix (hardware_failure needs out-of-band evidence and is never
    chosen here): network_unavailable, disk_pressure, memory_pressure, pid_pressure
    (condition True), then kubelet_down (Ready Unknown, or a heartbeat older than
    heartbeat_stale_s, or a Ready message about the runtime/PLEG), a Ready message about
    the network/CNI -> network_unavailable, else undetermined. Ready -> no_fault.
    """
    o = _opts(NODE_DEFAULTS, options)
    node = evidence.get("node", evidence) if isinstance(evidence, dict) else {}
    if not node or node.get("exists") is False:
        return _result(UNDETERMINED, [f"node {node.get('name')} was not found"])
    cond = {c.get("type"): c for c in node.get("conditions") or []}
    ready = cond.get("Ready") or {}
    status = ready.get("status", "Unknown")
    pressures = [cause for ctype, cause in _PRESSURE if (cond.get(ctype) or {}).get("status") == "True"]
    if status == "True" and not pressures:
        return _result(NO_FAULT, [f"node {node.get('name')} is Ready"])
    reasons = [f"Ready={status} ({ready.get('reason') or 'no reason'}: {str(ready.get('message') or '')[:160]})"]
    for ctype, cause in _PRESSURE:
        c = cond.get(ctype) or {}
        if c.get("status") == "True":
            return _result(cause, reasons + [f"{ctype}=True ({c.get('reason') or 'no reason'})"],
                           conditions=[t for t, _cause in _PRESSURE if (cond.get(t) or {}).get("status") == "True"])
    age = _num(node.get("heartbeat_age_s"))
    message = str(ready.get("message") or "").lower()
    if status == "Unknown" or (age is not None and age > o["heartbeat_stale_s"]):
        why = "status Unknown" if status == "Unknown" else f"last heartbeat {age:.0f} s ago (> {o['heartbeat_stale_s']} s)"
        return _result("kubelet_down", reasons + [f"the kubelet stopped reporting: {why}"])
    if re.search(r"\bpleg\b|container runtime|runtime is down|kubelet", message):
        return _result("kubelet_down", reasons + ["the kubelet reports its runtime unhealthy"])
    if re.search(r"network|cni", message):
        return _result("network_unavailable", reasons + ["the kubelet reports the pod network not ready"])
    return _result(UNDETERMINED, reasons + ["no pressure condition, fresh heartbeat, no known message: "
                                            "the kubelet must be inspected on the machine (out-of-band)"])


# ------------------------------------------------------------- high_error_rate / latency
ERROR_RATE_DEFAULTS = {
    "error_threshold": 0.1,          # the alert's
    "pool_threshold": 0.95,          # DatabaseConnectionPoolExhausted's
    "rollout_window_s": 7200,        # matrix 7.17
    "onset_tolerance_s": 60,
    "downstream_p95_s": 1.0,
    "leak_bytes_per_s": 1024 * 1024 / 60.0,   # 1 MiB/min of steady growth
}
LATENCY_DEFAULTS = {
    "p95_threshold_s": 1.0,          # the alert's
    "rollout_window_s": 7200,
    "onset_tolerance_s": 60,
    "cpu_throttle_ratio": 0.9,       # usage at 90 % of the limit = throttled
    "downstream_p95_s": 1.0,
    "cache_hit_target": 0.8,         # runbook section 5: > 80 %
    "cpu_factor": 2,                 # runbook: 500m -> 1000m
}


def _rollout_rule(facts, o, signal):
    rollout = facts.get("rollout")
    ok, why = rollout_before_onset(rollout, facts.get("onset"), o["rollout_window_s"], o["onset_tolerance_s"])
    if not ok:
        return None, why
    if not rollout.get("previous_revision"):
        return None, why + ", but there is no previous revision to roll back to"
    return _result("recent_rollout", [why, f"{signal} rose after it"], from_revision=rollout.get("revision"),
                   to_revision=rollout.get("previous_revision")), why


def _downstream(facts, o):
    slow = []
    for d in facts.get("downstream") or []:
        p95, ready = _num(d.get("p95")), d.get("ready_endpoints")
        if ready is not None and int(ready) == 0:
            slow.append((d, f"downstream {d.get('service')} has no ready endpoint"))
        elif p95 is not None and p95 > o["downstream_p95_s"]:
            slow.append((d, f"downstream {d.get('service')} p95 {p95:.2f} s > {o['downstream_p95_s']:g} s"))
    if not slow:
        return None
    return _result("downstream_timeout", [r for _svc, r in slow],
                   services=[{"service": d.get("service"), "workload": d.get("workload"), "p95": d.get("p95")}
                             for d, _reason in slow])


def error_rate_cause(facts, options=None) -> dict:
    """high_error_rate (runbook section 3): one cause from the role's facts.

    facts: ``error_rate`` (5xx fraction now), ``onset`` (epoch or None), ``rollout``
    ({revision, created_epoch, previous_revision}), ``pool_ratio``, ``pool_alert``
    (bool: DatabaseConnectionPoolExhausted fires for the service), ``scenario``,
    ``downstream`` ([{service, p95, ready_endpoints, workload}]), ``log_classes``,
    ``memory_growth_bytes_per_s``.

    Precedence (matrix 2.3): db_pool_exhausted first (scenario 2: hand over, no
    rollback), recent_rollout, downstream_timeout, external_rate_limited, memory_leak,
    else undetermined. Below the threshold -> no_fault.
    """
    o = _opts(ERROR_RATE_DEFAULTS, options)
    rate = _num(facts.get("error_rate"))
    if rate is None:
        return _result(UNDETERMINED, ["no request metrics for the service (no traffic, or the service label "
                                      "does not match the Deployment)"])
    if rate < o["error_threshold"]:
        return _result(NO_FAULT, [f"5xx ratio {rate:.1%} is below {o['error_threshold']:.0%}"])
    head = f"5xx ratio {rate:.1%} (> {o['error_threshold']:.0%})"
    pool = _num(facts.get("pool_ratio"))
    if facts.get("scenario") == "S2" or facts.get("pool_alert") or (pool is not None and pool >= o["pool_threshold"]):
        reasons = [head]
        if pool is not None:
            reasons.append(f"DB pool at {pool:.0%} of its size (>= {o['pool_threshold']:.0%})")
        if facts.get("pool_alert"):
            reasons.append("DatabaseConnectionPoolExhausted fires for the same service")
        if facts.get("scenario") == "S2":
            reasons.append("the rulebook correlated the alerts as scenario 2")
        reasons.append("pool exhaustion makes the service fail (scenario 2): db_pool_exhausted leads, no rollback")
        return _result("db_pool_exhausted", reasons, handover="db_pool_exhausted", pool_ratio=pool)
    found, why = _rollout_rule(facts, o, "the error rate")
    if found:
        found["reasons"].insert(0, head)
        return found
    notes = [head, why]
    found = _downstream(facts, o)
    if found:
        found["reasons"] = notes + found["reasons"]
        return found
    classes = facts.get("log_classes") or {}
    if classes.get("rate_limited"):
        return _result("external_rate_limited", notes + [f"{classes['rate_limited']} log line(s) show rate limiting "
                                                         "(429 / too many requests)"])
    growth = _num(facts.get("memory_growth_bytes_per_s"))
    if growth is not None and growth > o["leak_bytes_per_s"]:
        return _result("memory_leak", notes + [f"memory grows {growth * 60 / 2 ** 20:.1f} MiB/min steadily"])
    return _result(UNDETERMINED, notes + ["no rollout, pool, downstream, rate-limit or memory evidence"])


def latency_cause(facts, options=None) -> dict:
    """high_latency (runbook sections 5 and 9): one cause from the role's facts.

    facts: ``p95`` (seconds, now), ``onset``, ``rollout`` (as error_rate_cause),
    ``scenario``, ``cpu`` ([{pod, container, usage_cores, limit_cores}]), ``downstream``,
    ``cache_hit_ratio`` (None when the service uses no cache).

    Precedence (matrix 2.5): scenario 3 -> cache_ineffective (hand over to
    low_cache_hit_rate), recent_rollout, cpu_throttled, downstream_timeout,
    cache_ineffective, else undetermined (slow queries, N+1 and external APIs need traces:
    recorded as recommendations). p95 at or below the threshold -> no_fault.
    """
    o = _opts(LATENCY_DEFAULTS, options)
    p95 = _num(facts.get("p95"))
    if p95 is None:
        return _result(UNDETERMINED, ["no latency histogram for the service"])
    if p95 <= o["p95_threshold_s"]:
        return _result(NO_FAULT, [f"p95 {p95:.2f} s is at or below {o['p95_threshold_s']:g} s"])
    head = f"p95 {p95:.2f} s (> {o['p95_threshold_s']:g} s)"
    if facts.get("scenario") == "S3":
        why = "the rulebook correlated HighLatency with LowCacheHitRate (scenario 3): the cache procedure leads, " \
            "no rollback/CPU/scale"
        return _result("cache_ineffective", [head, why], handover="low_cache_hit_rate")
    found, why = _rollout_rule(facts, o, "latency")
    if found:
        found["reasons"].insert(0, head)
        return found
    notes = [head, why]
    hot, raises = [], {}
    for c in facts.get("cpu") or []:
        use, lim = _num(c.get("usage_cores")), _num(c.get("limit_cores"))
        if use is not None and lim and use / lim >= o["cpu_throttle_ratio"]:
            hot.append(f"pod {c.get('pod')} uses {use:.2f} of {lim:.2f} cores ({use / lim:.0%} of its limit)")
            if c.get("container") and c.get("limit"):
                raises[c["container"]] = {"container": c["container"], "current_cpu": c["limit"],
                                          "new_cpu": scale_quantity(c["limit"], o["cpu_factor"])}
    if hot:
        return _result("cpu_throttled", notes + hot[:5], raises=list(raises.values()))
    found = _downstream(facts, o)
    if found:
        found["reasons"] = notes + found["reasons"]
        return found
    hit = _num(facts.get("cache_hit_ratio"))
    if hit is not None and hit < o["cache_hit_target"]:
        return _result("cache_ineffective", notes + [f"cache hit ratio {hit:.0%} < {o['cache_hit_target']:.0%}"],
                       handover="low_cache_hit_rate")
    return _result(UNDETERMINED, notes + ["no rollout, CPU, downstream or cache evidence; slow queries, N+1 queries "
                                          "and slow external APIs need traces"])


def _by_name(results) -> dict:
    """{name: result} of a looped prometheus_query task (``item.name`` names each query);
    skipped and failed queries are left out."""
    out = {}
    for r in results or []:
        if not isinstance(r, dict) or r.get("skipped") or r.get("failed"):
            continue
        name = (r.get("item") or {}).get("name")
        if name:
            out[name] = r
    return out


def _series_values(result, label):
    """{label value: float} of an instant vector result."""
    out = {}
    for s in (result or {}).get("result") or []:
        key = (s.get("metric") or {}).get(label)
        value = _num((s.get("value") or [None, None])[1])
        if key is not None and value is not None:
            out[key] = value
    return out


def rollout_facts(workload) -> dict | None:
    """The current revision of a workload_info result as ``{revision, created_epoch,
    previous_revision, age_s, images}`` (None without revisions)."""
    ev = workload.get("workload", workload) if isinstance(workload, dict) else {}
    current, previous = _previous_revision(ev)
    if not current:
        return None
    return {"revision": current.get("revision"), "created_epoch": current.get("created_epoch"),
            "previous_revision": (previous or {}).get("revision"), "age_s": current.get("age_s"),
            "images": current.get("images") or [], "previous_images": (previous or {}).get("images") or []}


def service_facts(workload, prom_results, signal="ratio", threshold=0.1, scenario=None, durations=()) -> dict:
    """The facts error_rate_cause / latency_cause read, from a workload_info result and the
    results of a looped prometheus_query task whose items are named:

    ``ratio`` or ``p95`` (the signal now; ``signal`` says which), ``history`` (a range of
    the signal), ``pool``, ``downstream`` (p95 by service), ``memory_growth``,
    ``services_affected``, ``cpu`` (cores by pod and container), ``cache_hit_ratio``,
    ``by_handler`` (p95 by handler).

    ``durations``: thresholds for which to report how long the signal has stayed above
    them (``over_s``: {threshold: seconds}), e.g. 0.2 for the 20 % escalation.
    """
    ev = workload.get("workload", workload) if isinstance(workload, dict) else {}
    q = _by_name(prom_results)
    history = (((q.get("history") or {}).get("result") or [{}])[0] or {}).get("values") or []
    run = onset_of_latest_run(history, float(threshold))
    value = _num((q.get(signal) or {}).get("scalar"))
    deps = {d.get("service"): d for d in ev.get("dependencies") or []}
    p95s = _series_values(q.get("downstream"), "service")
    downstream = []
    for name in sorted(set(deps) | set(p95s)):
        d = deps.get(name) or {}
        downstream.append({"service": name, "p95": p95s.get(name), "ready_endpoints": d.get("ready_endpoints"),
                           "workload": d.get("workload"), "pods_total": d.get("pods_total")})
    limits = {c.get("name"): ((c.get("resources") or {}).get("limits") or {}).get("cpu") for c in ev.get("containers") or []}
    cpu = []
    for s in (q.get("cpu") or {}).get("result") or []:
        m = s.get("metric") or {}
        lim = limits.get(m.get("container"))
        try:
            lim_cores = quantity(lim) if lim else None
        except ValueError:
            lim_cores = None
        cpu.append({"pod": m.get("pod"), "container": m.get("container"), "usage_cores": _num((s.get("value") or [0, 0])[1]),
                    "limit": lim, "limit_cores": lim_cores})
    facts = {
        signal: value, "error_rate" if signal == "ratio" else "p95": value,
        "onset": run["onset"], "onset_known": bool(run["onset"]) and not run["since_start"],
        "beyond_for_s": run["duration_s"], "rollout": rollout_facts(ev), "scenario": scenario,
        "pool_ratio": _num((q.get("pool") or {}).get("scalar")), "downstream": downstream,
        "memory_growth_bytes_per_s": _num((q.get("memory_growth") or {}).get("scalar")),
        "services_affected": int(_num((q.get("services_affected") or {}).get("scalar")) or 0),
        "log_classes": ev.get("log_classes") or {}, "cpu": cpu,
        "cache_hit_ratio": _num((q.get("cache_hit_ratio") or {}).get("scalar")),
        "by_handler": _series_values(q.get("by_handler"), "handler"),
        "over_s": {str(t): onset_of_latest_run(history, float(t))["duration_s"] for t in durations},
    }
    if run["since_start"]:
        facts["onset"] = None  # the run started before the look-back: the real onset is unknown
    return facts


CAUSE_FUNCTIONS = {
    "pod_crashloop": crashloop_cause,
    "node_not_ready": node_cause,
    "high_error_rate": error_rate_cause,
    "high_latency": latency_cause,
}


def diagnose(evidence, procedure, options=None, now=None) -> dict:
    """Dispatch to the procedure's cause function; adds ``procedure`` and ``at``."""
    if procedure not in CAUSE_FUNCTIONS:
        raise ValueError(f"no diagnosis rules for {procedure!r}; known: {sorted(CAUSE_FUNCTIONS)}")
    out = CAUSE_FUNCTIONS[procedure](evidence or {}, options)
    out.update(procedure=procedure, at=time.time() if now is None else now)
    return out
