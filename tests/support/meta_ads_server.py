"""Meta's Marketing API on loopback for the Meta Ads tests, speaking its documented wire
format (Graph API v27.0):

  GET  /v27.0/act_{id}                    the ad account: name, currency
  GET  /v27.0/act_{id}/insights           fields, level, time_increment=1, breakdowns,
                                          filtering (JSON), time_range (JSON) or
                                          date_preset, limit; data and paging.next
  POST /v27.0/act_{id}/insights           the same as a form: an asynchronous report run
                                          ({"report_run_id"})
  GET  /v27.0/{run}                       async_status ("Job Running" on the first poll,
                                          then "Job Completed"), async_percent_completion
  GET  /v27.0/{run}/insights              the report's rows, paged
  GET  /v27.0/act_{id}/campaigns|adsets|ads  fields, filtering (updated_time as Unix
                                          seconds), limit; paging.next

Every request needs `Authorization: Bearer <token>`; errors are Meta's bodies
({"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}); every answer
carries X-Business-Use-Case-Usage. Numbers come as text, instants as
2026-11-30T10:00:00+0000.

Data: 40 days up to today; 3 campaigns of 2 ad sets of one ad each; rows per ad, day,
country (2) and age (2), added up to the level and breakdowns asked for.

POST /test/control: `{"restate": N}` adds N clicks to each row of the last five days;
`{"throttle": K, "regain": M}` answers the next K insights requests with error #80000
and an estimated M minutes to regain access; `{"fail_report": true}` makes report runs
end as "Job Failed". GET /test/log returns the requests since it was last asked.
"""

import datetime
import json
import urllib.parse

from wire import JsonHandler, lock, log, serve

TOKEN, ACCOUNT, VERSION = "EAAB-meta-token", "act_111222333", "v27.0"
TODAY = datetime.datetime.now(datetime.timezone.utc).date()
state = {"restate": 0, "throttle": 0, "regain": 0, "fail_report": False}
reports = {}  # run id -> [rows, polls]

CAMPAIGNS = [("601", "Brand awareness", "OUTCOME_AWARENESS"), ("602", "Winter sale", "OUTCOME_SALES"),
             ("603", "Retargeting", "OUTCOME_SALES")]
ADSETS = [("70%d%d" % (c, k), "%s set %d" % (name, k), cid) for c, (cid, name, _) in enumerate(CAMPAIGNS)
          for k in (1, 2)]
ADS = [("80" + sid[2:], "%s ad" % sname, sid, cid) for sid, sname, cid in ADSETS]
COUNTRIES, AGES = ["US", "DE"], ["18-24", "25-34"]
BASE_TIME = datetime.datetime(2026, 1, 5, 9, 30, tzinfo=datetime.timezone.utc)
updated = {cid: BASE_TIME + datetime.timedelta(days=i) for i, (cid, _, _) in enumerate(CAMPAIGNS)}


def meta_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S+0000")


def base_rows():
    for back in range(40):
        day = TODAY - datetime.timedelta(days=back)
        for k, (ad_id, ad_name, adset_id, campaign_id) in enumerate(ADS):
            campaign = next(c for c in CAMPAIGNS if c[0] == campaign_id)
            adset = next(s for s in ADSETS if s[0] == adset_id)
            for ci, country in enumerate(COUNTRIES):
                for ai, age in enumerate(AGES):
                    seed = back * 5 + k * 3 + ci * 2 + ai
                    impressions = 100 + seed % 50
                    clicks = 3 + seed % 7 + (state["restate"] if back < 5 else 0)
                    yield {"date_start": day.isoformat(), "date_stop": day.isoformat(),
                           "account_id": ACCOUNT[4:], "account_name": "Acme Shoes EU", "account_currency": "EUR",
                           "campaign_id": campaign_id, "campaign_name": campaign[1], "objective": campaign[2],
                           "adset_id": adset_id, "adset_name": adset[1], "ad_id": ad_id, "ad_name": ad_name,
                           "country": country, "age": age,
                           "impressions": impressions, "reach": impressions - 10, "clicks": clicks,
                           "spend": round(clicks * 0.42, 2)}


LEVEL_FIELDS = {"account": ["account_id", "account_name"], "campaign": ["campaign_id", "campaign_name"],
                "adset": ["adset_id", "adset_name"], "ad": ["ad_id", "ad_name"]}
DEEPER = ["account", "campaign", "adset", "ad"]
METRICS = ["impressions", "reach", "clicks", "spend"]


def passes(row, f):
    field = f["field"].replace(".", "_")
    v, op, x = row[field], f["operator"], f["value"]
    if field in METRICS:
        v = float(v)
        x = [float(a) for a in x] if isinstance(x, list) else float(x)
    return {"EQUAL": lambda: v == x, "NOT_EQUAL": lambda: v != x, "IN": lambda: v in x,
            "NOT_IN": lambda: v not in x, "CONTAIN": lambda: str(x).lower() in str(v).lower(),
            "GREATER_THAN": lambda: v > x, "GREATER_THAN_OR_EQUAL": lambda: v >= x,
            "LESS_THAN": lambda: v < x, "LESS_THAN_OR_EQUAL": lambda: v <= x,
            "IN_RANGE": lambda: x[0] <= v <= x[1]}[op]()


class BadRequest(Exception):
    pass


def insights(params):
    level = params.get("level", "account")
    if level not in LEVEL_FIELDS:
        raise BadRequest("(#100) level must be one of the following values: account, campaign, adset, ad")
    if params.get("time_increment") != "1":
        raise BadRequest("the tests ask for daily rows")
    if "time_range" in params:
        r = json.loads(params["time_range"])
        since, until = r["since"], r["until"]
    else:
        preset = params.get("date_preset", "last_30d")
        days = {"last_7d": 7, "last_14d": 14, "last_30d": 30}.get(preset)
        if days is None:
            raise BadRequest("(#100) date_preset must be one of the following values: today, yesterday, last_7d, last_14d, last_30d")
        since, until = (TODAY - datetime.timedelta(days=days)).isoformat(), (TODAY - datetime.timedelta(days=1)).isoformat()
    fields = [f for f in params.get("fields", "").split(",") if f]
    breakdowns = [b for b in params.get("breakdowns", "").split(",") if b]
    filtering = json.loads(params.get("filtering", "[]"))
    rows = [r for r in base_rows() if since <= r["date_start"] <= until and all(passes(r, f) for f in filtering)]
    keys = ["date_start"] + [f for lvl in DEEPER[:DEEPER.index(level) + 1] for f in LEVEL_FIELDS[lvl]] + breakdowns
    groups = {}
    for r in rows:
        k = tuple(r[x] for x in keys)
        g = groups.get(k)
        if g is None:
            groups[k] = dict(r)
        else:
            for m in METRICS:
                g[m] = round(g[m] + r[m], 2)
    out = []
    for k in sorted(groups):
        g = groups[k]
        row = {"date_start": g["date_start"], "date_stop": g["date_stop"]}
        for f in fields + breakdowns:
            if f not in g:
                raise BadRequest("(#100) %s is not valid for fields param." % f)
            row[f] = str(g[f]) if f in METRICS else g[f]
        out.append(row)
    return out


class Handler(JsonHandler):
    def entry(self, path, params, status):
        with lock:
            log.append({"method": self.command, "path": path, "params": params, "status": status,
                        "auth": self.headers.get("Authorization") or ""})

    def usage(self, regain=0, percent=12):
        return [("X-Business-Use-Case-Usage", json.dumps({"111222333": [{
            "type": "ads_insights", "call_count": percent, "total_cputime": 3, "total_time": 4,
            "estimated_time_to_regain_access": regain}]}))]

    def meta_error(self, status, code, message, subcode=None, headers=None):
        error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC123"}
        if subcode:
            error["error_subcode"] = subcode
        self.send(status, {"error": error}, headers or self.usage())

    def page(self, path, params, rows):
        start = int(params.get("after") or 0)
        limit = int(params.get("limit") or 25)
        answer = {"data": rows[start:start + limit]}
        if start + limit < len(rows):
            nxt = dict(params, after=str(start + limit))
            answer["paging"] = {"cursors": {"before": str(start), "after": str(start + limit)},
                                "next": "%s%s?%s" % (self.base(), path, urllib.parse.urlencode(nxt))}
        self.send(200, answer, self.usage())

    def handle_request(self, params):
        path = urllib.parse.urlsplit(self.path).path
        if (self.headers.get("Authorization") or "") != "Bearer " + TOKEN:
            self.entry(path, params, 400)
            return self.meta_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        prefix = "/%s/" % VERSION
        parts = path[len(prefix):].split("/") if path.startswith(prefix) else []
        if parts[:1] != [ACCOUNT] and not (parts and parts[0] in reports):
            self.entry(path, params, 400)
            return self.meta_error(400, 100, "Unsupported get request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation" % (parts[0] if parts else path), 33)
        if parts[-1] == "insights" and state["throttle"] > 0:
            with lock:
                state["throttle"] -= 1
            self.entry(path, params, 400)
            return self.meta_error(400, 80000, "There have been too many calls from this ad-account. Wait a bit and try again.",
                                   2446079, self.usage(state["regain"], 100))
        try:
            if parts == [ACCOUNT]:
                self.entry(path, params, 200)
                return self.send(200, {"id": ACCOUNT, "name": "Acme Shoes EU", "currency": "EUR", "account_status": 1},
                                 self.usage())
            if parts == [ACCOUNT, "insights"] and self.command == "GET":
                rows = insights(params)
                self.entry(path, params, 200)
                return self.page(path, params, rows)
            if parts == [ACCOUNT, "insights"]:
                rows = insights(params)
                run = str(6000 + len(reports))
                with lock:
                    reports[run] = [rows, 0]
                self.entry(path, params, 200)
                return self.send(200, {"report_run_id": run}, self.usage())
            if len(parts) == 1 and parts[0] in reports:
                with lock:
                    reports[parts[0]][1] += 1
                    polls = reports[parts[0]][1]
                status = "Job Failed" if state["fail_report"] else "Job Running" if polls < 2 else "Job Completed"
                self.entry(path, params, 200)
                return self.send(200, {"id": parts[0], "async_status": status,
                                       "async_percent_completion": 100 if status == "Job Completed" else 50},
                                 self.usage())
            if len(parts) == 2 and parts[0] in reports and parts[1] == "insights":
                self.entry(path, params, 200)
                return self.page(path, params, reports[parts[0]][0])
            if len(parts) == 2 and parts[1] in ("campaigns", "adsets", "ads"):
                rows = self.objects(parts[1], params)
                self.entry(path, params, 200)
                return self.page(path, params, rows)
        except BadRequest as e:
            self.entry(path, params, 400)
            return self.meta_error(400, 100, "Invalid parameter: %s" % e)
        self.entry(path, params, 400)
        self.meta_error(400, 100, "Unknown path components: /%s" % "/".join(parts[1:]), 2500)

    def objects(self, kind, params):
        if kind == "campaigns":
            rows = [{"id": cid, "name": name, "status": "ACTIVE", "effective_status": "ACTIVE", "objective": obj,
                     "daily_budget": "5000", "bid_strategy": "LOWEST_COST_WITHOUT_CAP",
                     "start_time": meta_time(BASE_TIME), "created_time": meta_time(BASE_TIME),
                     "updated_time": meta_time(updated[cid])} for cid, name, obj in CAMPAIGNS]
        elif kind == "adsets":
            rows = [{"id": sid, "name": name, "campaign_id": cid, "status": "ACTIVE", "effective_status": "ACTIVE",
                     "daily_budget": "2500", "created_time": meta_time(BASE_TIME),
                     "updated_time": meta_time(updated[cid])} for sid, name, cid in ADSETS]
        else:
            rows = [{"id": aid, "name": name, "adset_id": sid, "campaign_id": cid, "status": "ACTIVE",
                     "effective_status": "ACTIVE", "created_time": meta_time(BASE_TIME),
                     "updated_time": meta_time(updated[cid])} for aid, name, sid, cid in ADS]
        for f in json.loads(params.get("filtering", "[]")):
            if f["field"] == "updated_time":
                def seconds(r):
                    return datetime.datetime.strptime(r["updated_time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
                rows = [r for r in rows if (seconds(r) > f["value"] if f["operator"] == "GREATER_THAN"
                                            else seconds(r) < f["value"])]
            else:
                rows = [r for r in rows if passes(r, f)]
        fields = params.get("fields", "id").split(",")
        return [{k: r[k] for k in fields if k in r} for r in rows]

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/test/log":
            return self.send(200, self.taken_log())
        self.handle_request({k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        raw = self.body()
        if url.path == "/test/control":
            change = json.loads(raw or "{}")
            with lock:
                if "touch" in change:
                    updated[change["touch"]] = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
                state.update({k: v for k, v in change.items() if k != "touch"})
            return self.send(200, {"ok": True})
        params = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        params.update({k: v[0] for k, v in urllib.parse.parse_qs(raw).items()})
        self.handle_request(params)


serve(Handler, {"token": TOKEN, "account": ACCOUNT, "today": TODAY.isoformat()})
