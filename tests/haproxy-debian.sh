#!/usr/bin/env bash
# make haproxy: puts a runnable HAProxy VERSION (3.0 or 3.2) at OUT/haproxy,
# from Debian's packages: see tests/debian-pkg.sh.
#
#   tests/haproxy-debian.sh VERSION OUT
exec "$(dirname "$0")/debian-pkg.sh" haproxy "$@"
