"""A server on loopback that takes connections and never answers them: an address that
does not respond, such as the EC2 instance metadata address seen from a laptop.

`GET /test/count` answers how many requests it has held. Prints one JSON line with its
URL, then serves until its standard input closes.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

held = []
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or not self.parse_request():
            self.close_connection = True
            return
        if self.path == "/test/count":
            with lock:
                body = json.dumps(held).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with lock:
            held.append("%s %s" % (self.command, self.path))
        threading.Event().wait()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"url": "http://127.0.0.1:%d" % server.server_address[1]}), flush=True)
sys.stdin.read()
