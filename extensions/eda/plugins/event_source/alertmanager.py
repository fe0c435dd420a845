# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""octollm.alert_response.alertmanager: the Alertmanager webhook event source.

Alertmanager -> this source -> ledger -> ansible-rulebook. Every delivery is validated,
written to the ledger and only then acknowledged; new alerts are then handed to the
rulebook, one event each. A stored alert that never reached the rulebook (crash between
the acknowledgement and the hand-over) is handed over again when the source starts.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import hmac
import importlib.util
import itertools
import json
import logging
import re
import ssl
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager webhook notifications and hand each new alert to the rulebook
description:
  - An ansible-rulebook event source for the Alertmanager webhook receiver (payload version 4).
  - Every delivery is validated, every alert in it is written to the octollm.alert_response alert ledger,
    and only then is the delivery acknowledged with 200. Deliveries that cannot be stored get a 5xx so that
    Alertmanager retries them.
  - One event per new alert is put on the rulebook's queue. Alerts already in the ledger (same fingerprint,
    startsAt and status, as Alertmanager re-sends whole groups and HA pairs deliver twice) are only counted.
  - "Label and annotation values are untrusted. In the event (not in the ledger) Jinja markers are neutralised
    (C({{) becomes C({ {), C({%) becomes C({ %), C({#) becomes C({ #)) and the keys that carried them are
    listed in C(meta.template_markers). No request header reaches the event."
  - POST on C(/) or C(/<endpoint>); C(GET /healthz) reports the queue depth and the ledger status.
options:
  host:
    description:
      - The address to listen on. Use C(0.0.0.0) only together with O(token) or O(hmac_secret), and TLS.
    type: str
    default: 127.0.0.1
  port:
    description:
      - The TCP port to listen on, 1 to 65535.
    type: int
    default: 5000
  token:
    description:
      - "Bearer token. When set, a request without C(Authorization: Bearer <token>) gets 401."
      - Alertmanager sends it with C(http_config.authorization.credentials) in the webhook receiver.
    type: str
  hmac_secret:
    description:
      - When set, the raw body must carry a hex HMAC-SHA256 signature made with this secret in O(hmac_header)
        (an optional C(sha256=) prefix is accepted); otherwise 401.
    type: str
  hmac_header:
    description:
      - The header carrying the HMAC signature. Only meaningful with O(hmac_secret).
    type: str
    default: X-Hub-Signature-256
  certfile:
    description:
      - PEM certificate (chain) to serve HTTPS. Requires O(keyfile).
    type: str
  keyfile:
    description:
      - PEM private key of O(certfile). Requires O(certfile).
    type: str
  ledger:
    description:
      - Where the alert ledger lives, an SQLite file path or a C(postgresql://) DSN.
      - Defaults to C($OCTOLLM_LEDGER), else C(~/.local/state/octollm-alert-response/ledger.sqlite3).
    type: str
  max_body_bytes:
    description:
      - Largest accepted body, 1024 to 67108864 bytes. A larger body gets 413 without being read into memory.
    type: int
    default: 1048576
  queue_limit:
    description:
      - When this many events wait for the rulebook (1 to 1000000), deliveries get 503 before anything is
        stored, so Alertmanager retries them later.
    type: int
    default: 1000
  requeue_window:
    description:
      - On start, alerts handed to a rulebook that never handled them (the runner died with events in its
        queue) are handed over again when they arrived within this many seconds (0 to 604800; 0 turns it off).
        Alerts never handed over are always handed over again.
    type: int
    default: 3600
  correlation_window_s1:
    description:
      - "Seconds (0 to 86400, 0 turns it off) within which a firing NodeNotReady makes a PodCrashLoopBackOff of a
        pod on that node part of the runbook's scenario 1: C(meta.correlation) names the node alert as lead."
    type: int
    default: 300
  correlation_window_s2:
    description:
      - Seconds (0 to 86400) within which a firing DatabaseConnectionPoolExhausted of a service makes its
        HighErrorRate part of scenario 2 (the pool procedure leads).
    type: int
    default: 300
  correlation_window_s3:
    description:
      - Seconds (0 to 86400) within which a firing LowCacheHitRate in a namespace makes a HighLatency or
        HighRequestLatency there part of scenario 3 (the cache procedure leads).
    type: int
    default: 900
"""

EXAMPLES = r"""
- name: Alerts from Alertmanager
  hosts: all
  sources:
    - octollm.alert_response.alertmanager:
        host: 0.0.0.0
        port: 5000
        token: "{{ EDA_TOKEN }}"
        certfile: /etc/octollm/tls.crt
        keyfile: /etc/octollm/tls.key
        ledger: postgresql://ledger@db.example/octollm_ledger
"""

logger = logging.getLogger("octollm.alert_response.alertmanager")

STATUSES = ("firing", "resolved")
# Limits far above anything Alertmanager sends, low enough that one delivery cannot
# make the ledger or the rulebook carry megabytes per alert.
MAX_DEPTH = 32
MAX_ALERTS = 10000
MAX_PAIRS = 128
MAX_KEY_LEN = 256
MAX_LABEL_VALUE_LEN = 4096
MAX_ANNOTATION_VALUE_LEN = 32768
MAX_TEXT_LEN = 16384
MARK_BATCH = 50
ALERT_FIELDS = ("status", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "generatorURL")

_INT_RANGES = {"port": (1, 65535), "max_body_bytes": (1024, 64 * 1024 * 1024), "queue_limit": (1, 1000000),
               "requeue_window": (0, 604800), "correlation_window_s1": (0, 86400),
               "correlation_window_s2": (0, 86400), "correlation_window_s3": (0, 86400)}
_FINGERPRINT = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
                      r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))")
# NUL cannot be stored in PostgreSQL text and lone surrogates cannot be encoded: reject
# them at the door rather than fail half-way through a ledger write.
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
# A JSON string, or an unterminated one running to the end: every match attempt succeeds,
# so the scan stays linear (with the textbook pattern, a long unterminated run of escaped
# quotes makes it quadratic: minutes of blocked event loop for a 1 MiB body).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.?[^"\\]*)*(?:"|\Z)', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_TEMPLATE_MARKER = re.compile(r"\{(?=[{%#])")


def _load_module_util(name: str):
    """A module_utils file of this collection, found next to this file: ansible-rulebook
    runs sources by path, so the collection is not necessarily on sys.path."""
    try:
        path = Path(__file__).resolve().parents[4] / "plugins" / "module_utils" / f"{name}.py"
    except IndexError:
        path = None
    if path is not None and path.is_file():
        spec = importlib.util.spec_from_file_location(f"octollm_alert_response_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(f"ansible_collections.octollm.alert_response.plugins.module_utils.{name}")


ledger_mod = _load_module_util("ledger")
correlation_mod = _load_module_util("correlation")
OPTIONS = yaml.safe_load(DOCUMENTATION)["options"]


# ---------------------------------------------------------------------- arguments
def _check_option(name: str, value: Any) -> Any:
    spec = OPTIONS[name]
    if value is None:
        return spec.get("default")
    if spec["type"] == "int":
        low, high = _INT_RANGES[name]
        accepted = f"an integer from {low} to {high}"
        # rulebook variables arrive as strings when templated ("{{ EDA_PORT }}")
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"argument {name}: expected {accepted}, got a {type(value).__name__}")
        if not low <= value <= high:
            raise ValueError(f"argument {name}: expected {accepted}, got {value}")
        return value
    if not isinstance(value, str) or not value.strip():
        # never echo the value: token and hmac_secret are secrets
        raise ValueError(f"argument {name}: expected a non-empty string, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "an empty string" if isinstance(value, str) else f"a {type(value).__name__}"


def validate_args(args: dict) -> dict:
    """Check every argument up front; returns the settings with defaults filled in."""
    if not isinstance(args, dict):
        raise ValueError(f"arguments must be a mapping, got a {type(args).__name__}")
    # ansible-rulebook adds its own eda_* keys (eda_feedback_queue)
    unknown = sorted(str(k) for k in args if k not in OPTIONS and not str(k).startswith("eda_"))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)}; accepted: {', '.join(sorted(OPTIONS))}")
    settings = {name: _check_option(name, args.get(name)) for name in OPTIONS}
    if bool(settings["certfile"]) != bool(settings["keyfile"]):
        raise ValueError("arguments certfile and keyfile: give both (TLS) or neither (plain HTTP)")
    if args.get("hmac_header") is not None and not settings["hmac_secret"]:
        raise ValueError("argument hmac_header: only meaningful with hmac_secret, which is not set")
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", settings["hmac_header"]):
        raise ValueError("argument hmac_header: expected an HTTP header name (letters, digits, '-')")
    settings["ledger"] = settings["ledger"] or ledger_mod.default_location()
    settings["ssl_context"] = _ssl_context(settings["certfile"], settings["keyfile"])
    return settings


def _ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if not certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"arguments certfile and keyfile: cannot load {certfile} with {keyfile} ({exc}); "
                         "give a readable PEM certificate and its private key") from exc
    return context


# ---------------------------------------------------------------------- payload
class Rejection(Exception):
    """A request refused with ``status``; ``reason`` is safe to send back and to log."""

    def __init__(self, status: int, reason: str, headers: dict | None = None, close: bool = False):
        super().__init__(reason)
        self.status, self.reason, self.headers, self.close = status, reason, headers or {}, close


def _bad(reason: str) -> Rejection:
    return Rejection(400, reason)


def _show(key: str) -> str:
    """A key for an error message: quoted and short, so a hostile key cannot forge log lines."""
    return repr(key[:40] + ("..." if len(key) > 40 else ""))


def _no_duplicate_keys(pairs: list) -> dict:
    # JSON parsers disagree on duplicate keys (first or last wins); refuse the ambiguity
    out = {}
    for key, value in pairs:
        if key in out:
            raise _bad(f"duplicate key {_show(key)} in a JSON object")
        out[key] = value
    return out


def _no_constants(name: str):
    raise _bad(f"{name} is not valid JSON")


def parse_body(raw: bytes) -> Any:
    """Strict UTF-8 JSON with a nesting limit checked before the recursive parser runs."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"body is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise _bad("body is empty")
    # depth of the brackets outside strings; C-level loops, so a 1 MiB body stays cheap
    steps = map(_BRACKET_STEP.__getitem__, _JSON_BRACKET.findall(_JSON_STRING.sub('""', text)))
    if max(itertools.accumulate(steps), default=0) > MAX_DEPTH:
        raise _bad(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except RecursionError:
        raise _bad(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing a 5000-digit number
        raise _bad(f"invalid JSON: {str(exc)[:200]}") from None


def _text(value: Any, where: str, max_len: int = MAX_TEXT_LEN, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _bad(f"{where} must be a string")
    if len(value) > max_len:
        raise _bad(f"{where} is longer than {max_len} characters")
    if _BAD_CHARS.search(value):
        raise _bad(f"{where} contains a NUL character or an unpaired surrogate")
    return value


def _string_map(value: Any, where: str, max_value_len: int, required: bool = False) -> dict:
    """An object of string -> string (labels, annotations)."""
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object of strings")
    if len(value) > MAX_PAIRS:
        raise _bad(f"{where} has more than {MAX_PAIRS} entries")
    for key, item in value.items():
        if not key:
            raise _bad(f"{where} has an empty key")
        _text(key, f"{where} key {_show(key)}", MAX_KEY_LEN)
        _text(item, f"{where}[{_show(key)}]", max_value_len, required=True)
    return value


def _rfc3339(value: Any, where: str, required: bool = False) -> str | None:
    """Validate an RFC 3339 time (Go prints up to 9 fractional digits); keep the text as sent,
    since it is part of the ledger's identity of an alert."""
    if value is None and not required:
        return None
    m = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise _bad(f"{where} must be an RFC 3339 time such as 2026-11-29T03:10:03.457863357Z")
    year, month, day, hour, minute, second, frac, sign, off_h, off_m = m.groups()
    try:
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        tz = timezone(-offset if sign == "-" else offset)
        datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                 int((frac or "0")[:6].ljust(6, "0")), tzinfo=tz)
    except ValueError:
        raise _bad(f"{where} is not a valid date and time") from None
    return value


def _validate_alert(alert: Any, where: str) -> dict:
    if not isinstance(alert, dict):
        raise _bad(f"{where} must be an object")
    if alert.get("status") not in STATUSES:
        raise _bad(f"{where}.status must be firing or resolved")
    labels = _string_map(alert.get("labels"), f"{where}.labels", MAX_LABEL_VALUE_LEN, required=True)
    if not labels.get("alertname", "").strip():
        raise _bad(f"{where}.labels.alertname must be a non-empty string")
    fingerprint = alert.get("fingerprint")
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise _bad(f"{where}.fingerprint must be 1 to 128 letters, digits or . _ : -")
    return {
        "status": alert["status"],
        "labels": labels,
        "annotations": _string_map(alert.get("annotations"), f"{where}.annotations", MAX_ANNOTATION_VALUE_LEN),
        "startsAt": _rfc3339(alert.get("startsAt"), f"{where}.startsAt", required=True),
        "endsAt": _rfc3339(alert.get("endsAt"), f"{where}.endsAt"),
        "fingerprint": fingerprint,
        "generatorURL": _text(alert.get("generatorURL"), f"{where}.generatorURL"),
    }


def _validate_group(doc: dict) -> dict:
    for key in ("groupLabels", "commonAnnotations"):
        _string_map(doc.get(key), key, MAX_ANNOTATION_VALUE_LEN)
    truncated = doc.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or truncated < 0:
        raise _bad("truncatedAlerts must be a non-negative integer")
    return {
        "groupKey": _text(doc.get("groupKey"), "groupKey"),
        "receiver": _text(doc.get("receiver"), "receiver"),
        "commonLabels": _string_map(doc.get("commonLabels"), "commonLabels", MAX_LABEL_VALUE_LEN),
        "externalURL": _text(doc.get("externalURL"), "externalURL"),
        "truncatedAlerts": truncated,
    }


def validate_payload(doc: Any) -> tuple[list[dict], dict]:
    """An Alertmanager webhook payload v4 -> (alerts, group). Unknown fields are ignored
    (compatible senders add their own); the known ones must have the documented types."""
    if not isinstance(doc, dict):
        raise _bad("body must be a JSON object (an Alertmanager webhook payload)")
    if doc.get("version") != "4":
        raise _bad('version must be "4" (Alertmanager webhook payload version 4)')
    if doc.get("status") not in STATUSES:
        raise _bad("status must be firing or resolved")
    alerts = doc.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise _bad("alerts must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise _bad(f"alerts has more than {MAX_ALERTS} entries")
    group = _validate_group(doc)
    return [_validate_alert(a, f"alerts[{i}]") for i, a in enumerate(alerts)], group


# ---------------------------------------------------------------------- events
def neutralise(value: Any) -> Any:
    """A copy in which no string holds a Jinja marker: Ansible templates extra vars, so
    "{{" in a label would otherwise run on the runner."""
    if isinstance(value, str):
        return _TEMPLATE_MARKER.sub("{ ", value) if "{" in value else value
    if isinstance(value, dict):
        return {neutralise(k): neutralise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [neutralise(v) for v in value]
    return value


def template_markers(alert: dict) -> list[str]:
    """Label and annotation keys whose key or value carried a marker (neutralised too)."""
    found = set()
    for key in ("labels", "annotations"):
        for name, text in (alert.get(key) or {}).items():
            if _TEMPLATE_MARKER.search(name) or _TEMPLATE_MARKER.search(text):
                found.add(neutralise(name))
    return sorted(found)


def _rfc3339_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def build_event(alert: dict, group: dict, received_at: float, ledger_id: int) -> dict:
    return {
        "alert": neutralise({k: alert.get(k) for k in ALERT_FIELDS}),
        "group": neutralise(dict(group)),
        "meta": {
            "received_at": _rfc3339_utc(received_at),
            "ledger_id": ledger_id,
            "duplicate": False,
            "target": ledger_mod.target_of(alert["labels"]),
            "template_markers": template_markers(alert),
        },
    }


def event_from_row(row: dict) -> dict:
    """The event of a stored alert, for the hand-over after a restart. The ledger keeps no
    commonLabels or externalURL: they are empty then."""
    alert = {"status": row["status"], "labels": row["labels"], "annotations": row["annotations"],
             "startsAt": row["starts_at"], "endsAt": row["ends_at"], "fingerprint": row["fingerprint"],
             "generatorURL": row["generator_url"]}
    group = {"groupKey": row["group_key"], "receiver": row["receiver"], "commonLabels": {}, "externalURL": None,
             "truncatedAlerts": row["truncated_alerts"]}
    return build_event(alert, group, row["received_at"], row["id"])


# ---------------------------------------------------------------------- HTTP
def _token_ok(header: str | None, token: bytes) -> bool:
    scheme, _sep, value = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        given = value.strip().encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, token)


def _signature_ok(header: str | None, secret: bytes, body: bytes) -> bool:
    given = (header or "").strip().lower()
    if given.startswith("sha256="):
        given = given[len("sha256="):]
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
    try:
        return hmac.compare_digest(given.encode("ascii"), expected)
    except UnicodeEncodeError:
        return False


def _where(request: web.Request) -> str:
    return f"{request.method} {request.path[:200]!r} from {request.remote}"


@web.middleware
async def _errors(request: web.Request, handler) -> web.StreamResponse:
    """Every refusal as JSON {"error": ...} plus one log line; never the body or headers."""
    try:
        return await handler(request)
    except Rejection as exc:
        logger.warning("rejected %s: %s %s", _where(request), exc.status, exc.reason)
        response = web.json_response({"error": exc.reason}, status=exc.status, headers=exc.headers)
        if exc.close:
            response.force_close()
        return response
    except web.HTTPException as exc:  # 404/405 from the router
        if exc.status < 400:
            raise
        reason = exc.reason.lower()
        logger.warning("rejected %s: %s %s", _where(request), exc.status, reason)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": reason}, status=exc.status, headers=headers)
    except Exception:  # noqa: BLE001 - a handler bug must cost one request, not the source
        logger.exception("internal error on %s", _where(request))
        return web.json_response({"error": "internal error; see the event source log"}, status=500)


class AlertmanagerSource:
    """One running source: the HTTP server, the ledger and the hand-over to the rulebook."""

    def __init__(self, queue, settings: dict):
        self.queue, self.settings = queue, settings
        self.ledger = None
        # one thread: the ledger is used serially and the event loop never blocks on it
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="octollm-ledger")
        self._backlog: asyncio.Queue = asyncio.Queue()
        self._in_hand = 0
        self._unmarked: list[int] = []
        self._forwarder: asyncio.Task | None = None
        self._runner: web.AppRunner | None = None
        self._token = settings["token"].encode("utf-8") if settings["token"] else None
        self._hmac = settings["hmac_secret"].encode("utf-8") if settings["hmac_secret"] else None

    async def _ledger_call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        s = self.settings
        try:
            self.ledger = await self._ledger_call(ledger_mod.Ledger.open, s["ledger"])
        except ledger_mod.LedgerError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a parent folder that is a file
            raise ledger_mod.LedgerError(f"cannot open the ledger {ledger_mod._redact(s['ledger'])}: {exc}; "
                                         "check the ledger argument") from exc
        await self._requeue_pending()
        self._forwarder = asyncio.create_task(self._forward())
        app = web.Application(middlewares=[_errors, self._auth], client_max_size=s["max_body_bytes"])
        app.router.add_get("/healthz", self.handle_health)
        app.router.add_post("/", self.handle_post)
        app.router.add_post("/{endpoint}", self.handle_post)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, s["host"], s["port"], ssl_context=s["ssl_context"]).start()
        self._warn_exposure()
        logger.info("alertmanager source listening on %s://%s:%s, ledger %s", "https" if s["ssl_context"] else "http",
                    s["host"], s["port"], self.ledger.describe())

    def _warn_exposure(self) -> None:
        s = self.settings
        if s["host"] in ("127.0.0.1", "::1", "localhost"):
            return
        if not (self._token or self._hmac):
            logger.warning("listening on %s without token or hmac_secret: anyone who can reach it can post alerts",
                           s["host"])
        elif self._token and not s["ssl_context"]:
            logger.warning("listening on %s without TLS: the bearer token crosses the network in clear text",
                           s["host"])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._forwarder is not None:
            self._forwarder.cancel()
            await asyncio.gather(self._forwarder, return_exceptions=True)
        if self.ledger is not None:
            if self._unmarked:
                await self._flush_marks()
            await self._ledger_call(self.ledger.close)
        self._executor.shutdown(wait=False)

    async def _requeue_pending(self) -> None:
        """Alerts stored but never handed over (the source stopped between ack and queue)."""
        rows = await self._ledger_call(self.ledger.pending_alerts, self.settings["requeue_window"] or None)
        for row in rows:
            self._backlog.put_nowait((row["id"], event_from_row(row)))
        if rows:
            logger.warning("handing over %d stored alert(s) that never reached the rulebook", len(rows))

    # ------------------------------------------------------------------ hand-over
    def depth(self) -> int:
        """Events waiting for the rulebook: ours plus the rulebook queue's (ansible-rulebook
        passes a FilteredQueue wrapping an asyncio.Queue)."""
        downstream = self.queue if hasattr(self.queue, "qsize") else getattr(self.queue, "queue", None)
        waiting = downstream.qsize() if downstream is not None and hasattr(downstream, "qsize") else 0
        return self._backlog.qsize() + self._in_hand + waiting

    def _downstream_full(self) -> bool:
        downstream = self.queue if hasattr(self.queue, "full") else getattr(self.queue, "queue", None)
        return bool(downstream.full()) if downstream is not None and hasattr(downstream, "full") else True

    async def _forward(self) -> None:
        """Put events on the rulebook queue in order, then mark them queued in the ledger.
        Marks are batched, but flushed before a put that may block, so a slow rulebook
        never holds an alert in 'received' that it already has."""
        while True:
            ledger_id, event = await self._backlog.get()
            self._in_hand = 1
            try:
                event["meta"]["correlation"] = await self._correlation(ledger_id, event)
                await self.queue.put(event)
                self._unmarked.append(ledger_id)
            except Exception:  # noqa: BLE001 - a source filter failed; the alert stays 'received'
                logger.exception("could not hand alert %s to the rulebook; it is handed over again on restart",
                                 ledger_id)
            finally:
                self._in_hand = 0
            if self._unmarked and (self._backlog.empty() or len(self._unmarked) >= MARK_BATCH
                                   or self._downstream_full()):
                await self._flush_marks()

    async def _correlation(self, ledger_id: int, event: dict) -> dict | None:
        """The runbook's multi-alert scenario this alert follows, if any (read from the
        ledger at hand-over time, so a lead stored a moment earlier counts)."""
        if event["alert"]["status"] != "firing":
            return None
        windows = {k: self.settings[f"correlation_window_{k.lower()}"] for k in correlation_mod.SCENARIOS}
        if not any(windows.values()):
            return None
        row = await self._ledger_call(self.ledger.get_alert, ledger_id)
        if row is None:
            return None
        windows = {k: v for k, v in windows.items() if v}
        try:
            return await self._ledger_call(correlation_mod.correlate, self.ledger, row, windows)
        except Exception as exc:  # noqa: BLE001 - correlation is advice; the alert still goes through
            logger.error("correlation of alert %s failed: %s", ledger_id, ledger_mod._redact(str(exc)))
            return None

    async def _flush_marks(self) -> None:
        ids, self._unmarked = self._unmarked, []
        try:
            await self._ledger_call(self.ledger.set_alert_state, ids, "queued")
        except asyncio.CancelledError:
            self._unmarked = ids + self._unmarked
            raise
        except Exception as exc:  # noqa: BLE001 - retried on the next flush
            self._unmarked = ids + self._unmarked
            logger.error("could not mark %d alert(s) queued in the ledger: %s", len(ids), exc)

    # ------------------------------------------------------------------ handlers
    @web.middleware
    async def _auth(self, request: web.Request, handler) -> web.StreamResponse:
        # /healthz stays open so that probes need no secret; it reveals no alert data
        if self._token is not None and request.path != "/healthz":
            if not _token_ok(request.headers.get("Authorization"), self._token):
                raise Rejection(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})
        return await handler(request)

    async def handle_health(self, request: web.Request) -> web.Response:
        health = await self._ledger_call(self.ledger.health)
        body = {"status": "ok" if health.get("ok") else "degraded", "queue_depth": self.depth(),
                "queue_limit": self.settings["queue_limit"], "ledger": health}
        return web.json_response(body, status=200 if health.get("ok") else 503)

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json" or (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
            raise Rejection(415, "Content-Type must be application/json (charset utf-8)")
        raw = await self._read_body(request)
        if self._hmac is not None:
            if not _signature_ok(request.headers.get(self.settings["hmac_header"]), self._hmac, raw):
                raise Rejection(401, f"missing or invalid HMAC-SHA256 signature in {self.settings['hmac_header']}")
        alerts, group = validate_payload(parse_body(raw))
        # refuse before storing: Alertmanager retries a 503, and nothing is stored twice
        depth = self.depth()
        if depth >= self.settings["queue_limit"]:
            raise Rejection(503, f"{depth} events wait for the rulebook (queue_limit); retry later",
                            {"Retry-After": "5"})
        received_at = time.time()
        try:
            rows = await self._ledger_call(self.ledger.record_alerts, alerts, group, received_at)
        except Exception as exc:  # noqa: BLE001 - LedgerError, sqlite3/psycopg errors
            logger.error("ledger write failed for %s: %s", _where(request), ledger_mod._redact(str(exc)))
            raise Rejection(503, "the alert ledger is unavailable; retry later", {"Retry-After": "5"}) from None
        return await self._acknowledge(request, alerts, group, rows, received_at)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.settings["max_body_bytes"]
        if request.content_length is not None and request.content_length > limit:
            raise Rejection(413, f"body of {request.content_length} bytes exceeds max_body_bytes ({limit})",
                            close=True)
        body = bytearray()
        while True:
            chunk = await request.content.read(65536)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > limit:
                raise Rejection(413, f"body exceeds max_body_bytes ({limit})", close=True)

    async def _acknowledge(self, request, alerts, group, rows, received_at) -> web.StreamResponse:
        """Answer first, then queue: the ack never waits on the rulebook, and an alert stored
        but not yet queued is handed over again after a restart."""
        new = [(row, alert) for row, alert in zip(rows, alerts) if row["new"]]
        summary = {"stored": len(rows), "new": len(new), "duplicates": len(rows) - len(new)}
        response = web.json_response(summary)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError as exc:
            # stored all the same: a retry will be counted as a duplicate, so queue it now
            logger.info("%s went away before the acknowledgement: %s", _where(request), exc)
        finally:
            for row, alert in new:
                self._backlog.put_nowait((row["id"], build_event(alert, group, received_at, row["id"])))
        if group["truncatedAlerts"]:
            logger.warning("Alertmanager dropped %d alert(s) from group %r (truncatedAlerts): raise max_alerts "
                           "of the receiver", group["truncatedAlerts"], (group["groupKey"] or "")[:200])
        logger.debug("%s: %s", _where(request), summary)
        return response


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """Receive Alertmanager webhook deliveries until cancelled."""
    settings = validate_args(args)
    source = AlertmanagerSource(queue, settings)
    try:
        await source.start()
        await asyncio.Future()
    except asyncio.CancelledError:
        logger.info("alertmanager source cancelled: shutting down")
        raise
    finally:
        await source.stop()


if __name__ == "__main__":

    class _PrintQueue(asyncio.Queue):
        async def put(self, item) -> None:
            print(json.dumps(item))  # noqa: T201

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_PrintQueue(), {"port": 5000}))
