"""A minimal registry token issuer for kiln's tests.

It speaks the docker token protocol (GET /token?service=…&scope=…, HTTP
basic for the user) and signs real RS256 JWTs with `openssl dgst`, with the
signing certificate in the `x5c` header, so Debian's docker-registry
verifies them against its `rootcertbundle` exactly as it would a real
issuer's.

usage: token_issuer.py PORT KEY CERT ISSUER SERVICE USERS
USERS is a file of `user:password:actions` lines (actions: `pull`,
`pull,push` or empty for none). Anonymous requests get no access.
"""

import base64
import http.server
import json
import subprocess
import sys
import time
import urllib.parse
import uuid

PORT, KEY, CERT, ISSUER, SERVICE, USERS = sys.argv[1:7]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der() -> bytes:
    return subprocess.run(
        ["openssl", "x509", "-in", CERT, "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout


X5C = base64.b64encode(cert_der()).decode()
USERS_BY_NAME = {}
for line in open(USERS):
    line = line.strip()
    if line:
        user, password, actions = line.split(":", 2)
        USERS_BY_NAME[user] = (password, [a for a in actions.split(",") if a])


def sign(claims: dict) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": [X5C]}
    signing_input = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    )
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", KEY],
        input=signing_input.encode(),
        check=True,
        capture_output=True,
    ).stdout
    return signing_input + "." + b64url(sig)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/token":
            self.send_error(404)
            return
        query = urllib.parse.parse_qs(url.query)
        user, allowed = "", []
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, password = base64.b64decode(auth[6:]).decode().split(":", 1)
            except Exception:
                self.send_error(400)
                return
            known = USERS_BY_NAME.get(user)
            if known is None or known[0] != password:
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                return
            allowed = known[1]
        access = []
        for scope in query.get("scope", []):
            for part in scope.split(" "):
                kind, _, rest = part.partition(":")
                name, _, actions = rest.rpartition(":")
                granted = [a for a in actions.split(",") if a in allowed]
                if kind == "repository" and granted:
                    access.append({"type": "repository", "name": name, "actions": granted})
        now = int(time.time())
        token = sign(
            {
                "iss": ISSUER,
                "sub": user,
                "aud": query.get("service", [SERVICE])[0],
                "exp": now + 600,
                "nbf": now - 60,
                "iat": now,
                "jti": str(uuid.uuid4()),
                "access": access,
            }
        )
        body = json.dumps({"token": token, "expires_in": 600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
