#!/usr/bin/env bash
# make run: the whole local stack on loopback, in the foreground.
#
#   redis-server            127.0.0.1:6380   rate-limit state
#   dnsmasq                 127.0.0.1:8600   A + SRV records of the example registry
#   spogate-refsvc          127.0.0.1:9081   Auth + Authz gRPC (admin :9080)
#   spogate-echo x5         identity-service on 127.0.0.2/.3:9001 (DNS A),
#                           blog-service on 127.0.0.1:9011/9012 (DNS SRV),
#                           auth-service on 127.0.0.1:9021 (static)
#   spogate-agent           127.0.0.1:12345  (metrics :9102)
#   haproxy                 127.0.0.1:8080, https :8443 (admin/stats :8404)
#
# Configuration: spogate-gen over $SPOGATE_GATEWAY (default
# config/examples/local.yaml) and $SPOGATE_REGISTRY. Ctrl-C (or SIGTERM)
# stops every process this script started, by PID. Every port can be moved
# with SPOGATE_PORT_<NAME>=N (the tests run the stack on free ports).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$(pwd)/$BUILD/bin
RUN=${SPOGATE_RUN_DIR:-$(pwd)/$BUILD/run}
GATEWAY=${SPOGATE_GATEWAY:-config/examples/local.yaml}
REGISTRY=${SPOGATE_REGISTRY:-config/examples/local-registry.yaml}
POLICY=${SPOGATE_POLICY:-config/examples/policy.json}

# name default: the defaults are the ports written in the example files
declare -A PORT=(
	[GATEWAY]=8080 [TLS]=8443 [STATS]=8404 [AGENT]=12345 [METRICS]=9102 [REDIS]=6380
	[DNS]=8600 [REFSVC]=9081 [REFSVC_ADMIN]=9080 [IDENTITY]=9001
	[BLOG1]=9011 [BLOG2]=9012 [AUTH_BACKEND]=9021
)
sed_ports=""
for name in "${!PORT[@]}"; do
	var=SPOGATE_PORT_$name
	if [ -n "${!var:-}" ]; then
		sed_ports="$sed_ports s/\\b${PORT[$name]}\\b/${!var}/g;"
		PORT[$name]=${!var}
	fi
done

pids=()
stopping=0
stop_all() {
	[ "$stopping" -eq 1 ] && return
	stopping=1
	echo
	echo "stopping ${#pids[@]} processes"
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[$i]}" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	echo "stopped"
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

fail() {
	echo "make run: $*" >&2
	exit 1
}

port_busy() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_port() {
	local host=$1 port=$2 name=$3 i
	for ((i = 0; i < 100; i++)); do
		port_busy "$host" "$port" && return 0
		sleep 0.1
	done
	fail "$name did not start on $host:$port; see $RUN/logs/$name.log"
}

start() {
	local name=$1
	shift
	"$@" >>"$RUN/logs/$name.log" 2>&1 &
	pids+=($!)
	echo "$! $name" >>"$RUN/pids"
}

for name in GATEWAY TLS STATS AGENT METRICS REDIS REFSVC REFSVC_ADMIN BLOG1 BLOG2 AUTH_BACKEND; do
	if port_busy 127.0.0.1 "${PORT[$name]}"; then
		fail "port ${PORT[$name]} ($name) is in use: is another stack running? (move it with SPOGATE_PORT_$name=N)"
	fi
done

mkdir -p "$RUN/logs" "$RUN/keys" "$RUN/certs"
rm -f "$RUN"/logs/*.log "$RUN/pids"
[ -f "$RUN/keys/jwks1.json" ] || "$BIN/spogate-refsvc" keygen --dir "$RUN/keys" >/dev/null
# A local CA and the gateway's certificate (localhost, 127.0.0.1), made once.
if [ ! -f "$RUN/certs/gateway.pem" ]; then
	(
		cd "$RUN/certs" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
			-keyout ca.key -out ca.pem -subj "/CN=spogate local CA" 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout gateway.key \
			-out gateway.csr -subj /CN=localhost 2>/dev/null &&
		printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >gateway.ext &&
		openssl x509 -req -in gateway.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
			-extfile gateway.ext -out gateway.crt 2>/dev/null &&
		cat gateway.crt gateway.key >gateway.pem && chmod 600 gateway.pem gateway.key ca.key
	) || fail "could not make the local certificates with openssl"
fi

# The example files with the chosen ports, next to the keys they name.
sed "$sed_ports" "$GATEWAY" >"$RUN/gateway.yaml"
sed "$sed_ports" "$REGISTRY" >"$RUN/registry.yaml"
"$BIN/spogate-gen" -g "$RUN/gateway.yaml" -r "$RUN/registry.yaml" -o "$RUN" \
	--run-dir "$RUN" || fail "spogate-gen refused the configuration"

cat >"$RUN/dnsmasq.conf" <<EOF
port=${PORT[DNS]}
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
log-queries
host-record=identity.service.consul,127.0.0.2
host-record=identity.service.consul,127.0.0.3
host-record=blog-1.service.consul,127.0.0.1
host-record=authz.service.consul,127.0.0.1
host-record=blog-2.service.consul,127.0.0.1
srv-host=_blog._tcp.service.consul,blog-1.service.consul,${PORT[BLOG1]},0,10
srv-host=_blog._tcp.service.consul,blog-2.service.consul,${PORT[BLOG2]},0,10
EOF

start redis redis-server --port "${PORT[REDIS]}" --bind 127.0.0.1 --save "" \
	--appendonly no --daemonize no --dir "$RUN"
start dnsmasq dnsmasq --keep-in-foreground --conf-file="$RUN/dnsmasq.conf" \
	--pid-file --log-facility=- --user="$(id -un)"
start refsvc "$BIN/spogate-refsvc" serve --listen "127.0.0.1:${PORT[REFSVC]}" \
	--admin "127.0.0.1:${PORT[REFSVC_ADMIN]}" --jwks "$RUN/keys/jwks1.json" --policy "$POLICY"
start identity-1 "$BIN/spogate-echo" --listen "127.0.0.2:${PORT[IDENTITY]}" --name identity-service
start identity-2 "$BIN/spogate-echo" --listen "127.0.0.3:${PORT[IDENTITY]}" --name identity-service
start blog-1 "$BIN/spogate-echo" --listen "127.0.0.1:${PORT[BLOG1]}" --name blog-service
start blog-2 "$BIN/spogate-echo" --listen "127.0.0.1:${PORT[BLOG2]}" --name blog-service
start auth-backend "$BIN/spogate-echo" --listen "127.0.0.1:${PORT[AUTH_BACKEND]}" --name auth-service
wait_port 127.0.0.1 "${PORT[REDIS]}" redis
wait_port 127.0.0.1 "${PORT[REFSVC]}" refsvc
start agent "$BIN/spogate-agent" -c "$RUN/agent.json"
wait_port 127.0.0.1 "${PORT[AGENT]}" agent
start haproxy "${SPOGATE_HAPROXY:-haproxy}" -f "$RUN/haproxy.cfg" -db
wait_port 127.0.0.1 "${PORT[GATEWAY]}" haproxy

G=http://127.0.0.1:${PORT[GATEWAY]}
GS=https://localhost:${PORT[TLS]}
cat <<EOF

spogate is up.
  gateway        $G
  gateway (TLS)  $GS   (HTTP/2; CA: $RUN/certs/ca.pem)
  HAProxy stats  http://127.0.0.1:${PORT[STATS]}/   (Prometheus: /metrics)
  agent metrics  http://127.0.0.1:${PORT[METRICS]}/metrics
  refsvc calls   http://127.0.0.1:${PORT[REFSVC_ADMIN]}/calls
  logs           $RUN/logs/
  configuration  $RUN/haproxy.cfg $RUN/spoe.conf $RUN/agent.json

Try it (in another terminal):
  TOKEN=\$($BIN/spogate-refsvc mint --sub alice --roles admin --key $RUN/keys/rsa1.pem --kid rsa1 --alg RS256 --ttl 1h --permissions user.read,user.write,blog.post.read)
  curl -i -H "Authorization: Bearer \$TOKEN" $G/api/v1/users/42     # 200, the backend sees X-User-ID: alice
  curl -i $G/api/v1/users/42                                        # 401 token_missing
  for i in 1 2 3 4 5 6 7; do curl -s -o /dev/null -w '%{http_code} ' -H "Authorization: Bearer \$TOKEN" $G/api/v1/users/42; done; echo   # 200 until 5 calls in 10 s, then 429
  curl -i $G/api/v1/auth/login                                      # public route
  curl -i -X OPTIONS -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: POST' $G/api/v1/users/42   # CORS preflight, 204
  curl -i --http2 --cacert $RUN/certs/ca.pem -H "Authorization: Bearer \$TOKEN" $GS/api/v1/users/42   # HTTPS, HTTP/2, same answer

Ctrl-C stops everything.
EOF

# Stay in the foreground; if any process dies, say which and stop the rest.
while :; do
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[$i]}" 2>/dev/null; then
			echo "a process of the stack exited (pid ${pids[$i]}); see $RUN/logs/" >&2
			exit 1
		fi
	done
	sleep 1 &
	wait $! || true
done
