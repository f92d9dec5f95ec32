"""A forward HTTP proxy on loopback that keeps a log of what went through it, for the
test that connections honour the proxy setting and HTTP_PROXY.

Requests in absolute form (`GET http://host/path`) are forwarded; `GET /log` answers the
log. Prints one JSON line with its URL, then serves until its standard input closes.
"""

import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = []
lock = threading.Lock()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        if not self.path.startswith("http://"):
            with lock:
                return self.reply(200, [("Content-Type", "application/json")], json.dumps(log).encode())
        with lock:
            log.append("%s %s" % (self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection", "connection")}
        request = urllib.request.Request(self.path, data=body, method=self.command, headers=headers)
        try:
            response = opener.open(request)
        except urllib.error.HTTPError as e:
            response = e
        self.reply(response.status if hasattr(response, "status") else response.code, response.headers.items(), response.read())

    do_GET = forward
    do_POST = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"url": "http://127.0.0.1:%d" % server.server_address[1]}), flush=True)
sys.stdin.read()
