"""Google Analytics 4 on loopback for the Google Analytics tests, speaking the documented
wire formats of Google's OAuth, the Admin API's account summaries and the Data API:

  GET  /o/oauth2/v2/auth               approves at once: redirects with a code (PKCE S256)
  POST /token                          authorization_code and refresh_token grants
  GET  /v1beta/accountSummaries        pageSize, pageToken: two accounts on two pages
  GET  /v1beta/properties/{id}/metadata  dimensions and metrics with their types
  POST /v1beta/properties/{id}:runReport  dimensions, metrics, dateRanges (dates,
       `NdaysAgo`, `yesterday`, `today`), dimensionFilter and metricFilter (filter with
       stringFilter, inListFilter, numericFilter, betweenFilter; andGroup, orGroup,
       notExpression), orderBys, limit, offset, returnPropertyQuota; rows of text values,
       `date` as YYYYMMDD, rowCount, propertyQuota

Data: 60 days up to today (the server's date), a row a day per country (5) and device
category (3); rows of fewer dimensions are summed (averages for ratios and durations).
Errors are Google's bodies: {"error": {"code", "message", "status"}}.

GET /test/service_account_key returns the key file of a service account the token
endpoint takes (the JWT bearer grant).

POST /test/control: `{"restate": N}` adds N sessions to each row of the last three days
(GA4 still processing them), `{"exhaust": true}` answers every report with 429
RESOURCE_EXHAUSTED (the daily quota, Retry-After a day), `{"fail": [{"status": 429, "at":
"runReport", "retry_after": 1}]}` queues failures. GET /test/log returns the requests since
it was last asked.
"""

import datetime
import json
import urllib.parse

import google_oauth
from wire import JsonHandler, failures, lock, log, serve

CLIENT_ID, CLIENT_SECRET = "ga-client.apps.googleusercontent.com", "ga-secret-5"
PROPERTIES = {"properties/111111111": "Web shop", "properties/222222222": "Blog"}
DIMENSIONS = [("date", "Date"), ("country", "Country"), ("deviceCategory", "Device category"),
              ("sessionSource", "Session source")]
METRICS = [("sessions", "Sessions", "TYPE_INTEGER"), ("activeUsers", "Active users", "TYPE_INTEGER"),
           ("engagementRate", "Engagement rate", "TYPE_FLOAT"),
           ("averageSessionDuration", "Average session duration", "TYPE_SECONDS"),
           ("purchaseRevenue", "Purchase revenue", "TYPE_CURRENCY")]
TYPES = {name: kind for name, _, kind in METRICS}
COUNTRIES = ["United States", "Germany", "France", "Japan", "Brazil"]
DEVICES = ["desktop", "mobile", "tablet"]
SOURCES = ["google", "(direct)", "newsletter"]
TODAY = datetime.datetime.now(datetime.timezone.utc).date()

state = {"restate": 0, "exhaust": False}


def rows_of_day(day):
    k = (day - TODAY).days + 60
    out = []
    for ci, country in enumerate(COUNTRIES):
        for di, device in enumerate(DEVICES):
            sessions = 10 + (k * 7 + ci * 3 + di) % 40
            if (TODAY - day).days < 3:
                sessions += state["restate"]
            out.append({
                "date": day.strftime("%Y%m%d"), "country": country, "deviceCategory": device,
                "sessionSource": SOURCES[(k + ci) % 3],
                "sessions": sessions, "activeUsers": sessions - k % 5,
                "engagementRate": 0.5 + ((k + ci + di) % 10) / 20,
                "averageSessionDuration": 60.0 + (k * (ci + 1)) % 120,
                "purchaseRevenue": round(sessions * 1.25 + ci, 2),
            })
    return out


def day_of(text):
    if text == "today":
        return TODAY
    if text == "yesterday":
        return TODAY - datetime.timedelta(days=1)
    if text.endswith("daysAgo"):
        return TODAY - datetime.timedelta(days=int(text[:-7]))
    return datetime.date.fromisoformat(text)


def number(v):
    return float(v.get("doubleValue", v.get("int64Value", 0)))


def matches(expr, row):
    if "andGroup" in expr:
        return all(matches(e, row) for e in expr["andGroup"]["expressions"])
    if "orGroup" in expr:
        return any(matches(e, row) for e in expr["orGroup"]["expressions"])
    if "notExpression" in expr:
        return not matches(expr["notExpression"], row)
    f = expr["filter"]
    value = row[f["fieldName"]]
    if "stringFilter" in f:
        s = f["stringFilter"]
        a, b = str(value), s["value"]
        if not s.get("caseSensitive"):
            a, b = a.lower(), b.lower()
        return a == b if s.get("matchType", "EXACT") == "EXACT" else b in a
    if "inListFilter" in f:
        return str(value) in f["inListFilter"]["values"]
    if "numericFilter" in f:
        n, op = number(f["numericFilter"]["value"]), f["numericFilter"]["operation"]
        return {"EQUAL": value == n, "LESS_THAN": value < n, "LESS_THAN_OR_EQUAL": value <= n,
                "GREATER_THAN": value > n, "GREATER_THAN_OR_EQUAL": value >= n}[op]
    if "betweenFilter" in f:
        b = f["betweenFilter"]
        return number(b["fromValue"]) <= value <= number(b["toValue"])
    raise ValueError("unknown filter %s" % f)


def report(body):
    dims = [d["name"] for d in body.get("dimensions", [])]
    mets = [m["name"] for m in body.get("metrics", [])]
    for d in dims:
        if d not in dict((n, 1) for n, _ in DIMENSIONS):
            raise ValueError("Field %s is not a valid dimension. For a list of valid dimensions, see https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema" % d)
    for m in mets:
        if m not in TYPES:
            raise ValueError("Field %s is not a valid metric." % m)
    rows = []
    for r in body.get("dateRanges", []):
        day, end = day_of(r["startDate"]), day_of(r["endDate"])
        while day <= end:
            if (TODAY - day).days < 60:
                rows.extend(rows_of_day(day))
            day += datetime.timedelta(days=1)
    if "dimensionFilter" in body:
        rows = [r for r in rows if matches(body["dimensionFilter"], r)]
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[d] for d in dims), []).append(r)
    out = []
    for key, members in groups.items():
        row = dict(zip(dims, key))
        for m in mets:
            values = [x[m] for x in members]
            row[m] = sum(values) if TYPES[m] in ("TYPE_INTEGER", "TYPE_CURRENCY") else sum(values) / len(values)
        out.append(row)
    if "metricFilter" in body:
        out = [r for r in out if matches(body["metricFilter"], r)]
    out.sort(key=lambda r: tuple(str(r[d]) for d in dims))
    return dims, mets, out


def text(name, value):
    if TYPES.get(name) == "TYPE_INTEGER":
        return str(int(value))
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


class Handler(JsonHandler):
    def error(self, code, status, message, headers=()):
        self.send(code, {"error": {"code": code, "message": message, "status": status}}, headers)

    def entry(self, path, query, status, body=None, extra=None):
        e = {"method": self.command, "path": path, "query": query, "status": status, "body": body,
             "auth": (self.headers.get("Authorization") or "").split(" ")[0]}
        e.update(extra or {})
        with lock:
            log.append(e)

    def signed_in(self):
        return google_oauth.signed_in(self)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/test/log":
            return self.send(200, self.taken_log())
        if url.path == "/test/service_account_key":
            return self.send(200, json.loads(google_oauth.service_account_key(self.base())))
        if url.path == "/o/oauth2/v2/auth":
            self.entry(url.path, query, 302)
            return google_oauth.authorize(self, query)
        if not self.signed_in():
            self.entry(url.path, query, 401)
            return self.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if url.path == "/v1beta/accountSummaries":
            self.entry(url.path, query, 200)
            first = {"name": "accountSummaries/1", "account": "accounts/1", "displayName": "Acme",
                     "propertySummaries": [{"property": "properties/111111111", "displayName": "Web shop",
                                            "propertyType": "PROPERTY_TYPE_ORDINARY"}]}
            second = {"name": "accountSummaries/2", "account": "accounts/2", "displayName": "Acme Media",
                      "propertySummaries": [{"property": "properties/222222222", "displayName": "Blog",
                                             "propertyType": "PROPERTY_TYPE_ORDINARY"}]}
            if query.get("pageToken") == "page-2":
                return self.send(200, {"accountSummaries": [second]})
            return self.send(200, {"accountSummaries": [first], "nextPageToken": "page-2"})
        prop = url.path[len("/v1beta/"):-len("/metadata")] if url.path.endswith("/metadata") else None
        if prop is None:
            self.entry(url.path, query, 404)
            return self.error(404, "NOT_FOUND", "Method not found.")
        if prop not in PROPERTIES:
            self.entry(url.path, query, 403)
            return self.error(403, "PERMISSION_DENIED", "User does not have sufficient permissions for this property.")
        self.entry(url.path, query, 200)
        self.send(200, {
            "name": prop + "/metadata",
            "dimensions": [{"apiName": n, "uiName": u, "category": "General"} for n, u in DIMENSIONS],
            "metrics": [{"apiName": n, "uiName": u, "type": t, "category": "General"} for n, u, t in METRICS],
        })

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        raw = self.body()
        if url.path == "/test/control":
            change = json.loads(raw or "{}")
            with lock:
                state["restate"] = change.get("restate", state["restate"])
                state["exhaust"] = change.get("exhaust", state["exhaust"])
                failures.extend(change.get("fail", []))
            return self.send(200, {"ok": True})
        if url.path == "/token":
            form = self.token_form(raw)
            self.entry(url.path, {"grant_type": form.get("grant_type")}, 0)
            return google_oauth.token(self, raw, CLIENT_ID, CLIENT_SECRET,
                                      "https://www.googleapis.com/auth/analytics.readonly")
        if not url.path.endswith(":runReport"):
            self.entry(url.path, {}, 404)
            return self.error(404, "NOT_FOUND", "Method not found.")
        failing = self.queued_failure(url.path)
        if failing:
            self.entry(url.path, {}, failing["status"])
            headers = [("Retry-After", str(failing["retry_after"]))] if "retry_after" in failing else []
            return self.error(failing["status"], "RESOURCE_EXHAUSTED" if failing["status"] == 429 else "UNAVAILABLE",
                              "queued by the test", headers)
        if not self.signed_in():
            self.entry(url.path, {}, 401)
            return self.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        body = json.loads(raw or "{}")
        prop = url.path[len("/v1beta/"):-len(":runReport")]
        if prop not in PROPERTIES:
            self.entry(url.path, {}, 403, body)
            return self.error(403, "PERMISSION_DENIED", "User does not have sufficient permissions for this property.")
        if state["exhaust"]:
            self.entry(url.path, {}, 429, body)
            return self.error(429, "RESOURCE_EXHAUSTED", "Exhausted property tokens per day for a property.",
                              [("Retry-After", "86400")])
        try:
            dims, mets, rows = report(body)
        except (ValueError, KeyError) as e:
            self.entry(url.path, {}, 400, body)
            return self.error(400, "INVALID_ARGUMENT", str(e).strip("'\""))
        offset, limit = int(body.get("offset", 0)), int(body.get("limit", 10000))
        page = rows[offset: offset + limit]
        self.entry(url.path, {}, 200, body, {"rowCount": len(rows)})
        answer = {
            "dimensionHeaders": [{"name": d} for d in dims],
            "metricHeaders": [{"name": m, "type": TYPES[m]} for m in mets],
            "rows": [{"dimensionValues": [{"value": text(d, r[d])} for d in dims],
                      "metricValues": [{"value": text(m, r[m])} for m in mets]} for r in page],
            "rowCount": len(rows),
            "metadata": {"currencyCode": "USD", "timeZone": "Etc/UTC"},
            "kind": "analyticsData#runReport",
        }
        if not page:
            del answer["rows"]
        if body.get("returnPropertyQuota"):
            answer["propertyQuota"] = {"tokensPerDay": {"consumed": 12, "remaining": 199988},
                                       "tokensPerHour": {"consumed": 12, "remaining": 39988}}
        self.send(200, answer)


serve(Handler, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "today": TODAY.isoformat()})
