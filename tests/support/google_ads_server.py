"""Google Ads on loopback for the Google Ads tests, speaking the documented REST wire
formats of Google's OAuth and the Google Ads API:

  GET  /o/oauth2/v2/auth, POST /token         Google's OAuth (google_oauth.py)
  GET  /v26/googleAdsFields/{name}            a resource with its attributeResources,
                                              segments and metrics
  POST /v26/googleAdsFields:search            {"query", "pageToken"}: the field catalog,
                                              paged (8 a page), nextPageToken
  POST /v26/customers/{id}/googleAds:search   {"query", "pageToken"}: rows 4 a page
  POST /v26/customers/{id}/googleAds:searchStream  {"query"}: a JSON array of batches of
                                              5 rows, sent in chunks, the last with
                                              queryResourceConsumption

Queries are GAQL: SELECT fields FROM resource [WHERE a AND b…] [LIMIT n], conditions
with =, !=, <, <=, >, >=, IN, NOT IN, LIKE, BETWEEN … AND …, DURING; rows are nested and
camel-cased as the JSON answer has them, 64-bit integers as text. A query selecting
segments.date without a finite range of days is refused, as Google Ads does.

The account 123-456-7890 is reached only through the manager account 987-654-3210
(`login-customer-id`). Data: 40 days up to today, per campaign (3) or ad group (6) and
device (2). Errors are Google's bodies with a GoogleAdsFailure in their details.

GET /test/service_account_key returns the key file of a service account the token
endpoint takes (the JWT bearer grant).

POST /test/control: `{"restate": N}` adds N conversions to each row of the last five
days, `{"exhaust": true}` answers every query with 429 RESOURCE_EXHAUSTED. GET /test/log
returns the requests since it was last asked, with their developer-token and
login-customer-id headers.
"""

import datetime
import json
import re
import urllib.parse

import google_oauth
from wire import JsonHandler, lock, log, serve

CLIENT_ID, CLIENT_SECRET = "ads-client.apps.googleusercontent.com", "ads-secret-7"
CUSTOMER, MANAGER = "1234567890", "9876543210"
VERSION = "v26"
TODAY = datetime.datetime.now(datetime.timezone.utc).date()
state = {"restate": 0, "exhaust": False}

# name -> (category, data type, filterable, repeated)
FIELDS = {
    "campaign.id": ("ATTRIBUTE", "INT64", True, False),
    "campaign.name": ("ATTRIBUTE", "STRING", True, False),
    "campaign.status": ("ATTRIBUTE", "ENUM", True, False),
    "campaign.resource_name": ("ATTRIBUTE", "RESOURCE_NAME", True, False),
    "campaign.labels": ("ATTRIBUTE", "RESOURCE_NAME", True, True),
    "campaign.network_settings": ("ATTRIBUTE", "MESSAGE", False, False),
    "ad_group.id": ("ATTRIBUTE", "INT64", True, False),
    "ad_group.name": ("ATTRIBUTE", "STRING", True, False),
    "ad_group.campaign": ("ATTRIBUTE", "RESOURCE_NAME", True, False),
    "customer.id": ("ATTRIBUTE", "INT64", True, False),
    "customer.descriptive_name": ("ATTRIBUTE", "STRING", True, False),
    "customer.currency_code": ("ATTRIBUTE", "STRING", True, False),
    "segments.date": ("SEGMENT", "DATE", True, False),
    "segments.device": ("SEGMENT", "ENUM", True, False),
    "metrics.clicks": ("METRIC", "INT64", True, False),
    "metrics.impressions": ("METRIC", "INT64", True, False),
    "metrics.cost_micros": ("METRIC", "INT64", True, False),
    "metrics.conversions": ("METRIC", "DOUBLE", True, False),
}
SEGMENTS = ["segments.date", "segments.device"]
METRICS = ["metrics.clicks", "metrics.impressions", "metrics.cost_micros", "metrics.conversions"]
RESOURCES = {
    "campaign": {"attributeResources": ["customer"], "segments": SEGMENTS, "metrics": METRICS},
    "ad_group": {"attributeResources": ["campaign", "customer"], "segments": SEGMENTS, "metrics": METRICS},
    "customer": {"attributeResources": [], "segments": SEGMENTS, "metrics": METRICS},
}
CAMPAIGNS = [(101, "Brand", "ENABLED"), (102, "Summer sale", "PAUSED"), (103, "O'Brien shoes", "ENABLED")]
AD_GROUPS = [(201 + i, "%s group %d" % (c[1], k), c) for i, (c, k) in enumerate((c, k) for c in CAMPAIGNS for k in (1, 2))]
DEVICES = ["DESKTOP", "MOBILE"]


class QueryError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def tokens(text):
    return re.findall(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[(),]|[!<>]=|[=<>]|[\w.]+|\S", text)


def unquote(tok):
    if tok[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", tok[1:-1])
    if re.fullmatch(r"-?\d+(\.\d+)?", tok):
        return float(tok)
    return tok


def parse(query):
    toks = tokens(query)
    i = 0

    def take(word=None):
        nonlocal i
        if i >= len(toks):
            raise QueryError("UNEXPECTED_END_OF_QUERY", "Unexpected end of query.")
        t = toks[i]
        if word and t.upper() != word:
            raise QueryError("PROHIBITED_CLAUSE_IN_SELECT" if word == "FROM" else "UNEXPECTED_INPUT",
                             "Expected %s, found '%s'." % (word, t))
        i += 1
        return t

    take("SELECT")
    fields = [take()]
    while toks[i] == ",":
        take()
        fields.append(take())
    take("FROM")
    resource = take()
    conditions, limit = [], None
    if i < len(toks) and toks[i].upper() == "WHERE":
        take()
        while True:
            name = take()
            op = take().upper()
            if op == "NOT":
                op = "NOT " + take().upper()
            if op in ("IN", "NOT IN"):
                take("(")
                values = [unquote(take())]
                while toks[i] == ",":
                    take()
                    values.append(unquote(take()))
                take(")")
                conditions.append((name, op, values))
            elif op == "BETWEEN":
                low = unquote(take())
                take("AND")
                conditions.append((name, op, [low, unquote(take())]))
            elif op == "DURING":
                conditions.append((name, op, take()))
            else:
                conditions.append((name, op, unquote(take())))
            if i < len(toks) and toks[i].upper() == "AND":
                take()
                continue
            break
    if i < len(toks) and toks[i].upper() == "LIMIT":
        take()
        limit = int(take())
    if i < len(toks):
        raise QueryError("UNEXPECTED_INPUT", "Unexpected input '%s'." % toks[i])
    for f in fields:
        if f not in FIELDS:
            raise QueryError("UNRECOGNIZED_FIELD", "Unrecognized field in the query: '%s'." % f)
    if resource not in RESOURCES:
        raise QueryError("INVALID_RESOURCE", "Invalid resource '%s'." % resource)
    return fields, resource, conditions, limit


def during(name):
    days = {"TODAY": (0, 0), "YESTERDAY": (1, 1), "LAST_7_DAYS": (7, 1), "LAST_14_DAYS": (14, 1),
            "LAST_30_DAYS": (30, 1)}.get(name)
    if days is None:
        raise QueryError("INVALID_VALUE_WITH_DURING_OPERATOR", "Invalid date range '%s'." % name)
    return TODAY - datetime.timedelta(days=days[0]), TODAY - datetime.timedelta(days=days[1])


def base_rows(resource):
    owners = {"campaign": [(c, None) for c in CAMPAIGNS], "ad_group": [(g[2], g) for g in AD_GROUPS],
              "customer": [(None, None)]}[resource]
    for back in range(40):
        day = TODAY - datetime.timedelta(days=back)
        for campaign, group in owners:
            for d, device in enumerate(DEVICES):
                seed = back * 7 + (campaign[0] if campaign else 5) + d * 3 + (group[0] if group else 0)
                clicks = 5 + seed % 30
                row = {
                    "campaign.id": campaign[0] if campaign else None,
                    "campaign.name": campaign[1] if campaign else None,
                    "campaign.status": campaign[2] if campaign else None,
                    "campaign.resource_name": "customers/%s/campaigns/%d" % (CUSTOMER, campaign[0]) if campaign else None,
                    "ad_group.id": group[0] if group else None,
                    "ad_group.name": group[1] if group else None,
                    "ad_group.campaign": "customers/%s/campaigns/%d" % (CUSTOMER, group[2][0]) if group else None,
                    "customer.id": int(CUSTOMER), "customer.descriptive_name": "Acme Shoes",
                    "customer.currency_code": "EUR",
                    "segments.date": day.isoformat(), "segments.device": device,
                    "metrics.clicks": clicks, "metrics.impressions": clicks * 20 + seed % 11,
                    "metrics.cost_micros": clicks * 370000,
                    "metrics.conversions": round(clicks / 10 + (state["restate"] if back < 5 else 0), 2),
                }
                yield row


def like(pattern):
    """A LIKE pattern as a regular expression: % any text, _ one character, [c] c itself."""
    out, k = "", 0
    while k < len(pattern):
        c = pattern[k]
        if c == "[" and k + 2 < len(pattern) and pattern[k + 2] == "]":
            out, k = out + re.escape(pattern[k + 1]), k + 3
            continue
        out += ".*" if c == "%" else "." if c == "_" else re.escape(c)
        k += 1
    return out


def holds(row, condition):
    name, op, value = condition
    v = row[name]
    if op == "DURING":
        start, end = during(value)
        return start.isoformat() <= v <= end.isoformat()
    if op == "=":
        return v == value
    if op == "!=":
        return v != value
    if op == "<":
        return v < value
    if op == "<=":
        return v <= value
    if op == ">":
        return v > value
    if op == ">=":
        return v >= value
    if op == "IN":
        return v in value
    if op == "NOT IN":
        return v not in value
    if op == "BETWEEN":
        return value[0] <= v <= value[1]
    if op == "LIKE":
        return re.fullmatch(like(value), str(v), re.S) is not None
    raise QueryError("INVALID_OPERATOR", "Invalid operator %s." % op)


def run(query):
    fields, resource, conditions, limit = parse(query)
    finite = any(n == "segments.date" and op in ("BETWEEN", "DURING") for n, op, _ in conditions) or (
        any(n == "segments.date" and op in (">=", ">") for n, op, _ in conditions)
        and any(n == "segments.date" and op in ("<=", "<") for n, op, _ in conditions))
    if "segments.date" in fields and not finite:
        raise QueryError("EXPECTED_FILTERS_ON_DATE_RANGE",
                         "A finite date range is required when segments.date is selected.")
    rows = [r for r in base_rows(resource) if all(holds(r, c) for c in conditions)]
    # Metrics add up over what the query does not segment by.
    groups = {}
    for r in rows:
        key = tuple(r[f] for f in fields if not f.startswith("metrics."))
        g = groups.setdefault(key, dict(r))
        if g is not r:
            for m in METRICS:
                g[m] = round(g[m] + r[m], 2)
    rows = list(groups.values())
    rows.sort(key=lambda r: tuple(str(r[f]) for f in fields))
    if limit is not None:
        rows = rows[:limit]
    return fields, [nested(r, fields) for r in rows]


def camel(part):
    head, *rest = part.split("_")
    return head + "".join(w.capitalize() for w in rest)


def nested(row, fields):
    out = {}
    for f in fields:
        value = row[f]
        if value is None:
            continue
        if FIELDS[f][1] == "INT64":
            value = str(value)
        parts = [camel(p) for p in f.split(".")]
        at = out
        for p in parts[:-1]:
            at = at.setdefault(p, {})
        at[parts[-1]] = value
    return out


def field_artifact(name):
    category, data_type, filterable, repeated = FIELDS[name]
    return {"resourceName": "googleAdsFields/" + name, "name": name, "category": category,
            "dataType": data_type, "selectable": True, "filterable": filterable, "isRepeated": repeated}


def failure(code, status, kind, reason, message):
    return {"error": {"code": code, "message": "Request contains an invalid argument." if code == 400 else message,
                      "status": status,
                      "details": [{"@type": "type.googleapis.com/google.ads.googleads.%s.errors.GoogleAdsFailure" % VERSION,
                                   "errors": [{"errorCode": {kind: reason}, "message": message}],
                                   "requestId": "req-1"}]}}


class Handler(JsonHandler):
    def entry(self, path, status, body=None):
        with lock:
            log.append({"method": self.command, "path": path, "status": status, "body": body,
                        "auth": (self.headers.get("Authorization") or "").split(" ")[0],
                        "developer_token": self.headers.get("developer-token"),
                        "login_customer_id": self.headers.get("login-customer-id")})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path == "/test/log":
            return self.send(200, self.taken_log())
        if url.path == "/test/service_account_key":
            return self.send(200, json.loads(google_oauth.service_account_key(self.base())))
        if url.path == "/o/oauth2/v2/auth":
            self.entry(url.path, 302, query)
            return google_oauth.authorize(self, query)
        if not google_oauth.signed_in(self):
            self.entry(url.path, 401)
            return self.send(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                             "message": "Request is missing required authentication credential."}})
        prefix = "/%s/googleAdsFields/" % VERSION
        name = url.path[len(prefix):] if url.path.startswith(prefix) else None
        if name in RESOURCES:
            self.entry(url.path, 200)
            return self.send(200, dict({"resourceName": "googleAdsFields/" + name, "name": name,
                                        "category": "RESOURCE", "selectable": False, "filterable": False},
                                       **RESOURCES[name]))
        if name in FIELDS:
            self.entry(url.path, 200)
            return self.send(200, field_artifact(name))
        self.entry(url.path, 404)
        self.send(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found."}})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        raw = self.body()
        if url.path == "/test/control":
            change = json.loads(raw or "{}")
            with lock:
                state.update(change)
            return self.send(200, {"ok": True})
        if url.path == "/token":
            self.entry(url.path, 0)
            return google_oauth.token(self, raw, CLIENT_ID, CLIENT_SECRET, "https://www.googleapis.com/auth/adwords")
        body = json.loads(raw or "{}")
        if not google_oauth.signed_in(self):
            self.entry(url.path, 401, body)
            return self.send(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                             "message": "Request is missing required authentication credential."}})
        if url.path == "/%s/googleAdsFields:search" % VERSION:
            if "category = 'RESOURCE'" in body.get("query", ""):
                found = [{"resourceName": "googleAdsFields/" + n, "name": n, "category": "RESOURCE"} for n in RESOURCES]
            else:
                found = [field_artifact(n) for n in FIELDS]
            start = int(body.get("pageToken") or 0)
            page = found[start:start + 8]
            answer = {"results": page, "totalResultsCount": str(len(found))}
            if start + 8 < len(found):
                answer["nextPageToken"] = str(start + 8)
            self.entry(url.path, 200, body)
            return self.send(200, answer)
        m = re.fullmatch(r"/%s/customers/(\d+)/googleAds:(search|searchStream)" % VERSION, url.path)
        if not m:
            self.entry(url.path, 404, body)
            return self.send(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "Method not found."}})
        customer, method = m.groups()
        if state["exhaust"]:
            self.entry(url.path, 429, body)
            return self.send(429, failure(429, "RESOURCE_EXHAUSTED", "quotaError", "RESOURCE_EXHAUSTED",
                                          "Too many requests. Retry in 600 seconds."))
        if customer != CUSTOMER or self.headers.get("login-customer-id") != MANAGER:
            self.entry(url.path, 403, body)
            return self.send(403, failure(403, "PERMISSION_DENIED", "authorizationError", "USER_PERMISSION_DENIED",
                                          "User doesn't have permission to access customer. Note: If you're accessing a client customer, the manager's customer id must be set in the 'login-customer-id' header."))
        try:
            fields, rows = run(body.get("query", ""))
        except QueryError as e:
            self.entry(url.path, 400, body)
            return self.send(400, failure(400, "INVALID_ARGUMENT", "queryError", e.code, str(e)))
        mask = ",".join(".".join(camel(p) for p in f.split(".")) for f in fields)
        self.entry(url.path, 200, dict(body, rows=len(rows)))
        if method == "search":
            start = int(body.get("pageToken") or 0)
            answer = {"results": rows[start:start + 4], "fieldMask": mask, "requestId": "req-2",
                      "queryResourceConsumption": "40"}
            if start + 4 < len(rows):
                answer["nextPageToken"] = str(start + 4)
            if not answer["results"]:
                del answer["results"]
            return self.send(200, answer)
        batches = [{"results": rows[k:k + 5], "fieldMask": mask, "requestId": "req-3"} for k in range(0, len(rows), 5)]
        if not batches:
            batches = [{"fieldMask": mask, "requestId": "req-3"}]
        batches[-1]["queryResourceConsumption"] = str(10 * len(rows))
        data = json.dumps(batches, indent=1).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for k in range(0, len(data), 700):
            piece = data[k:k + 700]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


serve(Handler, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "today": TODAY.isoformat()})
