# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Alertmanager event source, tested as ansible.eda tests its sources: start
``main(queue, args)`` as a task on a free port, post with aiohttp, cancel, drain the queue.

Tests that touch the ledger run twice: on an SQLite file in tmp_path and on the test bed's
PostgreSQL ledger (marked ``testbed``). That database is shared, so every test uses its
own fingerprints and deletes its rows afterwards.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import importlib.util
import ipaddress
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import pytest_asyncio
import yaml

from ansible_collections.octollm.alert_response.plugins.module_utils import ledger as ledger_mod

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "extensions" / "eda" / "plugins" / "event_source" / "alertmanager.py"
CORPUS = Path(__file__).resolve().parent / "corpus" / "alertmanager"
HOSTILE = "{{ lookup('pipe', 'touch /tmp/pwned') }}"
STARTS = "2026-11-29T03:10:03.457863357Z"


def load_source(path: Path = SOURCE, name: str = "octollm_alertmanager_source_under_test"):
    """Load the source by path, as ansible-rulebook does."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


am = load_source()


# ---------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_alert(fingerprint: str, status: str = "firing", starts: str = STARTS, annotations=None, **labels) -> dict:
    return {
        "status": status,
        "labels": {"alertname": "PodCrashLoopBackOff", "namespace": "web", "pod": "pod-a", "severity": "critical",
                   **labels},
        "annotations": {"summary": "crash looping"} if annotations is None else annotations,
        "startsAt": starts,
        "endsAt": "2026-11-29T03:20:03.1Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def make_group(alerts: list, truncated: int = 0) -> dict:
    status = "firing" if any(a.get("status") == "firing" for a in alerts) else "resolved"
    return {"receiver": "eda", "status": status, "alerts": alerts, "groupLabels": {"alertname": "PodCrashLoopBackOff"},
            "commonLabels": {"alertname": "PodCrashLoopBackOff", "namespace": "web"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.local:9093", "version": "4",
            "groupKey": '{}:{alertname="PodCrashLoopBackOff"}', "truncatedAlerts": truncated}


async def wait_up(task: asyncio.Task, url: str, ssl_ctx=None) -> None:
    deadline = time.monotonic() + 15
    async with aiohttp.ClientSession() as session:
        while True:
            if task.done():
                task.result()  # the startup error, if any
                raise AssertionError("the source returned before serving")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url + "/healthz", ssl=ssl_ctx) as resp:
                    if resp.status in (200, 503):
                        return
            assert time.monotonic() < deadline, "the source did not come up"
            await asyncio.sleep(0.02)


async def cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def running(args: dict, queue=None, scheme: str = "http", ssl_ctx=None):
    """main() as a task on a free port; cancelled on exit."""
    queue = asyncio.Queue() if queue is None else queue
    port = free_port()
    task = asyncio.create_task(am.main(queue, {"port": port, **args}))
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        await wait_up(task, url, ssl_ctx)
        yield SimpleNamespace(url=url, queue=queue, task=task, port=port)
    finally:
        await cancel(task)


async def post(url: str, body=None, *, raw: bytes | None = None, headers: dict | None = None, path: str = "/",
               content_type: str | None = "application/json", method: str = "POST", chunked: bool = False):
    """Returns (status, parsed JSON body, response headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": content_type} if content_type else {}
    hdrs.update(headers or {})
    if chunked and data is not None:
        payload = data

        async def stream():
            for i in range(0, len(payload), 65536):
                yield payload[i:i + 65536]
        data = stream()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"], timeout=timeout) as session:
        async with session.request(method, url + path, data=data, headers=hdrs) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None), resp.headers


async def next_events(queue, count: int, prefix: str | None = None, timeout: float = 10.0) -> list[dict]:
    """The next `count` events (only ours when prefix is given: on the shared PostgreSQL
    ledger a starting source also hands over other people's stored alerts)."""
    out = []
    while len(out) < count:
        event = await asyncio.wait_for(queue.get(), timeout)
        if prefix is None or event["alert"]["fingerprint"].startswith(prefix):
            out.append(event)
    return out


async def quiet_queue(queue, prefix: str | None = None, settle: float = 0.3) -> list[dict]:
    """Everything that arrives within `settle` seconds (only ours when prefix is given)."""
    await asyncio.sleep(settle)
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return [e for e in out if prefix is None or e["alert"]["fingerprint"].startswith(prefix)]


def stored(location: str, fingerprint: str) -> list[dict]:
    """An independent read of the ledger."""
    with ledger_mod.Ledger.open(location) as lg:
        return lg.alerts(fingerprint=fingerprint)


async def until_state(location: str, fingerprints: list[str], state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = [row["state"] for fp in fingerprints for row in stored(location, fp)]
        if states and all(s == state for s in states):
            return
        assert time.monotonic() < deadline, f"ledger states {states}, expected all {state}"
        await asyncio.sleep(0.05)


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.testbed)])
def ledger_location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite3")
    return request.getfixturevalue("testbed")["OCTOLLM_PG_LEDGER_DSN"]


@pytest.fixture
def new_fp(ledger_location):
    """new_fp() -> a fingerprint no other test (or engineer) uses; rows are deleted after."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    counter = itertools.count()

    def make() -> str:
        return f"{prefix}-{next(counter)}"

    make.prefix = prefix
    yield make
    with ledger_mod.Ledger.open(ledger_location) as lg:
        lg.conn.execute(lg._sql("DELETE FROM alerts WHERE fingerprint LIKE ?"), (prefix + "-%",))


# ---------------------------------------------------------------------- arguments and docs
def documented_options() -> dict:
    return yaml.safe_load(am.DOCUMENTATION)["options"]


def test_documentation_agrees_with_validation():
    options = documented_options()
    defaults = am.validate_args({})
    assert set(options) == {k for k in defaults if k != "ssl_context"}
    for name, spec in options.items():
        expected = spec.get("default", ledger_mod.default_location() if name == "ledger" else None)
        assert defaults[name] == expected, name
        wrong = "not-a-number" if spec["type"] == "int" else 12345
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            am.validate_args({name: wrong})
    assert {spec["type"] for spec in options.values()} == {"str", "int"}
    with pytest.raises(ValueError, match="unknown argument.*tokne.*accepted: certfile, .*hmac_header"):
        am.validate_args({"tokne": "x"})


def test_docs_arguments_table_matches_documentation():
    text = (REPO / "docs" / "event-source.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| ([^|]*) \|", text, re.M)
    table = {name: (kind, default.strip()) for name, kind, default in rows}
    options = documented_options()
    assert set(table) == set(options)
    for name, spec in options.items():
        kind, default = table[name]
        assert kind == spec["type"], name
        if "default" in spec:
            assert default == f"`{spec['default']}`", name


@pytest.mark.parametrize("args, match", [
    ({"port": "abc"}, "port: expected an integer from 1 to 65535"),
    ({"port": 0}, "port: expected an integer from 1 to 65535, got 0"),
    ({"port": 70000}, "port"),
    ({"port": True}, "port: .*bool"),
    ({"port": 5000.5}, "port: .*float"),
    ({"host": ""}, "host: expected a non-empty string"),
    ({"host": 127001}, "host: expected a non-empty string, got a int"),
    ({"token": ""}, "token: expected a non-empty string, got an empty string"),
    ({"token": 12345}, "token: expected a non-empty string, got a int"),
    ({"hmac_secret": "  "}, "hmac_secret: expected a non-empty string"),
    ({"hmac_header": "X-Sig"}, "hmac_header: only meaningful with hmac_secret"),
    ({"hmac_secret": "s", "hmac_header": "X Sig: 1"}, "hmac_header: expected an HTTP header name"),
    ({"certfile": "/etc/hostname"}, "certfile and keyfile: give both"),
    ({"keyfile": "/etc/hostname"}, "certfile and keyfile: give both"),
    ({"certfile": "/nonexistent.pem", "keyfile": "/nonexistent.key"}, "certfile and keyfile: cannot load"),
    ({"ledger": ""}, "ledger: expected a non-empty string"),
    ({"ledger": ["a"]}, "ledger: expected a non-empty string, got a list"),
    ({"max_body_bytes": 10}, "max_body_bytes: expected an integer from 1024 to 67108864, got 10"),
    ({"max_body_bytes": "1MiB"}, "max_body_bytes: expected an integer"),
    ({"queue_limit": 0}, "queue_limit: expected an integer from 1 to 1000000, got 0"),
    ({"queue_limit": -5}, "queue_limit"),
    ({"queue_limit": None, "tokne": "x"}, "unknown argument"),
])
async def test_invalid_arguments_fail_before_listening(args, match):
    with pytest.raises(ValueError, match=match) as info:
        await am.main(asyncio.Queue(), args)
    assert "12345" not in str(info.value)  # a misplaced secret is never echoed


def test_arguments_from_rulebook_variables():
    settings = am.validate_args({"port": "5001", "queue_limit": " 10 ", "token": "t",
                                 "eda_feedback_queue": asyncio.Queue()})
    assert (settings["port"], settings["queue_limit"], settings["host"]) == (5001, 10, "127.0.0.1")
    assert settings["ssl_context"] is None


def test_ledger_loaded_beside_the_source_or_from_the_collection(tmp_path):
    assert Path(am.ledger_mod.__file__).resolve() == REPO / "plugins" / "module_utils" / "ledger.py"
    lone = tmp_path / "alertmanager.py"
    shutil.copy(SOURCE, lone)
    copy = load_source(lone, "octollm_alertmanager_lone_copy")
    assert copy.ledger_mod.__name__ == "ansible_collections.octollm.alert_response.plugins.module_utils.ledger"


async def test_ledger_that_cannot_open_stops_the_source(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(am.ledger_mod.LedgerError, match="cannot open the ledger .*check the ledger argument"):
        await am.main(asyncio.Queue(), {"port": free_port(), "ledger": str(tmp_path / "file" / "ledger.db")})


@pytest.mark.testbed
async def test_postgresql_ledger_with_a_wrong_password_stops_the_source(testbed):
    dsn = urllib.parse.urlsplit(testbed["OCTOLLM_PG_LEDGER_DSN"])
    netloc = f"{dsn.username}:wr0ng-pa55word@{dsn.hostname}:{dsn.port}"
    with pytest.raises(am.ledger_mod.LedgerError, match="cannot connect to the PostgreSQL ledger") as info:
        await am.main(asyncio.Queue(), {"port": free_port(), "ledger": dsn._replace(netloc=netloc).geturl()})
    assert "wr0ng-pa55word" not in str(info.value)


async def test_port_in_use_fails_and_leaves_the_first_source_serving(tmp_path):
    async with running({"ledger": str(tmp_path / "a.db")}) as src:
        with pytest.raises(OSError, match="address already in use"):
            await am.main(asyncio.Queue(), {"port": src.port, "ledger": str(tmp_path / "b.db")})
        assert (await post(src.url, make_group([make_alert("port-1")])))[0] == 200


# ---------------------------------------------------------------------- deliveries and the ledger
async def test_delivery_is_stored_then_acknowledged_then_queued(ledger_location, new_fp):
    fps = [new_fp(), new_fp()]
    async with running({"ledger": ledger_location}) as src:
        status, body, _hdrs = await post(src.url, make_group([make_alert(fps[0]), make_alert(fps[1], pod="pod-b")]))
        assert (status, body) == (200, {"stored": 2, "new": 2, "duplicates": 0})
        events = await next_events(src.queue, 2, new_fp.prefix)
        await until_state(ledger_location, fps, "queued")
    assert [e["alert"]["fingerprint"] for e in events] == fps
    event = events[0]
    assert set(event) == {"alert", "group", "meta"}
    assert set(event["alert"]) == {"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint",
                                   "generatorURL"}
    assert event["group"] == {"groupKey": '{}:{alertname="PodCrashLoopBackOff"}', "receiver": "eda",
                              "commonLabels": {"alertname": "PodCrashLoopBackOff", "namespace": "web"},
                              "externalURL": "http://alertmanager.local:9093", "truncatedAlerts": 0}
    row = stored(ledger_location, fps[0])[0]
    assert event["meta"]["ledger_id"] == row["id"]
    expected_meta = {"received_at": None, "ledger_id": row["id"], "duplicate": False, "target": "pod/web/pod-a",
                     "template_markers": [], "correlation": None}
    assert event["meta"] | {"received_at": None} == expected_meta
    received = datetime.datetime.fromisoformat(event["meta"]["received_at"].replace("Z", "+00:00"))
    assert event["meta"]["received_at"].endswith("Z") and abs(received.timestamp() - row["received_at"]) < 0.001
    assert event["alert"]["startsAt"] == STARTS == row["starts_at"]  # nanoseconds kept as sent
    assert row["labels"] == make_alert(fps[0])["labels"] and row["receiver"] == "eda"


async def test_regrouped_delivery_queues_only_new_alerts(ledger_location, new_fp):
    a, b, c = new_fp(), new_fp(), new_fp()
    async with running({"ledger": ledger_location}) as src:
        assert (await post(src.url, make_group([make_alert(a), make_alert(b)])))[1]["new"] == 2
        await next_events(src.queue, 2, new_fp.prefix)
        status, body, _hdrs = await post(src.url, make_group([make_alert(a), make_alert(b), make_alert(c)]))
        assert (status, body) == (200, {"stored": 3, "new": 1, "duplicates": 2})
        events = await quiet_queue(src.queue, new_fp.prefix)
    assert [e["alert"]["fingerprint"] for e in events] == [c]
    assert stored(ledger_location, a)[0]["delivery_count"] == 2


async def test_ha_double_delivery_is_queued_once(ledger_location, new_fp):
    group = make_group([make_alert(new_fp()) for _n in range(5)])
    async with running({"ledger": ledger_location}) as src:
        results = await asyncio.gather(post(src.url, group), post(src.url, group))
        events = await quiet_queue(src.queue, new_fp.prefix)
    assert [r[0] for r in results] == [200, 200]
    assert sum(r[1]["new"] for r in results) == 5 and sum(r[1]["duplicates"] for r in results) == 5
    assert sorted(e["alert"]["fingerprint"] for e in events) == sorted(a["fingerprint"] for a in group["alerts"])


async def test_resolved_alert_is_queued_once(ledger_location, new_fp):
    fp = new_fp()
    async with running({"ledger": ledger_location}) as src:
        await post(src.url, make_group([make_alert(fp)]))
        for _n in range(2):  # Alertmanager repeats the resolved notification
            status, _body, _hdrs = await post(src.url, make_group([make_alert(fp, status="resolved")]))
            assert status == 200
        events = await quiet_queue(src.queue, new_fp.prefix)
    assert [e["alert"]["status"] for e in events] == ["firing", "resolved"]
    assert sorted(r["status"] for r in stored(ledger_location, fp)) == ["firing", "resolved"]


async def test_full_queue_answers_503_before_storing(ledger_location, new_fp):
    a, b, c = new_fp(), new_fp(), new_fp()
    async with running({"ledger": ledger_location, "queue_limit": 2}) as src:
        await quiet_queue(src.queue)  # whatever a shared ledger handed over at start
        assert (await post(src.url, make_group([make_alert(a), make_alert(b)])))[0] == 200
        await asyncio.sleep(0.1)
        status, body, headers = await post(src.url, make_group([make_alert(c)]))
        assert status == 503 and "queue_limit" in body["error"] and headers["Retry-After"]
        assert stored(ledger_location, c) == []  # nothing stored, so the retry is not a duplicate
        await next_events(src.queue, 2)
        status, body, _hdrs = await post(src.url, make_group([make_alert(c)]))
        assert (status, body["new"]) == (200, 1)
        events = await quiet_queue(src.queue, new_fp.prefix)
    assert [e["alert"]["fingerprint"] for e in events] == [c]


class StallingQueue:
    """The rulebook queue when the engine stops reading, after our first event. Other
    people's events (handed over by a start on the shared ledger) pass, so that they
    cannot stall it before ours arrive."""

    def __init__(self, prefix: str, reports_full: bool):
        self.prefix, self.reports_full, self.ours, self.events = prefix, reports_full, 0, []

    def qsize(self) -> int:
        return len(self.events)

    def full(self) -> bool:
        return self.reports_full and self.ours >= 1

    async def put(self, item) -> None:
        if item["alert"]["fingerprint"].startswith(self.prefix):
            if self.ours >= 1:
                await asyncio.Future()  # blocked until the source is cancelled
            self.ours += 1
        self.events.append(item)


@pytest.mark.parametrize("reports_full", [True, False], ids=["queue-full", "put-blocks"])
async def test_alerts_not_handed_over_are_requeued_on_restart(ledger_location, new_fp, reports_full):
    """Stopped with one event handed over and two not: exactly those two come back. When
    the queue does not say it is full, the mark of the first is written at stop."""
    fps = [new_fp(), new_fp(), new_fp()]
    stalling = StallingQueue(new_fp.prefix, reports_full)
    async with running({"ledger": ledger_location, "requeue_window": 0}, queue=stalling) as src:
        status, body, _hdrs = await post(src.url, make_group([make_alert(fp) for fp in fps]))
        assert (status, body["new"]) == (200, 3)
        for _n in range(500):
            if stalling.ours:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the source is now blocked handing over the second
    assert [stored(ledger_location, fp)[0]["state"] for fp in fps] == ["queued", "received", "received"]
    async with running({"ledger": ledger_location, "requeue_window": 0}) as src:
        events = await quiet_queue(src.queue, new_fp.prefix)
        await until_state(ledger_location, fps, "queued")
    assert [e["alert"]["fingerprint"] for e in events] == fps[1:]
    assert events[0]["meta"]["ledger_id"] == stored(ledger_location, fps[1])[0]["id"]
    assert events[0]["group"] == {"groupKey": '{}:{alertname="PodCrashLoopBackOff"}', "receiver": "eda",
                                  "commonLabels": {}, "externalURL": None, "truncatedAlerts": 0}
    async with running({"ledger": ledger_location, "requeue_window": 0}) as src:  # once, not at every start
        assert await quiet_queue(src.queue, new_fp.prefix) == []


async def test_alerts_queued_but_never_handled_are_handed_over_again(ledger_location, new_fp):
    """The runner died with events in the rulebook's queue: alerts marked queued that no
    playbook handled come back on start (within requeue_window); handled ones do not."""
    fps = [new_fp(), new_fp()]
    async with running({"ledger": ledger_location}) as src:
        status, body, _hdrs = await post(src.url, make_group([make_alert(fp) for fp in fps]))
        assert (status, body["new"]) == (200, 2)
        await quiet_queue(src.queue, new_fp.prefix)
        await until_state(ledger_location, fps, "queued")
    with ledger_mod.Ledger.open(ledger_location) as lg:
        lg.set_alert_state([stored(ledger_location, fps[0])[0]["id"]], "handled")
    async with running({"ledger": ledger_location}) as src:
        events = await quiet_queue(src.queue, new_fp.prefix)
    assert [e["alert"]["fingerprint"] for e in events] == fps[1:]
    # a state never moves back: the source's late 'queued' mark does not undo 'handled'
    assert stored(ledger_location, fps[0])[0]["state"] == "handled"


KILLED_SOURCE = """
import asyncio, importlib.util, sys
spec = importlib.util.spec_from_file_location("source", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
# nobody reads this queue: the process dies with alerts acknowledged but not handed over
asyncio.run(module.main(asyncio.Queue(maxsize=1), {"port": int(sys.argv[2])}))
"""


async def test_alerts_survive_a_kill_between_ack_and_queue(ledger_location, new_fp, tmp_path):
    fps = [new_fp() for _n in range(3)]
    port = free_port()
    script = tmp_path / "killed_source.py"
    script.write_text(KILLED_SOURCE)
    # the DSN travels in the environment (OCTOLLM_LEDGER), not on a command line
    proc = subprocess.Popen([sys.executable, str(script), str(SOURCE), str(port)],
                            env=dict(os.environ, OCTOLLM_LEDGER=ledger_location))
    try:
        task = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, proc.wait))
        await wait_up(task, f"http://127.0.0.1:{port}")
        status, body, _hdrs = await post(f"http://127.0.0.1:{port}", make_group([make_alert(fp) for fp in fps]))
        assert (status, body["new"]) == (200, 3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    states = [stored(ledger_location, fp)[0]["state"] for fp in fps]
    # at most the first event reached the (now dead) queue and was marked queued
    assert states.count("received") >= 2 and set(states) <= {"received", "queued"}, states
    async with running({"ledger": ledger_location}) as src:
        # the hand-over on start may be slow on a loaded machine: wait for it, then make
        # sure nothing more (no duplicate) follows
        events, deadline = [], time.monotonic() + 15
        while len(events) < len(fps) and time.monotonic() < deadline:
            events += await quiet_queue(src.queue, new_fp.prefix, settle=0.1)
        events += await quiet_queue(src.queue, new_fp.prefix)
        await until_state(ledger_location, fps, "queued", timeout=15)
    # all three come back once, in order: the ones never handed over and the one that died
    # in the dead runner's queue (queued within requeue_window, handled by no playbook)
    assert [e["alert"]["fingerprint"] for e in events] == fps


async def test_template_markers_are_neutralised_in_the_event_only(ledger_location, new_fp):
    fp = new_fp()
    alert = make_alert(fp, pod=HOSTILE, annotations={"summary": "{% if true %}x{% endif %}", "note": "{#c#} {{{"})
    alert["labels"]["{{ key }}"] = "plain"
    pwned_before = os.path.exists("/tmp/pwned")
    async with running({"ledger": ledger_location}) as src:
        assert (await post(src.url, make_group([alert])))[0] == 200
        (event,) = await next_events(src.queue, 1, new_fp.prefix)
    labels, annotations = event["alert"]["labels"], event["alert"]["annotations"]
    assert labels["pod"] == "{ { lookup('pipe', 'touch /tmp/pwned') }}"
    assert annotations == {"summary": "{ % if true %}x{ % endif %}", "note": "{ #c#} { { {"}
    assert labels["{ { key }}"] == "plain" and "{{ key }}" not in labels
    assert event["meta"]["template_markers"] == ["note", "pod", "summary", "{ { key }}"]
    assert event["meta"]["target"] is None  # a hostile pod name is never a target
    assert not re.search(r"\{[{%#]", json.dumps(event))
    row = stored(ledger_location, fp)[0]
    assert row["labels"]["pod"] == HOSTILE and row["labels"]["{{ key }}"] == "plain"
    assert row["annotations"] == alert["annotations"]
    assert os.path.exists("/tmp/pwned") == pwned_before


async def test_truncated_alerts_are_recorded_and_warned(ledger_location, new_fp, caplog):
    fp = new_fp()
    caplog.set_level(logging.WARNING, logger=am.logger.name)
    async with running({"ledger": ledger_location}) as src:
        assert (await post(src.url, make_group([make_alert(fp)], truncated=7)))[0] == 200
        (event,) = await next_events(src.queue, 1, new_fp.prefix)
    assert event["group"]["truncatedAlerts"] == 7
    assert stored(ledger_location, fp)[0]["truncated_alerts"] == 7
    assert any("dropped 7 alert(s)" in r.getMessage() for r in caplog.records)


async def test_healthz_reports_queue_depth_and_ledger(ledger_location, new_fp):
    async with running({"ledger": ledger_location, "token": "t0ken", "queue_limit": 50}) as src:
        await quiet_queue(src.queue)  # whatever a shared ledger handed over at start
        await post(src.url, make_group([make_alert(new_fp()) for _n in range(3)]),
                   headers={"Authorization": "Bearer t0ken"})
        await asyncio.sleep(0.1)
        status, body, _hdrs = await post(src.url, method="GET", path="/healthz", content_type=None)  # no token needed
    assert status == 200
    assert body["status"] == "ok" and body["queue_depth"] == 3 and body["queue_limit"] == 50
    backend = "postgresql" if ledger_location.startswith("postgresql://") else "sqlite"
    assert body["ledger"]["ok"] is True and body["ledger"]["backend"] == backend and body["ledger"]["alerts"] >= 3


async def test_ledger_failure_answers_503_and_healthz_degrades(tmp_path):
    location = str(tmp_path / "ledger.sqlite3")
    async with running({"ledger": location}) as src:
        with sqlite3.connect(location) as other:  # the ledger breaks under the source
            other.execute("DROP TABLE alerts")
        status, body, headers = await post(src.url, make_group([make_alert("broken-1")]))
        assert (status, body) == (503, {"error": "the alert ledger is unavailable; retry later"})
        assert headers["Retry-After"]
        status, body, _hdrs = await post(src.url, method="GET", path="/healthz", content_type=None)
        assert status == 503 and body["status"] == "degraded" and body["ledger"]["ok"] is False
        assert src.queue.empty()


# ---------------------------------------------------------------------- authentication and headers
async def test_bearer_token(tmp_path):
    group = make_group([make_alert("auth-1")])
    async with running({"ledger": str(tmp_path / "l.db"), "token": "s3cr3t"}) as src:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcjN0"},
                        {"Authorization": "Bearer s3cr3t-and-more"}, {"Authorization": "Bearer"},
                        {"Authorization": "Bearer s3cr\u00e9t".encode().decode("latin-1")}):
            status, body, resp_headers = await post(src.url, group, headers=headers)
            assert (status, body) == (401, {"error": "missing or invalid bearer token"}), headers
            assert resp_headers["WWW-Authenticate"] == "Bearer"
        assert (await post(src.url, group, headers={"Authorization": "bearer s3cr3t"}))[0] == 200
        assert (await post(src.url, method="GET", path="/healthz", content_type=None))[0] == 200


async def test_hmac_signature(tmp_path):
    raw = json.dumps(make_group([make_alert("hmac-1")])).encode()
    args = {"ledger": str(tmp_path / "l.db"), "hmac_secret": "k3y", "hmac_header": "X-Signature"}
    async with running(args) as src:
        good = sign("k3y", raw)
        cases = [({"X-Signature": good}, 200), ({"x-signature": "sha256=" + good}, 200),
                 ({"X-Signature": good.upper()}, 200), ({"X-Signature": sign("other", raw)}, 401),
                 ({"X-Signature": sign("k3y", raw + b" ")}, 401), ({}, 401), ({"X-Hub-Signature-256": good}, 401),
                 ({"X-Signature": "sha256=\u00e9"}, 401)]
        for headers, expected in cases:
            status, body, _hdrs = await post(src.url, raw=raw, headers=headers)
            assert status == expected, (headers, body)
            if expected == 401:
                assert body == {"error": "missing or invalid HMAC-SHA256 signature in X-Signature"}
        assert len(await quiet_queue(src.queue)) == 1  # the first good one; the rest were duplicates


async def test_default_hmac_header_and_token_together(tmp_path):
    raw = json.dumps(make_group([make_alert("both-1")])).encode()
    async with running({"ledger": str(tmp_path / "l.db"), "hmac_secret": "k", "token": "t"}) as src:
        sig = {"X-Hub-Signature-256": "sha256=" + sign("k", raw)}
        assert (await post(src.url, raw=raw, headers=sig))[0] == 401
        assert (await post(src.url, raw=raw, headers={"Authorization": "Bearer t"}))[0] == 401
        assert (await post(src.url, raw=raw, headers={**sig, "Authorization": "Bearer t"}))[0] == 200


async def test_no_request_header_reaches_the_event(tmp_path):
    raw = json.dumps(make_group([make_alert("hdr-1")])).encode()
    signature = sign("hm4c-secret", raw)
    args = {"ledger": str(tmp_path / "l.db"), "token": "b34rer-secret", "hmac_secret": "hm4c-secret"}
    async with running(args) as src:
        headers = {"Authorization": "Bearer b34rer-secret", "X-Hub-Signature-256": signature,
                   "X-Custom": "cust0m-value", "Cookie": "session=c00kie"}
        assert (await post(src.url, raw=raw, headers=headers, path="/eda"))[0] == 200
        (event,) = await next_events(src.queue, 1)
    text = json.dumps(event)
    for secret in ("b34rer-secret", signature, "cust0m-value", "c00kie", "Authorization", "\"headers\"", "/eda"):
        assert secret not in text


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = tmp_path / "tls.crt", tmp_path / "tls.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


async def test_tls(tmp_path):
    certfile, keyfile = self_signed(tmp_path)
    client_ctx = ssl.create_default_context(cafile=str(certfile))
    args = {"ledger": str(tmp_path / "l.db"), "certfile": str(certfile), "keyfile": str(keyfile)}
    async with running(args, scheme="https", ssl_ctx=client_ctx) as src:
        async with aiohttp.ClientSession() as session:
            async with session.post(src.url + "/", json=make_group([make_alert("tls-1")]), ssl=client_ctx) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with session.post(src.url.replace("https", "http") + "/", json={}) as resp:
                    await resp.read()
        assert len(await next_events(src.queue, 1)) == 1
    with pytest.raises(ValueError, match="certfile and keyfile: cannot load"):
        am.validate_args({"certfile": str(keyfile), "keyfile": str(certfile)})


# ---------------------------------------------------------------------- status codes and failures
async def test_status_codes(tmp_path):
    good = json.dumps(make_group([make_alert("codes-1")])).encode()
    async with running({"ledger": str(tmp_path / "l.db"), "max_body_bytes": 2048}) as src:
        cases = [
            (dict(raw=good), 200),
            (dict(raw=good, path="/any-endpoint"), 200),
            (dict(raw=b"{not json"), 400),
            (dict(raw=b'{"version": "3"}'), 400),
            (dict(raw=good, content_type="text/plain"), 415),
            (dict(raw=good, method="PUT"), 405),
            (dict(method="GET", content_type=None), 405),
            (dict(raw=b"[" + b" " * 4096 + b"]"), 413),
            (dict(raw=b"[" + b" " * 4096 + b"]", chunked=True), 413),
            (dict(raw=good, path="/a/b"), 404),
        ]
        for kwargs, expected in cases:
            status, body, _hdrs = await post(src.url, **kwargs)
            assert status == expected, kwargs
            assert expected == 200 or set(body) == {"error"}
        status, body, _hdrs = await post(src.url, method="GET", path="/", content_type=None)
        assert body == {"error": "method not allowed"}


class ExplodingQueue(asyncio.Queue):
    """A fake beside the real queue: once armed, qsize() fails once, which is an
    unexpected error inside the handler."""

    armed = False

    def qsize(self) -> int:
        if self.armed:
            self.armed = False
            raise RuntimeError("boom with s3cret inside")
        return super().qsize()


async def test_unexpected_error_is_a_500_and_the_source_stays_up(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=am.logger.name)
    group = make_group([make_alert("boom-1")])
    async with running({"ledger": str(tmp_path / "l.db")}, queue=ExplodingQueue()) as src:
        src.queue.armed = True
        status, body, _hdrs = await post(src.url, group)
        assert (status, body) == (500, {"error": "internal error; see the event source log"})
        assert "s3cret" not in json.dumps(body)
        assert (await post(src.url, group))[0] == 200  # nothing was stored the first time
        assert not src.task.done()
    assert any("internal error on POST '/'" in r.getMessage() for r in caplog.records)


async def test_rejections_are_logged_without_secrets(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger=am.logger.name)
    payload = make_group([make_alert("logged-1", password="b0dy-secret")])
    payload["version"] = "3"
    async with running({"ledger": str(tmp_path / "l.db"), "token": "t0ken-secret"}) as src:
        await post(src.url, payload, headers={"Authorization": "Bearer t0ken-secret"})
        await post(src.url, payload, headers={"Authorization": "Bearer wr0ng-secret"})
    messages = [r.getMessage() for r in caplog.records]
    assert any("rejected POST '/' from 127.0.0.1: 400 version must be" in m for m in messages), messages
    assert any("rejected POST '/' from 127.0.0.1: 401" in m for m in messages)
    assert not any(s in m for m in messages for s in ("b0dy-secret", "t0ken-secret", "wr0ng-secret"))


# ---------------------------------------------------------------------- Ansible never evaluates alert text
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "pod=<{{ ansible_eda.event.alert.labels.pod }}>"
    - ansible.builtin.debug:
        msg: "control=<{{ ansible_eda.event.alert.labels.control }}>"
"""


async def test_neutralised_event_is_inert_in_a_playbook(tmp_path):
    """The measured RCE: extra vars are templated. The event from the source is not
    evaluated, while a raw marker in the same place is (the control)."""
    async with running({"ledger": str(tmp_path / "l.db")}) as src:
        assert (await post(src.url, make_group([make_alert("inert-1", pod=HOSTILE)])))[0] == 200
        (event,) = await next_events(src.queue, 1)
    control = tmp_path / "control-ran"
    # injected here, bypassing the source: raw markers in the same place do run
    event["alert"]["labels"]["control"] = f"{{{{ lookup('pipe', 'touch {control}') }}}}42"
    (tmp_path / "extravars.json").write_text(json.dumps({"ansible_eda": {"event": event}}))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    pwned_before = os.path.exists("/tmp/pwned")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_NOCOLOR="1")
    res = await asyncio.to_thread(
        subprocess.run, [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                         "-e", f"@{tmp_path / 'extravars.json'}", str(tmp_path / "play.yml")],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pod=<{ { lookup('pipe', 'touch /tmp/pwned') }}>" in res.stdout
    assert "control=<42>" in res.stdout and control.exists()
    assert os.path.exists("/tmp/pwned") == pwned_before


# ---------------------------------------------------------------------- the bad-input corpus
CORPUS_TOKEN = "corpus-t0ken"
CASES = yaml.safe_load((CORPUS / "index.yaml").read_text())["cases"]


def test_corpus_index_is_complete():
    assert len(CASES) >= 40
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    files = {c["body_file"] for c in CASES if "body_file" in c}
    assert files | {"index.yaml"} == {p.name for p in CORPUS.iterdir()}
    for c in CASES:
        assert sum(k in c for k in ("body", "body_file", "body_hex", "generate")) <= 1, c["id"]
        assert c["valid"] == (c["status"] == 200), c["id"]
    assert sum(c["valid"] for c in CASES) >= 10 and {c["status"] for c in CASES} >= {200, 400, 401, 405, 413, 415}


def corpus_body(case: dict, run: str = "corpus") -> bytes | None:
    """The request body of a case; fingerprints "corpus-*" become "<run>-*" so that runs
    on the shared PostgreSQL ledger never meet each other's alerts."""
    if "body_file" in case:
        return (CORPUS / case["body_file"]).read_bytes().replace(b'"corpus-', f'"{run}-'.encode())
    if "body_hex" in case:
        return bytes.fromhex(case["body_hex"])
    if "body" in case:
        return case["body"].encode()
    gen = case.get("generate")
    if gen is None:
        return None
    if gen["kind"] == "nested_arrays":
        return b"[" * gen["depth"] + b"]" * gen["depth"]
    if gen["kind"] == "nested_label":
        deep = '{"a":' * gen["depth"] + "1" + "}" * gen["depth"]
        return json.dumps(make_group([make_alert(f"{run}-deep")])).replace('"pod-a"', deep).encode()
    if gen["kind"] == "huge_label":
        return json.dumps(make_group([make_alert(f"{run}-huge", pod="p" * gen["size"])])).encode()
    if gen["kind"] == "escaped_quotes":
        return b'{"version": "4", "pad": "' + b'\\"' * gen["count"]
    if gen["kind"] == "filler":
        return b'{"version": "4", "pad": "' + b"a" * gen["size"] + b'"}'
    raise AssertionError(f"unknown generator {gen['kind']}")


AUTH = {"bearer": {"Authorization": f"Bearer {CORPUS_TOKEN}"}, "none": {},
        "wrong": {"Authorization": "Bearer not-the-token"}, "basic": {"Authorization": "Basic Y29ycHVzOnQwa2Vu"}}


def stored_with_prefix(location: str, prefix: str) -> list[str]:
    with ledger_mod.Ledger.open(location) as lg:
        cur = lg.conn.execute(lg._sql("SELECT fingerprint FROM alerts WHERE fingerprint LIKE ?"), (prefix + "-%",))
        return sorted(row[0] for row in cur.fetchall())


@pytest_asyncio.fixture(loop_scope="module", scope="module",
                        params=["sqlite", pytest.param("postgresql", marks=pytest.mark.testbed)])
async def corpus_source(request, tmp_path_factory):
    """One live source for the whole corpus: it must survive every case."""
    if request.param == "sqlite":
        location = str(tmp_path_factory.mktemp("corpus") / "ledger.sqlite3")
    else:
        location = request.getfixturevalue("testbed")["OCTOLLM_PG_LEDGER_DSN"]
    run = f"corpus{uuid.uuid4().hex[:8]}"
    async with running({"ledger": location, "token": CORPUS_TOKEN}) as src:
        src.ledger, src.run = location, run
        yield src
    with ledger_mod.Ledger.open(location) as lg:
        lg.conn.execute(lg._sql("DELETE FROM alerts WHERE fingerprint LIKE ?"), (run + "-%",))


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
async def test_corpus_case(corpus_source, case):
    raw = corpus_body(case, corpus_source.run)
    request = {"method": case.get("method", "POST"), "path": case.get("path", "/"),
               "content_type": case.get("content_type", "application/json"), "chunked": case.get("chunked", False),
               "headers": {**AUTH[case.get("auth", "bearer")], **case.get("headers", {})}}
    status, body, _hdrs = await post(corpus_source.url, raw=raw, **request)
    assert status == case["status"], body
    if not case["valid"]:
        assert set(body) == {"error"} and case.get("error", "") in body["error"]
        return
    sent = json.loads(raw)
    assert body == {"stored": len(sent["alerts"]), "new": len(sent["alerts"]), "duplicates": 0}
    for alert in sent["alerts"]:  # stored verbatim, whatever it looks like
        (row,) = stored(corpus_source.ledger, alert["fingerprint"])
        assert row["labels"] == alert["labels"] and row["annotations"] == alert.get("annotations", {})
        assert (row["starts_at"], row["ends_at"]) == (alert["startsAt"], alert["endsAt"])


@pytest.mark.asyncio(loop_scope="module")
async def test_corpus_left_the_source_up_and_the_queue_clean(corpus_source):
    run = corpus_source.run
    status, body, _hdrs = await post(corpus_source.url, method="GET", path="/healthz", content_type=None)
    assert status == 200 and body["ledger"]["ok"]
    events = await quiet_queue(corpus_source.queue, run)
    rows = stored_with_prefix(corpus_source.ledger, run)
    valid = {a["fingerprint"] for c in CASES if c["valid"] for a in json.loads(corpus_body(c, run))["alerts"]}
    # only the valid cases were stored, and each was queued exactly once
    assert set(rows) <= valid
    assert sorted(e["alert"]["fingerprint"] for e in events) == rows
    for event in events:
        assert not re.search(r"\{[{%#]", json.dumps(event))


# ---------------------------------------------------------------------- a real ansible-rulebook run
RULEBOOK = """
- name: Event source smoke test
  hosts: all
  sources:
    - octollm.alert_response.alertmanager:
        port: {port}
        token: rulebook-t0ken
        ledger: {ledger}
  rules:
    - name: Print the alert and stop
      condition: event.alert.labels.alertname == "RulebookSmoke"
      actions:
        - print_event:
        - shutdown:
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="ansible-rulebook needs a JDK (java on PATH)")
async def test_real_ansible_rulebook_run(tmp_path):
    """The source loaded by FQCN from the collection, behind ansible-rulebook's own queue."""
    port, ledger = free_port(), tmp_path / "ledger.sqlite3"
    (tmp_path / "rulebook.yml").write_text(RULEBOOK.format(port=port, ledger=ledger))
    (tmp_path / "inventory.yml").write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
               PATH=f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    proc = await asyncio.create_subprocess_exec(
        str(REPO / ".venv" / "bin" / "ansible-rulebook"), "-r", str(tmp_path / "rulebook.yml"),
        "-i", str(tmp_path / "inventory.yml"), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = asyncio.create_task(proc.communicate())
    try:
        await wait_up(output, f"http://127.0.0.1:{port}")
        alert = make_alert("rulebook-1", alertname="RulebookSmoke", pod=HOSTILE)
        status, body, _hdrs = await post(f"http://127.0.0.1:{port}", make_group([alert]),
                                         headers={"Authorization": "Bearer rulebook-t0ken"})
        assert (status, body["new"]) == (200, 1)
        stdout, _stderr = await asyncio.wait_for(output, 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = stdout.decode()
    assert proc.returncode == 0, text
    assert "'pod': \"{ { lookup('pipe', 'touch /tmp/pwned') }}\"" in text, text
    assert "'template_markers': ['pod']" in text and "rulebook-t0ken" not in text
    (row,) = stored(str(ledger), "rulebook-1")
    assert row["state"] == "queued" and row["labels"]["pod"] == HOSTILE
