#!/usr/bin/python3
"""An identity provider's key endpoints for the tests, over HTTPS with the
test's own CA: /.well-known/openid-configuration and /jwks.

What it serves comes from files in --dir, re-read on every request, so a
test changes the provider's behaviour by writing a file:
  jwks.json       the key set (required for /jwks)
  status          an HTTP status instead of 200
  ctype           the Content-Type (default application/json)
  cache           a Cache-Control value (default: none)
  discovery.json  the discovery document (default: issuer + /jwks)
Every request is appended to --dir/requests.log, one path per line.

Python 3 standard library only; loopback only.
"""
import argparse
import json
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer as HTTPServer


def read(d, name, default=None):
    try:
        with open(os.path.join(d, name), "rb") as f:
            return f.read()
    except OSError:
        return default


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stdout.write("%s\n" % (fmt % args))
        sys.stdout.flush()

    def do_GET(self):
        d, issuer = self.server.dir, self.server.issuer
        with open(os.path.join(d, "requests.log"), "a") as f:
            f.write(self.path + "\n")
        if self.path == "/.well-known/openid-configuration":
            body = read(d, "discovery.json") or json.dumps(
                {"issuer": issuer, "jwks_uri": issuer + "/jwks"}).encode()
            ctype = b"application/json"
        elif self.path == "/jwks":
            body = read(d, "jwks.json", b"")
            ctype = (read(d, "ctype") or b"application/json").strip()
        else:
            body, ctype = b"not found\n", b"text/plain"
        status = int((read(d, "status") or b"200").strip()) if self.path == "/jwks" else 200
        if body == b"" and self.path != "/jwks":
            status = 404
        self.send_response(status)
        self.send_header("Content-Type", ctype.decode())
        self.send_header("Content-Length", str(len(body)))
        cache = read(d, "cache")
        if cache and self.path == "/jwks":
            self.send_header("Cache-Control", cache.decode().strip())
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--issuer", required=True)
    a = ap.parse_args()
    HTTPServer.allow_reuse_address = True
    srv = HTTPServer(("127.0.0.1", a.port), Handler)
    srv.dir, srv.issuer = a.dir, a.issuer
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("jwks server on https://127.0.0.1:%d" % a.port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
