# Copyright: (c) 2026, OctoLLM SRE <sre@octollm.example>
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A misbehaving service for the db_pool_* molecule scenarios: real PostgreSQL sessions
whose application_name is the service, so the simulator's db_pool_* metrics and
pg_stat_activity both see them.

Modes:
  long  every session runs one long `pg_sleep` (long-running queries); a terminated session
        stays gone.
  idle  every session runs one statement and then idles (a connection leak). When the
        Deployment is restarted (its pod template changes), the sessions are closed: the
        restart released the leaked connections.
  busy  every session runs short queries in a loop (a pool full under real load). With
        --stop-on-restart statefulset/<name> the load stops when that StatefulSet's pod
        template changes (the database got the resources it lacked).

Every statement carries the marker `/* octollm-molecule:<tag> */` so that the scenario's
cleanup terminates exactly these sessions. Exits after --duration seconds in any case.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
import time

import psycopg


def template_stamp(apps, kind: str, namespace: str, name: str) -> str | None:
    """What changes when the workload is restarted or edited: the pod template."""
    read = apps.read_namespaced_deployment if kind == "deployment" else apps.read_namespaced_stateful_set
    obj = read(name, namespace)
    return repr(obj.spec.template.to_dict())


def watcher(args, stop: threading.Event, restarted: threading.Event) -> None:
    if not args.watch:
        return
    from kubernetes import client, config  # noqa: PLC0415
    config.load_kube_config(config_file=args.kubeconfig)
    apps = client.AppsV1Api()
    kind, namespace, name = args.watch.split("/")
    first = template_stamp(apps, kind, namespace, name)
    while not stop.wait(0.5):
        try:
            if template_stamp(apps, kind, namespace, name) != first:
                restarted.set()
                return
        except Exception:  # noqa: BLE001 - keep watching through API hiccups
            continue


def session(args, n: int, stop: threading.Event, restarted: threading.Event) -> None:
    marker = f"/* octollm-molecule:{args.tag} */"
    try:
        conn = psycopg.connect(args.dsn, application_name=args.app, autocommit=True)
    except psycopg.Error:
        return
    try:
        if args.mode == "long":
            conn.execute(f"SELECT pg_sleep({args.duration}) {marker}")
        elif args.mode == "idle":
            conn.execute(f"SELECT {n} {marker}")
            while not stop.is_set() and not restarted.wait(0.5):
                pass
        else:
            while not stop.is_set() and not restarted.is_set():
                conn.execute(f"SELECT pg_sleep(0.3) {marker}")
    except psycopg.Error:
        pass  # terminated by the procedure: a terminated session does not come back
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=os.environ.get("OCTOLLM_PG_APP_DSN"))
    ap.add_argument("--app", required=True, help="application_name (the service)")
    ap.add_argument("--mode", choices=["long", "idle", "busy"], required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--tag", required=True, help="marker for the cleanup")
    ap.add_argument("--watch", help="deployment/<ns>/<name> or statefulset/<ns>/<name>: stop on restart")
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    ap.add_argument("--duration", type=int, default=600)
    ap.add_argument("--pidfile")
    args = ap.parse_args()
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(str(os.getpid()))
    stop, restarted = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [threading.Thread(target=watcher, args=(args, stop, restarted), daemon=True)]
    threads += [threading.Thread(target=session, args=(args, n, stop, restarted), daemon=True) for n in range(args.count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.duration
    while not stop.is_set() and time.monotonic() < deadline:
        if args.mode != "long" and restarted.is_set():
            time.sleep(1)  # let the sessions close, then keep running until told to stop
        stop.wait(0.5)
    stop.set()


if __name__ == "__main__":
    main()
