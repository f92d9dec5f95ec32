"""Slack's Web API on loopback for the Slack tests, speaking its documented wire format:
every answer is `{"ok": true, ...}` or `{"ok": false, "error": "code"}` with HTTP 200,
but for rate limits (HTTP 429 with Retry-After and `"error": "ratelimited"`).

  POST /api/auth.test                 who the token belongs to
  GET  /api/conversations.list        limit, cursor, types; {"channels", "response_metadata":
                                      {"next_cursor"}} ("" on the last page)
  GET  /api/users.list                limit, cursor; {"members", ...}
  GET  /api/conversations.history     channel (required), oldest, latest, inclusive, limit,
                                      cursor; {"messages" (newest first), "has_more", ...}
  POST /api/chat.postMessage          JSON {"channel", "text"}; `not_in_channel` for a
                                      conversation the app is not in, `channel_not_found`,
                                      `no_text`
  GET  /oauth/v2/authorize            approves at once: redirects to redirect_uri with a code
  POST /api/oauth.v2.access           authorization_code and refresh_token grants (token
                                      rotation: access tokens `xoxe.xoxb-…` that expire)

Sign-in: the bot token `xoxb-test-1`, or a rotated token from /api/oauth.v2.access; an
unknown token is `invalid_auth`, an ended one `token_expired`. A page holds at most
`per_page` records (`{"per_page": N}` changes it, default 100).

POST /test/control: `{"post": [messages]}` adds messages to C1, `{"fail": [{"status":
429, "at": "history", "retry_after": 1}]}` queues failures, `{"expire": true}` ends every
rotated token. GET /test/log returns the requests since it was last asked. Prints one JSON
line with its URL, then serves until stdin closes.
"""

import base64
import json
import secrets
import urllib.parse

from wire import JsonHandler, failures, lock, serve

BOT_TOKEN = "xoxb-test-1"
CLIENT_ID, CLIENT_SECRET = "1234.5678", "slack-secret-9"
BASE_TS = 1764547200

tokens = set()
refresh_tokens = set()
codes = set()
state = {"per_page": 100}

channels = [{"id": "C%d" % i, "name": "channel-%d" % i, "is_channel": True, "is_private": i == 3,
             "is_archived": False, "num_members": 3 + i, "topic": {"value": "Topic %d" % i},
             "purpose": {"value": ""}, "created": BASE_TS - 86400 * i} for i in range(1, 5)]
channels.append({"id": "C_SECRET", "name": "secret", "is_channel": True, "is_private": True,
                 "is_archived": False, "num_members": 2, "topic": {"value": ""}, "purpose": {"value": ""},
                 "created": BASE_TS})
members = [{"id": "U%03d" % i, "name": "user%d" % i, "real_name": "User %d" % i, "deleted": False,
            "is_bot": i == 0, "is_admin": i == 1, "tz": "Europe/Paris", "updated": BASE_TS + i,
            "profile": {"email": "user%d@acme.com" % i}} for i in range(7)]


def ts(second, micro):
    return "%d.%06d" % (BASE_TS + second, micro)


# 250 messages in C1, four sharing each second (distinct microseconds).
messages = {"C1": [{"type": "message", "user": "U%03d" % (i % 7), "text": "Message %d" % i,
                    "ts": ts(i // 4 * 60, i % 4)} for i in range(1, 251)],
            "C2": [], "C3": [], "C4": [], "C_SECRET": []}
posted = []


class Handler(JsonHandler):
    def who(self):
        """None when signed in, else Slack's error code."""
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return "not_authed"
        token = auth[7:]
        if token == BOT_TOKEN:
            return None
        with lock:
            if token in tokens:
                return None
            if token.startswith("xoxe.xoxb-"):
                return "token_expired"
        return "invalid_auth"

    def page(self, query, items):
        limit = min(int(query.get("limit") or 100), state["per_page"])
        offset = int(base64.b64decode(query["cursor"]).decode().split(":")[1]) if query.get("cursor") else 0
        chunk = items[offset: offset + limit]
        more = offset + limit < len(items)
        cursor = base64.b64encode(("next:%d" % (offset + limit)).encode()).decode() if more else ""
        return chunk, more, {"next_cursor": cursor}

    def answer(self, url, query, body=None):
        path = url.path
        failing = self.queued_failure(path + "?" + url.query)
        if failing:
            self.record(path, query, failing["status"], body)
            headers = [("Retry-After", str(failing["retry_after"]))] if "retry_after" in failing else []
            return self.send(failing["status"], {"ok": False, "error": "ratelimited"}, headers)
        problem = self.who()
        if problem:
            self.record(path, query, 200, body)
            return self.send(200, {"ok": False, "error": problem})
        self.record(path, query, 200, body)
        if path == "/api/auth.test":
            return self.send(200, {"ok": True, "url": self.base() + "/", "team": "Acme", "user": "tributary-bot",
                                   "team_id": "T1", "user_id": "U000", "bot_id": "B1"})
        if path == "/api/conversations.list":
            chunk, _, meta = self.page(query, channels)
            return self.send(200, {"ok": True, "channels": chunk, "response_metadata": meta})
        if path == "/api/users.list":
            chunk, _, meta = self.page(query, members)
            return self.send(200, {"ok": True, "members": chunk, "response_metadata": meta})
        if path == "/api/conversations.history":
            channel = query.get("channel")
            if not channel:
                return self.send(200, {"ok": False, "error": "invalid_arguments"})
            with lock:
                if channel not in messages:
                    return self.send(200, {"ok": False, "error": "channel_not_found"})
                found = list(messages[channel])
            inclusive = query.get("inclusive") in ("true", "1")
            if "oldest" in query:
                oldest = float(query["oldest"])
                found = [m for m in found if float(m["ts"]) > oldest or (inclusive and float(m["ts"]) == oldest)]
            if "latest" in query:
                latest = float(query["latest"])
                found = [m for m in found if float(m["ts"]) < latest or (inclusive and float(m["ts"]) == latest)]
            found.sort(key=lambda m: float(m["ts"]), reverse=True)
            chunk, more, meta = self.page(query, found)
            return self.send(200, {"ok": True, "messages": chunk, "has_more": more, "response_metadata": meta})
        if path == "/api/chat.postMessage":
            body = body or {}
            channel, text = body.get("channel"), body.get("text")
            if channel == "C_SECRET":
                return self.send(200, {"ok": False, "error": "not_in_channel"})
            if channel not in messages:
                return self.send(200, {"ok": False, "error": "channel_not_found"})
            if not text:
                return self.send(200, {"ok": False, "error": "no_text"})
            with lock:
                stamp = ts(100000 + len(posted), 0)
                message = {"type": "message", "user": "U000", "text": text, "ts": stamp}
                posted.append(dict(message, channel=channel))
                messages[channel].append(message)
            return self.send(200, {"ok": True, "channel": channel, "ts": stamp, "message": message})
        self.send(404, {"ok": False, "error": "unknown_method"})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/test/log":
            return self.send(200, self.taken_log())
        if url.path == "/test/posted":
            with lock:
                return self.send(200, list(posted))
        if url.path == "/oauth/v2/authorize":
            code = secrets.token_hex(8)
            with lock:
                codes.add(code)
            self.record(url.path, query, 302)
            target = query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.answer(url, query)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        text = self.body()
        if url.path == "/test/control":
            change = json.loads(text or "{}")
            with lock:
                messages["C1"].extend(change.get("post", []))
                failures.extend(change.get("fail", []))
                state["per_page"] = change.get("per_page", state["per_page"])
                if change.get("expire"):
                    tokens.clear()
            return self.send(200, {"ok": True})
        if url.path == "/api/oauth.v2.access":
            form = self.token_form(text)
            self.record(url.path, {"grant_type": form.get("grant_type")}, 200)
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return self.send(200, {"ok": False, "error": "invalid_client_id"})
            grant = form.get("grant_type", "authorization_code")
            with lock:
                if grant == "refresh_token" and form.get("refresh_token") not in refresh_tokens:
                    return self.send(200, {"ok": False, "error": "invalid_refresh_token"})
                if grant == "authorization_code" and form.get("code") not in codes:
                    return self.send(200, {"ok": False, "error": "invalid_code"})
                access, refresh = "xoxe.xoxb-" + secrets.token_hex(8), "xoxe-1-" + secrets.token_hex(8)
                tokens.add(access)
                refresh_tokens.add(refresh)
            return self.send(200, {"ok": True, "access_token": access, "refresh_token": refresh, "expires_in": 43200,
                                   "token_type": "bot", "scope": "channels:read,chat:write", "bot_user_id": "U000",
                                   "team": {"id": "T1", "name": "Acme"}})
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        self.answer(url, query, body)


serve(Handler, {"token": BOT_TOKEN, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
