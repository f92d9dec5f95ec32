"""What the JSON API servers of the tests share: a request handler that answers JSON,
reads bodies, keeps a log of the requests it saw and fails on demand, and the way a server
starts (one JSON line with its URL on stdout, then serving until stdin closes)."""

import base64
import json
import sys
import urllib.parse
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
log = []
failures = []


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def base(self):
        return "http://%s:%d" % self.server.server_address[:2]

    def send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode() if n else ""

    def record(self, path, query, status, body=None):
        """Logs a request: what /test/log hands the tests."""
        with lock:
            log.append({"method": self.command, "path": path, "query": query, "status": status, "body": body,
                        "auth": (self.headers.get("Authorization") or "").split(" ")[0]})

    def queued_failure(self, where):
        """The first failure queued for a request whose path and query contain its `at`."""
        with lock:
            for f in failures:
                if f["at"] in where:
                    failures.remove(f)
                    return f
        return None

    def token_form(self, text):
        """A token request's form, with the client id and secret of a Basic header (RFC
        6749 lets clients send them either way)."""
        form = {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            form.setdefault("client_id", urllib.parse.unquote(cid))
            form.setdefault("client_secret", urllib.parse.unquote(secret))
        return form

    def taken_log(self):
        with lock:
            entries = list(log)
            log.clear()
        return entries


def serve(handler, info):
    """Serves on a free loopback port; prints `info` with the URL, then serves until stdin
    closes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps(dict(info, url="http://127.0.0.1:%d" % server.server_address[1])), flush=True)
    sys.stdin.read()
