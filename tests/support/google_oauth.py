"""Google's OAuth on loopback, for the test servers of Google's APIs: the authorize
endpoint approves at once (redirecting with a code bound to the PKCE challenge), the token
endpoint takes the authorization_code and refresh_token grants of installed apps and the
JWT bearer grant of service accounts (RS256 assertions checked against the account's
public key: issuer, audience, scope, lifetime), and issues bearer tokens the server then
checks. The service account's key is made when the server starts (`cryptography`, which
the tests' virtualenv has for moto)."""

import base64
import hashlib
import json
import secrets
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from wire import lock

SERVICE_ACCOUNT = "tributary-tests@acme-analytics.iam.gserviceaccount.com"
_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_KEY = _key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
codes = {}  # code -> code_challenge
tokens = set()
refresh_tokens = set()


def authorize(handler, query):
    """Answers GET /o/oauth2/v2/auth: a redirect to the app's callback with a code."""
    code = secrets.token_hex(8)
    with lock:
        codes[code] = query.get("code_challenge")
    target = "%s?%s" % (query["redirect_uri"], urllib.parse.urlencode({"code": code, "state": query.get("state", "")}))
    handler.send_response(302)
    handler.send_header("Location", target)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def token(handler, raw, client_id, client_secret, scope):
    """Answers POST /token as Google does."""
    form = handler.token_form(raw)
    service_account = form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    if not service_account and (form.get("client_id") != client_id or form.get("client_secret") != client_secret):
        return handler.send(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
    grant = form.get("grant_type")
    if grant == "authorization_code":
        with lock:
            challenge = codes.pop(form.get("code"), "missing")
        verifier = form.get("code_verifier", "")
        made = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if challenge != made:
            return handler.send(400, {"error": "invalid_grant", "error_description": "Bad Request"})
    elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        problem = check_assertion(form.get("assertion", ""), handler.base() + "/token", scope)
        if problem:
            return handler.send(400, {"error": "invalid_grant", "error_description": problem})
    elif grant == "refresh_token":
        with lock:
            ok = form.get("refresh_token") in refresh_tokens
        if not ok:
            return handler.send(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    else:
        return handler.send(400, {"error": "unsupported_grant_type"})
    access, refresh = "ya29." + secrets.token_hex(16), "1//" + secrets.token_hex(16)
    with lock:
        tokens.add(access)
        refresh_tokens.add(refresh)
    answer = {"access_token": access, "expires_in": 3599, "token_type": "Bearer", "scope": scope}
    if grant == "authorization_code":
        answer["refresh_token"] = refresh
    return handler.send(200, answer)


def signed_in(handler):
    """Whether the request carries a token this server issued."""
    auth = handler.headers.get("Authorization") or ""
    with lock:
        return auth.startswith("Bearer ") and auth[7:] in tokens


def unpadded(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_assertion(assertion, audience, scope):
    """What is wrong with a service account's assertion, or None."""
    try:
        header, claims, signature = assertion.split(".")
        _key.public_key().verify(unpadded(signature), ("%s.%s" % (header, claims)).encode(),
                                 padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return "Invalid JWT Signature."
    head, body = json.loads(unpadded(header)), json.loads(unpadded(claims))
    now = time.time()
    if head.get("alg") != "RS256":
        return "Invalid JWT: the algorithm must be RS256."
    if body.get("iss") != SERVICE_ACCOUNT:
        return "Invalid JWT: unknown issuer."
    if body.get("aud") != audience:
        return "Invalid JWT: the audience must be the token endpoint."
    if scope not in body.get("scope", "").split(" "):
        return "Invalid JWT: the scope is missing."
    if not (body.get("iat", 0) - 60 <= now < body.get("exp", 0) <= body.get("iat", 0) + 3600):
        return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
    return None


def service_account_key(base):
    """The key file of the service account, as Google gives it, for a server at `base`."""
    return json.dumps({"type": "service_account", "project_id": "acme-analytics",
                       "private_key_id": "k1", "private_key": PRIVATE_KEY,
                       "client_email": SERVICE_ACCOUNT, "client_id": "1234567890",
                       "token_uri": base + "/token"})
