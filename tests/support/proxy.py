"""A forward HTTP proxy on loopback that keeps a log of what went through it, for the
test that connections honour the proxy setting and HTTP_PROXY, and for the tests that kill
a run at an exact request.

Requests in absolute form (`GET http://host/path`) are forwarded; `GET /log` answers the
log. With `--hold PATTERN --nth N`, the N-th request whose `METHOD URL` matches the regular
expression PATTERN is never forwarded nor answered: the log says `HELD METHOD URL` and the
request waits until the proxy ends. Prints one JSON line with its URL, then serves until
its standard input closes.
"""

import json
import re
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = []
lock = threading.Lock()
hold = re.compile(sys.argv[sys.argv.index("--hold") + 1]) if "--hold" in sys.argv else None
nth = int(sys.argv[sys.argv.index("--nth") + 1]) if "--nth" in sys.argv else 1
matched = 0


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
        global matched
        line = "%s %s" % (self.command, self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with lock:
            held = False
            if hold is not None and hold.search(line):
                matched += 1
                held = matched == nth
            log.append(("HELD " if held else "") + line)
        if held:
            threading.Event().wait()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection", "connection", "expect")}
        request = urllib.request.Request(self.path, data=body, method=self.command, headers=headers)
        try:
            response = opener.open(request)
        except urllib.error.HTTPError as e:
            response = e
        self.reply(response.status if hasattr(response, "status") else response.code, response.headers.items(), response.read())

    do_GET = forward
    do_POST = forward
    do_PUT = forward
    do_DELETE = forward
    do_HEAD = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"url": "http://127.0.0.1:%d" % server.server_address[1]}), flush=True)
sys.stdin.read()
