# -*- coding: utf-8 -*-
# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Prometheus HTTP API for the alert-response modules: option spec, client, result maths.

Every procedure verifies "with the same signals that fired the alert", so the one piece of
logic shared by all of them -- poll a query until its value satisfies a comparison -- lives
here (``wait_until``). Uses ansible-core's ``open_url``: no third-party library.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import operator
import time
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

from ansible.module_utils.urls import open_url

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
             "!=": operator.ne}

# Prometheus refuses more than 11,000 points per series; stay well below.
MAX_POINTS = 1000


class PrometheusError(Exception):
    """An error Prometheus reported (errorType + error) or a transport failure."""

    def __init__(self, message, error_type=None, status=None):
        super().__init__(message)
        self.error_type = error_type
        self.status = status


def prometheus_argument_spec():
    """Connection options (documented in doc_fragments/prometheus.py)."""
    return dict(
        url=dict(type="str", required=True),
        bearer_token=dict(type="str", no_log=True),
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        timeout=dict(type="float", default=30),
    )


class PrometheusClient:
    """A small client for /api/v1/query and /api/v1/query_range."""

    def __init__(self, url, bearer_token=None, url_username=None, url_password=None, validate_certs=True,
                 ca_path=None, timeout=30):
        self.base = url.rstrip("/")
        self.headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if bearer_token:
            self.headers["Authorization"] = "Bearer %s" % bearer_token
        self.auth = dict(url_username=url_username, url_password=url_password,
                         force_basic_auth=bool(url_username))
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = timeout

    @classmethod
    def from_module(cls, module):
        p = module.params
        return cls(p["url"], p["bearer_token"], p["url_username"], p["url_password"], p["validate_certs"],
                   p["ca_path"], p["timeout"])

    def _post(self, path, form):
        """POST a form (no URL length limit for long PromQL); returns the `data` member."""
        form = dict((k, v) for k, v in form.items() if v is not None)
        form["timeout"] = "%dms" % int(self.timeout * 1000)
        try:
            resp = open_url(self.base + path, data=urlencode(form), headers=self.headers, method="POST",
                            timeout=self.timeout, validate_certs=self.validate_certs, ca_path=self.ca_path,
                            **self.auth)
            body = resp.read()
            status = resp.getcode()
        except HTTPError as exc:
            body, status = exc.read(), exc.code
        except (URLError, OSError) as exc:
            raise PrometheusError("cannot reach Prometheus at %s: %s" % (self.base, getattr(exc, "reason", exc)))
        try:
            payload = json.loads(body)
        except ValueError:
            raise PrometheusError("Prometheus at %s answered HTTP %s with a body that is not JSON: %r"
                                  % (self.base, status, body[:200]), status=status)
        if payload.get("status") != "success":
            raise PrometheusError(payload.get("error") or "HTTP %s" % status, payload.get("errorType"), status)
        return payload["data"], payload.get("warnings") or []

    def query(self, promql, at=None):
        return self._post("/api/v1/query", {"query": promql, "time": at})

    def query_range(self, promql, start, end, step):
        return self._post("/api/v1/query_range", {"query": promql, "start": start, "end": end, "step": step})


def to_unix(value):
    """A Prometheus time (unix seconds or RFC 3339) as float seconds."""
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def default_step(start, end):
    """A step giving at most MAX_POINTS points, never under one second."""
    return max(1, int(math.ceil((end - start) / float(MAX_POINTS))))


def sample_value(raw):
    """A Prometheus sample string as a float; None for NaN and infinities (not JSON)."""
    value = float(raw)
    return value if math.isfinite(value) else None


def normalize(data):
    """(result_type, [{metric, value|values}], scalar) from an API `data` member.

    `scalar` is a float when the answer is a single sample (a scalar, or a vector with one
    element), otherwise None."""
    rtype, raw = data["resultType"], data["result"]
    if rtype in ("scalar", "string"):
        result = [{"metric": {}, "value": raw}]
    else:
        result = [dict(item) for item in raw]
    scalar = None
    if rtype == "scalar" or (rtype == "vector" and len(raw) == 1):
        scalar = sample_value(result[0]["value"][1])
    return rtype, result, scalar


def satisfied(scalar, op, value):
    return scalar is not None and OPERATORS[op](scalar, value)


def wait_until(run_query, op, value, timeout, interval, sleep=time.sleep, clock=time.monotonic):
    """Run `run_query()` (-> (rtype, result, scalar, warnings)) until its scalar satisfies
    `op value` or `timeout` seconds pass. Returns (last answer, ok, attempts, elapsed)."""
    started = clock()
    attempts = 0
    while True:
        attempts += 1
        answer = run_query()
        elapsed = clock() - started
        if satisfied(answer[2], op, value):
            return answer, True, attempts, elapsed
        if elapsed + interval > timeout:
            return answer, False, attempts, elapsed
        sleep(interval)
