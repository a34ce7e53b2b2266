#!/usr/bin/python3
"""make bench: spogate side by side with HAProxy alone, HAProxy's native JWT
and nginx auth_request, in one run.

Machines here are small and shared, so absolute figures drift between runs.
Every configuration is therefore started once, then measured in rounds that
alternate the configurations (A B C D A B C D ...); each figure is the median
over the rounds, and the targets are ratios taken from the same run. Server
CPU per request comes from /proc (utime + stime of every server process and
its children over the measured interval), which stays meaningful when the
load generator and the servers share the cores.

Python 3 standard library only. Every process is started here, on a free
loopback port, and stopped here by its PID.
"""
import argparse
import ssl
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokens as jwtmint  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONF = os.path.join(HERE, "conf")

# The same client settings for every HTTP configuration.
WRK_THREADS = 1
WRK_CONNECTIONS = 32
# The saturation sweep: the same wrk with more connections, on the
# configurations the issue compares at load. Each one's figure is its best
# req/s among the connection counts where its p99 stays under
# SWEEP_P99_BOUND x plain's p99 at the same count.
SWEEP_CONFIGS = ("plain", "native-hs256", "spogate-full")
SWEEP_CONNECTIONS = (32, 128, 512)
SWEEP_CONNECTIONS_QUICK = (32, 512)
SWEEP_P99_BOUND = 2.0
# Every server gets the same number of threads (HAProxy nbthread, nginx
# worker_processes, agent threads), so each figure is "per server thread".
SERVER_THREADS = 1
# Limits in the native and spogate configs are real but never fire here.
NEVER_FIRING_LIMIT = 100000000
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The HAProxy under test: SPOGATE_HAPROXY (make bench HAPROXY_VERSION=3.2 sets
# it to build/haproxy-3.2/haproxy), else Debian's. Every HAProxy of the run,
# spogate's and its peers' (plain, native JWT), is this one.
HAPROXY = os.environ.get("SPOGATE_HAPROXY") or "/usr/sbin/haproxy"
ISSUER = "https://auth.bench.example"
AUDIENCE = "api"
HS256_SECRET = "bench-hs256-secret-0123456789abcdef"


# --------------------------------------------------------------------------
# Processes, ports and CPU accounting


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    """True once 127.0.0.1:port (or the unix socket at port, a path)
    accepts a connection; False if proc died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if isinstance(port, str):
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
                    u.settimeout(0.2)
                    u.connect(port)
                return True
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_table():
    """{pid: (ppid, utime + stime in ticks)} for every process (all threads summed)."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rfind(")") + 2:].split()
        # fields[0] is stat field 3 (state): ppid is field 4, utime 14, stime 15.
        table[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def read_calls(pids):
    """read()-family system calls made so far by the processes (all threads):
    how batched the SPOE traffic reaches the agent."""
    n = 0
    for pid in pids:
        try:
            with open("/proc/%d/io" % pid) as f:
                n += int(re.search(r"^syscr: (\d+)$", f.read(), re.M).group(1))
        except (OSError, AttributeError):
            pass
    return n


def established(port):
    """Established TCP connections whose local port is port (IPv4), or
    connected unix sockets accepted on the path port."""
    n = 0
    if isinstance(port, str):
        try:
            with open("/proc/net/unix") as f:
                for line in f.readlines()[1:]:
                    x = line.split()
                    n += len(x) >= 8 and x[7] == port and x[5] == "03"
        except OSError:
            pass
        return n
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                n += state == "01" and int(local.split(":")[1], 16) == port
    except OSError:
        pass
    return n


def tree_ticks(roots, table):
    """{pid: ticks} for the roots and all their descendants (nginx workers,
    HAProxy's master-worker child)."""
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [p for p in roots if p in table]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out[pid] = table[pid][1]
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(before, after):
    """CPU seconds spent between two tree_ticks() snapshots; a process born in
    between counts in full."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / CLK_TCK


class Procs:
    """Every process the bench starts; stopped by PID, never by name."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def spawn(self, name, argv, port=None):
        log = open(os.path.join(self.workdir, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        p.bench_name = name
        p.bench_log = log.name
        self.procs.append(p)
        if port is not None and not wait_port(port, p):
            raise BenchError("%s did not listen on %d (see %s): %s"
                             % (name, port, log.name, tail(log.name)))
        return p

    def stop(self, p):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
            except ProcessLookupError:
                pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p)


class BenchError(Exception):
    pass


class StageMissing(Exception):
    """The build does not implement what a configuration needs (yet)."""


def tail(path, n=5):
    try:
        with open(path) as f:
            return " | ".join(f.read().splitlines()[-n:])
    except OSError:
        return ""


def fill(template, out, **values):
    with open(template) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    if re.search(r"@[A-Z_]+@", text):
        raise BenchError("%s: unfilled placeholder %s" % (template, re.search(r"@[A-Z_]+@", text).group(0)))
    with open(out, "w") as f:
        f.write(text)
    return out


def strip_haproxy_logs(path, threads):
    """No access log anywhere (nginx has access_log off): the bench measures
    the request path, not the logger. Also sets nbthread."""
    with open(path) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        s = line.strip()
        if s.startswith("log ") or s.startswith("log-format ") or s == "log global":
            continue
        if s.startswith("nbthread "):
            line = line[:len(line) - len(line.lstrip())] + "nbthread %d" % threads
        out.append(line)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# --------------------------------------------------------------------------
# HTTP checks and load


def http_get(url, headers):
    """(status, body, {lower-case header: value}) of one GET."""
    req = urllib.request.Request(url, headers=headers)
    # The TLS rows use the bench's own self-signed certificate.
    ctx = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, r.read().decode(errors="replace"), {k.lower(): v for k, v in r.getheaders()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), {k.lower(): v for k, v in e.headers.items()}
    except OSError as e:
        return 0, str(e), {}


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["req_per_s"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+(\S+)" % pct, out, re.M)
        r["p%s_us" % pct] = to_us(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    # Requests wrk gave up on after its 2 s timeout: at saturation a sign of
    # overload rather than of a wrong answer.
    r["timeouts"] = int(m.group(4)) if m else 0
    return r


# --------------------------------------------------------------------------
# The bench's shared services and keys


class Env:
    def __init__(self, build, workdir):
        self.build = os.path.abspath(build)
        self.bin = os.path.join(self.build, "bin")
        self.workdir = workdir
        self.procs = Procs(workdir)
        self.shared = {}      # name -> Popen: echo, redis, refsvc
        self.keys = {}
        self.tokens = {}
        self.distinct_files = {}

    def binary(self, name):
        path = os.path.join(self.bin, name)
        if not os.access(path, os.X_OK):
            raise StageMissing("%s is not built" % path)
        return path

    def echo(self):
        if "echo" not in self.shared:
            port = free_port()
            self.shared["echo"] = self.procs.spawn(
                "echo", [self.binary("spogate-echo"), "--listen", "127.0.0.1:%d" % port,
                         "--name", "echo"], port)
            self.echo_port = port
        return self.echo_port

    def redis(self):
        if "redis" not in self.shared:
            port = free_port()
            self.shared["redis"] = self.procs.spawn(
                "redis", ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--daemonize", "no",
                          "--dir", self.workdir], port)
            self.redis_port = port
        return self.redis_port

    def refsvc(self):
        """The reference Authz Service: bench-user has the role that grants
        the route's permission; bench-noperm has none."""
        if "refsvc" not in self.shared:
            port = free_port()
            policy = os.path.join(self.workdir, "policy.json")
            with open(policy, "w") as f:
                json.dump({"users": {"bench-user": ["reader"]}, "roles": {"reader": [PERMISSION]},
                           "cache_ttl_seconds": 30}, f)
            self.shared["refsvc"] = self.procs.spawn(
                "refsvc", [self.binary("spogate-refsvc"), "serve", "--listen", "127.0.0.1:%d" % port,
                           "--policy", policy], port)
            self.refsvc_port = port
        return self.refsvc_port

    def shared_pids(self):
        return [p.pid for p in self.shared.values()]

    def make_keys(self):
        """Keys and tokens for every configuration; 2048-bit RSA as the issue says."""
        kd = os.path.join(self.workdir, "keys")
        os.makedirs(kd, exist_ok=True)
        self.keys["rs256"] = jwtmint.make_rsa_key(kd, "rs256")
        self.keys["es256"] = jwtmint.make_ec_key(kd, "es256")
        self.keys["eddsa"] = jwtmint.make_ed25519_key(kd, "eddsa")
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "iat": now,
                  "nbf": now - 60, "exp": now + 3600, "roles": ["reader"],
                  "permissions": ["bench.read"], "scope": "bench.read"}
        self.claims = claims
        self.tokens["hs256"] = [jwtmint.mint_hs256(HS256_SECRET, claims)]
        self.tokens["rs256"] = jwtmint.mint_openssl("RS256", self.keys["rs256"][0], [claims],
                                                    os.path.join(kd, "si"), kid="rs1")
        self.tokens["es256"] = jwtmint.mint_openssl("ES256", self.keys["es256"][0], [claims],
                                                    os.path.join(kd, "si"), kid="es1")
        self.tokens["eddsa"] = jwtmint.mint_openssl("EdDSA", self.keys["eddsa"][0], [claims],
                                                    os.path.join(kd, "si"), kid="ed1")
        noperm = dict(claims, sub="bench-noperm", roles=["nobody"], permissions=[], scope="")
        self.tokens["rs256-noperm"] = jwtmint.mint_openssl("RS256", self.keys["rs256"][0], [noperm],
                                                           os.path.join(kd, "si"), kid="rs1")
        self.tokens["opaque"] = ["bench-opaque-token"]
        # Tokens whose signature does not match: only a real verifier refuses them.
        for kind in ("rs256", "es256", "eddsa"):
            t = self.tokens[kind][0]
            self.tokens[kind + "-bad"] = [t[:-8] + ("AAAAAAAA" if not t.endswith("AAAAAAAA") else "BBBBBBBB")]
        self.tokens["hs256-bad"] = [jwtmint.mint_hs256("not-the-secret", claims)]

    def distinct(self, kind, n):
        """n distinct valid tokens of kind (rs256, es256, eddsa) for the
        cache-miss path, minted once; returns the file that lists them."""
        name = kind + "-distinct"
        if name not in self.tokens:
            now = int(time.time())
            claims = [dict(self.claims, jti="bench-%d" % i, iat=now) for i in range(n)]
            if kind == "rs256":
                signer = jwtmint.RsaSigner(self.keys["rs256"][0])
                self.tokens[name] = [signer.mint(c, kid="rs1") for c in claims]
            else:
                alg = {"es256": "ES256", "eddsa": "EdDSA"}[kind]
                self.tokens[name] = jwtmint.mint_openssl(alg, self.keys[kind][0], claims,
                                                         os.path.join(self.workdir, "keys", "si"),
                                                         kid=kind[:2] + "1")
            path = os.path.join(self.workdir, name + ".tokens")
            with open(path, "w") as f:
                f.write("\n".join(self.tokens[name]) + "\n")
            self.distinct_files[kind] = path
        return self.distinct_files[kind]

    def tls_cert(self):
        """A self-signed certificate for the TLS rows (made once)."""
        path = os.path.join(self.workdir, "bench-tls.pem")
        if not os.path.exists(path):
            key, crt = path + ".key", path + ".crt"
            out = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                  "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-keyout", key,
                                  "-out", crt, "-subj", "/CN=localhost"],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise BenchError("openssl: %s" % out.stderr.strip())
            with open(path, "w") as f:
                f.write(open(crt).read() + open(key).read())
        return path

    def start_haproxy(self, name, cfg):
        port = self.cfg_port
        strip_haproxy_logs(cfg, SERVER_THREADS)
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", cfg],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise BenchError("%s: haproxy -c refused %s: %s" % (name, cfg, (check.stdout + check.stderr).strip()))
        return self.procs.spawn(name + "-haproxy", [HAPROXY, "-f", cfg, "-db"], port)

    def start_agent(self, name, agent_json, port):
        agent = self.binary("spogate-agent")
        check = subprocess.run([agent, "--check", "-c", agent_json], capture_output=True, text=True)
        if check.returncode != 0:
            raise StageMissing("the agent refuses the configuration: %s"
                               % (check.stdout + check.stderr).strip())
        return self.procs.spawn(name + "-agent", [agent, "-c", agent_json], port)


# --------------------------------------------------------------------------
# Configurations. start() starts what a configuration needs and returns a
# target: how to drive it and which processes are its servers.


class HttpTarget:
    def __init__(self, url, header, pids, agent_pids, checks, agent_port=None):
        self.url = url
        self.header = header        # the Authorization value every wrk request carries, or None
        self.pids = pids            # its own server processes (HAProxy, nginx, agent)
        self.agent_pids = agent_pids
        self.checks = checks        # [Check]
        self.agent_port = agent_port  # where HAProxy's SPOE connections land


class SpopTarget:
    def __init__(self, port, agent_pid, args):
        self.port = port
        self.agent_pid = agent_pid
        self.args = args            # spogate-bench arguments besides target/duration


class Check:
    """One request made before measuring. A failed check means the bench is
    broken; a failed probe means the build does not implement the stage."""

    def __init__(self, token, status, what, header=None, probe=False):
        self.token = token          # a key of Env.tokens, or None for no Authorization
        self.status = status
        self.what = what
        self.header = header        # a response header that must be present
        self.probe = probe


def cfg_dir(env, name):
    d = os.path.join(env.workdir, name)
    os.makedirs(d, exist_ok=True)
    env.cfg_port = free_port()
    return d


def start_native(env, c):
    alg = c["alg"]
    d = cfg_dir(env, c["name"])
    key = HS256_SECRET if alg == "HS256" else env.keys["rs256"][1]
    cfg = fill(os.path.join(CONF, "native.cfg.in"), os.path.join(d, "haproxy.cfg"),
               THREADS=SERVER_THREADS, HTTP_PORT=env.cfg_port, ECHO_PORT=env.echo(),
               ALG=alg, KEY=key, IP_LIMIT=NEVER_FIRING_LIMIT)
    p = env.start_haproxy(c["name"], cfg)
    kind = alg.lower()
    other = "rs256" if kind == "hs256" else "hs256"
    return HttpTarget("http://127.0.0.1:%d/private/bench" % env.cfg_port,
                      "Bearer " + env.tokens[kind][0], [p.pid], [],
                      [Check(kind, 200, "a valid token passes"),
                       Check(None, 401, "no token is refused"),
                       Check(kind + "-bad", 401, "a bad signature is refused"),
                       Check(other, 401, "another alg is refused (alg pinned)")])


def start_nginx(env, c):
    d = cfg_dir(env, c["name"])
    conf = fill(os.path.join(CONF, "nginx-authreq.conf.in"), os.path.join(d, "nginx.conf"),
                THREADS=SERVER_THREADS, DIR=d, HTTP_PORT=env.cfg_port, AUTH_PORT=free_port(),
                ECHO_PORT=env.echo())
    errlog = os.path.join(d, "nginx-error.log")
    check = subprocess.run(["/usr/sbin/nginx", "-t", "-q", "-p", d, "-e", errlog, "-c", conf],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise BenchError("nginx -t refused %s: %s" % (conf, (check.stdout + check.stderr).strip()))
    p = env.procs.spawn(c["name"] + "-nginx",
                        ["/usr/sbin/nginx", "-p", d, "-e", errlog, "-c", conf], env.cfg_port)
    return HttpTarget("http://127.0.0.1:%d/private/bench" % env.cfg_port,
                      "Bearer " + env.tokens["rs256"][0], [p.pid], [],
                      [Check("rs256", 200, "auth_request then the echo backend")])


# --------------------------------------------------------------------------
# spogate: what the agent does is built from parts, and each spogate-<name>
# configuration is one line of SPOGATE_STAGES naming its parts. The config
# is generated by spogate-gen from the bench's gateway YAML with the parts'
# sections merged in. A part is:
#   gateway(env):  gateway YAML sections ("route" goes into the route)
#   services:      shared services it needs ("redis", "refsvc")
#   token:         the token every request carries (a key of Env.tokens)
#   probe:         requests only a real implementation of the part answers
#                  this way; if the agent does not, the build does not have
#                  the part yet and the configuration is skipped (reported)
#   spop:          spogate-bench arguments matching the route (perm, limits)

PERMISSION = "bench.read"
STAGE_TOKEN = "stage-token"   # in a probe: the token of the stage's first part


def jwt_auth(alg):
    def sections(env):
        kind = alg.lower()
        return {"auth": {"mode": "jwt", "issuer": ISSUER, "audiences": [AUDIENCE],
                         "pem_keys": [{"kid": kind[:2] + "1", "alg": alg, "file": env.keys[kind][1]}],
                         "algorithms": [alg], "cache_ttl": "60s"}}
    return sections


PARTS = {
    "token": {"desc": "token presence only (auth.mode none)",
              "gateway": lambda env: {"auth": {"mode": "none"}}, "token": "opaque",
              "probe": [Check(None, 401, "no token is refused")]},
    "rs256": {"desc": "RS256 JWT (cached)", "gateway": jwt_auth("RS256"), "token": "rs256",
              "probe": [Check("rs256-bad", 401, "a bad RS256 signature is refused")]},
    "es256": {"desc": "ES256 JWT (cached)", "gateway": jwt_auth("ES256"), "token": "es256",
              "probe": [Check("es256-bad", 401, "a bad ES256 signature is refused")]},
    "eddsa": {"desc": "EdDSA (Ed25519) JWT (cached)", "gateway": jwt_auth("EdDSA"), "token": "eddsa",
              "probe": [Check("eddsa-bad", 401, "a bad EdDSA signature is refused")]},
    "claims": {"desc": "authz by the token's claims",
               "gateway": lambda env: {"authz": {"mode": "claims"}, "route": {"permission": PERMISSION}},
               "probe": [Check("rs256-noperm", 403, "a token without the permission is refused")],
               "spop": ["--perm", PERMISSION]},
    "authz": {"desc": "authz by the reference service (cached)", "services": ["refsvc"],
              "gateway": lambda env: {"authz": {"mode": "service", "service": "authz-service",
                                                "cache_ttl": "30s"},
                                      "route": {"permission": PERMISSION}},
              "probe": [Check("rs256-noperm", 403, "the Authz Service refuses a user without the role")],
              "spop": ["--perm", PERMISSION]},
    "limits": {"desc": "per-user and per-IP limits in Redis", "services": ["redis"],
               "gateway": lambda env: {"rate_limiting": {"per_user": "%d/minute" % NEVER_FIRING_LIMIT,
                                                         "per_ip": "%d/minute" % NEVER_FIRING_LIMIT},
                                       "redis": {"address": "127.0.0.1:%d" % env.redis()}},
               "probe": [Check(STAGE_TOKEN, 200, "the agent reports the applied limit",
                               header="RateLimit-Limit")],
               "spop": ["--rl-user", "%d/60" % NEVER_FIRING_LIMIT, "--rl-ip", "%d/60" % NEVER_FIRING_LIMIT]},
    "lease": {"desc": "lease mode", "services": [],
              "gateway": lambda env: {"rate_limiting": {"mode": "lease"}}, "probe": []},
}
# The issue's full pipeline: RS256 cached + authz + both Redis limits.
FULL = ("rs256", "authz", "limits")


def stage(name, *parts):
    """A spogate-<name> configuration made of parts (the first one authenticates)."""
    ps = [PARTS[p] for p in parts]

    def gateway(env):
        out = {}
        for p in ps:
            for k, v in p["gateway"](env).items():
                out.setdefault(k, {}).update(v)
        return out
    return {"name": name, "parts": parts, "desc": " + ".join(p["desc"] for p in ps),
            "gateway": gateway, "token": ps[0]["token"],
            "full": set(FULL) <= set(parts) and "lease" not in parts,
            "services": sorted({s for p in ps for s in p.get("services", [])}),
            "probe": [Check(ps[0]["token"] if k.token == STAGE_TOKEN else k.token, k.status, k.what,
                            k.header) for p in ps for k in p["probe"]],
            "spop": [a for p in ps for a in p.get("spop", [])]}


SPOGATE_STAGES = [
    stage("token", "token"),
    stage("limits", "token", "limits"),
    stage("rs256", "rs256"),
    stage("es256", "es256"),
    stage("eddsa", "eddsa"),
    stage("rs256-claims", "rs256", "claims"),
    stage("rs256-authz", "rs256", "authz"),
    stage("rs256-limits", "rs256", "limits"),
    stage("full", *FULL),
    # rate_limiting.mode: lease beside the exact default
    stage("limits-lease", "token", "limits", "lease"),
    stage("full-lease", *FULL, "lease"),
]


def generate(env, name, stage, tls=False, unix=False):
    """Runs spogate-gen on the bench's gateway YAML (plus the stage's
    sections; with tls, TLS termination on env.tls_port; with unix, the
    agent on a unix socket) and returns (dir, agent port, or the socket's
    path). JSON is YAML, so the inputs are written with json.dumps."""
    d = cfg_dir(env, name)
    agent_port = os.path.join(d, "agent.sock") if unix else free_port()
    route = {"path": "/private/**", "service": "echo", "auth_required": stage is not None}
    gw = {"port": env.cfg_port, "bind": "127.0.0.1", "nbthread": SERVER_THREADS, "maxconn": 4096,
          "routes": [route],
          "agent": {"address": ("unix:%s" if unix else "127.0.0.1:%d") % agent_port,
                    "threads": SERVER_THREADS,
                    "log_level": "warn"},
          "admin": {"stats": "127.0.0.1:%d" % free_port()}}
    if tls:
        env.tls_port = free_port()
        gw["tls"] = {"port": env.tls_port, "certificates": [env.tls_cert()], "redirect_http": False}
    if stage is None:
        gw["auth"] = {"mode": "none"}
    else:
        for k, v in stage["gateway"](env).items():
            if k == "route":
                route.update(v)
            else:
                gw[k] = v
    services = {"echo": {"servers": ["127.0.0.1:%d" % env.echo()], "health": False}}
    if stage is not None and "refsvc" in stage.get("services", []):
        services["authz-service"] = {"grpc": "127.0.0.1:%d" % env.refsvc()}
    if stage is not None and "redis" in stage.get("services", []):
        env.redis()
    gw_path, reg_path = os.path.join(d, "gateway.yaml"), os.path.join(d, "registry.yaml")
    with open(gw_path, "w") as f:
        json.dump({"gateway": gw}, f, indent=2)
    with open(reg_path, "w") as f:
        json.dump({"services": services}, f, indent=2)
    out = subprocess.run([env.binary("spogate-gen"), "-q", "-g", gw_path, "-r", reg_path,
                          "-o", d, "--run-dir", d], capture_output=True, text=True)
    if out.returncode != 0:
        raise StageMissing("spogate-gen refuses the stage: %s" % (out.stdout + out.stderr).strip())
    return d, agent_port


def bench_url(env, c):
    """The URL wrk drives: HTTPS (HTTP/1.1 over TLS, kept-alive connections,
    so record cost rather than handshakes) for the -tls rows."""
    if c.get("tls"):
        return "https://127.0.0.1:%d/private/bench" % env.tls_port
    return "http://127.0.0.1:%d/private/bench" % env.cfg_port


def start_plain(env, c):
    d, _ = generate(env, c["name"], None, c.get("tls", False))
    p = env.start_haproxy(c["name"], os.path.join(d, "haproxy.cfg"))
    return HttpTarget(bench_url(env, c), None, [p.pid], [],
                      [Check(None, 200, "proxies to the echo backend")])


def start_spogate(env, c):
    stage = c["stage"]
    d, agent_port = generate(env, c["name"], stage, c.get("tls", False), c.get("unix", False))
    agent = env.start_agent(c["name"], os.path.join(d, "agent.json"), agent_port)
    p = env.start_haproxy(c["name"], os.path.join(d, "haproxy.cfg"))
    return HttpTarget(bench_url(env, c),
                      "Bearer " + env.tokens[stage["token"]][0], [p.pid, agent.pid], [agent.pid],
                      [Check(k.token, k.status, k.what, k.header, probe=True) for k in stage["probe"]]
                      + [Check(stage["token"], 200, "a valid token passes")], agent_port)


def start_agent_only(env, c):
    """The agent alone, with the stage's generated agent.json; the miss path
    sends distinct tokens with the token cache off, so every decision verifies."""
    stage = c["stage"]
    d, port = generate(env, c["name"], stage)
    aj = os.path.join(d, "agent.json")
    if c["path"].startswith("miss"):
        with open(aj) as f:
            cfg = json.load(f)
        cfg["auth"]["cache_ttl_ms"] = 0
        with open(aj, "w") as f:
            json.dump(cfg, f, indent=2)
    agent = env.start_agent(c["name"], aj, port)
    t = SpopTarget(port, agent.pid, ["--connections", str(c["connections"]), "--depth", str(c["depth"]),
                                     "--mix", "token:100"] + stage.get("spop", []))
    for k in stage["probe"]:
        probe_agent(env, c, t, k)
    if c["path"].startswith("miss"):
        t.args += ["--tokens-file", env.distinct(stage["token"], DISTINCT_TOKENS)]
    else:
        t.args += ["--token", env.tokens[stage["token"]][0]]
    return t


def probe_agent(env, c, t, k):
    """The agent-only rows need their stage built too: one decision through
    spogate-bench with the probe's token must get the probe's status."""
    if k.header or k.status == 200:
        return
    cmd = [env.binary("spogate-bench"), "--target", "127.0.0.1:%d" % t.port, "--connections", "1",
           "--duration", "0.2", "--warmup", "0", "--json"]
    if k.token is None:
        cmd += ["--mix", "missing:100"]
    else:
        cmd += ["--mix", "token:100", "--token", env.tokens[k.token][0]]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    try:
        j = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError("%s: spogate-bench probe failed: %s" % (c["name"], out.stderr.strip()))
    key = {401: "s401", 403: "s403", 429: "s429"}.get(k.status)
    if not key or j.get(key, 0) != j["decisions"] or not j["decisions"]:
        raise StageMissing("the stage is not enforced by this build: %s: %s" % (c["name"], k.what))


# More distinct tokens than decisions in flight (4 x 64), signed in Python.
DISTINCT_TOKENS = 512


def configurations():
    """Every configuration, in the order of a round."""
    out = [
        {"name": "plain", "kind": "http", "start": start_plain,
         "desc": "HAProxy proxying to the echo backend, no auth, no limits (generated config)"},
        {"name": "plain-tls", "kind": "http", "start": start_plain, "tls": True,
         "desc": "plain behind gateway.tls: HTTPS (HTTP/1.1, kept-alive, ECDSA P-256) to HAProxy"},
        {"name": "native-hs256", "kind": "http", "start": start_native, "alg": "HS256",
         "desc": "HAProxy jwt_verify HS256, alg pinned, exp check, per-IP stick-table limit"},
        {"name": "native-rs256", "kind": "http", "start": start_native, "alg": "RS256",
         "desc": "HAProxy jwt_verify RS256 (2048-bit), alg pinned, exp check, per-IP stick-table limit"},
        {"name": "nginx-authreq", "kind": "http", "start": start_nginx,
         "desc": "nginx auth_request to a zero-work 200 endpoint, keepalive upstreams"},
    ]
    for s in SPOGATE_STAGES:
        out.append({"name": "spogate-" + s["name"], "kind": "http", "start": start_spogate,
                    "stage": s, "full": s.get("full", False), "desc": "HAProxy + agent: " + s["desc"]})
        if s.get("full"):
            out.append({"name": "spogate-full-tls", "kind": "http", "start": start_spogate,
                        "stage": s, "tls": True,
                        "desc": "spogate-full behind gateway.tls (HTTPS, HTTP/1.1, kept-alive)"})
        if s["name"] in ("token", "full"):
            out.append({"name": "spogate-%s-unix" % s["name"], "kind": "http",
                        "start": start_spogate, "stage": s, "unix": True,
                        "desc": "spogate-%s with the agent on a unix socket "
                                "(agent.address: unix:/path)" % s["name"]})
    # The agent alone: token presence, and the RS256 cache-hit and cache-miss
    # paths (skipped with the rs256 stage until the build has it).
    by_name = {s["name"]: s for s in SPOGATE_STAGES}
    for path, stage in (("token", by_name["token"]), ("hit", by_name["rs256"]),
                        ("miss", by_name["rs256"])):
        for depth, conns in ((1, 32), (64, 4)):
            what = {"token": "token presence", "hit": "RS256 cache hit (one token)",
                    "miss": "RS256 cache miss (%d distinct tokens, cache off)" % DISTINCT_TOKENS}[path]
            out.append({"name": "agent-d%d-%s" % (depth, path), "kind": "spop",
                        "start": start_agent_only, "stage": stage, "path": path,
                        "depth": depth, "connections": conns,
                        "desc": "spogate-bench to the agent alone, %d connections x depth %d, %s"
                                % (conns, depth, what)})
    # The verification rate of the other asymmetric algorithms, next to the
    # RS256 miss path above: distinct tokens, cache off, depth 64.
    for kind, alg in (("es256", "ES256"), ("eddsa", "EdDSA")):
        out.append({"name": "agent-d64-miss-" + kind, "kind": "spop", "start": start_agent_only,
                    "stage": by_name[kind], "path": "miss-" + kind, "depth": 64, "connections": 4,
                    "desc": "spogate-bench to the agent alone, 4 connections x depth 64, %s cache "
                            "miss (%d distinct tokens, cache off)" % (alg, DISTINCT_TOKENS)})
    return out


# --------------------------------------------------------------------------
# Checks and measured runs


def run_checks(env, c, t):
    for k in t.checks:
        token = env.tokens[k.token][0] if k.token else None
        status, body, headers = http_get(t.url, {"Authorization": "Bearer " + token} if token else {})
        if status == k.status and (k.header is None or k.header.lower() in headers):
            continue
        msg = "%s: %s: got %d%s, want %d%s (%s)" % (
            c["name"], k.what, status, "" if k.header is None or k.header.lower() in headers
            else " without " + k.header, k.status, "" if k.header is None else " with " + k.header,
            " ".join(body[:60].split()))
        if k.probe:
            raise StageMissing("the stage is not enforced by this build: " + msg)
        raise BenchError(msg)


def run_http(env, c, t, duration, connections=WRK_CONNECTIONS):
    cmd = ["wrk", "-t%d" % WRK_THREADS, "-c%d" % connections, "-d%ds" % duration, "--latency"]
    if t.header:
        cmd += ["-H", "Authorization: " + t.header]
    cmd.append(t.url)
    roots = t.pids + env.shared_pids()
    before = tree_ticks(roots, proc_table())
    reads = read_calls(t.agent_pids)
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    conns = clients = None
    try:
        # The client connections HAProxy holds (the sweep checks that every
        # wrk connection is open; a loaded machine can start wrk late): the
        # most seen over the first 3/4 of the run. The SPOE connections:
        # half-way through.
        front = int(re.search(r":(\d+)/", t.url).group(1))
        t0 = time.monotonic()
        while True:
            clients = max(clients or 0, established(front))
            elapsed = time.monotonic() - t0
            if t.agent_port and conns is None and elapsed >= duration / 2.0:
                conns = established(t.agent_port)
            if elapsed >= duration * 0.75 or wrk.poll() is not None:
                break
            time.sleep(0.25)
        stdout, stderr = wrk.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        wrk.kill()
        wrk.wait()
        raise BenchError("%s: wrk did not finish" % c["name"])
    after = tree_ticks(roots, proc_table())
    reads = read_calls(t.agent_pids) - reads
    if wrk.returncode != 0:
        raise BenchError("%s: wrk failed: %s" % (c["name"], stderr.strip()))
    r = parse_wrk(stdout)
    if r["requests"] == 0:
        raise BenchError("%s: wrk served no request:\n%s" % (c["name"], stdout))
    cpu = cpu_seconds(before, after)
    agent = cpu_seconds({p: before.get(p, 0) for p in t.agent_pids},
                        {p: after.get(p, 0) for p in t.agent_pids})
    r["server_cpu_us_per_req"] = cpu * 1e6 / r["requests"]
    r["agent_cpu_us_per_req"] = agent * 1e6 / r["requests"] if t.agent_pids else None
    r["agent_reads_per_req"] = reads / r["requests"] if t.agent_pids else None
    r["agent_connections"] = conns
    r["client_connections"] = clients
    r["redis_cpu_us_per_req"] = (redis_cpu_us(env, before, after, r["requests"])
                                 if "redis" in (c.get("stage") or {}).get("services", []) else None)
    r["errors"] = r["non_2xx"] + r["socket_errors"]
    return r


def redis_cpu_us(env, before, after, requests):
    """Redis CPU per request over a run (the bench started Redis, so it
    knows its PID)."""
    p = env.shared.get("redis")
    if p is None or not requests:
        return None
    return cpu_seconds({p.pid: before.get(p.pid, 0)}, {p.pid: after.get(p.pid, 0)}) * 1e6 / requests


def run_spop(env, c, t, duration, warmup):
    cmd = [env.binary("spogate-bench"), "--target", "127.0.0.1:%d" % t.port,
           "--duration", str(duration), "--warmup", str(warmup),
           "--agent-pid", str(t.agent_pid), "--json"] + t.args
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 30)
    if out.returncode != 0:
        raise BenchError("%s: spogate-bench failed: %s" % (c["name"], out.stderr.strip()))
    j = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = j["agent_cpu_us_per_decision"]
    return {"requests": j["decisions"], "req_per_s": float(j["decisions_per_s"]),
            "p50_us": float(j["p50_us"]), "p99_us": float(j["p99_us"]),
            "server_cpu_us_per_req": cpu, "agent_cpu_us_per_req": cpu,
            "redis_cpu_us_per_req": None,
            "allow": j["allow"], "errors": j["decisions"] - j["allow"]}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------
# Targets (ratios from the same run)


def find(results, name):
    for r in results:
        if r["name"] == name:
            return r
    return None


def targets(results):
    """The issue's targets, each met / not met / not measured, with its figure."""
    full = next((r for r in results if r.get("full")), None)
    # Until the full pipeline is built, the figure of the configuration with
    # the most of its parts is given, marked provisional.
    spogate = [r for r in results if r["name"].startswith("spogate-")]
    pipe = full or (max(reversed(spogate), key=lambda r: len(set(r["parts"]) & set(FULL)))
                    if spogate else None)
    basis = None
    if pipe is not None:
        basis = pipe["name"] + ("" if full else
                                " (provisional: the full pipeline, RS256 cached + authz + "
                                "both Redis limits, is not built yet)")
    plain = find(results, "plain")
    nrs = find(results, "native-rs256")
    nhs = find(results, "native-hs256")
    # The agent target holds at every pipelining depth: judged on the worst.
    hit = [r for r in results if r["kind"] == "spop" and r.get("path") == "hit"]
    agent_rows = hit or [r for r in results if r["kind"] == "spop"]
    agent_worst = max(agent_rows, key=lambda r: r["agent_cpu_us_per_req"] or 0) if agent_rows else None

    def ratio(a, b, key):
        if a is None or b is None or not a.get(key) or not b.get(key):
            return None
        return a[key] / b[key]

    def judge(value, op, limit, complete):
        if value is None:
            return "not measured"
        ok = value >= limit if op == ">=" else value <= limit
        if not complete:
            return "not measured (provisional figure %s)" % ("would meet" if ok else "would not meet")
        return "met" if ok else "not met"

    # req/s ratios are the targets; the same ratio from CPU per request (the
    # capacity of server cores that only serve) is given beside them, as it
    # does not depend on how the client and the servers shared the cores.
    out = []
    v = ratio(pipe, nrs, "req_per_s")
    out.append({"id": "pipeline_vs_native_rs256_rps", "target": ">= 2.0",
                "description": "full pipeline req/s / native-rs256 req/s",
                "value": v, "by_cpu": ratio(nrs, pipe, "server_cpu_us_per_req"),
                "basis": basis, "status": judge(v, ">=", 2.0, full is not None)})
    v = ratio(pipe, nhs, "req_per_s")
    out.append({"id": "pipeline_vs_native_hs256_rps", "target": ">= 0.75",
                "description": "full pipeline req/s / native-hs256 req/s",
                "value": v, "by_cpu": ratio(nhs, pipe, "server_cpu_us_per_req"),
                "basis": basis, "status": judge(v, ">=", 0.75, full is not None)})
    v = pipe["server_cpu_us_per_req"] if pipe else None
    out.append({"id": "pipeline_server_cpu_us_per_req", "target": "<= 70",
                "description": "full pipeline server CPU per request (us)",
                "value": v, "basis": basis, "status": judge(v, "<=", 70, full is not None)})
    v = agent_worst["agent_cpu_us_per_req"] if agent_worst else None
    out.append({"id": "agent_cpu_us_per_cache_hit_decision", "target": "<= 10",
                "description": "agent CPU per decision on the cache-hit path (us), worst depth",
                "value": v,
                "basis": ("worst of %s" % ", ".join("%s %.1f" % (r["name"], r["agent_cpu_us_per_req"] or 0)
                                                    for r in agent_rows)
                          + ("" if hit else " (provisional: no JWT cache in this build, "
                                            "token-presence decision)")) if agent_rows else None,
                "status": judge(v, "<=", 10, bool(hit))})
    v = ratio(pipe, plain, "p99_us")
    out.append({"id": "pipeline_p99_vs_plain", "target": "<= 2.0",
                "description": "full pipeline p99 / plain p99, same wrk connections",
                "value": v, "basis": basis, "status": judge(v, "<=", 2.0, full is not None)})
    return out


# --------------------------------------------------------------------------
# The saturation sweep


def run_sweep(env, live, counts, rounds, duration, warmup, runs):
    """wrk at each connection count on the sweep's configurations, the
    configurations and counts alternated within every round like the main
    rounds; runs[(name, connections)] collects the results."""
    if warmup > 0:
        # The new connections' first requests (backend and SPOE connections).
        for c, t in live:
            run_http(env, c, t, 1, max(counts))
    for rnd in range(rounds):
        for n in counts:
            for c, t in live:
                r = run_http(env, c, t, duration, n)
                r["round"] = rnd + 1
                r["connections"] = n
                runs.setdefault((c["name"], n), []).append(r)
                print("bench: sweep %d -c%-4d %-16s %8.0f req/s  p99 %8.0f us  server CPU %6.1f us/req"
                      "  %s connections open%s"
                      % (rnd + 1, n, c["name"], r["req_per_s"], r["p99_us"] or 0,
                         r["server_cpu_us_per_req"] or 0, r["client_connections"],
                         "  (!) %d non-2xx, %d socket errors, %d timeouts"
                         % (r["non_2xx"], r["socket_errors"] - r["timeouts"], r["timeouts"])
                         if r["errors"] else ""), flush=True)


def sweep_summary(names, counts, runs, rounds, duration):
    """Per configuration and connection count: medians over the rounds; a
    point is eligible when it has no error and its p99 is under
    SWEEP_P99_BOUND x plain's p99 at the same count; best is the eligible
    point with the most req/s."""
    rows = []
    for name in names:
        points = []
        for n in counts:
            rr = runs.get((name, n), [])
            if not rr:
                continue
            points.append({"connections": n,
                           "req_per_s": median([r["req_per_s"] for r in rr]),
                           "p50_us": median([r["p50_us"] for r in rr]),
                           "p99_us": median([r["p99_us"] for r in rr]),
                           "server_cpu_us_per_req": median([r["server_cpu_us_per_req"] for r in rr]),
                           "redis_cpu_us_per_req": median([r.get("redis_cpu_us_per_req") for r in rr]),
                           # non-2xx: at saturation the 503s of the SPOE
                           # processing timeout (fail closed), so overload.
                           "non_2xx": sum(r["non_2xx"] for r in rr),
                           "socket_errors": sum(r["socket_errors"] - r["timeouts"] for r in rr),
                           "timeouts": sum(r["timeouts"] for r in rr),
                           "client_connections": median([r.get("client_connections") for r in rr]),
                           "rounds": rr})
        rows.append({"name": name, "points": points})
    plain = {p["connections"]: p for r in rows if r["name"] == "plain" for p in r["points"]}
    for row in rows:
        for p in row["points"]:
            ref = plain.get(p["connections"])
            p["p99_vs_plain"] = (p["p99_us"] / ref["p99_us"]
                                 if ref and ref["p99_us"] and p["p99_us"] is not None else None)
            # Without plain at this count there is no bound to hold.
            p["eligible"] = (p["p99_vs_plain"] is not None
                             and not (p["non_2xx"] or p["socket_errors"] or p["timeouts"])
                             and (row["name"] == "plain" or p["p99_vs_plain"] < SWEEP_P99_BOUND))
        ok = [p for p in row["points"] if p["eligible"]]
        best = max(ok, key=lambda p: p["req_per_s"]) if ok else None
        row["best_req_per_s"] = best["req_per_s"] if best else None
        row["best_connections"] = best["connections"] if best else None
    base = next((r for r in rows if r["name"] == "plain"), None)
    for row in rows:
        row["best_vs_plain"] = (row["best_req_per_s"] / base["best_req_per_s"]
                                if base and base["best_req_per_s"] and row["best_req_per_s"] else None)
    return {"connections": list(counts), "rounds": rounds, "duration_s": duration,
            "p99_bound_vs_plain": SWEEP_P99_BOUND,
            "wrk": "wrk -t%d -cN -d%ds --latency" % (WRK_THREADS, duration),
            "rule": "best = most req/s among the connection counts N where p99 < %.0fx plain's p99 "
                    "at N and no non-2xx answer, socket error or wrk timeout (medians over the rounds)" % SWEEP_P99_BOUND,
            "configurations": rows}


def sweep_rows(sweep):
    """(head, rows) of the sweep's table: req/s and p99 per connection count,
    an asterisk on a point that is not eligible, then the best."""
    counts = sweep["connections"]
    head = ["configuration"]
    for n in counts:
        head += ["c%d req/s" % n, "c%d p99 us" % n]
    head += ["best req/s", "at c", "vs plain"]
    rows = []
    for row in sweep["configurations"]:
        by = {p["connections"]: p for p in row["points"]}
        cells = [row["name"]]
        for n in counts:
            p = by.get(n)
            if p is None:
                cells += ["-", "-"]
                continue
            mark = "" if p["eligible"] else "*"
            if p["non_2xx"] or p["socket_errors"] or p["timeouts"]:
                mark += "!"
            cells += [fmt(p["req_per_s"], "%.0f"), fmt(p["p99_us"], "%.0f") + mark]
        cells += [fmt(row["best_req_per_s"], "%.0f"), fmt(row["best_connections"], "%d"),
                  fmt(row["best_vs_plain"], "%.2f")]
        rows.append(cells)
    return head, rows


SWEEP_LEGEND = ("* p99 not under %.0fx plain's p99 at the same connections (not eligible); "
                "! non-2xx answers, socket errors or wrk timeouts (not eligible)" % SWEEP_P99_BOUND)


def sweep_table(sweep):
    head, rows = sweep_rows(sweep)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["saturation sweep: %s, %d rounds, medians; best = %s"
             % (sweep["wrk"], sweep["rounds"], sweep["rule"].split("= ", 1)[1])]
    lines += ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)
                        for i, (x, w) in enumerate(zip(row, widths))) for row in [head] + rows]
    lines.insert(2, "  ".join("-" * w for w in widths))
    lines.append(SWEEP_LEGEND)
    return "\n".join(lines)


def sweep_markdown(sweep):
    head, rows = sweep_rows(sweep)
    out = ["Saturation sweep: `%s` for N in %s, %d rounds alternated, medians. Best = %s."
           % (sweep["wrk"], ", ".join(str(n) for n in sweep["connections"]), sweep["rounds"],
              sweep["rule"].split("= ", 1)[1]),
           "",
           "| " + " | ".join(head) + " |",
           "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        out.append("| `%s` | " % r[0] + " | ".join(c.replace("*", "\\*") for c in r[1:]) + " |")
    out += ["", SWEEP_LEGEND.replace("*", "\\*") + "."]
    return out


# --------------------------------------------------------------------------
# Output


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def table(results, skipped):
    plain = find(results, "plain")
    head = ("configuration", "req/s", "vs plain", "p50 us", "p99 us", "server CPU us/req", "agent CPU us/req",
            "Redis CPU us/req")
    rows = []
    for r in results:
        vs = r["req_per_s"] / plain["req_per_s"] if plain and r["kind"] == "http" and plain["req_per_s"] else None
        rows.append((r["name"] + ("  (!) errors" if r["errors"] else ""), fmt(r["req_per_s"], "%.0f"),
                     fmt(vs, "%.2f"), fmt(r["p50_us"], "%.0f"), fmt(r["p99_us"], "%.0f"),
                     fmt(r["server_cpu_us_per_req"]), fmt(r["agent_cpu_us_per_req"]),
                     fmt(r.get("redis_cpu_us_per_req"))))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)
                       for i, (x, w) in enumerate(zip(row, widths))) for row in [head] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for s in skipped:
        reason = s["reason"] if len(s["reason"]) < 110 else s["reason"][:107] + "..."
        lines.append("skipped %s: %s" % (s["name"], reason))
    return "\n".join(lines)


def markdown(doc):
    """The README's Performance section, from one run's results."""
    m, st = doc["machine"], doc["settings"]
    plain = find(doc["configurations"], "plain")
    out = ["Measured with `%s` on %s (%d cores, %s), %s; commit %s; %s. "
           "%d rounds of %d s per configuration, alternated; medians. Client: `%s` on the same "
           "machine; every server runs %d thread (HAProxy nbthread, nginx worker_processes, agent "
           "threads); no access logs. Load average %.1f at the start, %.1f at the end."
           % (doc["command"], m["cpu_model"] or "?", m["nproc"], m["kernel"], doc["date"][:10],
              m["commit"], m.get("haproxy") or "HAProxy ?", st["rounds"], st["duration_s"], st["wrk"], st["server_threads"],
              m["loadavg_start"], m["loadavg_end"]),
           "",
           "| configuration | req/s | vs plain | p50 µs | p99 µs | server CPU µs/req | agent CPU µs/req "
           "| Redis CPU µs/req |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["configurations"]:
        vs = (r["req_per_s"] / plain["req_per_s"]
              if plain and r["kind"] == "http" and plain["req_per_s"] else None)
        out.append("| `%s` | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], fmt(r["req_per_s"], "%.0f"), fmt(vs, "%.2f"), fmt(r["p50_us"], "%.0f"),
            fmt(r["p99_us"], "%.0f"), fmt(r["server_cpu_us_per_req"]), fmt(r["agent_cpu_us_per_req"]),
            fmt(r.get("redis_cpu_us_per_req"))))
    out += ["", "| target | goal | figure | status | basis |", "|---|---|---:|---|---|"]
    for t in doc["targets"]:
        out.append("| %s | %s | %s%s | %s | %s |" % (
            t["description"], t["target"], fmt(t["value"], "%.2f"),
            " (by CPU/req: %s)" % fmt(t["by_cpu"], "%.2f") if t.get("by_cpu") else "",
            t["status"], t["basis"] or "-"))
    if doc.get("sweep"):
        out += [""] + sweep_markdown(doc["sweep"])
    if doc["skipped"]:
        out += ["", "Not measured (not in this build): %s."
                % ", ".join("`%s`" % s["name"] for s in doc["skipped"])]
    return "\n".join(out) + "\n"


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            model = m.group(1) if m else ""
    except OSError:
        pass

    def version(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    commit = version(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "loadavg_start": os.getloadavg()[0],
            "haproxy": version([HAPROXY, "-v"]), "haproxy_path": HAPROXY, "nginx": version(["/usr/sbin/nginx", "-v"]),
            "wrk": version(["wrk", "--version"]), "redis": version(["/usr/bin/redis-server", "--version"]),
            "commit": commit}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true", help="under 2 minutes")
    ap.add_argument("--only", help="comma-separated configuration names")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int, help="seconds per run (default: from the time budget)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per configuration")
    ap.add_argument("--out", help="results.json path (default BUILD/bench/results.json)")
    ap.add_argument("--sweep", help="connection counts of the saturation sweep, comma-separated "
                                    "(make bench 32,128,512; QUICK 32,512; none with --only, --rounds or "
                                    "--duration); 0 turns it off")
    ap.add_argument("--sweep-configs", help="configurations swept (default %s)" % ",".join(SWEEP_CONFIGS))
    ap.add_argument("--sweep-rounds", type=int, help="rounds of the sweep (default 3; QUICK 2)")
    ap.add_argument("--sweep-duration", type=int, help="seconds per sweep run (default 5; QUICK 2)")
    args = ap.parse_args()

    configs = configurations()
    if args.only:
        want = args.only.split(",")
        unknown = [w for w in want if w not in [c["name"] for c in configs]]
        if unknown:
            print("bench: unknown configuration(s): %s; known: %s"
                  % (", ".join(unknown), ", ".join(c["name"] for c in configs)), file=sys.stderr)
            return 2
        configs = [c for c in configs if c["name"] in want]
    rounds = args.rounds or (3 if args.quick else 5)
    # The measured time is a budget shared by the configurations, so the
    # bench stays under 2 (QUICK) or 10 minutes as stages are added.
    budget = 60 if args.quick else 380
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    if args.sweep is not None:
        try:
            sweep_counts = [int(x) for x in args.sweep.split(",") if int(x) > 0]
        except ValueError:
            print("bench: --sweep wants connection counts like 32,128,512", file=sys.stderr)
            return 2
    elif args.only or args.rounds or args.duration:
        sweep_counts = []   # a hand-picked run sweeps only when asked to
    else:
        sweep_counts = list(SWEEP_CONNECTIONS_QUICK if args.quick else SWEEP_CONNECTIONS)
    sweep_names = args.sweep_configs.split(",") if args.sweep_configs else list(SWEEP_CONFIGS)
    sweep_rounds = args.sweep_rounds or (2 if args.quick else 3)
    sweep_duration = args.sweep_duration or (2 if args.quick else 5)
    out_path = args.out or os.path.join(args.build, "bench", "results.json")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)

    workdir = tempfile.mkdtemp(prefix="spogate-bench.")
    env = Env(args.build, workdir)
    started = time.monotonic()
    facts = machine()
    print("bench: %d configurations x %d rounds (wrk -t%d -c%d --latency) on %s, scratch %s"
          % (len(configs), rounds, WRK_THREADS, WRK_CONNECTIONS, facts["haproxy"], workdir), flush=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    skipped, live, failed = [], [], []
    duration = args.duration or 1
    runs, sweep_runs, swept = {}, {}, []
    try:
        env.make_keys()
        for c in configs:
            try:
                t = c["start"](env, c)
                if c["kind"] == "http":
                    run_checks(env, c, t)
                live.append((c, t))
            except StageMissing as e:
                skipped.append({"name": c["name"], "reason": str(e)})
                print("bench: skip %s" % c["name"], flush=True)
            except BenchError as e:
                # A stage that is built but answers wrongly: the others
                # are still measured, and the bench exits non-zero.
                print("bench: error: %s" % e, file=sys.stderr, flush=True)
                failed.append(str(e))
        # The budget is shared by the configurations this build has.
        duration = args.duration or max(1, min(10, budget // (rounds * max(1, len(live)))))
        print("bench: measuring %d configurations, %d rounds x %d s each" % (len(live), rounds, duration),
              flush=True)
        # Warm-up: connections, caches, the agent's SPOE connections.
        for c, t in live:
            if warmup > 0:
                if c["kind"] == "http":
                    run_http(env, c, t, max(1, int(round(warmup))))
                else:
                    run_spop(env, c, t, warmup, 0)
        for rnd in range(rounds):
            for c, t in live:
                if c["kind"] == "http":
                    r = run_http(env, c, t, duration)
                else:
                    r = run_spop(env, c, t, duration, min(0.5, warmup))
                r["round"] = rnd + 1
                runs.setdefault(c["name"], []).append(r)
                print("bench: round %d %-22s %8.0f req/s  p99 %7.0f us  server CPU %6.1f us/req%s"
                      % (rnd + 1, c["name"], r["req_per_s"], r["p99_us"] or 0,
                         r["server_cpu_us_per_req"] or 0,
                         "  agent: %.2f reads/req, %s connections"
                         % (r["agent_reads_per_req"], r["agent_connections"])
                         if r.get("agent_reads_per_req") is not None else ""), flush=True)
        # Then at saturation: the sweep's configurations this build has
        # (only spogate's are ever skipped), plain first as the p99 reference.
        swept = sorted([(c, t) for c, t in live if c["name"] in sweep_names and c["kind"] == "http"],
                       key=lambda ct: sweep_names.index(ct[0]["name"]))
        if sweep_counts and swept:
            print("bench: saturation sweep of %s at %s connections, %d rounds x %d s each"
                  % (", ".join(c["name"] for c, _ in swept), ",".join(map(str, sweep_counts)),
                     sweep_rounds, sweep_duration), flush=True)
            run_sweep(env, swept, sweep_counts, sweep_rounds, sweep_duration, warmup, sweep_runs)
    except BenchError as e:
        print("bench: error: %s" % e, file=sys.stderr)
        failed.append(str(e))
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        failed.append("interrupted")
    except Exception as e:  # the processes must still be stopped
        import traceback
        traceback.print_exc()
        failed.append("%s: %s" % (type(e).__name__, e))
    finally:
        env.procs.stop_all()

    results = []
    for c, t in live:
        rr = runs.get(c["name"], [])
        if not rr:
            continue
        results.append({
            "name": c["name"], "kind": c["kind"], "description": c["desc"],
            "full": bool(c.get("full")), "path": c.get("path"),
            "parts": list(c["stage"]["parts"]) if c.get("stage") else [],
            "req_per_s": median([r["req_per_s"] for r in rr]),
            "p50_us": median([r["p50_us"] for r in rr]),
            "p99_us": median([r["p99_us"] for r in rr]),
            "server_cpu_us_per_req": median([r["server_cpu_us_per_req"] for r in rr]),
            "agent_cpu_us_per_req": median([r["agent_cpu_us_per_req"] for r in rr]),
            "agent_reads_per_req": median([r.get("agent_reads_per_req") for r in rr]),
            "agent_connections": median([r.get("agent_connections") for r in rr]),
            "redis_cpu_us_per_req": median([r.get("redis_cpu_us_per_req") for r in rr]),
            "errors": sum(r["errors"] for r in rr),
            "rounds": rr})
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": ("make bench" + (" QUICK=1" if args.quick else "")
                    if not (args.only or args.rounds or args.duration or args.warmup is not None
                            or args.sweep is not None or args.sweep_configs or args.sweep_rounds
                            or args.sweep_duration)
                    else "tests/bench/bench.py " + " ".join(sys.argv[1:])),
        "machine": dict(facts, loadavg_end=os.getloadavg()[0]),
        "settings": {"rounds": rounds, "duration_s": duration, "warmup_s": warmup,
                     "wrk": "wrk -t%d -c%d -d%ds --latency" % (WRK_THREADS, WRK_CONNECTIONS, duration),
                     "server_threads": SERVER_THREADS, "order": [c["name"] for c, _ in live],
                     "statistic": "median over rounds; CPU = utime+stime of the servers over each run"},
        "configurations": results,
        "skipped": skipped,
        "targets": targets(results),
        "sweep": (sweep_summary([c["name"] for c, _ in swept], sweep_counts, sweep_runs,
                                sweep_rounds, sweep_duration) if sweep_runs else None),
        "errors": failed,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    with open(os.path.splitext(out_path)[0] + ".md", "w") as f:
        f.write(markdown(doc))
    print()
    print(table(results, skipped))
    print()
    for tg in doc["targets"]:
        print("target %-36s %-7s %6s  %s%s%s" % (
            tg["id"], tg["target"], fmt(tg["value"], "%.2f"), tg["status"],
            "  (by CPU/req %s)" % fmt(tg["by_cpu"], "%.2f") if tg.get("by_cpu") else "",
            "  [%s]" % tg["basis"] if tg["basis"] else ""))
    if doc["sweep"]:
        print()
        print(sweep_table(doc["sweep"]))
    print("\nbench: %s and %s.md (%.0fs)" % (out_path, os.path.splitext(out_path)[0], doc["elapsed_s"]))
    bad = [r["name"] for r in results if r["errors"]]
    # At saturation wrk timing out and the gateway shedding (503 once the
    # SPOE processing timeout passes) are overload, reported in the table;
    # a connect, read or write error (a connection limit) fails the run.
    swept_points = [(row["name"], p) for row in (doc["sweep"] or {}).get("configurations", [])
                    for p in row["points"]]
    bad += ["%s at -c%d (socket errors)" % (n, p["connections"]) for n, p in swept_points if p["socket_errors"]]
    for n, p in swept_points:
        if p["non_2xx"] or p["timeouts"]:
            print("bench: overload in the sweep: %s at -c%d: %d non-2xx answers, %d wrk timeouts"
                  % (n, p["connections"], p["non_2xx"], p["timeouts"]), file=sys.stderr)
    if bad:
        print("bench: error responses in %s" % ", ".join(bad), file=sys.stderr)
    if failed:
        print("bench: logs and configs kept in %s" % workdir, file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed or bad else 0


if __name__ == "__main__":
    sys.exit(main())
