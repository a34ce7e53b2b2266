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
  etag            the ETag of /jwks: a literal value (sent as written), or
                  "auto" for a strong tag made of the key set's hash
  last_modified   the Last-Modified of /jwks: an HTTP-date, or "auto" for
                  jwks.json's modification time
  discovery_etag  the same as etag, for the discovery document
A request whose If-None-Match names the current ETag (weak comparison, RFC
9110 13.1.2), or, without If-None-Match, whose If-Modified-Since is not
older than Last-Modified, gets 304 Not Modified. A status file of 304
answers 304 to every /jwks request, with the etag file's ETag.
Every request is appended to --dir/requests.log, one path per line, and
to --dir/conditional.log as "PATH inm=V ims=V -> STATUS" (V is - when the
request had no such header).

Python 3 standard library only; loopback only.
"""
import argparse
import email.utils
import hashlib
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


def validator(d, name, body, path):
    """The ETag (or Last-Modified) a file asks for, None without one."""
    v = read(d, name)
    if v is None:
        return None
    v = v.strip().decode()
    if v != "auto":
        return v
    if name == "last_modified":
        return email.utils.formatdate(os.path.getmtime(path), usegmt=True)
    return '"%s"' % hashlib.sha256(body).hexdigest()[:16]


def etag_matches(inm, etag):
    """RFC 9110 13.1.2: If-None-Match uses the weak comparison."""
    if etag is None:
        return False
    strip = lambda t: t.strip()[2:] if t.strip().startswith("W/") else t.strip()
    return any(t.strip() == "*" or strip(t) == strip(etag) for t in inm.split(","))


def not_modified_since(ims, lastmod):
    if lastmod is None:
        return False
    try:
        return (email.utils.parsedate_to_datetime(lastmod) <=
                email.utils.parsedate_to_datetime(ims))
    except (TypeError, ValueError):
        return False


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
        etag = lastmod = None
        if self.path == "/jwks":
            etag = validator(d, "etag", body, None)
            lastmod = validator(d, "last_modified", body, os.path.join(d, "jwks.json"))
        elif self.path == "/.well-known/openid-configuration":
            etag = validator(d, "discovery_etag", body, None)
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if status == 200 and (etag_matches(inm, etag) if inm is not None else
                              ims is not None and not_modified_since(ims, lastmod)):
            status = 304
        with open(os.path.join(d, "conditional.log"), "a") as f:
            f.write("%s inm=%s ims=%s -> %d\n" % (self.path, inm or "-", ims or "-", status))
        self.send_response(status)
        if etag is not None:
            self.send_header("ETag", etag)
        if lastmod is not None:
            self.send_header("Last-Modified", lastmod)
        cache = read(d, "cache")
        if cache and self.path == "/jwks":
            self.send_header("Cache-Control", cache.decode().strip())
        if status == 304:
            self.end_headers()
            return
        self.send_header("Content-Type", ctype.decode())
        self.send_header("Content-Length", str(len(body)))
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
