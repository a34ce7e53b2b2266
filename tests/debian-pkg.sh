#!/usr/bin/env bash
# Puts runnable binaries of a newer Debian package than Debian 12 has in OUT,
# from Debian's binary packages unpacked with their own libraries:
#
#   tests/debian-pkg.sh haproxy 3.0|3.2 OUT   OUT/haproxy (trixie / sid)
#   tests/debian-pkg.sh valkey 8 OUT          OUT/valkey-server, OUT/valkey-cli (trixie)
#
# (tests/haproxy-debian.sh VERSION OUT is the first form; make haproxy and
# make valkey call these.)
#
# apt runs with a private configuration under OUT/apt (sources, lists, cache,
# an empty dpkg status): the system's sources are never read or changed. The
# mirror is the one the system's own Debian sources name (DEBIAN_MIRROR
# overrides it). The libraries are what the package metadata says the package
# needs, recursively, kept to section "libs". A copy of each binary gets
# the unpacked ld.so as interpreter and the unpacked library folders as
# DT_RPATH: DT_RUNPATH would not apply to the libraries' own dependencies,
# which would then load Debian 12's libm and fail on symbol versions.
#
# Idempotent: a second run with the same package version and folder does no
# network access and changes nothing.
set -eu
usage="usage: $0 haproxy 3.0|3.2 OUT | $0 valkey 8 OUT"
name=${1:?$usage}
version=${2:?$usage}
out=${3:?$usage}
# pkg: the package whose version must be VERSION.x and whose library closure
# is taken; bins: PATH-IN-PACKAGE:NAME-IN-OUT; vflag: prints the version.
case $name/$version in
haproxy/3.0) suite=trixie ;;
haproxy/3.2) suite=sid ;;
haproxy/*) echo "$name: HAPROXY_VERSION=$version: supported are 2.6 (the system's), 3.0 and 3.2" >&2; exit 2 ;;
valkey/8) suite=trixie ;;
valkey/*) echo "valkey: VALKEY_VERSION=$version: supported is 8" >&2; exit 2 ;;
*) echo "$usage" >&2; exit 2 ;;
esac
case $name in
haproxy) pkg=haproxy bins="usr/sbin/haproxy:haproxy" vflag=-v ;;
# Debian's valkey-server package only holds a symlink valkey-server ->
# valkey-check-rdb of valkey-tools: the binary is one, argv[0] picks the role.
valkey) pkg=valkey-tools bins="usr/bin/valkey-check-rdb:valkey-server usr/bin/valkey-cli:valkey-cli" vflag=--version ;;
esac
for tool in apt-get apt-cache dpkg-deb patchelf; do
	command -v $tool >/dev/null || { echo "$name: $tool is missing (make deps)" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
stamp=$out/stamp
root=$out/root
apt=$out/apt

# Cached: the binary is there, patched for this folder, and it runs.
cached() {
	[ -f "$stamp" ] && [ "$(sed -n 2p "$stamp")" = "$out" ] || return 1
	for b in $bins; do
		[ -x "$out/${b#*:}" ] && "$out/${b#*:}" $vflag >/dev/null 2>&1 || return 1
	done
}
if cached; then
	echo "$name: $(sed -n 1p "$stamp") at $out (cached)"
	exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	mirror=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null |
		awk -v c="$codename" '$1 == c { print $2; exit }')
fi
if [ -z "$mirror" ]; then
	echo "$name: no Debian mirror found in the system's apt sources; set DEBIAN_MIRROR=<url of the debian archive>" >&2
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

echo "$name: reading $suite's package lists"
if ! apt-get "${opts[@]}" -qq update >"$apt/update.log" 2>&1 ||
	grep -qE '^(E|W): ' "$apt/update.log"; then
	echo "$name: cannot read Debian $suite's package lists from $mirror:" >&2
	sed 's/^/  /' "$apt/update.log" >&2
	exit 1
fi

deb_version=$(apt-cache "${opts[@]}" show --no-all-versions "$pkg" 2>/dev/null |
	awk '/^Version:/ { print $2; exit }')
[ -n "$deb_version" ] || { echo "$name: Debian $suite has no $pkg package" >&2; exit 1; }
case $deb_version in
"$version".*) ;;
*) echo "$name: Debian $suite's $pkg is $deb_version, not $version.x" >&2; exit 1 ;;
esac

# The package's library closure, from the metadata: its dependencies whose
# section is libs, then theirs, level by level (a tool such as adduser would
# otherwise pull in debconf's own libraries). Virtual packages are skipped.
deps_of() {
	apt-cache "${opts[@]}" depends --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
		awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ { print $2 }' | sort -u
}
libs=()
seen=" $pkg "
want=("$pkg")
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
echo "$name: $pkg $deb_version and ${#libs[@]} libraries: ${libs[*]}"

rm -f "$apt/debs"/*.deb
if ! (cd "$apt/debs" && apt-get "${opts[@]}" -qq download "$pkg=$deb_version" "${libs[@]}") \
	>"$apt/download.log" 2>&1; then
	echo "$name: downloading from $mirror failed:" >&2
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
[ -e "$ld" ] || { echo "$name: no ld.so in the unpacked libc6 ($ld)" >&2; exit 1; }
rpath=$libdir
[ -d "$root/lib/x86_64-linux-gnu" ] && rpath=$rpath:$root/lib/x86_64-linux-gnu

for b in $bins; do
	bin=$out/${b#*:}
	cp "$root/${b%%:*}" "$bin.tmp"
	patchelf --set-interpreter "$ld" --force-rpath --set-rpath "$rpath" "$bin.tmp"
	if ! v=$("$bin.tmp" $vflag 2>&1); then
		echo "$name: the patched ${b#*:} does not run:" >&2
		echo "$v" | sed 's/^/  /' >&2
		exit 1
	fi
	mv "$bin.tmp" "$bin"
	echo "$name: $(echo "$v" | head -n 1) at $bin"
done
printf '%s\n%s\n' "$deb_version" "$out" >"$stamp"
