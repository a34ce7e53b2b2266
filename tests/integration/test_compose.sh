#!/usr/bin/env bash
# compose.yaml cannot run here (no Docker engine), so it is kept true by
# hand and checked: docker-compose validates it, every file it mounts
# exists, the HAProxy and agent configuration it mounts is byte for byte
# what spogate-gen produces from config/examples/compose*.yaml, that
# configuration passes haproxy -c, and the image builds from Debian
# packages only. Output: TAP.
set -u
BUILD=${BUILD:-build}
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
tmp=$(mktemp -d /tmp/spogate-compose-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if out=$(docker-compose -f compose.yaml config 2>&1); then
	ok "docker-compose config accepts compose.yaml"
else
	nok "docker-compose config accepts compose.yaml" "$out"
fi

missing=""
for src in $(grep -Eo '^\s+- \./[^:]+' compose.yaml | sed 's/^\s*- //'); do
	[ -e "$src" ] || missing="$missing $src"
done
if [ -z "$missing" ] && grep -q '^\s*- \./' compose.yaml; then
	ok "every file compose.yaml mounts exists"
else
	nok "every file compose.yaml mounts exists" "missing:$missing"
fi

if "$BUILD/bin/spogate-gen" -g config/examples/compose.yaml -r config/examples/compose-registry.yaml \
	-o "$tmp/gen" --haproxy-dir /usr/local/etc/haproxy --run-dir /var/lib/haproxy >"$tmp/gen.log" 2>&1 &&
	cmp -s "$tmp/gen/haproxy.cfg" haproxy/compose/haproxy.cfg &&
	cmp -s "$tmp/gen/spoe.conf" haproxy/compose/spoe.conf &&
	cmp -s "$tmp/gen/agent.json" haproxy/compose/agent.json &&
	diff -r "$tmp/gen/errors" haproxy/compose/errors >/dev/null; then
	ok "haproxy/compose/ is what spogate-gen produces"
else
	nok "haproxy/compose/ is what spogate-gen produces" "$(cat "$tmp/gen.log")" \
		"$(diff -r "$tmp/gen" haproxy/compose 2>&1 | head -20)"
fi

# haproxy -c with the container paths pointed at a temp copy
mkdir -p "$tmp/etc"
cp -r haproxy/compose/spoe.conf haproxy/compose/errors "$tmp/etc/"
sed "s|/usr/local/etc/haproxy|$tmp/etc|g; s|/var/lib/haproxy|$tmp|g" haproxy/compose/haproxy.cfg >"$tmp/etc/haproxy.cfg"
if out=$("${SPOGATE_HAPROXY:-haproxy}" -c -f "$tmp/etc/haproxy.cfg" 2>&1); then
	ok "the compose HAProxy configuration passes haproxy -c"
else
	nok "the compose HAProxy configuration passes haproxy -c" "$out"
fi
# and with the version of compose's image, when make haproxy fetched it
imgv=$(sed -n 's/^ *image: haproxy:\([0-9.]*\).*/\1/p' compose.yaml | head -n 1)
if [ -n "$imgv" ] && [ -x "$BUILD/haproxy-$imgv/haproxy" ]; then
	if out=$("$BUILD/haproxy-$imgv/haproxy" -c -f "$tmp/etc/haproxy.cfg" 2>&1) &&
		! echo "$out" | grep -q 'WARNING\|ALERT'; then
		ok "the compose configuration passes haproxy -c on $imgv, compose's image"
	else
		nok "the compose configuration passes haproxy -c on $imgv, compose's image" "$out"
	fi
fi

if "$BUILD/bin/spogate-agent" -c haproxy/compose/agent.json --check >"$tmp/check.log" 2>&1; then
	ok "the compose agent.json passes spogate-agent --check"
else
	nok "the compose agent.json passes spogate-agent --check" "$(cat "$tmp/check.log")"
fi

bad=$(grep -E '^(FROM|RUN)' Dockerfile | grep -Ev '^FROM debian:bookworm|^RUN apt-get |^RUN make ' || true)
if [ -z "$bad" ] && grep -q '^FROM debian:bookworm' Dockerfile; then
	ok "the Dockerfile builds from Debian packages only"
else
	nok "the Dockerfile builds from Debian packages only" "$bad"
fi

# every package the image installs exists in Debian 12 (this machine's
# release): a misspelt runtime library would only show at docker build
pkgs=$(sed -n '/apt-get install/,/rm -rf/p' Dockerfile | tr ' \\' '\n\n' |
	grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|update|install|rm|no-install-recommends|y)$' | sort -u)
unknown=""
for p in $pkgs; do
	apt-cache show "$p" >/dev/null 2>&1 || unknown="$unknown $p"
done
if [ -n "$pkgs" ] && [ -z "$unknown" ]; then
	ok "every package the Dockerfile installs exists in Debian"
else
	nok "every package the Dockerfile installs exists in Debian" "unknown:$unknown"
fi

# the image's build step works with this Makefile: the same targets, built
# into a temp dir as the Dockerfile builds them into /build
targets=$(grep -Eo '/build/bin/spogate-[a-z]+' Dockerfile | sort -u | sed "s|^/build|$tmp/dbuild|")
if [ -n "$targets" ] && out=$(make --no-print-directory BUILD="$tmp/dbuild" -j2 $targets 2>&1); then
	ok "the Dockerfile's make step builds its binaries"
else
	nok "the Dockerfile's make step builds its binaries" "$(echo "$out" | tail -5)"
fi

# every binary compose runs is one the Dockerfile builds
for bin in $(grep -Eo 'spogate-(agent|refsvc|echo|gen)' compose.yaml | sort -u); do
	if grep -q "/build/bin/$bin" Dockerfile; then
		ok "the image contains $bin"
	else
		nok "the image contains $bin"
	fi
done

echo "1..$n"
[ "$fails" -eq 0 ]
