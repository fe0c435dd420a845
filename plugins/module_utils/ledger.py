# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The alert ledger: alerts, incidents, actions and the incident timeline.

One small store shared by the event source (which writes every alert before it
acknowledges the webhook), the incident role and the guardrails (which count actions
per target). SQLite by default (WAL mode, so the source and several playbooks may write
at once), PostgreSQL when the location is a ``postgresql://`` DSN (several runners).

Everything here is plain Python with no Ansible import, so the event source, modules
and tests use the same code. Values are stored as JSON text; times as UNIX epoch floats.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time


def _psycopg():
    """psycopg 3, imported on first use: PostgreSQL is optional (a postgresql:// location),
    and a SQLite ledger, the default, does not pay its import (0.09 s of the 0.3 s a module
    run of incident or guardrail costs)."""
    try:
        import psycopg  # noqa: PLC0415 - optional, imported when a PostgreSQL ledger is opened
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise LedgerError(f"a PostgreSQL ledger needs psycopg 3: pip install 'psycopg[binary]' ({exc})") from None
    return psycopg


SCHEMA_VERSION = 1

# Alert states: received (stored, not yet handed to the rulebook), queued (on the
# rulebook's queue), handled (a playbook picked it up).
ALERT_STATES = ("received", "queued", "handled")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS ledger_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alerts (
        id {serial},
        fingerprint TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        status TEXT NOT NULL,
        alertname TEXT NOT NULL,
        severity TEXT,
        target_key TEXT,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        ends_at TEXT,
        generator_url TEXT,
        group_key TEXT,
        receiver TEXT,
        truncated_alerts INTEGER NOT NULL DEFAULT 0,
        received_at DOUBLE PRECISION NOT NULL,
        last_delivery_at DOUBLE PRECISION NOT NULL,
        delivery_count INTEGER NOT NULL DEFAULT 1,
        state TEXT NOT NULL DEFAULT 'received',
        incident_id INTEGER,
        UNIQUE (fingerprint, starts_at, status))""",
    "CREATE INDEX IF NOT EXISTS alerts_target ON alerts (target_key, status)",
    "CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state)",
    "CREATE INDEX IF NOT EXISTS alerts_fp ON alerts (fingerprint)",
    # the scenario correlation's lookup of recent firing leads (bench: intake)
    "CREATE INDEX IF NOT EXISTS alerts_name ON alerts (alertname, status, received_at)",
    """CREATE TABLE IF NOT EXISTS incidents (
        id {serial},
        incident_key TEXT NOT NULL,
        title TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL,
        procedure TEXT,
        target_key TEXT,
        parent_id INTEGER,
        opened_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        acknowledged_at DOUBLE PRECISION,
        ack_deadline DOUBLE PRECISION,
        resolve_deadline DOUBLE PRECISION,
        resolved_at DOUBLE PRECISION,
        closed_at DOUBLE PRECISION,
        cause TEXT,
        escalation_level TEXT,
        data TEXT NOT NULL DEFAULT '{{}}')""",
    "CREATE INDEX IF NOT EXISTS incidents_key ON incidents (incident_key, status)",
    """CREATE TABLE IF NOT EXISTS incident_alerts (
        incident_id INTEGER NOT NULL,
        alert_id INTEGER NOT NULL,
        PRIMARY KEY (incident_id, alert_id))""",
    """CREATE TABLE IF NOT EXISTS timeline (
        id {serial},
        incident_id INTEGER NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        summary TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{{}}')""",
    "CREATE INDEX IF NOT EXISTS timeline_incident ON timeline (incident_id, at)",
    """CREATE TABLE IF NOT EXISTS actions (
        id {serial},
        incident_id INTEGER,
        target_key TEXT NOT NULL,
        action TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{{}}',
        mode TEXT NOT NULL,
        verdict TEXT NOT NULL,
        rule TEXT,
        reason TEXT,
        result TEXT,
        at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS actions_target ON actions (target_key, at)",
    # one procedure at a time per target (a run holds it; expiry covers crashed runs)
    """CREATE TABLE IF NOT EXISTS locks (
        target_key TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        acquired_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL)""",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class LedgerError(Exception):
    """A ledger operation failed; the message says what to do."""


def is_dns_label(value) -> bool:
    """RFC 1123 label (namespaces, most names): what Kubernetes accepts."""
    return isinstance(value, str) and 0 < len(value) <= 63 and bool(_DNS_LABEL.match(value))


def is_dns_subdomain(value) -> bool:
    """RFC 1123 subdomain (pod, node, Deployment names)."""
    return isinstance(value, str) and 0 < len(value) <= 253 and bool(_DNS_SUBDOMAIN.match(value))


def target_of(labels: dict) -> str | None:
    """The target an alert is about, as ``kind/namespace/name`` or ``kind/name``.

    Procedures run per target, so a storm of pod alerts from one workload is one run.
    Only valid Kubernetes names make a target; anything else gives None (the alert is
    still stored and routed to the notify-only path).
    """
    ns = labels.get("namespace")
    kind = (labels.get("owner_kind") or "").lower()
    checks = [
        (kind in ("deployment", "statefulset", "daemonset") and labels.get("owner_name"),
         lambda: f"{kind}/{ns}/{labels['owner_name']}", (ns, labels.get("owner_name"))),
        ("database" in labels, lambda: f"database/{ns}/{labels['database']}", (ns, labels.get("database"))),
        ("cache" in labels, lambda: f"cache/{labels['cache']}", tuple(str(labels.get("cache", "")).split("/", 1))),
        ("persistentvolumeclaim" in labels,
         lambda: f"pvc/{ns}/{labels['persistentvolumeclaim']}", (ns, labels.get("persistentvolumeclaim"))),
        ("horizontalpodautoscaler" in labels,
         lambda: f"hpa/{ns}/{labels['horizontalpodautoscaler']}", (ns, labels.get("horizontalpodautoscaler"))),
        ("configmap" in labels, lambda: f"configmap/{ns}/{labels['configmap']}", (ns, labels.get("configmap"))),
        ("deployment" in labels, lambda: f"deployment/{ns}/{labels['deployment']}", (ns, labels.get("deployment"))),
        (labels.get("alertname") == "CertificateExpiringInSevenDays" and "name" in labels,
         lambda: f"certificate/{ns}/{labels['name']}", (ns, labels.get("name"))),
        ("node" in labels and not labels.get("pod"), lambda: f"node/{labels['node']}", (labels.get("node"),)),
        ("service" in labels, lambda: f"deployment/{ns}/{labels['service']}", (ns, labels.get("service"))),
        ("pod" in labels, lambda: f"pod/{ns}/{labels['pod']}", (ns, labels.get("pod"))),
    ]
    for applies, make, parts in checks:
        if applies:
            if parts and all(is_dns_subdomain(p) for p in parts) and (len(parts) == 1 or is_dns_label(parts[0])):
                return make()
            return None
    return None


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _loads(text):
    return json.loads(text) if text else {}


class Ledger:
    """Open with ``Ledger.open(location)``; location is a file path or a DSN."""

    def __init__(self, location: str, conn, kind: str):
        self.location, self.conn, self.kind = location, conn, kind
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, location: str | None = None) -> "Ledger":
        location = location or default_location()
        if location.startswith(("postgresql://", "postgres://")):
            psycopg = _psycopg()
            try:
                conn = psycopg.connect(location, autocommit=True, connect_timeout=10,
                                       application_name="octollm-ledger")
            except Exception as exc:  # psycopg.OperationalError and friends
                raise LedgerError(f"cannot connect to the PostgreSQL ledger: {_redact(str(exc))}; "
                                  "check the DSN, the server and its pg_hba.conf") from exc
            ledger = cls(location, conn, "postgresql")
        else:
            path = os.path.abspath(os.path.expanduser(location))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot open the SQLite ledger at {path}: {exc}; "
                                  "check the folder exists and is writable") from exc
            ledger = cls(path, conn, "sqlite")
        ledger._migrate()
        return ledger

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def describe(self) -> str:
        return f"{self.kind}:{_redact(self.location)}"

    # ------------------------------------------------------------------ SQL
    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    def _live(self):
        """The connection. A PostgreSQL connection that the server closed (restart, failover)
        is opened again, outside a transaction only; until the server is back this raises."""
        if self.kind == "postgresql" and self.conn.closed and not getattr(self, "_depth", 0):
            self.conn = _psycopg().connect(self.location, autocommit=True, connect_timeout=10,
                                           application_name="octollm-ledger")
        return self.conn

    def _exec(self, sql: str, params=()):
        with self._lock:
            return self._live().execute(self._sql(sql), params)

    def _rows(self, sql: str, params=()) -> list[dict]:
        with self._lock:
            cur = self._live().execute(self._sql(sql), params)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def _one(self, sql: str, params=()) -> dict | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def transaction(self):
        return _Tx(self)

    def _migrate(self) -> None:
        serial = "BIGSERIAL PRIMARY KEY" if self.kind == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
        with self.transaction():
            if self.kind == "postgresql":
                # several runners may start at once: one migrates, the others wait
                self._exec("SELECT pg_advisory_xact_lock(724201)")
            for stmt in _SCHEMA:
                self._exec(stmt.format(serial=serial))
            row = self._one("SELECT value FROM ledger_meta WHERE key = 'schema_version'")
            if row is None:
                self._exec("INSERT INTO ledger_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row["value"]) > SCHEMA_VERSION:
                raise LedgerError(f"the ledger at {self.describe()} has schema {row['value']}, newer than this "
                                  f"collection's {SCHEMA_VERSION}: upgrade octollm.alert_response")

    def health(self) -> dict:
        try:
            row = self._one("SELECT count(*) AS n FROM alerts")
            return {"ok": True, "backend": self.kind, "alerts": int(row["n"])}
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return {"ok": False, "backend": self.kind, "error": _redact(str(exc))}

    # ------------------------------------------------------------------ alerts
    def record_alerts(self, alerts: list[dict], group: dict | None = None, now: float | None = None,
                      target_key: str | None = None) -> list[dict]:
        """Store one webhook delivery. Returns, per alert, ``{"id", "new", "state"}``.

        ``target_key`` overrides the target derived from the labels (a procedure started by
        hand names its target); never pass anything from a webhook payload here.

        A known alert (same fingerprint, startsAt and status) only gets its delivery count
        raised: Alertmanager re-sends whole groups and HA pairs deliver twice.
        """
        now = time.time() if now is None else now
        group = group or {}
        out = []
        with self.transaction():
            for a in alerts:
                labels = a.get("labels") or {}
                params = (a["fingerprint"], a["startsAt"], a["status"], labels.get("alertname", ""),
                          labels.get("severity"), target_key or target_of(labels), _dumps(labels),
                          _dumps(a.get("annotations") or {}), a.get("endsAt"), a.get("generatorURL"),
                          group.get("groupKey"), group.get("receiver"), int(group.get("truncatedAlerts") or 0),
                          now, now)
                # insert-or-count in one statement each, so two runners racing on the same
                # delivery (an HA pair) still store it once
                row = self._exec(
                    "INSERT INTO alerts (fingerprint, starts_at, status, alertname, severity, target_key, labels, "
                    "annotations, ends_at, generator_url, group_key, receiver, truncated_alerts, received_at, "
                    "last_delivery_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (fingerprint, starts_at, status) DO NOTHING RETURNING id", params).fetchone()
                if row is not None:
                    out.append({"id": row[0], "new": True, "state": "received"})
                    continue
                row = self._exec(
                    "UPDATE alerts SET delivery_count = delivery_count + 1, last_delivery_at = ?, "
                    "truncated_alerts = ? WHERE fingerprint = ? AND starts_at = ? AND status = ? "
                    "RETURNING id, state",
                    (now, int(group.get("truncatedAlerts") or 0), a["fingerprint"], a["startsAt"], a["status"]),
                ).fetchone()
                out.append({"id": row[0], "new": False, "state": row[1]})
        return out

    def set_alert_state(self, ids, state: str) -> None:
        """Move alerts forward (received -> queued -> handled), never back: a playbook that
        already handled an alert is not undone by the source marking it queued later."""
        if state not in ALERT_STATES:
            raise LedgerError(f"unknown alert state {state!r}; use one of {ALERT_STATES}")
        ids = [int(i) for i in ids]
        if not ids:
            return
        earlier = list(ALERT_STATES[:ALERT_STATES.index(state)]) or ["-"]
        marks = ", ".join(["?"] * len(earlier))
        with self.transaction():
            for i in ids:
                self._exec(f"UPDATE alerts SET state = ? WHERE id = ? AND state IN ({marks})", (state, i, *earlier))

    def pending_alerts(self, queued_within: float | None = None, now: float | None = None) -> list[dict]:
        """Alerts stored but never handed to the rulebook (a crash between ack and queue),
        and, with ``queued_within``, alerts handed over that long ago at most that no
        playbook handled (the runner died with them in its queue). A firing alert whose
        resolved notification is already stored is left out: only its end matters now."""
        now = time.time() if now is None else now
        sql = "SELECT * FROM alerts a WHERE (a.state = 'received'"
        params: list = []
        if queued_within:
            sql += " OR (a.state = 'queued' AND a.received_at >= ?)"
            params.append(now - queued_within)
        sql += (") AND NOT (a.status = 'firing' AND EXISTS (SELECT 1 FROM alerts r WHERE r.fingerprint = "
                "a.fingerprint AND r.starts_at = a.starts_at AND r.status = 'resolved')) ORDER BY a.id")
        return [self._alert(r) for r in self._rows(sql, tuple(params))]

    def get_alert(self, alert_id: int) -> dict | None:
        row = self._one("SELECT * FROM alerts WHERE id = ?", (int(alert_id),))
        return self._alert(row) if row else None

    def alerts(self, target_key: str | None = None, alertname: str | None = None, status: str | None = None,
               since: float | None = None, fingerprint: str | None = None, limit: int = 1000) -> list[dict]:
        where, params = [], []
        for col, val in (("target_key", target_key), ("alertname", alertname), ("status", status),
                         ("fingerprint", fingerprint)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since is not None:
            where.append("received_at >= ?")
            params.append(since)
        sql = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ?"
        return [self._alert(r) for r in self._rows(sql, (*params, int(limit)))]

    def firing_alerts(self, target_key: str | None = None, alertname: str | None = None, since: float | None = None,
                      labels: dict | None = None) -> list[dict]:
        """Alerts whose latest known status is firing (no resolved entry with the same
        fingerprint and startsAt); optionally only those received since ``since`` and whose
        labels have the given values (filtered in SQL: a long ledger is not read whole)."""
        where, params = ["a.status = 'firing'"], []
        if target_key is not None:
            where.append("a.target_key = ?")
            params.append(target_key)
        if alertname is not None:
            where.append("a.alertname = ?")
            params.append(alertname)
        if since is not None:
            where.append("a.received_at >= ?")
            params.append(float(since))
        for key, value in (labels or {}).items():
            if self.kind == "sqlite":
                where.append("json_extract(a.labels, ?) = ?")
                params.append('$."%s"' % str(key).replace('"', '\\"'))
            else:
                where.append("(a.labels::jsonb ->> ?) = ?")
                params.append(str(key))
            params.append(str(value))
        sql = ("SELECT a.* FROM alerts a WHERE " + " AND ".join(where) +
               " AND NOT EXISTS (SELECT 1 FROM alerts r WHERE r.fingerprint = a.fingerprint "
               "AND r.starts_at = a.starts_at AND r.status = 'resolved') ORDER BY a.id")
        return [self._alert(r) for r in self._rows(sql, tuple(params))]

    @staticmethod
    def _alert(row: dict) -> dict:
        row = dict(row)
        row["labels"] = _loads(row["labels"])
        row["annotations"] = _loads(row["annotations"])
        return row

    # ------------------------------------------------------------------ incidents
    def find_open_incident(self, incident_key: str) -> dict | None:
        row = self._one("SELECT * FROM incidents WHERE incident_key = ? AND status NOT IN ('closed') "
                        "ORDER BY id DESC LIMIT 1", (incident_key,))
        return self._incident(row) if row else None

    def create_incident(self, incident_key: str, title: str, severity: str, procedure: str | None,
                        target_key: str | None, started_at: float | None = None, parent_id: int | None = None,
                        ack_deadline: float | None = None, resolve_deadline: float | None = None,
                        data: dict | None = None, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        with self.transaction():
            cur = self._exec(
                "INSERT INTO incidents (incident_key, title, severity, status, procedure, target_key, parent_id, "
                "opened_at, started_at, ack_deadline, resolve_deadline, data) "
                "VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (incident_key, title, severity, procedure, target_key, parent_id, now, started_at or now,
                 ack_deadline, resolve_deadline, _dumps(data or {})))
            iid = cur.fetchone()[0]
        return self.get_incident(iid)

    def get_incident(self, incident_id: int) -> dict | None:
        row = self._one("SELECT * FROM incidents WHERE id = ?", (int(incident_id),))
        return self._incident(row) if row else None

    def incidents(self, status: str | None = None, target_key: str | None = None, limit: int = 100) -> list[dict]:
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if target_key is not None:
            where.append("target_key = ?")
            params.append(target_key)
        sql = "SELECT * FROM incidents" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return [self._incident(r) for r in self._rows(sql, (*params, int(limit)))]

    _INCIDENT_COLUMNS = {"title", "severity", "status", "procedure", "target_key", "parent_id", "acknowledged_at",
                         "ack_deadline", "resolve_deadline", "resolved_at", "closed_at", "cause",
                         "escalation_level", "started_at"}

    def update_incident(self, incident_id: int, data: dict | None = None, **fields) -> dict:
        """Set columns and merge ``data`` into the incident's JSON data."""
        bad = set(fields) - self._INCIDENT_COLUMNS
        if bad:
            raise LedgerError(f"unknown incident fields {sorted(bad)}")
        with self.transaction():
            cur = self.get_incident(incident_id)
            if cur is None:
                raise LedgerError(f"incident {incident_id} does not exist")
            sets, params = [], []
            for k, v in fields.items():
                sets.append(f"{k} = ?")
                params.append(v)
            if data:
                merged = dict(cur["data"])
                merged.update(data)
                sets.append("data = ?")
                params.append(_dumps(merged))
            if sets:
                self._exec(f"UPDATE incidents SET {', '.join(sets)} WHERE id = ?", (*params, int(incident_id)))
        return self.get_incident(incident_id)

    def link_alerts(self, incident_id: int, alert_ids) -> int:
        """Attach alerts to an incident; returns how many were new links."""
        added = 0
        with self.transaction():
            for aid in alert_ids:
                cur = self._exec("INSERT INTO incident_alerts (incident_id, alert_id) VALUES (?, ?) "
                                 "ON CONFLICT DO NOTHING", (int(incident_id), int(aid)))
                added += max(cur.rowcount, 0)
                self._exec("UPDATE alerts SET incident_id = ? WHERE id = ? AND incident_id IS NULL",
                           (int(incident_id), int(aid)))
        return added

    def incident_alerts(self, incident_id: int) -> list[dict]:
        return [self._alert(r) for r in self._rows(
            "SELECT a.* FROM alerts a JOIN incident_alerts l ON l.alert_id = a.id WHERE l.incident_id = ? "
            "ORDER BY a.id", (int(incident_id),))]

    @staticmethod
    def _incident(row: dict) -> dict:
        row = dict(row)
        row["data"] = _loads(row["data"])
        return row

    # ------------------------------------------------------------------ timeline
    def add_timeline(self, incident_id: int, kind: str, summary: str, data: dict | None = None,
                     now: float | None = None, dedupe: bool = False) -> int | None:
        """Append a timeline entry. With ``dedupe``, an entry equal to the latest entry of
        the same kind is not written again (reruns stay idempotent); returns None then."""
        now = time.time() if now is None else now
        payload = _dumps(data or {})
        with self.transaction():
            if dedupe:
                last = self._one("SELECT summary, data FROM timeline WHERE incident_id = ? AND kind = ? "
                                 "ORDER BY id DESC LIMIT 1", (int(incident_id), kind))
                if last and last["summary"] == summary and last["data"] == payload:
                    return None
            cur = self._exec("INSERT INTO timeline (incident_id, at, kind, summary, data) VALUES (?, ?, ?, ?, ?) "
                             "RETURNING id", (int(incident_id), now, kind, summary, payload))
            return cur.fetchone()[0]

    def timeline(self, incident_id: int) -> list[dict]:
        rows = self._rows("SELECT * FROM timeline WHERE incident_id = ? ORDER BY at, id", (int(incident_id),))
        for r in rows:
            r["data"] = _loads(r["data"])
        return rows

    # ------------------------------------------------------------------ actions
    def record_action(self, target_key: str, action: str, mode: str, verdict: str, incident_id: int | None = None,
                      params: dict | None = None, rule: str | None = None, reason: str | None = None,
                      result: str | None = None, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self.transaction():
            cur = self._exec("INSERT INTO actions (incident_id, target_key, action, params, mode, verdict, rule, "
                             "reason, result, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                             (incident_id, target_key, action, _dumps(params or {}), mode, verdict, rule, reason,
                              result, now))
            return cur.fetchone()[0]

    def set_action_result(self, action_id: int, result: str) -> None:
        self._exec("UPDATE actions SET result = ? WHERE id = ?", (result, int(action_id)))

    def count_actions(self, target_key: str, since: float, verdict: str = "allowed", mode: str = "remediate",
                      action: str | None = None) -> int:
        sql = "SELECT count(*) AS n FROM actions WHERE target_key = ? AND at >= ? AND verdict = ? AND mode = ?"
        params = [target_key, since, verdict, mode]
        if action:
            sql += " AND action = ?"
            params.append(action)
        return int(self._one(sql, tuple(params))["n"])

    def actions(self, incident_id: int | None = None, target_key: str | None = None) -> list[dict]:
        where, params = [], []
        if incident_id is not None:
            where.append("incident_id = ?")
            params.append(int(incident_id))
        if target_key is not None:
            where.append("target_key = ?")
            params.append(target_key)
        rows = self._rows("SELECT * FROM actions" + (" WHERE " + " AND ".join(where) if where else "") +
                          " ORDER BY at, id", tuple(params))
        for r in rows:
            r["params"] = _loads(r["params"])
        return rows

    # ------------------------------------------------------------------ locks
    def acquire_lock(self, target_key: str, holder: str, ttl: float = 900, wait: float = 0,
                     now: float | None = None) -> dict:
        """Take the per-target lock, waiting up to ``wait`` seconds. Returns
        ``{"acquired": bool, "holder": <current holder>, "expires_at": ...}``. A lock past its
        expiry (a crashed run) is taken over; the same holder re-acquires (reruns)."""
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            t = time.time() if now is None else now
            with self.transaction():
                row = self._one("SELECT holder, expires_at FROM locks WHERE target_key = ?", (target_key,))
                if row is None or row["holder"] == holder or row["expires_at"] < t:
                    self._exec("DELETE FROM locks WHERE target_key = ?", (target_key,))
                    self._exec("INSERT INTO locks (target_key, holder, acquired_at, expires_at) VALUES (?, ?, ?, ?)",
                               (target_key, holder, t, t + ttl))
                    return {"acquired": True, "holder": holder, "expires_at": t + ttl}
            if time.monotonic() >= deadline:
                return {"acquired": False, "holder": row["holder"], "expires_at": row["expires_at"]}
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def release_lock(self, target_key: str, holder: str) -> bool:
        with self.transaction():
            cur = self._exec("DELETE FROM locks WHERE target_key = ? AND holder = ?", (target_key, holder))
            return cur.rowcount > 0


class _Tx:
    """A write transaction: BEGIN IMMEDIATE on SQLite (one writer, others wait up to
    busy_timeout), a plain transaction on PostgreSQL. Re-entrant."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def __enter__(self):
        lg = self.ledger
        lg._lock.acquire()
        depth = getattr(lg, "_depth", 0)
        try:
            if depth == 0:
                lg._live().execute("BEGIN IMMEDIATE" if lg.kind == "sqlite" else "BEGIN")
        except BaseException:
            # no transaction was begun: __exit__ will not run, so give the lock back here
            lg._lock.release()
            raise
        lg._depth = depth + 1
        return lg

    def __exit__(self, exc_type, exc, tb):
        lg = self.ledger
        try:
            lg._depth -= 1
            if lg._depth == 0:
                lg.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            lg._lock.release()
        return False


def default_location() -> str:
    """$OCTOLLM_LEDGER, else a file under the user's state folder."""
    env = os.environ.get("OCTOLLM_LEDGER")
    if env:
        return env
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "octollm-alert-response", "ledger.sqlite3")


def _redact(text: str) -> str:
    """Hide the password of a DSN in messages."""
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@", r"\1***@", str(text))
