"""An OAuth 2.0 authorization server on loopback for the connection tests, shaped like
Salesforce's: /services/oauth2/authorize and /services/oauth2/token, an identity URL, a
REST path that needs a bearer token, and error bodies as Salesforce writes them.

It checks what a real one checks: the client id, the client secret when one is set, that
the redirect URI is a loopback `/callback` (any port, RFC 8252 section 7.3) and the same
at the token endpoint, that codes are used once and expire, that the PKCE verifier hashes
to the S256 challenge of the authorize request, and that refresh tokens are known (and,
with rotation on, used once).

Every request is kept in a log that GET /test/log returns, so tests can check what the
client sent. POST /test/control changes the behaviour (deny logins, answer with another
state, rotate refresh tokens, set the token lifetime, revoke access tokens, fail the next
refresh).

Prints one JSON line with its base URL once listening, then serves until its standard
input closes, which happens when the test process ends.
"""

import base64
import hashlib
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENT_ID = "tributary-test-client"
CLIENT_SECRET = "client-s3cret-7f2c"
ORG = "00D5e000000TEST"
USER = "0055e000001ANLYST"
USERNAME = "analyst@example.com"
PAGES = 3

lock = threading.Lock()
state = {
    "mode": "approve",  # approve | deny | wrong_state
    "rotate": False,
    "expires_in": None,  # Salesforce sends none; a number adds expires_in
    "fail_refresh": False,
    "require_secret": True,
}
codes = {}  # code -> dict(challenge, redirect_uri, client_id, issued)
refresh_tokens = set()
access_tokens = {}  # token -> expiry (epoch seconds) or None
log = []


def now():
    return time.time()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def base(self):
        return "http://%s:%d" % self.server.server_address[:2]

    def send(self, status, body, content_type="application/json", headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def record(self, form=None, status=None):
        parsed = urllib.parse.urlsplit(self.path)
        entry = {
            "method": self.command,
            "path": parsed.path,
            "query": dict(urllib.parse.parse_qsl(parsed.query)),
            "authorization": self.headers.get("Authorization"),
            "form": form or {},
        }
        with lock:
            log.append(entry)
        return entry

    def bearer_ok(self):
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return False
        token = auth[len("Bearer "):]
        with lock:
            if token not in access_tokens:
                return False
            expiry = access_tokens[token]
        return expiry is None or expiry > now()

    def unauthorized(self, entry):
        entry["status"] = 401
        self.send(
            401,
            [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
        )

    # ---- GET ----
    def do_GET(self):
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        if parsed.path == "/test/log":
            with lock:
                return self.send(200, log)
        entry = self.record()
        if parsed.path == "/services/oauth2/authorize":
            return self.authorize(query)
        if parsed.path == "/id/%s/%s" % (ORG, USER):
            if not self.bearer_ok():
                return self.unauthorized(entry)
            return self.send(
                200,
                {"id": self.base() + parsed.path, "username": USERNAME, "organization_id": ORG, "user_id": USER},
            )
        if parsed.path == "/services/data/":
            if not self.bearer_ok():
                return self.unauthorized(entry)
            return self.send(200, [{"label": "Winter '26", "url": "/services/data/v65.0", "version": "65.0"}])
        if parsed.path == "/api/items":
            if not self.bearer_ok():
                return self.unauthorized(entry)
            page = int(query.get("page", "1"))
            items = [{"id": (page - 1) * 2 + i} for i in range(1, 3)]
            following = "/api/items?page=%d" % (page + 1) if page < PAGES else None
            entry["status"] = 200
            return self.send(200, {"items": items, "next": following})
        if parsed.path == "/api/keyed":
            # API key and basic sign-in: echo what was presented.
            return self.send(200, {"authorization": self.headers.get("Authorization"), "x_api_key": self.headers.get("X-Api-Key"), "query": query})
        self.send(404, {"error": "not_found"})

    def authorize(self, q):
        problems = []
        if q.get("client_id") != CLIENT_ID:
            problems.append("invalid client_id")
        if q.get("response_type") != "code":
            problems.append("response_type must be code")
        redirect = q.get("redirect_uri", "")
        parts = urllib.parse.urlsplit(redirect)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.path != "/callback":
            problems.append("redirect_uri mismatch")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            problems.append("PKCE S256 challenge required")
        if not q.get("state"):
            problems.append("state required")
        if problems:
            # Salesforce shows an error page rather than redirecting to an unchecked URI.
            return self.send(400, ("<html><body>error: %s</body></html>" % "; ".join(problems)).encode(), "text/html")
        with lock:
            mode = state["mode"]
        if mode == "deny":
            params = {"error": "access_denied", "error_description": "end-user denied authorization", "state": q["state"]}
        else:
            code = secrets.token_urlsafe(24)
            with lock:
                codes[code] = {
                    "challenge": q["code_challenge"],
                    "redirect_uri": redirect,
                    "client_id": q["client_id"],
                    "issued": now(),
                    "scope": q.get("scope", ""),
                }
            params = {"code": code, "state": q["state"] if mode == "approve" else "forged-" + q["state"]}
        self.send(302, b"", "text/plain", [("Location", redirect + "?" + urllib.parse.urlencode(params))])

    # ---- POST ----
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/test/control":
            change = json.loads(body or "{}")
            with lock:
                if change.pop("revoke_access_tokens", False):
                    access_tokens.clear()
                state.update(change)
            return self.send(200, state)
        form = dict(urllib.parse.parse_qsl(body))
        entry = self.record(form)
        if parsed.path != "/services/oauth2/token":
            return self.send(404, {"error": "not_found"})
        status, answer = self.token(form)
        entry["status"] = status
        self.send(status, answer, headers=[("Cache-Control", "no-store")])

    def token(self, f):
        def error(code, description, status=400):
            return status, {"error": code, "error_description": description}

        if f.get("client_id") != CLIENT_ID:
            return error("invalid_client_id", "client identifier invalid")
        grant = f.get("grant_type")
        with lock:
            need_secret = state["require_secret"] or grant == "client_credentials"
        if need_secret and f.get("client_secret") != CLIENT_SECRET:
            return error("invalid_client", "invalid client credentials")
        if grant == "authorization_code":
            with lock:
                issued = codes.pop(f.get("code", ""), None)
            if issued is None or now() - issued["issued"] > 600:
                return error("invalid_grant", "invalid authorization code")
            if f.get("redirect_uri") != issued["redirect_uri"]:
                return error("redirect_uri_mismatch", "redirect_uri must match configuration")
            verifier = f.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not verifier or digest != issued["challenge"]:
                return error("invalid_grant", "invalid code verifier")
            return 200, self.issue(with_refresh=True)
        if grant == "refresh_token":
            token = f.get("refresh_token", "")
            with lock:
                known = token in refresh_tokens
                fail = state["fail_refresh"]
                rotate = state["rotate"]
                if known and rotate:
                    refresh_tokens.discard(token)
            if fail or not known:
                return error("invalid_grant", "expired access/refresh token")
            return 200, self.issue(with_refresh=rotate)
        if grant == "client_credentials":
            return 200, self.issue(with_refresh=False)
        return error("unsupported_grant_type", "grant type not supported")

    def issue(self, with_refresh):
        access = "00D!" + secrets.token_urlsafe(32)
        with lock:
            lifetime = state["expires_in"]
            access_tokens[access] = now() + lifetime if lifetime else None
        answer = {
            "access_token": access,
            "instance_url": self.base(),
            "id": "%s/id/%s/%s" % (self.base(), ORG, USER),
            "token_type": "Bearer",
            "issued_at": str(int(now() * 1000)),
            "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        if lifetime:
            answer["expires_in"] = lifetime
        if with_refresh:
            refresh = "5Aep" + secrets.token_urlsafe(40)
            with lock:
                refresh_tokens.add(refresh)
            answer["refresh_token"] = refresh
        return answer


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"url": "http://127.0.0.1:%d" % server.server_address[1]}), flush=True)
sys.stdin.read()
