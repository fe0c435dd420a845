#!/usr/bin/env python3
"""Count the runner's API requests in the test bed's audit log.

    audit.py count --since <epoch> [--until <epoch>] [--kubeconfig F]
                                                       -> {"total": N, "by_verb": {...}}
    audit.py permissions [--since <epoch>]             -> the (group, resource, verb) set used,
                                                          split by namespace, to review rbac/

The audit policy (testbed.py) logs only the runner's ServiceAccount at Metadata level,
so every line is one request a procedure made. ``count`` keeps the requests made with the
token of the runner's kubeconfig (``--kubeconfig``, default $OCTOLLM_RUNNER_KUBECONFIG): the
API server records each ServiceAccount token's ID (``JTI``) in the event, so molecule scenarios
running side by side, each lane with its own token of the same ServiceAccount, are counted
apart (tools/molecule_lanes.py).
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import sys
from collections import Counter

import yaml


def parse(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def token_id(kubeconfig: str) -> str | None:
    """The credential ID the API server logs for the kubeconfig's ServiceAccount token
    ("JTI=<jti claim>"), or None (no such file, no token, not a JWT)."""
    try:
        with open(kubeconfig) as f:
            cfg = yaml.safe_load(f)
        token = cfg["users"][0]["user"]["token"]
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return f"JTI={claims['jti']}"
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        return None


def count(path: str, since: float, until: float | None, credential: str | None = None) -> dict:
    verbs, resources = Counter(), Counter()
    try:
        with open(path) as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("stage") != "ResponseComplete":
                    continue
                t = parse(ev.get("requestReceivedTimestamp") or ev["stageTimestamp"])
                if t < since or (until is not None and t > until):
                    continue
                if credential and credential not in (((ev.get("user") or {}).get("extra") or {})
                                                     .get("authentication.kubernetes.io/credential-id") or []):
                    continue
                verbs[ev.get("verb", "?")] += 1
                ref = ev.get("objectRef") or {}
                resources[ref.get("resource", ev.get("requestURI", "?"))] += 1
    except FileNotFoundError:
        return {"total": None, "error": f"no audit log at {path}"}
    return {"total": sum(verbs.values()), "by_verb": dict(verbs), "by_resource": dict(resources)}


def permissions(path: str, since: float) -> dict:
    used: dict = {}
    with open(path) as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("stage") != "ResponseComplete" or parse(ev["stageTimestamp"]) < since:
                continue
            ref = ev.get("objectRef") or {}
            if not ref.get("resource"):
                continue  # discovery (/apis, /version)
            res = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            key = f"{ref.get('apiGroup', '') or 'core'} {res}"
            entry = used.setdefault(key, {})
            code = (ev.get("responseStatus") or {}).get("code", 0)
            entry.setdefault(ev["verb"], set()).add(f"{ref.get('namespace', '<cluster>')}{'' if code < 400 else ' DENIED'}")
    return {k: {verb: sorted(ns) for verb, ns in v.items()} for k, v in sorted(used.items())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["count", "permissions"])
    ap.add_argument("--since", type=float, default=0.0)
    ap.add_argument("--until", type=float)
    ap.add_argument("--log", default=os.environ.get("OCTOLLM_AUDIT_LOG", ""))
    ap.add_argument("--kubeconfig", default=os.environ.get("OCTOLLM_RUNNER_KUBECONFIG", ""),
                    help="count only requests made with this kubeconfig's token (default $OCTOLLM_RUNNER_KUBECONFIG)")
    args = ap.parse_args()
    if args.command == "permissions":
        json.dump(permissions(args.log, args.since), sys.stdout, indent=1)
    else:
        json.dump(count(args.log, args.since, args.until, token_id(args.kubeconfig) if args.kubeconfig else None),
                  sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
