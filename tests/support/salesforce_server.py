"""A Salesforce org on loopback for the Salesforce tests, speaking the documented wire
formats of the REST API and Bulk API 2.0:

  POST /services/oauth2/token                     client credentials and refresh tokens
  GET  /services/data/vXX.X/sobjects              the object list
  GET  /services/data/vXX.X/sobjects/O/describe   fields with Salesforce types
  GET  /services/data/vXX.X/query?q=SOQL          (and /queryAll) pages with nextRecordsUrl
  GET  /services/data/vXX.X/query/01g…-N          the following pages
  POST /services/data/vXX.X/jobs/query            Bulk API 2.0 query jobs
  GET  /services/data/vXX.X/jobs/query/ID         the job's state (InProgress, then JobComplete)
  GET  /services/data/vXX.X/jobs/query/ID/results CSV result sets with Sforce-Locator
  POST/PUT/PATCH/GET …/jobs/ingest[/ID[/batches|/failedResults]]   Bulk API 2.0 ingest
  POST/PATCH/DELETE …/composite/sobjects[/O/ExternalIdField]       sObject Collections

SOQL is parsed for what the source writes: SELECT fields FROM object, WHERE conditions
joined by AND (comparisons, IN, NOT IN, LIKE, parentheses), LIMIT, SELECT COUNT() and
SELECT MIN(field).
Errors are Salesforce's JSON bodies (INVALID_SESSION_ID with 401, REQUEST_LIMIT_EXCEEDED
with 403). Every API answer carries Sforce-Limit-Info.

POST /test/control changes records (`upsert`), the page sizes, queues failures for
requests whose path contains `at` (`{"fail": [{"status": 503, "at": "-300"}]}`), and ends
the session when a path ending in `expire_at` is asked for; GET /test/log returns the requests since it was last asked.
Prints one JSON line with its URL, then serves until its standard input closes.
"""

import csv
import io
import json
import re
import secrets
import sys
import threading
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENT_ID = "sf-test-client"
CLIENT_SECRET = "sf-test-secret-91c"

lock = threading.Lock()
FIELDS = [
    ("Id", "id"), ("IsDeleted", "boolean"), ("Name", "string"), ("AccountId", "reference"),
    ("Description", "textarea"), ("StageName", "picklist"), ("Tags__c", "multipicklist"),
    ("Amount", "currency"), ("Probability", "percent"), ("Score__c", "double"),
    ("Quantity__c", "int"), ("Views__c", "long"), ("CloseDate", "date"),
    ("CreatedDate", "datetime"), ("LastModifiedDate", "datetime"), ("SystemModstamp", "datetime"),
    ("IsWon", "boolean"), ("Email__c", "email"), ("Phone__c", "phone"), ("Site__c", "url"),
    ("Kind__c", "combobox"), ("Secret__c", "encryptedstring"), ("Doc__c", "base64"),
    ("Start__c", "time"), ("Any__c", "anyType"), ("Address__c", "address"),
    ("External_Id__c", "string"),
]
# Digits in all and after the point of the number fields, as describe gives them.
DIGITS = {"Amount": (18, 2), "Probability": (3, 0), "Score__c": (18, 6)}
STAGES = ["Prospecting", "Qualification", "Closed Won", "Closed Lost"]
records = {}


def stamp(minute):
    return "2026-11-%02dT%02d:%02d:00.000+0000" % (1 + minute // 1440, (minute // 60) % 24, minute % 60)


def make(i, minute, **over):
    r = {
        "Id": "006%012d" % i, "IsDeleted": False, "Name": "Deal %d" % i, "AccountId": "001%012d" % (i % 50),
        "Description": "Déjà vu deal %d" % i if i % 7 else None, "StageName": STAGES[i % 4],
        "Tags__c": "a;b", "Amount": round(i * 10.25, 2) if i % 10 else None, "Probability": float(i % 100),
        "Score__c": i / 3, "Quantity__c": i % 1000, "Views__c": i * 1000003, "CloseDate": "2026-12-%02d" % (1 + i % 28),
        "CreatedDate": stamp(0), "LastModifiedDate": stamp(minute), "SystemModstamp": stamp(minute),
        "IsWon": i % 4 == 2, "Email__c": "d%d@example.com" % i, "Phone__c": "+1 555 %04d" % i,
        "Site__c": "https://example.com/%d" % i, "Kind__c": "new", "Secret__c": "****", "Doc__c": "/services/data/v62.0/sobjects/Opportunity/%d/Doc__c" % i,
        "Start__c": "09:00:00.000Z", "Any__c": "x", "Address__c": {"city": "Lyon"},
        "External_Id__c": "EXT-%d" % i,
    }
    r.update(over)
    return r


# 450 records (or `--records N`, at most 216,000); five share each minute, so every instant
# has several records.
count = int(sys.argv[sys.argv.index("--records") + 1]) if "--records" in sys.argv else 450
for i in range(1, count + 1):
    records[i] = make(i, i // 5)
state = {"page_size": 200, "result_size": 160, "fail": [], "polls": 1}
tokens = set()
jobs = {}
ingests = {}
cursors = {}
log = []


def epoch(text):
    text = text.replace("+0000", "+00:00").replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


KIND = dict(FIELDS)


def literal(text):
    text = text.strip()
    if text.startswith("'"):
        return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def compare_value(field, value):
    kind = KIND.get(field)
    if value is None:
        return None
    if kind == "datetime":
        return epoch(value)
    if kind in ("currency", "percent", "double", "int", "long"):
        return float(value)
    return value


def clause_holds(record, clause):
    clause = clause.strip().strip("()").strip()
    m = re.match(r"(\w+) (NOT IN|IN) \((.*)\)$", clause)
    if m:
        field, op, items = m.groups()
        values = [literal(x) for x in next(csv.reader([items], quotechar="'", escapechar="\\", skipinitialspace=True))]
        values = [compare_value(field, v) for v in values]
        inside = compare_value(field, record.get(field)) in values
        return inside if op == "IN" else not inside
    m = re.match(r"(\w+) LIKE '(.*)'$", clause)
    if m:
        field, pattern = m.groups()
        pattern = re.escape(pattern.replace("\\%", "\0").replace("\\_", "\1")).replace("%", ".*").replace("_", ".")
        pattern = pattern.replace("\0", "%").replace("\1", "_")
        return re.fullmatch(pattern, record.get(field) or "") is not None
    m = re.match(r"(\w+) (<=|>=|!=|=|<|>) (.*)$", clause)
    if not m:
        raise ValueError("cannot read the condition: " + clause)
    field, op, value = m.groups()
    if field not in KIND:
        raise KeyError(field)
    left, right = compare_value(field, record.get(field)), compare_value(field, literal(value))
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


def run_soql(soql, all_rows):
    m = re.match(r"SELECT (.+?) FROM (\w+)(?: WHERE (.+?))?(?: LIMIT (\d+))?$", soql)
    if not m:
        raise ValueError("MALFORMED_QUERY")
    fields, obj, where, limit = m.groups()
    if obj != "Opportunity":
        raise LookupError(obj)
    with lock:
        rows = sorted(records.values(), key=lambda r: r["Id"])
    if not all_rows:
        rows = [r for r in rows if not r["IsDeleted"]]
    if where:
        parts = where.split(" AND ")
        rows = [r for r in rows if all(clause_holds(r, p) for p in parts)]
    if limit:
        rows = rows[: int(limit)]
    if fields.strip() == "COUNT()":
        return None, rows
    aggregate = re.fullmatch(r"MIN\((\w+)\)", fields.strip())
    if aggregate:
        # One AggregateResult, its value named expr0 as Salesforce names it.
        field = aggregate.group(1)
        if field not in KIND:
            raise KeyError(field)
        values = [r[field] for r in rows if r.get(field) is not None]
        oldest = min(values, key=lambda v: compare_value(field, v)) if values else None
        return ["expr0"], [{"expr0": oldest}]
    names = [f.strip() for f in fields.split(",")]
    for n in names:
        if n not in KIND:
            raise KeyError(n)
    return names, rows


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
        self.send_header("Sforce-Limit-Info", "api-usage=%d/15000" % len(log))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.entry["status"] = status
        self.send(status, [{"message": message, "errorCode": code}])

    def authorized(self):
        auth = self.headers.get("Authorization") or ""
        with lock:
            return auth.startswith("Bearer ") and auth[7:] in tokens

    def begin(self):
        parsed = urllib.parse.urlsplit(self.path)
        self.q = dict(urllib.parse.parse_qsl(parsed.query))
        self.route = parsed.path
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.entry = {"method": self.command, "path": self.route, "query": self.q, "status": 200}
        if self.route.startswith("/test/"):
            return False
        with lock:
            log.append(self.entry)
            failure = None
            if not self.route.endswith("/token"):
                for k, f in enumerate(state["fail"]):
                    if f.get("at", "") in self.route:
                        failure = state["fail"].pop(k)["status"]
                        break
                # The session ends when this page is asked for (once).
                if state.get("expire_at") and self.route.endswith(state["expire_at"]):
                    tokens.clear()
                    state["expire_at"] = None
        if failure:
            if failure == 503:
                self.entry["status"] = 503
                self.send(503, b"Service Unavailable", "text/plain")
            elif failure == 403:
                self.error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            return True
        if not self.route.endswith("/token") and not self.authorized():
            self.error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            return True
        return False

    def do_POST(self):
        if self.begin():
            return
        if self.route == "/test/control":
            change = json.loads(self.body or b"{}")
            with lock:
                for r in change.pop("upsert", []):
                    i = int(r["Id"][3:])
                    records[i] = make(i, 0, **r)
                if change.pop("revoke", False):
                    tokens.clear()
                state.update(change)
            return self.send(200, {"ok": True})
        if self.route == "/services/oauth2/token":
            form = dict(urllib.parse.parse_qsl(self.body.decode()))
            self.entry["form"] = {k: v for k, v in form.items() if k != "client_secret"}
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                self.entry["status"] = 400
                return self.send(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
            token = "00Dtest!" + secrets.token_urlsafe(24)
            with lock:
                tokens.add(token)
            return self.send(200, {"access_token": token, "instance_url": self.base(), "id": self.base() + "/id/00D/005",
                                   "token_type": "Bearer", "issued_at": "1", "signature": "x"})
        if re.fullmatch(r"/services/data/v[\d.]+/jobs/ingest", self.route):
            spec = json.loads(self.body)
            self.entry["ingest"] = spec
            job = "750" + secrets.token_hex(6)
            with lock:
                ingests[job] = {"spec": spec, "csv": b"", "state": "Open", "polls": 0}
            return self.send(200, {"id": job, "operation": spec["operation"], "object": spec["object"], "state": "Open",
                                   "contentUrl": "services/data/v62.0/jobs/ingest/%s/batches" % job})
        m = re.match(r"/services/data/v[\d.]+/jobs/query$", self.route)
        if m:
            spec = json.loads(self.body)
            self.entry["job"] = spec
            try:
                names, rows = run_soql(spec["query"], spec["operation"] == "queryAll")
            except Exception as e:
                return self.error(400, "INVALIDJOB", str(e))
            job = "750" + secrets.token_hex(6)
            with lock:
                jobs[job] = {"names": names, "rows": rows, "polls": 0}
            return self.send(200, {"id": job, "operation": spec["operation"], "object": "Opportunity", "state": "UploadComplete",
                                   "contentType": "CSV", "apiVersion": 62.0, "lineEnding": "LF", "columnDelimiter": "COMMA"})
        if re.fullmatch(r"/services/data/v[\d.]+/composite/sobjects", self.route):
            return self.collection("insert", None)
        self.send(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])

    def do_PUT(self):
        if self.begin():
            return
        m = re.fullmatch(r"/services/data/v[\d.]+/jobs/ingest/(750\w+)/batches", self.route)
        if not m or self.headers.get("Content-Type") != "text/csv":
            return self.error(400, "INVALIDJOB", "upload CSV with Content-Type text/csv")
        with lock:
            ingests[m.group(1)]["csv"] += self.body
        self.entry["bytes"] = len(self.body)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PATCH(self):
        if self.begin():
            return
        m = re.fullmatch(r"/services/data/v[\d.]+/jobs/ingest/(750\w+)", self.route)
        if m:
            with lock:
                job = ingests[m.group(1)]
            if json.loads(self.body).get("state") == "UploadComplete":
                spec = job["spec"]
                rows = list(csv.DictReader(io.StringIO(job["csv"].decode())))
                self.entry["ingested"] = len(rows)
                items = []
                for row in rows:
                    item = {}
                    for k, v in row.items():
                        if v == "":
                            continue
                        kind = KIND.get(k)
                        item[k] = float(v) if kind in ("currency", "percent", "double") else int(v) if kind in ("int", "long") else (v == "true") if kind == "boolean" else v
                    items.append(item)
                results = self.save(spec["operation"], spec.get("externalIdFieldName"), items)
                failed = [(row, r) for row, r in zip(rows, results) if not r["success"]]
                with lock:
                    job.update(state="UploadComplete", processed=len(rows), failed=failed)
            return self.send(200, {"id": m.group(1), "state": "UploadComplete"})
        m = re.fullmatch(r"/services/data/v[\d.]+/composite/sobjects(?:/(\w+)/(\w+))?", self.route)
        if not m:
            return self.send(404, [{"message": "not found", "errorCode": "NOT_FOUND"}])
        return self.collection("upsert" if m.group(2) else "update", m.group(2))

    def do_DELETE(self):
        if self.begin():
            return
        ids = self.q.get("ids", "").split(",")
        self.entry["count"] = len(ids)
        results = []
        with lock:
            for rid in ids:
                i = int(rid[3:]) if rid[3:].isdigit() else -1
                if i in records and not records[i]["IsDeleted"]:
                    records[i]["IsDeleted"] = True
                    results.append({"id": rid, "success": True, "errors": []})
                else:
                    results.append({"id": rid, "success": False, "errors": [
                        {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]})
        self.send(200, results)

    def collection(self, operation, external):
        """sObject Collections: at most 200 records, each saved or refused on its own."""
        spec = json.loads(self.body)
        items = spec.get("records", [])
        self.entry.update({"operation": operation, "count": len(items), "allOrNone": spec.get("allOrNone")})
        if len(items) > 200:
            return self.error(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
        self.send(200, self.save(operation, external, items))

    def save(self, operation, external, items):
        """Saves records one by one as Salesforce does with allOrNone off."""
        results = []
        with lock:
            for item in items:
                fields = {k: v for k, v in item.items() if k != "attributes"}
                problems = []
                if operation in ("insert", "upsert") and not fields.get("Name") and not (operation == "upsert" and self.find(external, fields)):
                    problems.append({"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Name]", "fields": ["Name"]})
                if isinstance(fields.get("Amount"), (int, float)) and fields["Amount"] < 0:
                    problems.append({"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "Amount cannot be negative", "fields": []})
                if problems:
                    results.append({"success": False, "errors": problems})
                    continue
                if operation == "update":
                    i = int(fields["Id"][3:])
                    records[i].update(fields)
                    results.append({"id": fields["Id"], "success": True, "errors": []})
                    continue
                found = self.find(external, fields) if operation == "upsert" else None
                if found is not None:
                    records[found].update(fields)
                    results.append({"id": records[found]["Id"], "success": True, "errors": [], "created": False})
                else:
                    i = max(records) + 1
                    records[i] = make(i, 0, **fields)
                    records[i]["Id"] = "006%012d" % i
                    results.append({"id": records[i]["Id"], "success": True, "errors": [], "created": True})
        return results

    def find(self, external, fields):
        if not external or fields.get(external) is None:
            return None
        return next((i for i, r in records.items() if r.get(external) == fields[external]), None)

    def do_GET(self):
        if self.route_test():
            return
        if self.begin():
            return
        v = r"/services/data/v[\d.]+"
        if re.fullmatch(v + "/sobjects", self.route):
            return self.send(200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
                {"name": "Account", "label": "Account", "queryable": True},
                {"name": "Opportunity", "label": "Opportunity", "queryable": True},
                {"name": "OpportunityHistory", "label": "Opportunity History", "queryable": True}]})
        m = re.fullmatch(v + r"/sobjects/(\w+)/describe", self.route)
        if m:
            if m.group(1) != "Opportunity":
                return self.error(404, "NOT_FOUND", "The requested resource does not exist")
            return self.send(200, {"name": "Opportunity", "label": "Opportunity", "fields": [
                {"name": n, "type": t, "label": n, "nillable": n != "Id", "filterable": t not in ("textarea", "encryptedstring", "address"),
                 "compoundFieldName": None, "precision": DIGITS.get(n, (0, 0))[0], "scale": DIGITS.get(n, (0, 0))[1]}
                for n, t in FIELDS]})
        m = re.fullmatch(v + r"/(query|queryAll)", self.route)
        if m:
            self.entry["soql"] = self.q.get("q")
            try:
                names, rows = run_soql(self.q.get("q", ""), m.group(1) == "queryAll")
            except KeyError as e:
                return self.error(400, "INVALID_FIELD", "No such column '%s' on entity 'Opportunity'." % e.args[0])
            except LookupError as e:
                return self.error(400, "INVALID_TYPE", "sObject type '%s' is not supported." % e.args[0])
            except ValueError as e:
                return self.error(400, "MALFORMED_QUERY", str(e))
            if names is None:
                return self.send(200, {"totalSize": len(rows), "done": True, "records": []})
            if names == ["expr0"]:
                return self.send(200, {"totalSize": 1, "done": True, "records": [
                    dict({"attributes": {"type": "AggregateResult"}}, **rows[0])]})
            cursor = "01g" + secrets.token_hex(5)
            with lock:
                cursors[cursor] = (names, rows)
            return self.page(cursor, 0)
        m = re.fullmatch(v + r"/query/(01g\w+)-(\d+)", self.route)
        if m:
            return self.page(m.group(1), int(m.group(2)))
        m = re.fullmatch(v + r"/jobs/ingest/(750\w+)", self.route)
        if m:
            with lock:
                job = ingests[m.group(1)]
                job["polls"] += 1
                done = job["state"] == "UploadComplete" and job["polls"] > state["polls"]
            return self.send(200, {"id": m.group(1), "state": "JobComplete" if done else "InProgress",
                                   "numberRecordsProcessed": job.get("processed", 0) if done else 0,
                                   "numberRecordsFailed": len(job.get("failed", [])) if done else 0})
        m = re.fullmatch(v + r"/jobs/ingest/(750\w+)/failedResults", self.route)
        if m:
            with lock:
                job = ingests[m.group(1)]
            out = io.StringIO()
            columns = list(job["failed"][0][0].keys()) if job["failed"] else []
            writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerow(["sf__Id", "sf__Error"] + columns)
            for row, result in job["failed"]:
                error = "; ".join("%s:%s:%s --" % (e["statusCode"], e["message"], ",".join(e["fields"])) for e in result["errors"])
                writer.writerow(["", error] + [row[c] for c in columns])
            return self.send(200, out.getvalue().encode(), "text/csv")
        m = re.fullmatch(v + r"/jobs/query/(750\w+)", self.route)
        if m:
            with lock:
                job = jobs[m.group(1)]
                job["polls"] += 1
                done = job["polls"] > state["polls"]
            return self.send(200, {"id": m.group(1), "state": "JobComplete" if done else "InProgress", "numberRecordsProcessed": len(job["rows"])})
        m = re.fullmatch(v + r"/jobs/query/(750\w+)/results", self.route)
        if m:
            with lock:
                job = jobs[m.group(1)]
                size = state["result_size"]
            start = int(self.q.get("locator") or 0)
            rows = job["rows"][start:start + size]
            out = io.StringIO()
            writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerow(job["names"])
            for r in rows:
                writer.writerow([bulk_cell(r.get(n)) for n in job["names"]])
            locator = str(start + size) if start + size < len(job["rows"]) else "null"
            return self.send(200, out.getvalue().encode(), "text/csv",
                             [("Sforce-Locator", locator), ("Sforce-NumberOfRecords", str(len(rows)))])
        self.send(404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])

    def route_test(self):
        if self.path.startswith("/test/records"):
            with lock:
                self.send(200, sorted(records.values(), key=lambda r: r["Id"]))
            return True
        if not self.path.startswith("/test/log"):
            return False
        with lock:
            taken = list(log)
            log.clear()
        self.send(200, taken)
        return True

    def page(self, cursor, start):
        with lock:
            names, rows = cursors[cursor]
            size = state["page_size"]
        chunk = rows[start:start + size]
        body = {"totalSize": len(rows), "done": start + size >= len(rows), "records": [
            dict({"attributes": {"type": "Opportunity", "url": "/services/data/v62.0/sobjects/Opportunity/" + r["Id"]}},
                 **{n: r.get(n) for n in names}) for r in chunk]}
        if not body["done"]:
            body["nextRecordsUrl"] = "/services/data/v62.0/query/%s-%d" % (cursor, start + size)
        self.send(200, body)


def bulk_cell(value):
    # Bulk API 2.0 writes nulls as empty cells and booleans in lower case.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ""
    return str(value)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"url": "http://127.0.0.1:%d" % server.server_address[1], "client_id": CLIENT_ID,
                  "client_secret": CLIENT_SECRET}), flush=True)
sys.stdin.read()
