"""A stand-in for `labbook ui`'s JSON API (docs/API.md), for developing the
dashboard before crates/labbook-server exists. It reads a real store through
`labbook.Api`; writes (tags, delete, restore) go through the `labbook` CLI and
project notes live in a JSON file beside the store. Not used by the tests.

    LABBOOK_DIR=/path/.labbook python web/dev/api_mock.py --port 5001
    npm run dev   # proxies /api and /health to 127.0.0.1:5001
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import labbook

LOCK = threading.Lock()
ATTRS = ["id", "name", "project", "group", "status", "notes", "tags", "host",
         "created", "ended", "duration", "exit_code"]


def clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    return v


class ApiError(Exception):
    def __init__(self, status, code, message, field=None, column=None):
        super().__init__(message)
        self.status, self.code, self.field, self.column = status, code, field, column


def query_error(e: Exception, field: str) -> ApiError:
    msg = str(e)
    m = re.match(r"invalid (filter|sort) at column (\d+): (.*?)(?: \(in: .*\))?$", msg)
    if m:
        return ApiError(400, "INVALID_QUERY", f"invalid {m.group(1)} at column {m.group(2)}: {m.group(3)}",
                        m.group(1), int(m.group(2)))
    return ApiError(400, "INVALID_QUERY", msg, field)


class Mock:
    def __init__(self, store: str, labbook_bin: str):
        self.store = store
        self.bin = labbook_bin
        self.api = labbook.Api(dir=store)
        self.notes_path = os.path.join(store, "web-mock-notes.json")

    def with_duration(self, r):
        now = int(time.time() * 1000)
        r["duration_ms"] = (r["ended_ms"] or now) - r["created_ms"]
        return r

    def runs(self, project, q):
        f = q.get("filter") or None
        s = q.get("sort") or None
        try:
            runs = self.api.runs(project=project, filter=f, sort=s, deleted=q.get("deleted") == "1")
        except ValueError as e:
            raise query_error(e, "filter") from e
        return runs

    def list_runs(self, project, q):
        runs = self.runs(project, q)
        limit = min(int(q.get("limit", 100)), 10000)
        offset = int(q.get("offset", 0))
        page = [self.with_duration(r) for r in runs[offset:offset + limit]]
        return {"runs": page, "total": len(runs), "offset": offset, "limit": limit}

    def keys(self, project):
        runs = self.api.runs(project=project)
        config, metrics, summary = {}, {}, {}
        for r in runs:
            for k, v in r["config"].items():
                c = config.setdefault(k, {"key": k, "count": 0, "numeric": True})
                c["count"] += 1
                if not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                    c["numeric"] = False
            for k in r["metrics"]:
                metrics.setdefault(k, {"key": k, "count": 0})["count"] += 1
            for k in r["summary"]:
                summary.setdefault(k, {"key": k, "count": 0})["count"] += 1
        srt = lambda d: sorted(d.values(), key=lambda x: x["key"])  # noqa: E731
        return {"config": srt(config), "metrics": srt(metrics), "summary": srt(summary), "attributes": ATTRS}

    def groups(self, project, q):
        by = q.get("by") or "group"
        runs = self.runs(project, q)
        groups = {}

        def values(r):
            if by == "tags":
                return r["tags"] or [None]
            if by.startswith("config."):
                return [r["config"].get(by[7:])]
            if by.startswith("summary."):
                return [r["summary"].get(by[8:])]
            return [r.get(by)]

        for r in runs:
            for v in values(r):
                g = groups.setdefault(json.dumps(v), {"value": v, "count": 0, "run_ids": [], "vals": {}})
                g["count"] += 1
                g["run_ids"].append(r["id"])
                for k, m in r["metrics"].items():
                    if isinstance(m["last"], float) and math.isfinite(m["last"]) or isinstance(m["last"], int):
                        g["vals"].setdefault(k, []).append(m["last"])
        out = []
        for g in groups.values():
            vals = g.pop("vals")
            g["metrics"] = {
                k: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
                for k, v in vals.items()
            }
            out.append(g)
        return {"by": by, "groups": out}

    def run(self, rid):
        try:
            r = self.api.run(rid)
        except Exception as e:  # noqa: BLE001
            raise ApiError(404, "NOT_FOUND", str(e)) from e
        r["metric_keys"] = [{"key": k, "count": m["count"]} for k, m in sorted(r["metrics"].items())]
        return self.with_duration(r)

    def series(self, q):
        runs = [x for x in q.get("runs", "").split(",") if x]
        keys = [x for x in q.get("keys", "").split(",") if x]
        buckets = int(q.get("buckets", 1000))
        lo = int(q["lo"]) if q.get("lo") else None
        hi = int(q["hi"]) if q.get("hi") else None
        after = int(q["after"]) if q.get("after") else None
        out = []
        for rid in runs:
            try:
                r = self.api.run(rid)
            except Exception:  # noqa: BLE001
                continue
            for k in keys:
                if k not in r["metrics"]:
                    continue
                if after is not None:
                    h = self.api.history(rid, k, start=after + 1)
                    ds = False
                else:
                    full = self.api.history(rid, k, start=lo, end=hi)
                    n = len(full["step"])
                    ds = n > buckets
                    h = self.api.history(rid, k, start=lo, end=hi, buckets=buckets) if ds else full
                out.append({"run": rid, "key": k, "steps": list(h["step"]), "ts_ms": list(h["timestamp_ms"]),
                            "values": list(h["value"]), "total": r["metrics"][k]["count"], "downsampled": ds})
        return {"series": out}

    def cli(self, *args):
        subprocess.run([self.bin, "--dir", self.store, *args], check=True, capture_output=True)

    def notes(self):
        try:
            with open(self.notes_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return []

    def notebook(self, project):
        entries = []
        for r in self.api.runs(project=project):
            ms = [k for k in sorted(r["metrics"]) if not k.startswith("sys/")]
            head = {"key": ms[0], "value": r["metrics"][ms[0]]["last"]} if ms else None
            entries.append({"kind": "run", "created_ms": r["created_ms"], "run": {
                "id": r["id"], "name": r["name"], "group": r["group"], "status": r["status"],
                "notes": r["notes"], "duration_ms": self.with_duration(r)["duration_ms"], "headline": head}})
            for n in self.api.run(r["id"])["notebook"]:
                entries.append({"kind": "note", "id": 0, "created_ms": n["created_ms"], "text": n["text"],
                                "run_id": r["id"]})
        entries += [n for n in self.notes() if n.get("project") == project]
        entries.sort(key=lambda e: -e["created_ms"])
        return {"entries": entries}

    def add_note(self, project, body):
        notes = self.notes()
        e = {"kind": "note", "id": len(notes) + 1, "created_ms": int(time.time() * 1000), "text": body["text"],
             "run_id": body.get("run_id"), "project": project}
        notes.append(e)
        with open(self.notes_path, "w") as f:
            json.dump(notes, f)
        return e


def make_handler(mock: Mock):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def send_json(self, status, obj):
            body = json.dumps(clean(obj), allow_nan=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def route(self, method):
            u = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(u.query).items()}
            parts = [unquote(p) for p in u.path.split("/") if p]
            if u.path == "/health":
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(body)
                return
            if parts[:2] != ["api", "v1"]:
                raise ApiError(404, "NOT_FOUND", f"no route {u.path}")
            p = parts[2:]
            body = None
            if method == "POST":
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
            with LOCK:
                if p == ["projects"]:
                    return self.send_json(200, {"projects": mock.api.projects()})
                if len(p) == 3 and p[0] == "projects" and p[2] == "runs":
                    return self.send_json(200, mock.list_runs(p[1], q))
                if len(p) == 3 and p[0] == "projects" and p[2] == "keys":
                    return self.send_json(200, mock.keys(p[1]))
                if len(p) == 3 and p[0] == "projects" and p[2] == "groups":
                    return self.send_json(200, mock.groups(p[1], q))
                if len(p) == 3 and p[0] == "projects" and p[2] == "notebook":
                    if method == "POST":
                        return self.send_json(200, mock.add_note(p[1], body))
                    return self.send_json(200, mock.notebook(p[1]))
                if p == ["query", "validate"]:
                    mock.runs(None, {"filter": q.get("filter"), "sort": q.get("sort")})
                    return self.send_json(200, {"ok": True})
                if p == ["series"]:
                    return self.send_json(200, mock.series(q))
                if p == ["runs", "tags"] and method == "POST":
                    for rid in body["ids"]:
                        if body.get("add"):
                            mock.cli("tag", rid, *body["add"])
                        if body.get("remove"):
                            mock.cli("tag", rid, *body["remove"], "--remove")
                    return self.send_json(200, {"ok": True})
                if p in (["runs", "delete"], ["runs", "restore"]) and method == "POST":
                    if body["ids"]:
                        mock.cli("rm" if p[1] == "delete" else "restore", *body["ids"])
                    return self.send_json(200, {"ok": True})
                if len(p) == 2 and p[0] == "runs":
                    return self.send_json(200, mock.run(p[1]))
                if len(p) == 3 and p[0] == "runs" and p[2] == "output":
                    return self.send_json(200, {"chunks": [{"stream": "stdout", "ts_ms": 0,
                                                            "text": mock.api.output(p[1])}]})
            if p == ["events"]:
                return self.events(q.get("project"))
            raise ApiError(404, "NOT_FOUND", f"no route {u.path}")

        def events(self, project):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            seen = {}
            first = True
            try:
                while True:
                    with LOCK:
                        runs = mock.api.runs(project=project)
                    changed = []
                    for r in runs:
                        sig = (r["status"], r["heartbeat_ms"], tuple((k, m["count"]) for k, m in r["metrics"].items()))
                        if seen.get(r["id"]) != sig:
                            seen[r["id"]] = sig
                            if not first:
                                changed.append({"id": r["id"], "status": r["status"], "heartbeat_ms": r["heartbeat_ms"],
                                                "metrics": {k: {"count": m["count"], "last_step": m["last_step"]}
                                                            for k, m in r["metrics"].items()}})
                    first = False
                    if changed:
                        self.wfile.write(b"event: runs\ndata: " + json.dumps({"runs": changed}).encode() + b"\n\n")
                    else:
                        self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    time.sleep(1)
            except (BrokenPipeError, ConnectionResetError):
                return

        def handle_method(self, method):
            try:
                self.route(method)
            except ApiError as e:
                err = {"code": e.code, "message": str(e)}
                if e.field:
                    err["field"] = e.field
                if e.column:
                    err["column"] = e.column
                self.send_json(e.status, {"error": err})
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as e:  # noqa: BLE001
                self.send_json(500, {"error": {"code": "INTERNAL", "message": str(e)}})

        def do_GET(self):
            self.handle_method("GET")

        def do_POST(self):
            self.handle_method("POST")

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5001)
    ap.add_argument("--dir", default=os.environ.get("LABBOOK_DIR"))
    ap.add_argument("--bin", default=os.environ.get("LABBOOK_BIN", "labbook"))
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(Mock(a.dir, a.bin)))
    srv.daemon_threads = True
    print(f"labbook ui: serving {a.dir} at http://127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
