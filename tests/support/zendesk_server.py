"""A Zendesk Support instance on loopback for the Zendesk tests, speaking its documented
wire format:

  GET /api/v2/incremental/tickets/cursor.json   start_time (Unix seconds) or cursor;
      {"tickets", "after_url", "after_cursor", "before_url", "before_cursor", "end_of_stream"}
  GET /api/v2/incremental/users/cursor.json     the same for users
  GET /api/v2/incremental/organizations.json    time-based: start_time;
      {"organizations", "next_page", "end_time", "count", "end_of_stream"}
  GET /api/v2/groups.json, /api/v2/ticket_fields.json (Zendesk's own, `removable: false`,
      and three custom ones whose values tickets carry in `custom_fields`), /api/v2/satisfaction_ratings.json
      cursor pagination: page[size], page[after]; {"links": {"next"}, "meta": {"has_more",
      "after_cursor"}}; satisfaction ratings filter by score, start_time and end_time
  GET /api/v2/users/me.json                     who the credentials belong to
  POST /api/v2/tickets.json, PUT /api/v2/tickets/{id}.json   {"ticket": {...}}; a ticket
      without a description is refused (422 RecordInvalid), an unknown id is 404
  POST /api/v2/tickets/create_many.json, PUT /api/v2/tickets/update_many.json
      {"tickets": [...]} (at most 100): a job; {"job_status": {"id", "url", "status"}}
  GET /api/v2/job_statuses/{id}.json            "working", then "completed"
      with "results": [{"index", "id", "status"} or {"index", "error", "details"}]
  POST /oauth/tokens                            client_credentials and refresh_token grants

Records are ordered by update time, then id; times are ISO 8601 in UTC. A page holds at
most `per_page` records (100, as Zendesk's exports hold up to 1000; `{"per_page": N}`
changes it). Exports compare `start_time` with the records' update time.

Sign-in: Basic `ana@acme.com/token` with the API token `zd-token-1`, or a bearer token
from /oauth/tokens. Errors are Zendesk's bodies: {"error": "...", "description": "..."}.

POST /test/control: `{"upsert": [tickets]}` changes tickets, `{"fail": [{"status": 429,
"at": "tickets", "retry_after": 1}]}` queues failures for requests whose path and query
contain `at`, `{"expire": true}` ends every token. GET /test/log returns the requests since
it was last asked. Prints one JSON line with its URL, then serves until stdin closes.
"""

import base64
import json
import re
import secrets
import urllib.parse
from datetime import datetime, timezone

from wire import JsonHandler, failures, lock, serve

EMAIL, API_TOKEN = "ana@acme.com", "zd-token-1"
CLIENT_ID, CLIENT_SECRET = "zd-client", "zd-secret-3"
BASE_TIME = 1764547200  # 2025-12-01T00:00:00Z

tokens = set()
jobs = {}
refresh_tokens = set()
state = {"per_page": 100}


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix(text):
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def ticket(i, minute):
    return {"id": i, "url": "", "subject": "Ticket %d" % i, "description": "Help with %d" % i,
            "status": ["new", "open", "pending", "solved"][i % 4], "priority": ["low", "normal", "high"][i % 3],
            "type": "question", "requester_id": 9000 + i % 7, "assignee_id": None if i % 5 == 0 else 8000 + i % 3,
            "organization_id": 700 + i % 2, "group_id": 600, "tags": ["t%d" % (i % 3)],
            "via": {"channel": "email" if i % 2 else "web"},
            "custom_fields": [{"id": 360001, "value": 1000 + i}, {"id": 360002, "value": i % 2 == 0},
                              {"id": 360003, "value": ["p%d" % (i % 3), "extra"] if i % 5 == 0 else None}],
            "created_at": iso(BASE_TIME), "updated_at": iso(BASE_TIME + 60 * minute)}


# 250 tickets, four sharing each minute.
tickets = {i: ticket(i, i // 4) for i in range(1, 251)}
users = {i: {"id": i, "name": "User %d" % i, "email": "u%d@acme.com" % i, "role": "agent" if i < 3 else "end-user",
             "active": True, "organization_id": 700, "time_zone": "Europe/Paris",
             "created_at": iso(BASE_TIME), "updated_at": iso(BASE_TIME + 30 * i)} for i in range(1, 6)}
organizations = [{"id": 700 + i, "name": "Org %d" % i, "details": "", "notes": "", "group_id": 600,
                  "created_at": iso(BASE_TIME), "updated_at": iso(BASE_TIME + i)} for i in range(2)]
groups = [{"id": 600 + i, "name": "Group %d" % i, "description": "", "default": i == 0,
           "created_at": iso(BASE_TIME), "updated_at": iso(BASE_TIME)} for i in range(3)]
# Zendesk's own fields (not removable) and three custom ones.
ticket_fields = [{"id": 100 + i, "type": kind, "title": title, "active": True, "required": False,
                  "removable": False, "created_at": iso(BASE_TIME), "updated_at": iso(BASE_TIME)}
                 for i, (kind, title) in enumerate([("subject", "Subject"), ("description", "Description"),
                                                    ("status", "Status")])]
ticket_fields += [{"id": fid, "type": kind, "title": title, "active": True, "required": False, "removable": True,
                   "created_at": iso(BASE_TIME), "updated_at": iso(BASE_TIME)}
                  for fid, kind, title in [(360001, "integer", "Order number"), (360002, "checkbox", "Refund"),
                                           (360003, "multiselect", "Products")]]
ratings = [{"id": 500 + i, "ticket_id": i, "score": ["good", "bad", "offered"][i % 3], "comment": "",
            "reason": "", "created_at": iso(BASE_TIME + 3600 * i), "updated_at": iso(BASE_TIME + 3600 * i)}
           for i in range(1, 13)]


def ordered(records):
    return sorted(records, key=lambda r: (r["updated_at"], r["id"]))


def encode(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


def decode(text):
    return json.loads(base64.urlsafe_b64decode(text.encode()))


class Handler(JsonHandler):
    def signed_in(self):
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user == EMAIL + "/token" and password == API_TOKEN
        if auth.startswith("Bearer "):
            with lock:
                return auth[7:] in tokens
        return False

    def refuse(self, url, query, body=None):
        """Answers a queued failure or a missing sign-in; True when it did."""
        failing = self.queued_failure(url.path + "?" + url.query)
        if failing:
            self.record(url.path, query, failing["status"], body)
            headers = [("Retry-After", str(failing["retry_after"]))] if "retry_after" in failing else []
            self.send(failing["status"], {"error": "TooManyRequests" if failing["status"] == 429 else "ServerError",
                                          "description": "queued by the test"}, headers)
            return True
        if not self.signed_in():
            self.record(url.path, query, 401, body)
            self.send(401, {"error": "Couldn't authenticate you"})
            return True
        return False

    def export(self, url, query, name, records):
        """A cursor-based incremental export."""
        if "cursor" in query:
            at = decode(query["cursor"])
            start, offset = at["start"], at["offset"]
        elif "start_time" in query:
            start, offset = int(query["start_time"]), 0
        else:
            self.record(url.path, query, 400)
            return self.send(400, {"error": "InvalidPaginationParameter",
                                   "description": "start_time or cursor is required"})
        matching = [r for r in ordered(records) if unix(r["updated_at"]) >= start]
        page = matching[offset: offset + state["per_page"]]
        after = encode({"start": start, "offset": offset + len(page)})
        end = offset + len(page) >= len(matching)
        self.record(url.path, query, 200)
        self.send(200, {name: page, "after_url": "%s%s?cursor=%s" % (self.base(), url.path, after),
                        "after_cursor": after, "before_url": None, "before_cursor": None, "end_of_stream": end})

    def listing(self, url, query, name, records):
        """Cursor pagination: page[size] and page[after]."""
        size = min(int(query.get("page[size]") or 100), state["per_page"])
        offset = decode(query["page[after]"])["offset"] if "page[after]" in query else 0
        page = records[offset: offset + size]
        more = offset + size < len(records)
        after = encode({"offset": offset + size})
        next_url = None
        if more:
            q = dict(query)
            q["page[after]"] = after
            next_url = "%s%s?%s" % (self.base(), url.path, urllib.parse.urlencode(q))
        self.record(url.path, query, 200)
        self.send(200, {name: page, "links": {"next": next_url, "prev": None},
                        "meta": {"has_more": more, "after_cursor": after if more else None, "before_cursor": None}})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/test/log":
            return self.send(200, self.taken_log())
        if self.refuse(url, query):
            return
        with lock:
            all_tickets = [dict(t) for t in tickets.values()]
        if url.path == "/api/v2/incremental/tickets/cursor.json":
            return self.export(url, query, "tickets", all_tickets)
        if url.path == "/api/v2/incremental/users/cursor.json":
            return self.export(url, query, "users", list(users.values()))
        if url.path == "/api/v2/incremental/organizations.json":
            start = int(query.get("start_time", "-1"))
            if start < 0:
                self.record(url.path, query, 400)
                return self.send(400, {"error": "InvalidValue", "description": "start_time is required"})
            page = [o for o in ordered(organizations) if unix(o["updated_at"]) >= start]
            self.record(url.path, query, 200)
            end_time = unix(page[-1]["updated_at"]) if page else start
            return self.send(200, {"organizations": page, "count": len(page), "end_time": end_time,
                                   "next_page": "%s%s?start_time=%d" % (self.base(), url.path, end_time),
                                   "end_of_stream": True})
        if url.path == "/api/v2/groups.json":
            return self.listing(url, query, "groups", groups)
        if url.path == "/api/v2/ticket_fields.json":
            return self.listing(url, query, "ticket_fields", ticket_fields)
        if url.path == "/api/v2/satisfaction_ratings.json":
            chosen = [r for r in ratings
                      if ("score" not in query or r["score"] == query["score"])
                      and ("start_time" not in query or unix(r["created_at"]) >= int(query["start_time"]))
                      and ("end_time" not in query or unix(r["created_at"]) < int(query["end_time"]))]
            return self.listing(url, query, "satisfaction_ratings", chosen)
        m = re.match(r"^/api/v2/job_statuses/([0-9a-f]+)\.json$", url.path)
        if m:
            with lock:
                job = jobs.get(m.group(1))
                if job:
                    job["polls"] += 1
                    polls = job["polls"]
            self.record(url.path, query, 200 if job else 404)
            if not job:
                return self.send(404, {"error": "RecordNotFound", "description": "Not found"})
            status = "working" if polls < 2 else "completed"
            return self.send(200, {"job_status": {
                "id": m.group(1), "status": status, "total": job["total"],
                "progress": job["total"] if status == "completed" else 0, "message": "Completed at now" if status == "completed" else None,
                "results": job["results"] if status == "completed" else None}})
        if url.path == "/api/v2/users/me.json":
            self.record(url.path, query, 200)
            return self.send(200, {"user": {"id": 1, "email": EMAIL, "name": "Ana"}})
        self.record(url.path, query, 404)
        self.send(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def write(self, url, ticket_id):
        text = self.body()
        body = json.loads(text or "{}")
        if self.refuse(url, {}, body):
            return
        fields = body.get("ticket")
        if not isinstance(fields, dict):
            self.record(url.path, {}, 400, body)
            return self.send(400, {"error": "InvalidParameter", "description": "ticket is required"})
        with lock:
            status, result = self.apply(fields, ticket_id)
        self.record(url.path, {}, status, body)
        if status == 422:
            return self.send(422, {"error": "RecordInvalid", "description": "Record validation errors",
                                   "details": {"description": [{"description": "Description: cannot be blank",
                                                                "error": "BlankValue"}]}})
        if status == 404:
            return self.send(404, {"error": "RecordNotFound", "description": "Not found"})
        self.send(status, {"ticket": result})

    def apply(self, fields, ticket_id):
        """Creates (ticket_id None) or updates a ticket; (status, result) under the lock."""
        if ticket_id is None:
            if not fields.get("description") and not (fields.get("comment") or {}).get("body"):
                return 422, None
            new_id = max(tickets) + 1
            new = ticket(new_id, 0)
            new.update(fields)
            new["id"] = new_id
            new["updated_at"] = iso(BASE_TIME + 86400)
            tickets[new_id] = new
            return 201, dict(new)
        if ticket_id not in tickets:
            return 404, None
        tickets[ticket_id].update(fields)
        tickets[ticket_id]["updated_at"] = iso(BASE_TIME + 86400)
        return 200, dict(tickets[ticket_id])

    def many(self, url, update):
        """create_many and update_many: the work is done at once, reported by a job."""
        body = json.loads(self.body() or "{}")
        if self.refuse(url, {}, body):
            return
        items = body.get("tickets")
        if not isinstance(items, list) or len(items) > 100:
            self.record(url.path, {}, 400, body)
            return self.send(400, {"error": "InvalidValue", "description": "tickets: at most 100"})
        results = []
        with lock:
            for index, fields in enumerate(items):
                fields = dict(fields)
                status, done = self.apply(fields, fields.pop("id", None) if update else None)
                if status == 422:
                    results.append({"index": index, "error": "TicketCreateFailed",
                                    "details": "Description: cannot be blank"})
                elif status == 404:
                    results.append({"index": index, "id": items[index].get("id"), "error": "TicketUpdateFailed",
                                    "details": "RecordNotFound"})
                else:
                    results.append({"index": index, "id": done["id"], "action": "update" if update else "create",
                                    "success": True, "status": "Updated" if update else "Created"})
            job = secrets.token_hex(16)
            jobs[job] = {"polls": 0, "results": results, "total": len(items)}
        self.record(url.path, {}, 200, body)
        self.send(200, {"job_status": {"id": job, "url": "%s/api/v2/job_statuses/%s.json" % (self.base(), job),
                                       "status": "queued", "total": len(items), "progress": 0,
                                       "message": None, "results": None}})

    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v2/tickets/update_many.json":
            return self.many(url, True)
        m = re.match(r"^/api/v2/tickets/(\d+)\.json$", url.path)
        if not m:
            return self.send(404, {"error": "InvalidEndpoint", "description": "Not found"})
        self.write(url, int(m.group(1)))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v2/tickets.json":
            return self.write(url, None)
        if url.path == "/api/v2/tickets/create_many.json":
            return self.many(url, False)
        if url.path == "/test/control":
            change = json.loads(self.body() or "{}")
            with lock:
                for t in change.get("upsert", []):
                    tickets.setdefault(t["id"], ticket(t["id"], 0)).update(t)
                failures.extend(change.get("fail", []))
                state["per_page"] = change.get("per_page", state["per_page"])
                if change.get("expire"):
                    tokens.clear()
            return self.send(200, {"ok": True})
        if url.path == "/oauth/tokens":
            text = self.body()
            try:
                form = json.loads(text)
            except ValueError:
                form = {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}
            auth = self.headers.get("Authorization") or ""
            if auth.startswith("Basic "):
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                form.setdefault("client_id", urllib.parse.unquote(cid))
                form.setdefault("client_secret", urllib.parse.unquote(secret))
            self.record(url.path, {"grant_type": form.get("grant_type")}, 0)
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return self.send(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
            grant = form.get("grant_type")
            if grant == "refresh_token":
                with lock:
                    ok = form.get("refresh_token") in refresh_tokens
                if not ok:
                    return self.send(400, {"error": "invalid_grant", "error_description": "invalid refresh token"})
            elif grant != "client_credentials":
                return self.send(400, {"error": "unsupported_grant_type"})
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            with lock:
                tokens.add(access)
                refresh_tokens.add(refresh)
            return self.send(200, {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
                                   "scope": "read write", "expires_in": 172800})
        self.send(404, {"error": "InvalidEndpoint", "description": "Not found"})


serve(Handler, {"user": EMAIL + "/token", "password": API_TOKEN, "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET})
