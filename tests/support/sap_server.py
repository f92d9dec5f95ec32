"""An SAP Gateway OData service on loopback for the SAP tests, speaking OData's documented
wire format, v2 (the default) or v4 (`--version 4`), at /sap/opu/odata/sap/API_PRODUCT_SRV:

  GET  …/$metadata            EDMX with SAP's annotations (sap:label, sap:filterable,
                              sap:creatable…); v4 has no Edm.DateTime, so CreatedOn is an
                              Edm.DateTimeOffset there
  GET  …/                     the service document; with `X-CSRF-Token: Fetch` a token and
                              the session cookies it belongs to
  GET  …/A_Product            $select, $filter, $orderby, $top, $skip, $skiptoken, $format;
                              v2: {"d": {"results": [...], "__next"}} with `/Date(ms)/`
                              instants and Int64/Decimal/Double as text; v4: {"value": [...],
                              "@odata.nextLink"} (relative) with plain JSON values
  POST …/A_Product            creates (201); no ProductName or a negative Price is refused
                              (400) with SAP's error body, as is an existing Product
  PATCH (v4) or POST with X-HTTP-Method: MERGE (v2) …/A_Product('P00001')   updates (204)
  DELETE …/A_Product('P00001')  deletes (204); an unknown key is 404
  POST …/$batch               multipart change sets, each applied alone; a failed change set
                              answers with its error alone, as SAP Gateway does
  POST /oauth/token           client_credentials

With `--change-tracking`, A_Product tracks its changes (v2: `sap:change-tracking="true"`;
v4: the `Capabilities.ChangeTracking` annotation): the last page of a read carries a delta
link (v2: `d.__delta` with `!deltatoken='N'`, absolute; v4: `@odata.deltaLink` with
`$deltatoken=N`, relative) that keeps the read's $select and $filter; reading it answers the
records changed since (their values now) and the deleted ones as OData's deleted entries
(`{"@odata.context": "$metadata#A_Product/$deletedEntity", "id": "A_Product('P00003')",
"reason": "deleted"}`), paged like any read, with the next delta link on its last page.

`$filter` is read as OData reads it: `and`, `or`, `not`, parentheses, `eq ne gt ge lt le`,
`substringof('x',F)` (v2), `contains(F,'x')` (v4), and typed literals (`'text'` with ''
escapes, `12L`, `12.5M`, `1.5d`, `datetime'…'`, `datetimeoffset'…'`, v4's bare instants).

A page holds at most 100 records; more come by the next link. Changes need the CSRF token
and the session cookie it was issued with, else 403 with `X-CSRF-Token: Required`.

Sign-in: Basic COMM_USER / sap-pass-1, or a bearer token from /oauth/token (client
sap-client / sap-secret-3). POST /test/control: `{"upsert": [records]}`, `{"delete": [keys]}`, `{"fail": [{"status":
429, "at": "A_Product", "retry_after": 1}]}`, `{"expire_csrf": true}`, `{"csrf_uses": N}` (a token
ends after N changes, as a session would). GET /test/log returns
the requests since it was last asked.
"""

import base64
import datetime
import json
import re
import secrets
import sys
import urllib.parse

from wire import JsonHandler, failures, lock, log, serve

VERSION = 4 if "--version" in sys.argv and sys.argv[sys.argv.index("--version") + 1] == "4" else 2
TRACKING = "--change-tracking" in sys.argv
ROOT = "/sap/opu/odata/sap/API_PRODUCT_SRV"
USER, PASSWORD = "COMM_USER", "sap-pass-1"
CLIENT_ID, CLIENT_SECRET = "sap-client", "sap-secret-3"
PAGE = 100

# (name, Edm type, attributes)
PROPERTIES = [
    ("Product", "Edm.String", 'Nullable="false" MaxLength="40" sap:label="Product"'),
    ("ProductName", "Edm.String", 'MaxLength="80" sap:label="Product Name"'),
    ("Price", "Edm.Decimal", 'Precision="13" Scale="2" sap:label="Net Price"'),
    ("Quantity", "Edm.Int32", 'sap:label="Quantity"'),
    ("Stock", "Edm.Int64", 'sap:label="Stock"'),
    ("Weight", "Edm.Double", 'sap:label="Weight"'),
    ("IsActive", "Edm.Boolean", 'sap:label="Active"'),
    ("CreatedOn", "Edm.DateTime" if VERSION == 2 else "Edm.DateTimeOffset", 'sap:label="Created On"'),
    ("LastChangeDateTime", "Edm.DateTimeOffset", 'sap:label="Last Change"'),
    ("Note", "Edm.String", 'sap:filterable="false" sap:label="Note"'),
]
TYPES = {name: edm for name, edm, _ in PROPERTIES}

tokens = set()
csrf = {}  # token -> session id
used = {}  # token -> changes made with it
state = {"csrf_uses": 0}
START = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def product(i):
    return {
        "Product": "P%05d" % i,
        "ProductName": ("Bolt %d" if i % 4 == 0 else "Product %d") % i,
        "Price": "%d.%02d" % (i, (i * 25) % 100),
        "Quantity": i % 50,
        "Stock": i * 1000000007,
        "Weight": i * 0.5,
        "IsActive": i % 3 != 0,
        "CreatedOn": START + datetime.timedelta(hours=i),
        # Five records share each instant: pulls cut across them.
        "LastChangeDateTime": START + datetime.timedelta(minutes=i // 5),
        "Note": "note %d" % i,
    }


products = {p["Product"]: p for p in (product(i) for i in range(1, 231))}
# The change log: the sequence number of each product's last change, and of each deletion.
log_state = {"seq": 0}
changed_at = {}
deleted_at = {}


def logged(key, deleted=False):
    """Notes a change of a product in the log (under the lock)."""
    log_state["seq"] += 1
    if deleted:
        deleted_at[key] = log_state["seq"]
        changed_at.pop(key, None)
    else:
        changed_at[key] = log_state["seq"]
        deleted_at.pop(key, None)


def metadata():
    v = "4.0" if VERSION == 4 else "1.0"
    props = "\n".join('    <Property Name="%s" Type="%s" %s/>' % p for p in PROPERTIES)
    tracking_v2 = ' sap:change-tracking="true"' if TRACKING and VERSION == 2 else ""
    tracking_v4 = """
   <Annotations Target="API_PRODUCT_SRV.API_PRODUCT_SRV_Entities/A_Product">
    <Annotation Term="Org.OData.Capabilities.V1.ChangeTracking">
     <Record><PropertyValue Property="Supported" Bool="true"/></Record>
    </Annotation>
   </Annotations>""" if TRACKING and VERSION == 4 else ""
    return """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="%s" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" xmlns:sap="http://www.sap.com/Protocols/SAPData">
 <edmx:DataServices m:DataServiceVersion="2.0">
  <Schema Namespace="API_PRODUCT_SRV" xml:lang="en" sap:schema-version="1" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
   <EntityType Name="A_ProductType" sap:label="Product" sap:content-version="1">
    <Key><PropertyRef Name="Product"/></Key>
%s
    <NavigationProperty Name="to_Description" Relationship="API_PRODUCT_SRV.assoc_1" FromRole="FromRole_1" ToRole="ToRole_1"/>
   </EntityType>
   <EntityType Name="A_ProductDescriptionType" sap:label="Product Description">
    <Key><PropertyRef Name="Product"/><PropertyRef Name="Language"/></Key>
    <Property Name="Product" Type="Edm.String" Nullable="false" MaxLength="40"/>
    <Property Name="Language" Type="Edm.String" Nullable="false" MaxLength="2"/>
    <Property Name="ProductDescription" Type="Edm.String" MaxLength="40"/>
   </EntityType>
   <EntityContainer Name="API_PRODUCT_SRV_Entities" m:IsDefaultEntityContainer="true">
    <EntitySet Name="A_Product" EntityType="API_PRODUCT_SRV.A_ProductType" sap:label="Products" sap:content-version="1"%s/>
    <EntitySet Name="A_ProductDescription" EntityType="API_PRODUCT_SRV.A_ProductDescriptionType" sap:creatable="false" sap:updatable="false" sap:deletable="false" sap:label="Product Descriptions"/>
   </EntityContainer>%s
  </Schema>
 </edmx:DataServices>
</edmx:Edmx>""" % (v, props, tracking_v2, tracking_v4)


# --- $filter -------------------------------------------------------------------------

TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<typed>(?:datetime|datetimeoffset|guid|time)'[^']*')"
                   r"|(?P<instant>\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))"
                   r"|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[LMdfm]?)|(?P<sym>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))")


def tokens_of(text):
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError("Invalid token at position %d" % pos)
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


def parse_instant(text):
    text = text.replace("Z", "+00:00")
    t = datetime.datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def literal(kind, text):
    if kind == "str":
        return text[1:-1].replace("''", "'")
    if kind == "typed":
        prefix, _, rest = text.partition("'")
        value = rest[:-1]
        return parse_instant(value) if prefix.startswith("datetime") else value
    if kind == "instant":
        return parse_instant(text)
    if kind == "num":
        return float(text.rstrip("LMdfm"))
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    raise ValueError("Invalid literal %s" % text)


class Parser:
    def __init__(self, text):
        self.t = tokens_of(text)
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def take(self, want=None):
        kind, text = self.peek()
        if want and text != want:
            raise ValueError("Expected %s at token %d" % (want, self.i))
        self.i += 1
        return kind, text

    def expr(self):
        left = self.conj()
        while self.peek()[1] == "or":
            self.take()
            right = self.conj()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def conj(self):
        left = self.unary()
        while self.peek()[1] == "and":
            self.take()
            right = self.unary()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def unary(self):
        if self.peek()[1] == "not":
            self.take()
            inner = self.unary()
            return lambda r: not inner(r)
        if self.peek()[1] == "(":
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        kind, word = self.take()
        if word in ("substringof", "contains"):
            self.take("(")
            a = self.take()
            self.take(",")
            b = self.take()
            self.take(")")
            (name, needle) = (b[1], literal(*a)) if word == "substringof" else (a[1], literal(*b))
            check(name)
            return lambda r: needle.lower() in str(r.get(name) or "").lower()
        name = word
        check(name)
        op = self.take()[1]
        value = literal(*self.take())
        ops = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a is not None and a > b,
               "ge": lambda a, b: a is not None and a >= b, "lt": lambda a, b: a is not None and a < b,
               "le": lambda a, b: a is not None and a <= b}
        if op not in ops:
            raise ValueError("Invalid operator %s" % op)
        return lambda r: ops[op](comparable(name, r.get(name)), value)


def check(name):
    if name not in TYPES:
        raise KeyError("Property %s not found in type 'A_ProductType'" % name)


def comparable(name, value):
    if TYPES[name] == "Edm.Decimal":
        return float(value)
    if TYPES[name] in ("Edm.Int32", "Edm.Int64", "Edm.Double"):
        return float(value)
    return value


# --- values on the wire ---------------------------------------------------------------

def millis(t):
    return int(t.timestamp() * 1000)


def to_wire(record, select):
    out = {}
    if VERSION == 2:
        out["__metadata"] = {"type": "API_PRODUCT_SRV.A_ProductType"}
    for name in select:
        v, edm = record.get(name), TYPES[name]
        if v is None:
            out[name] = None
        elif edm in ("Edm.DateTime", "Edm.DateTimeOffset"):
            if VERSION == 2:
                out[name] = "/Date(%d%s)/" % (millis(v), "+0000" if edm == "Edm.DateTimeOffset" else "")
            else:
                out[name] = v.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif VERSION == 2 and edm in ("Edm.Int64", "Edm.Double"):
            out[name] = str(v)
        elif VERSION == 4 and edm == "Edm.Decimal":
            out[name] = float(v)
        else:
            out[name] = v
    return out


def from_wire(name, value):
    """A value a write sent, as the record keeps it; ValueError when its JSON is not
    what the version's format takes."""
    edm = TYPES[name]
    if value is None:
        return None
    if edm in ("Edm.DateTime", "Edm.DateTimeOffset"):
        if VERSION == 2:
            m = re.fullmatch(r"/Date\((-?\d+)([+-]\d{4})?\)/", str(value))
            if not m:
                raise ValueError("Invalid value for property %s" % name)
            return datetime.datetime.fromtimestamp(int(m.group(1)) / 1000, datetime.timezone.utc)
        return parse_instant(value)
    if edm in ("Edm.Decimal", "Edm.Int64") and VERSION == 2 and not isinstance(value, str):
        raise ValueError("Invalid value for property %s: v2 takes it as text" % name)
    if edm == "Edm.Decimal":
        return "%.2f" % float(value)
    return value


def split_parts(text, boundary):
    """The parts of a multipart body between `--boundary` lines."""
    out = []
    for chunk in text.split("--" + boundary)[1:]:
        if chunk.startswith("--"):
            break
        out.append(chunk.strip("\r\n"))
    return out


def apply(method, path, body):
    """A change to the products: (status, (code, message) when refused, the answer's body)."""
    m = re.fullmatch(r"/A_Product(?:\('((?:[^']|'')*)'\))?", path)
    if not m:
        return 404, ("/IWFND/MED/170", "Resource not found for segment '%s'" % path), None
    key = m.group(1).replace("''", "'") if m.group(1) is not None else None
    try:
        values = {k: from_wire(k, v) for k, v in (body or {}).items() if not k.startswith("__")}
    except (ValueError, KeyError) as e:
        return 400, ("/IWBEP/CM_MGW_RT/004", str(e)), None
    unknown = [k for k in values if k not in TYPES]
    if unknown:
        return 400, ("/IWBEP/CM_MGW_RT/021", "Property %s is invalid" % unknown[0]), None
    changed = START + datetime.timedelta(days=29)
    with lock:
        if method == "POST" and key is None:
            if not values.get("ProductName"):
                return 400, ("API_PRD_MSG/012", "Enter a product name"), None
            if values.get("Price") is not None and float(values["Price"]) < 0:
                return 400, ("API_PRD_MSG/031", "Price %s is negative" % values["Price"]), None
            if values.get("Product") in products:
                return 400, ("API_PRD_MSG/002", "Product %s already exists" % values["Product"]), None
            new = {n: None for n in TYPES}
            new.update(values)
            new["LastChangeDateTime"] = changed
            products[new["Product"]] = new
            logged(new["Product"])
            entity = to_wire(new, list(TYPES))
            return 201, None, {"d": entity} if VERSION == 2 else entity
        if key not in products:
            return 404, ("API_PRD_MSG/001", "Product %s does not exist" % key), None
        if method == "DELETE":
            del products[key]
            logged(key, deleted=True)
            return 204, None, None
        if values.get("Price") is not None and float(values["Price"]) < 0:
            return 400, ("API_PRD_MSG/031", "Price %s is negative" % values["Price"]), None
        products[key].update(values)
        products[key]["LastChangeDateTime"] = changed
        logged(key)
        return 204, None, None


class Handler(JsonHandler):
    def error(self, status, code, message, headers=()):
        text = {"lang": "en", "value": message} if VERSION == 2 else message
        self.send(status, {"error": {"code": code, "message": text}}, headers)

    def signed_in(self):
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            return base64.b64decode(auth[6:]).decode() == "%s:%s" % (USER, PASSWORD)
        with lock:
            return auth.startswith("Bearer ") and auth[7:] in tokens

    def entry(self, url, status, body=None, extra=None):
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        method = self.headers.get("X-HTTP-Method") or self.command
        with lock:
            e = {"method": method, "path": url.path, "query": query, "status": status, "body": body,
                 "auth": (self.headers.get("Authorization") or "").split(" ")[0]}
            e.update(extra or {})
            log.append(e)

    def begin(self):
        """Answers the test's own paths, queued failures and sign-in; returns the URL when
        the request is the service's to answer."""
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/test/log":
            self.send(200, self.taken_log())
            return None
        failing = self.queued_failure(url.path + "?" + url.query)
        if failing:
            self.entry(url, failing["status"])
            headers = [("Retry-After", str(failing["retry_after"]))] if "retry_after" in failing else []
            self.error(failing["status"], "/IWFND/CM_BEC/026", "queued by the test", headers)
            return None
        if not url.path.startswith(ROOT):
            self.entry(url, 404)
            self.error(404, "/IWFND/MED/170", "No service found for namespace '', name '%s'" % url.path)
            return None
        if not self.signed_in():
            self.entry(url, 401)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="SAP NetWeaver Application Server"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return url

    def do_GET(self):
        url = self.begin()
        if url is None:
            return
        path = url.path[len(ROOT):]
        if path == "/$metadata":
            self.entry(url, 200)
            data = metadata().encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if path in ("", "/"):
            headers = []
            if (self.headers.get("X-CSRF-Token") or "").lower() == "fetch":
                token, session = secrets.token_urlsafe(16), secrets.token_hex(8)
                with lock:
                    csrf[token] = session
                headers = [("X-CSRF-Token", token),
                           ("Set-Cookie", "SAP_SESSIONID_ER9_100=%s; path=/; HttpOnly" % session),
                           ("Set-Cookie", "sap-usercontext=sap-client=100; path=/")]
            self.entry(url, 200, extra={"csrf": "fetch" if headers else None})
            sets = ["A_Product", "A_ProductDescription"]
            body = {"d": {"EntitySets": sets}} if VERSION == 2 else {"value": [{"name": s, "url": s} for s in sets]}
            return self.send(200, body, headers)
        if path != "/A_Product":
            self.entry(url, 404)
            return self.error(404, "/IWFND/MED/170", "Resource not found for segment '%s'" % path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        token = query.get("!deltatoken", query.get("$deltatoken"))
        if token is not None and not TRACKING:
            self.entry(url, 400)
            return self.error(400, "/IWBEP/CM_MGW_RT/023", "Entity set A_Product does not support delta queries")
        try:
            since = int(token.strip("'")) if token is not None else None
        except ValueError:
            self.entry(url, 400)
            return self.error(400, "/IWBEP/CM_MGW_RT/024", "Delta token %s is not valid" % token)
        try:
            with lock:
                rows = list(products.values()) if since is None else \
                    [p for k, p in products.items() if changed_at.get(k, 0) > since]
                gone = [] if since is None else sorted(k for k, at in deleted_at.items() if at > since)
                seq = log_state["seq"]
            left = []
            if query.get("$filter"):
                test = Parser(query["$filter"]).expr()
                # A changed record the filter no longer takes has left the read's set.
                left = [r["Product"] for r in rows if since is not None and not test(r)]
                rows = [r for r in rows if test(r)]
            for name in reversed([n for n in query.get("$orderby", "").split(",") if n]):
                check(name)
                rows.sort(key=lambda r: (r.get(name) is None, r.get(name) or ""))
            select = [n for n in query.get("$select", "").split(",") if n] or list(TYPES)
            for name in select:
                check(name)
        except (ValueError, KeyError) as e:
            self.entry(url, 400)
            return self.error(400, "/IWBEP/CM_MGW_RT/022", str(e).strip("\""))
        skip = int(query.get("$skip") or 0)
        top = int(query["$top"]) if "$top" in query else len(rows) + len(gone) + len(left)
        entries = [to_wire(r, select) for r in rows] + [
            {"@odata.context": "$metadata#A_Product/$deletedEntity", "id": "A_Product('%s')" % k,
             "reason": reason} for k, reason in [(k, "deleted") for k in gone] + [(k, "changed") for k in left]]
        entries = entries[skip: skip + top]
        at = int(query.get("$skiptoken") or 0)
        body_rows = entries[at: at + PAGE]
        nxt = delta = None
        if at + PAGE < len(entries):
            q = dict(query, **{"$skiptoken": str(at + PAGE)})
            nxt = "A_Product?" + urllib.parse.urlencode(q)
        elif TRACKING and "$top" not in query:
            # The link to the changes from here on keeps what the read selected.
            q = {k: v for k, v in query.items() if k in ("$select", "$filter", "$format")}
            if VERSION == 2:
                delta = "A_Product?" + urllib.parse.urlencode(q, safe="$,'") + "&!deltatoken='%d'" % seq
            else:
                delta = "A_Product?" + urllib.parse.urlencode(dict(q, **{"$deltatoken": str(seq)}))
        self.entry(url, 200, extra={"sap-client": query.get("sap-client"), "prefer": self.headers.get("Prefer")})
        if VERSION == 2:
            d = {"results": body_rows}
            if nxt:
                d["__next"] = self.base() + ROOT + "/" + nxt
            if delta:
                d["__delta"] = self.base() + ROOT + "/" + delta
            return self.send(200, {"d": d})
        body = {"@odata.context": "$metadata#A_Product" + ("/$delta" if since is not None else ""), "value": body_rows}
        if nxt:
            body["@odata.nextLink"] = nxt
        if delta:
            body["@odata.deltaLink"] = delta
        self.send(200, body)

    def changing(self, url):
        """Whether a change carries a valid CSRF token of its session; answers 403 when not."""
        token = self.headers.get("X-CSRF-Token") or ""
        cookies = self.headers.get("Cookie") or ""
        with lock:
            session = csrf.get(token)
            used[token] = used.get(token, 0) + 1
            if state["csrf_uses"] and used[token] > state["csrf_uses"]:
                session = csrf.pop(token, None) and None
        if session and ("SAP_SESSIONID_ER9_100=%s" % session) in cookies:
            return True
        self.entry(url, 403, extra={"csrf": "refused"})
        self.send_response(403)
        self.send_header("X-CSRF-Token", "Required")
        data = b"CSRF token validation failed"
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return False

    def write(self, method):
        url = self.begin()
        if url is None:
            return
        raw = self.body()
        if not self.changing(url):
            return
        path = urllib.parse.unquote(url.path[len(ROOT):])
        if path == "/$batch":
            return self.batch(url, raw)
        body = json.loads(raw) if raw else None
        status, problem, result = apply(method, path, body)
        self.entry(url, status, body, {"csrf": "ok"})
        if problem:
            return self.error(status, *problem)
        if status == 201:
            return self.send(201, result)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def batch(self, url, raw):
        """A multipart $batch: each change set's changes applied in turn; a change set
        that fails answers with its error alone, as SAP Gateway does."""
        boundary = re.search(r"boundary=([^;\s]+)", self.headers.get("Content-Type") or "")
        if not boundary:
            self.entry(url, 400)
            return self.error(400, "/IWBEP/CM_MGW_RT/051", "The $batch request is not multipart")
        out, n = [], 0
        for part in split_parts(raw, boundary.group(1)):
            head, _, content = part.partition("\r\n\r\n")
            inner = re.search(r"boundary=([^;\s]+)", head)
            if not inner:
                self.entry(url, 400)
                return self.error(400, "/IWBEP/CM_MGW_RT/052", "Only change sets are taken here")
            answers = []
            for change in split_parts(content, inner.group(1)):
                _, _, http = change.partition("\r\n\r\n")
                request_head, _, body_text = http.partition("\r\n\r\n")
                method, path, _ = request_head.split("\r\n")[0].split(" ", 2)
                body = json.loads(body_text) if body_text.strip() else None
                status, problem, result = apply(method, "/" + urllib.parse.unquote(path), body)
                with lock:
                    log.append({"method": method, "path": ROOT + "/" + path, "query": {}, "status": status,
                                "body": body, "batch": True, "csrf": "ok", "auth": ""})
                answers.append((status, problem, result))
            n += 1
            failed = next((a for a in answers if a[1]), None)
            if failed:
                status, problem, _ = failed
                text = {"lang": "en", "value": problem[1]} if VERSION == 2 else problem[1]
                error = json.dumps({"error": {"code": problem[0], "message": text}})
                out.append("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                           "HTTP/1.1 %d Bad Request\r\nContent-Type: application/json\r\n\r\n%s\r\n" % (status, error))
            else:
                cs = "changeset_answer_%d" % n
                inner_parts = "".join(
                    "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n\r\n%s\r\n"
                    % (cs, st, "Created" if st == 201 else "No Content", json.dumps(res) if res else "")
                    for st, _, res in answers)
                out.append("Content-Type: multipart/mixed; boundary=%s\r\n\r\n%s--%s--\r\n" % (cs, inner_parts, cs))
        self.entry(url, 202, None, {"csrf": "ok", "changesets": n})
        answer_boundary = "batch_answer_" + secrets.token_hex(4)
        data = "".join("--%s\r\n%s" % (answer_boundary, part) for part in out) + "--%s--\r\n" % answer_boundary
        data = data.encode()
        self.send_response(202)
        self.send_header("Content-Type", "multipart/mixed; boundary=%s" % answer_boundary)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/test/control":
            change = json.loads(self.body() or "{}")
            with lock:
                for r in change.get("upsert", []):
                    r = dict(r)
                    for name in ("CreatedOn", "LastChangeDateTime"):
                        if isinstance(r.get(name), str):
                            r[name] = parse_instant(r[name])
                    products.setdefault(r["Product"], {n: None for n in TYPES}).update(r)
                    logged(r["Product"])
                for key in change.get("delete", []):
                    products.pop(key, None)
                    logged(key, deleted=True)
                failures.extend(change.get("fail", []))
                if change.get("expire_csrf"):
                    csrf.clear()
                state["csrf_uses"] = change.get("csrf_uses", state["csrf_uses"])
            return self.send(200, {"ok": True})
        if url.path == "/oauth/token":
            form = self.token_form(self.body())
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return self.send(401, {"error": "unauthorized", "error_description": "Bad credentials"})
            access = secrets.token_hex(16)
            with lock:
                tokens.add(access)
            return self.send(200, {"access_token": access, "token_type": "bearer", "expires_in": 43199})
        tunnel = (self.headers.get("X-HTTP-Method") or "").upper()
        self.write(tunnel or "POST")

    def do_PATCH(self):
        self.write("PATCH")

    def do_DELETE(self):
        self.write("DELETE")


serve(Handler, {"tracking": TRACKING, "user": USER, "password": PASSWORD, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "root": ROOT, "version": VERSION})
