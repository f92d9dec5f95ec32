"""Google's OAuth for installed apps on loopback, for the test servers of Google's APIs:
the authorize endpoint approves at once (redirecting with a code bound to the PKCE
challenge), the token endpoint takes the authorization_code and refresh_token grants
and issues bearer tokens the server then checks."""

import base64
import hashlib
import secrets
import urllib.parse

from wire import lock

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
    if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
        return handler.send(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
    grant = form.get("grant_type")
    if grant == "authorization_code":
        with lock:
            challenge = codes.pop(form.get("code"), "missing")
        verifier = form.get("code_verifier", "")
        made = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if challenge != made:
            return handler.send(400, {"error": "invalid_grant", "error_description": "Bad Request"})
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
