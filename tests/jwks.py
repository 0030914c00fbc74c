"""A JWKS endpoint over real HTTP on a loopback port, like Better Auth's `/api/auth/jwks`."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


class SigningKey:
    def __init__(self, kind: str, kid: str) -> None:
        self.kid = kid
        if kind == "EdDSA":
            self.private: Any = ed25519.Ed25519PrivateKey.generate()
            self.jwk = json.loads(OKPAlgorithm.to_jwk(self.private.public_key()))
        elif kind == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        self.algorithm = kind
        self.jwk.update({"kid": kid, "alg": kind, "use": "sig"})

    def token(self, sub: str = "alice", ttl: int = 3600, **claims: Any) -> str:
        payload = {"sub": sub, "iat": int(time.time()), "exp": int(time.time()) + ttl, **claims}
        return jwt.encode(
            payload, self.private, algorithm=self.algorithm, headers={"kid": self.kid}
        )


class JWKSServer:
    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.requests = 0
        self.down = False  # answer 503, as an issuer in an outage
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                if server.down:
                    self.send_error(503)
                    return
                body = json.dumps({"keys": [key.jwk for key in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/auth/jwks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> JWKSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
