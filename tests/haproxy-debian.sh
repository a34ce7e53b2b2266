#!/usr/bin/env bash
# make haproxy: puts a runnable HAProxy VERSION (3.0 or 3.2) at OUT/haproxy,
# from Debian's binary packages (trixie for 3.0, sid for 3.2) unpacked with
# their own libraries, on a Debian 12 machine.
#
#   tests/haproxy-debian.sh VERSION OUT
#
# apt runs with a private configuration under OUT/apt (sources, lists, cache,
# an empty dpkg status): the system's sources are never read or changed. The
# mirror is the one the system's own Debian sources name (DEBIAN_MIRROR
# overrides it). The libraries are what the package metadata says HAProxy
# needs, recursively, kept to section "libs". A copy of usr/sbin/haproxy gets
# the unpacked ld.so as interpreter and the unpacked library folders as
# DT_RPATH: DT_RUNPATH would not apply to the libraries' own dependencies,
# which would then load Debian 12's libm and fail on symbol versions.
#
# Idempotent: a second run with the same package version and folder does no
# network access and changes nothing.
set -eu
version=${1:?usage: $0 3.0|3.2 OUT}
out=${2:?usage: $0 3.0|3.2 OUT}
case $version in
3.0) suite=trixie ;;
3.2) suite=sid ;;
*) echo "haproxy: HAPROXY_VERSION=$version: supported are 2.6 (the system's), 3.0 and 3.2" >&2; exit 2 ;;
esac
for tool in apt-get apt-cache dpkg-deb patchelf; do
	command -v $tool >/dev/null || { echo "haproxy: $tool is missing (make deps)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=$out/haproxy
stamp=$out/stamp
root=$out/root
apt=$out/apt

# Cached: the binary is there, patched for this folder, and it runs.
if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(sed -n 2p "$stamp")" = "$out" ] &&
	"$bin" -v >/dev/null 2>&1; then
	echo "haproxy: $(sed -n 1p "$stamp") at $bin (cached)"
	exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	mirror=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null |
		awk -v c="$codename" '$1 == c { print $2; exit }')
fi
if [ -z "$mirror" ]; then
	echo "haproxy: no Debian mirror found in the system's apt sources; set DEBIAN_MIRROR=<url of the debian archive>" >&2
	exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs" "$apt/empty"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$apt/sources.list"
: >"$apt/status"
opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o "Dir::Etc::sourceparts=$apt/empty"
	-o "Dir::Etc::preferences=$apt/empty/none" -o "Dir::Etc::preferencesparts=$apt/empty"
	-o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$apt/status"
	-o "Dir::Cache=$apt/cache"
	-o APT::Architecture=amd64 -o APT::Architectures=amd64
	-o Acquire::Languages=none -o Acquire::Retries=2 -o Debug::NoLocking=1)

echo "haproxy: reading $suite's package lists"
if ! apt-get "${opts[@]}" -qq update >"$apt/update.log" 2>&1 ||
	grep -qE '^(E|W): ' "$apt/update.log"; then
	echo "haproxy: cannot read Debian $suite's package lists from $mirror:" >&2
	sed 's/^/  /' "$apt/update.log" >&2
	exit 1
fi

deb_version=$(apt-cache "${opts[@]}" show --no-all-versions haproxy 2>/dev/null |
	awk '/^Version:/ { print $2; exit }')
[ -n "$deb_version" ] || { echo "haproxy: Debian $suite has no haproxy package" >&2; exit 1; }
case $deb_version in
"$version".*) ;;
*) echo "haproxy: Debian $suite's haproxy is $deb_version, not $version.x" >&2; exit 1 ;;
esac

# HAProxy's library closure, from the metadata: its dependencies whose
# section is libs, then theirs, level by level (a tool such as adduser would
# otherwise pull in debconf's own libraries). Virtual packages are skipped.
deps_of() {
	apt-cache "${opts[@]}" depends --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
		awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ { print $2 }' | sort -u
}
libs=()
seen=" haproxy "
want=(haproxy)
while [ ${#want[@]} -gt 0 ]; do
	new=()
	for p in $(deps_of "${want[@]}"); do
		case $seen in *" $p "*) continue ;; esac
		seen="$seen$p "
		new+=("$p")
	done
	want=()
	[ ${#new[@]} -gt 0 ] || break
	for p in $(apt-cache "${opts[@]}" show --no-all-versions "${new[@]}" 2>/dev/null |
		awk '/^Package:/ { p = $2 } /^Section:/ && ($2 == "libs" || $2 ~ /\/libs$/) { print p }'); do
		libs+=("$p")
		want+=("$p")
	done
done
echo "haproxy: haproxy $deb_version and ${#libs[@]} libraries: ${libs[*]}"

rm -f "$apt/debs"/*.deb
if ! (cd "$apt/debs" && apt-get "${opts[@]}" -qq download "haproxy=$deb_version" "${libs[@]}") \
	>"$apt/download.log" 2>&1; then
	echo "haproxy: downloading from $mirror failed:" >&2
	sed 's/^/  /' "$apt/download.log" >&2
	exit 1
fi

rm -rf "$root"
mkdir -p "$root"
for deb in "$apt/debs"/*.deb; do
	dpkg-deb -x "$deb" "$root"
done
libdir=$root/usr/lib/x86_64-linux-gnu
ld=$libdir/ld-linux-x86-64.so.2
[ -e "$ld" ] || { echo "haproxy: no ld.so in the unpacked libc6 ($ld)" >&2; exit 1; }
rpath=$libdir
[ -d "$root/lib/x86_64-linux-gnu" ] && rpath=$rpath:$root/lib/x86_64-linux-gnu

cp "$root/usr/sbin/haproxy" "$bin.tmp"
patchelf --set-interpreter "$ld" --force-rpath --set-rpath "$rpath" "$bin.tmp"
if ! v=$("$bin.tmp" -v 2>&1); then
	echo "haproxy: the patched binary does not run:" >&2
	echo "$v" | sed 's/^/  /' >&2
	exit 1
fi
mv "$bin.tmp" "$bin"
printf '%s\n%s\n' "$deb_version" "$out" >"$stamp"
echo "haproxy: $(echo "$v" | head -n 1) at $bin"
