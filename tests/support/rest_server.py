"""A JSON API on loopback for the REST source's tests, paging its records in each of the
ways real APIs do:

  /next-body     {"items": [...], "next": "/next-body?after=ID"}      (a relative next link)
  /link-header   a list, and a `Link: <...>; rel="next"` header         (GitHub, Zendesk)
  /cursor        {"data": [...], "response_metadata": {"next_cursor": "..."}}   (Slack)
  /pages         a list; ?page=N&per_page=M                             (numbered pages)
  /offset        {"results": [...]}; ?offset=O&limit=L
  POST /search   a JSON body {"priority": P}: the records of that priority, as /cursor pages
  /export.csv    every record as CSV (text/csv), with a header row

Every endpoint takes `updated_since` (records changed at or after it, as most APIs have
it) and answers records in (updated_at, id) order. Sign-in is checked as POST /test/control
sets it: none, an API key header (`X-Api-Key`), an API key in the query (`api_key`), basic
(`ana` / `pw-1`). POST /test/control can also queue failures for the next requests
(`{"fail": [{"status": 429, "retry_after": "1"}, {"status": 503}]}`) and add or change
records (`{"upsert": [...]}`), or make every answer wait (`{"delay": 1.5}` seconds). GET /test/log returns the requests made since it was last asked.

Prints one JSON line with its URL, then serves until its standard input closes.
"""

import base64
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
records = {}
for i in range(1, 251):
    # Several records share each instant, as they do when a bulk update touches them.
    records[i] = {
        "id": i,
        "subject": "Ticket %d" % i,
        "priority": ["low", "normal", "high"][i % 3],
        "score": i * 1.5,
        "updated_at": "2026-11-%02dT10:00:00Z" % (1 + (i - 1) // 10),
    }
state = {"auth": "none", "fail": []}
log = []


def ordered(since):
    with lock:
        items = sorted(records.values(), key=lambda r: (r["updated_at"], r["id"]))
    if since:
        items = [r for r in items if r["updated_at"] >= since]
    return items


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def signed_in(self, query):
        mode = state["auth"]
        if mode == "none":
            return True
        if mode == "api_key":
            return self.headers.get("X-Api-Key") == "k-123"
        if mode == "query":
            return query.get("api_key") == "k-456"
        if mode == "basic":
            return self.headers.get("Authorization") == "Basic " + base64.b64encode(b"ana:pw-1").decode()
        return False

    def do_POST(self):
        parsed = urllib.parse.urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if parsed.path == "/search":
            q = dict(urllib.parse.parse_qsl(parsed.query))
            with lock:
                log.append({"method": "POST", "path": parsed.path, "query": q, "body": body, "status": 200,
                            "language": self.headers.get("Accept-Language")})
            items = [r for r in ordered(q.get("updated_since")) if r["priority"] == body.get("priority")]
            start = int(base64.b64decode(q["cursor"]).decode()) if "cursor" in q else 0
            page = items[start:start + 30]
            cursor = base64.b64encode(str(start + 30).encode()).decode() if start + 30 < len(items) else ""
            return self.send(200, {"data": page, "response_metadata": {"next_cursor": cursor}})
        with lock:
            for r in body.pop("upsert", []):
                records[r["id"]] = r
            state.update(body)
        self.send(200, {"ok": True})

    def do_GET(self):
        parsed = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(parsed.query))
        if parsed.path == "/test/log":
            with lock:
                taken = list(log)
                log.clear()
            return self.send(200, taken)
        entry = {"path": parsed.path, "query": q, "authorization": self.headers.get("Authorization"), "api_key": self.headers.get("X-Api-Key")}
        with lock:
            log.append(entry)
            failure = state["fail"].pop(0) if state["fail"] else None
        if state.get("delay"):
            time.sleep(state["delay"])
        if failure:
            entry["status"] = failure["status"]
            headers = [("Retry-After", failure["retry_after"])] if "retry_after" in failure else []
            return self.send(failure["status"], {"error": "try again later"}, headers)
        if not self.signed_in(q):
            entry["status"] = 401
            return self.send(401, {"error": "unauthorized"})
        entry["status"] = 200
        items = ordered(q.get("updated_since"))
        path = parsed.path
        if path == "/next-body":
            after = int(q.get("after", "0"))
            start = next((i for i, r in enumerate(items) if r["id"] == after), -1) + 1
            page = items[start:start + 40]
            more = start + 40 < len(items)
            nxt = "/next-body?" + urllib.parse.urlencode(dict(q, after=page[-1]["id"])) if more else None
            return self.send(200, {"items": page, "next": nxt})
        if path == "/link-header":
            n = int(q.get("page", "1"))
            page = items[(n - 1) * 60:n * 60]
            headers = []
            if n * 60 < len(items):
                base = "http://%s:%d" % self.server.server_address[:2]
                headers.append(("Link", '<%s/link-header?%s>; rel="next"' % (base, urllib.parse.urlencode(dict(q, page=n + 1)))))
            return self.send(200, page, headers)
        if path == "/cursor":
            start = int(base64.b64decode(q["cursor"]).decode()) if "cursor" in q else 0
            page = items[start:start + 75]
            cursor = base64.b64encode(str(start + 75).encode()).decode() if start + 75 < len(items) else ""
            return self.send(200, {"ok": True, "data": page, "response_metadata": {"next_cursor": cursor}})
        if path == "/pages":
            n, size = int(q.get("page", "1")), int(q.get("per_page", "30"))
            return self.send(200, items[(n - 1) * size:n * size])
        if path == "/export.csv":
            out = "id,subject,priority,updated_at\r\n" + "".join(
                '%d,"%s",%s,%s\r\n' % (r["id"], r["subject"].replace('"', '""'), r["priority"], r["updated_at"]) for r in items)
            data = out.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/csv; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if path == "/offset":
            o, limit = int(q.get("offset", "0")), int(q.get("limit", "100"))
            return self.send(200, {"results": items[o:o + limit], "total": len(items)})
        entry["status"] = 404
        self.send(404, {"error": "no such endpoint"})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"url": "http://127.0.0.1:%d" % server.server_address[1]}), flush=True)
sys.stdin.read()
