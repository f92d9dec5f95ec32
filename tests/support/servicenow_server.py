"""A ServiceNow instance on loopback for the ServiceNow tests, speaking the Table API's
documented wire format:

  GET  /api/now/table/{table}   sysparm_query, sysparm_fields, sysparm_limit, sysparm_offset,
                                sysparm_display_value, sysparm_exclude_reference_link;
                                {"result": [...]} with X-Total-Count and a Link header
  POST /api/now/table/{table}   inserts a record (201); a missing mandatory field is refused
                                (403, a Data Policy Exception), as is an unknown field (400)
  PATCH /api/now/table/{table}/{sys_id}   updates one (200); an unknown sys_id is 404
  POST /oauth_token.do          password, client_credentials and refresh_token grants

Every value is a string, as the Table API gives raw values; date-times are
`YYYY-MM-DD HH:MM:SS` in UTC. Tables: `sys_db_object` (name, label, super_class,
sys_id), `sys_dictionary` (name, element, column_label, internal_type, scale), `task`
(empty here) and `incident`, which extends `task`.

Encoded queries are read as ServiceNow reads them: terms joined by `^` (AND), `^OR` (OR
with the term before), `^NQ` (OR of whole queries), `^^` an escaped `^`; operators `=`,
`!=`, `<`, `<=`, `>`, `>=`, `LIKE`, `IN`, `NOT IN`, `BETWEEN a@b`, `ISNOTEMPTY`,
`ISEMPTY`; `ORDERBYx` and `ORDERBYDESCx` anywhere order the whole result.

Sign-in: Basic `admin` / `sn-pass-1`, or a bearer token from /oauth_token.do. Errors are
ServiceNow's bodies: {"error": {"message", "detail"}, "status": "failure"}.

A page holds at most 100 rows, whatever `sysparm_limit` asks (an instance's
`glide.rest.query.max_rows`); `{"max_rows": N}` changes that.

POST /test/control: `{"upsert": [records]}` changes incidents, `{"fail": [{"status": 429,
"at": "incident", "retry_after": 1}]}` queues failures for requests whose path and query
contain `at`, `{"expire": true}` ends every token. GET /test/log returns the requests since
it was last asked. Prints one JSON line with its URL, then serves until stdin closes.
"""

import base64
import json
import re
import secrets
import urllib.parse

from wire import JsonHandler, failures, lock, serve

USER, PASSWORD = "admin", "sn-pass-1"
CLIENT_ID, CLIENT_SECRET = "sn-client", "sn-secret-7"

tokens = set()
refresh_tokens = set()
state = {"max_rows": 100}

TABLES = [
    {"sys_id": "a0000000000000000000000000000001", "name": "task", "label": "Task", "super_class": ""},
    {"sys_id": "a0000000000000000000000000000002", "name": "incident", "label": "Incident",
     "super_class": "a0000000000000000000000000000001"},
    {"sys_id": "a0000000000000000000000000000003", "name": "sys_user", "label": "User", "super_class": ""},
]
DICTIONARY = [
    ("task", "sys_id", "Sys ID", "GUID", ""),
    ("task", "number", "Number", "string", ""),
    ("task", "active", "Active", "boolean", ""),
    ("task", "priority", "Priority", "integer", ""),
    ("task", "short_description", "Short description", "string", ""),
    ("task", "sys_created_on", "Created", "glide_date_time", ""),
    ("task", "sys_updated_on", "Updated", "glide_date_time", ""),
    ("incident", "category", "Category", "string", ""),
    ("incident", "cost", "Cost", "decimal", "2"),
    ("incident", "opened", "Opened", "glide_date", ""),
    ("incident", "caller_id", "Caller", "reference", ""),
    ("sys_user", "sys_id", "Sys ID", "GUID", ""),
    ("sys_user", "user_name", "User ID", "string", ""),
]
TYPES = {(t, e): k for t, e, _, k, _ in DICTIONARY}
CATEGORIES = ["network", "software", "hardware", "inquiry"]


def stamp(minute):
    return "2026-11-%02d %02d:%02d:00" % (1 + minute // 1440, (minute // 60) % 24, minute % 60)


def incident(i, minute):
    return {
        "sys_id": "%032x" % (i * 7919 % 1000003),
        "number": "INC%07d" % i,
        "active": "true" if i % 3 else "false",
        "priority": str(1 + i % 5),
        "short_description": "Printer %d is on fire ^ again" % i if i % 11 == 0 else "Ticket %d" % i,
        "sys_created_on": stamp(0),
        "sys_updated_on": stamp(minute),
        "category": CATEGORIES[i % 4],
        "cost": "%d.%02d" % (i * 3, i % 100) if i % 10 else "",
        "opened": "2026-11-%02d" % (1 + i % 28),
        "caller_id": "%032x" % (i % 9),
    }


# 250 incidents, four sharing each minute.
incidents = {}
for i in range(1, 251):
    r = incident(i, i // 4)
    incidents[r["sys_id"]] = r


def rows_of(table):
    if table == "sys_db_object":
        return [dict(t) for t in TABLES]
    if table == "sys_dictionary":
        return [{"sys_id": "d%031d" % n, "name": t, "element": e, "column_label": l, "internal_type": k, "scale": s}
                for n, (t, e, l, k, s) in enumerate(DICTIONARY)]
    if table == "incident":
        with lock:
            return [dict(r) for r in incidents.values()]
    if table in ("task", "sys_user"):
        return []
    return None


def kind(table, field):
    for t in (table, "task"):
        if (t, field) in TYPES:
            return TYPES[(t, field)]
    return "string"


def value_of(table, field, text):
    k = kind(table, field)
    if text is None or text == "":
        return None
    if k in ("integer", "decimal"):
        return float(text)
    return text


def split_terms(query):
    """Splits on ^ that is not ^^, keeping ^^ as a literal ^."""
    terms, cur, i = [], "", 0
    while i < len(query):
        if query[i] == "^":
            if i + 1 < len(query) and query[i + 1] == "^":
                cur += "^"
                i += 2
                continue
            terms.append(cur)
            cur = ""
            i += 1
            continue
        cur += query[i]
        i += 1
    terms.append(cur)
    return terms


TERM = re.compile(r"^([a-z_]+)(NOT IN|ISNOTEMPTY|ISEMPTY|BETWEEN|LIKE|IN|!=|<=|>=|=|<|>)(.*)$", re.S)


def term_holds(table, record, term):
    m = TERM.match(term)
    if not m:
        raise ValueError("cannot read the term " + term)
    field, op, arg = m.groups()
    if field not in record:
        raise KeyError(field)
    left = value_of(table, field, record.get(field))
    if op == "ISEMPTY":
        return left is None
    if op == "ISNOTEMPTY":
        return left is not None
    if op in ("IN", "NOT IN"):
        inside = left in [value_of(table, field, v) for v in arg.split(",")]
        return inside if op == "IN" else not inside
    if op == "LIKE":
        return arg.lower() in (record.get(field) or "").lower()
    if op == "BETWEEN":
        low, high = [value_of(table, field, v) for v in arg.split("@")]
        return left is not None and low <= left <= high
    right = value_of(table, field, arg)
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


def run_query(table, rows, query):
    order = []
    groups = []
    for part in re.split(r"\^NQ", query or ""):
        clauses = []  # a list of OR lists, ANDed
        for term in split_terms(part):
            if not term:
                continue
            if term.startswith("ORDERBYDESC"):
                order.append((term[len("ORDERBYDESC"):], True))
            elif term.startswith("ORDERBY"):
                order.append((term[len("ORDERBY"):], False))
            elif term.startswith("OR") and clauses:
                clauses[-1].append(term[2:])
            else:
                clauses.append([term])
        groups.append(clauses)
    out = [r for r in rows if any(all(any(term_holds(table, r, t) for t in ors) for ors in g) for g in groups)]
    for field, desc in reversed(order):
        out.sort(key=lambda r: (r.get(field) is None, value_of(table, field, r.get(field)) or ""), reverse=desc)
    return out


class Handler(JsonHandler):
    def failure(self, status, message, detail, headers=()):
        self.send(status, {"error": {"message": message, "detail": detail}, "status": "failure"}, headers)

    def signed_in(self):
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user == USER and password == PASSWORD
        if auth.startswith("Bearer "):
            with lock:
                return auth[7:] in tokens
        return False

    def write(self, url, table, sys_id):
        """POST (sys_id None) or PATCH of an incident."""
        body = json.loads(self.body() or "{}")
        failing = self.queued_failure(url.path)
        if failing:
            self.record(url.path, {}, failing["status"], body)
            return self.failure(failing["status"], "Server error", "queued by the test")
        if not self.signed_in():
            self.record(url.path, {}, 401, body)
            return self.failure(401, "User Not Authenticated", "Required to provide Auth information")
        if table != "incident":
            self.record(url.path, {}, 400, body)
            return self.failure(400, "Invalid table " + table, "")
        unknown = [k for k in body if k not in incident(1, 0)]
        if unknown:
            self.record(url.path, {}, 400, body)
            return self.failure(400, "Invalid field", ", ".join(unknown))
        with lock:
            if sys_id is None:
                if not body.get("short_description"):
                    status = 403
                else:
                    status = 201
                    n = len(incidents) + 1
                    new = incident(n, 0)
                    new.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in body.items()})
                    new.setdefault("sys_id", secrets.token_hex(16))
                    new["number"] = "INC%07d" % (1000 + n)
                    new["sys_updated_on"] = "2026-11-30 12:00:00"
                    incidents[new["sys_id"]] = new
                    result = dict(new)
            elif sys_id not in incidents:
                status = 404
            else:
                status = 200
                incidents[sys_id].update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in body.items()})
                incidents[sys_id]["sys_updated_on"] = "2026-11-30 12:00:00"
                result = dict(incidents[sys_id])
        self.record(url.path, {}, status, body)
        if status == 403:
            return self.failure(403, "Operation Failed",
                                "Data Policy Exception: \n\tThe following fields are mandatory: Short description")
        if status == 404:
            return self.failure(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        self.send(status, {"result": result})

    def do_PATCH(self):
        url = urllib.parse.urlsplit(self.path)
        m = re.match(r"^/api/now/table/([a-z_0-9]+)/([0-9a-f]+)$", url.path)
        if not m:
            return self.failure(400, "Requested URI does not represent any resource", url.path)
        self.write(url, m.group(1), m.group(2))

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/test/log":
            return self.send(200, self.taken_log())
        m = re.match(r"^/api/now/table/([a-z_0-9]+)$", url.path)
        if not m:
            self.record(url.path, query, 400)
            return self.failure(400, "Requested URI does not represent any resource", url.path)
        failing = self.queued_failure(url.path + "?" + url.query)
        if failing:
            self.record(url.path, query, failing["status"])
            headers = [("Retry-After", str(failing["retry_after"]))] if "retry_after" in failing else []
            return self.failure(failing["status"], "Too many requests" if failing["status"] == 429 else "Server error",
                                "queued by the test", headers)
        if not self.signed_in():
            self.record(url.path, query, 401)
            return self.failure(401, "User Not Authenticated", "Required to provide Auth information")
        table = m.group(1)
        rows = rows_of(table)
        if rows is None:
            self.record(url.path, query, 400)
            return self.failure(400, "Invalid table " + table, "")
        try:
            rows = run_query(table, rows, query.get("sysparm_query", ""))
        except (ValueError, KeyError) as e:
            self.record(url.path, query, 400)
            return self.failure(400, "Invalid query", str(e))
        # Like an instance's glide.rest.query.max_rows: never more rows than this a page.
        limit = min(int(query.get("sysparm_limit") or 10000), state["max_rows"])
        offset = int(query.get("sysparm_offset") or 0)
        total = len(rows)
        page = rows[offset: offset + limit]
        fields = [f for f in (query.get("sysparm_fields") or "").split(",") if f]
        if fields:
            page = [{f: r.get(f, "") for f in fields} for r in page]
        if query.get("sysparm_exclude_reference_link") != "true":
            for r in page:
                if "caller_id" in r and r["caller_id"]:
                    r["caller_id"] = {"link": self.base() + "/api/now/table/sys_user/" + r["caller_id"],
                                      "value": r["caller_id"]}
        links = []
        if offset + limit < total:
            q = dict(query, sysparm_offset=str(offset + limit))
            links.append('<%s%s?%s>;rel="next"' % (self.base(), url.path, urllib.parse.urlencode(q)))
        self.record(url.path, query, 200)
        headers = [("X-Total-Count", str(total))] + ([("Link", ",".join(links))] if links else [])
        self.send(200, {"result": page}, headers)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        m = re.match(r"^/api/now/table/([a-z_0-9]+)$", url.path)
        if m:
            return self.write(url, m.group(1), None)
        if url.path == "/test/control":
            change = json.loads(self.body() or "{}")
            with lock:
                for r in change.get("upsert", []):
                    incidents.setdefault(r["sys_id"], {}).update(r)
                failures.extend(change.get("fail", []))
                state["max_rows"] = change.get("max_rows", state["max_rows"])
                if change.get("expire"):
                    tokens.clear()
            return self.send(200, {"ok": True})
        if url.path == "/oauth_token.do":
            form = self.token_form(self.body())
            self.record(url.path, {"grant_type": form.get("grant_type")}, 0)
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return self.send(401, {"error": "access_denied", "error_description": "access_denied"})
            grant = form.get("grant_type")
            if grant == "refresh_token":
                with lock:
                    ok = form.get("refresh_token") in refresh_tokens
                if not ok:
                    return self.send(401, {"error": "invalid_grant", "error_description": "invalid refresh token"})
            elif grant == "password":
                if form.get("username") != USER or form.get("password") != PASSWORD:
                    return self.send(401, {"error": "access_denied", "error_description": "access_denied"})
            elif grant != "client_credentials":
                return self.send(400, {"error": "unsupported_grant_type"})
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            with lock:
                tokens.add(access)
                refresh_tokens.add(refresh)
            return self.send(200, {"access_token": access, "refresh_token": refresh, "scope": "useraccount",
                                   "token_type": "Bearer", "expires_in": 1799})
        self.send(404, {"error": {"message": "not found", "detail": url.path}, "status": "failure"})


serve(Handler, {"user": USER, "password": PASSWORD, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
