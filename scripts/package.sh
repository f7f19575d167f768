#!/usr/bin/env bash
# Builds the Debian package of dproxy with dpkg-deb (no network, no root needed).
#
# Usage: scripts/package.sh [--binary PATH] [--out DIR]
#   --binary PATH  the dproxy binary to package (default: build/dproxy; built if missing)
#   --out DIR      where dproxy_<version>_<arch>.deb is written (default: build/)
# Prints the path of the .deb on stdout.
#
# The package: /usr/bin/dproxy, the systemd unit (dproxy.service), /etc/dproxy/pools.json,
# /etc/default/dproxy and /etc/logrotate.d/dproxy (conffiles), and the man page dproxy(8),
# generated with go-md2man from README.md's reference sections (the one source of both).
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir="$PWD"

binary="build/dproxy"
out="build"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --binary=*) binary="${1#*=}"; shift ;;
    --out) out="$2"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    *) echo "usage: $0 [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
done
if [ ! -x "$binary" ]; then
  if [ "$binary" = "build/dproxy" ]; then
    scripts/build.sh release >&2
  else
    echo "package.sh: $binary is not an executable" >&2
    exit 1
  fi
fi
for tool in dpkg-deb dpkg-shlibdeps go-md2man; do
  command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

version="$("$binary" --version | awk '{print $2}')"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pkg"

install -D -m 0755 "$binary" "$pkg/usr/bin/dproxy"
strip --strip-unneeded "$pkg/usr/bin/dproxy"  # debug info stays in the build tree
install -D -m 0644 packaging/dproxy.service "$pkg/lib/systemd/system/dproxy.service"
install -D -m 0644 packaging/pools.json "$pkg/etc/dproxy/pools.json"
install -D -m 0644 packaging/dproxy.default "$pkg/etc/default/dproxy"
install -D -m 0644 packaging/dproxy.logrotate "$pkg/etc/logrotate.d/dproxy"
install -D -m 0644 README.md "$pkg/usr/share/doc/dproxy/README.md"
gzip -9n "$pkg/usr/share/doc/dproxy/README.md"

# dproxy(8): a title block, then README.md's introduction and its reference sections.
mkdir -p "$pkg/usr/share/man/man8"
{
  printf '%% DPROXY 8 "" "dproxy %s" "System Administration"\n\n' "$version"
  printf '# NAME\ndproxy - memcached and Redis proxy, placing keys as twemproxy does\n\n'
  printf '# SYNOPSIS\n**dproxy** **--config** *FILE* [*options*]\n\n'
  printf '# DESCRIPTION\n'
  # The introduction: from the first paragraph to the first "##" heading.
  awk 'NR > 1 && /^## / { exit } NR > 2' README.md
  # Whole "##" sections by title, "###" subsections included; headings in capitals, as man does.
  awk '
    /^## / {
      t = substr($0, 4)
      keep = (t == "Installing the package" || t == "Command line" || t == "Configuration" ||
              t == "Failures and limits" || t == "Operating dproxy")
      if (keep) print "# " toupper(t)
      next
    }
    /^```/ { fence = !fence }
    keep && !fence && /^### / { print; next }  # go-md2man: "#" and "##" are .SH, "###" .SS
    keep { print }
  ' README.md
  printf '\n# SEE ALSO\nnutcracker(8), memcached(1), redis-server(1), systemctl(1), logrotate(8)\n'
} > "$stage/dproxy.8.md"
go-md2man -in "$stage/dproxy.8.md" -out "$stage/dproxy.8"
# Long table cells wrapped, columns sized for an 80-column terminal (go-md2man sizes none).
/usr/bin/python3 scripts/man_tables.py "$stage/dproxy.8" "$pkg/usr/share/man/man8/dproxy.8"
gzip -9n "$pkg/usr/share/man/man8/dproxy.8"

# Shared-library dependencies, as dpkg-shlibdeps computes them for a debian/ tree.
mkdir -p "$stage/debian"
printf 'Source: dproxy\n\nPackage: dproxy\nArchitecture: any\n' >"$stage/debian/control"
depends="$(cd "$stage" && dpkg-shlibdeps -O pkg/usr/bin/dproxy 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')"

mkdir -p "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/$script" "$pkg/DEBIAN/$script"
done
printf '/etc/dproxy/pools.json\n/etc/default/dproxy\n/etc/logrotate.d/dproxy\n' >"$pkg/DEBIAN/conffiles"
size="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: dproxy
Version: $version
Architecture: $arch
Maintainer: dproxy maintainers <dproxy@localhost>
Installed-Size: $size
Depends: ${depends:+$depends, }adduser
Suggests: logrotate
Section: net
Priority: optional
Description: memcached and Redis proxy, placing keys as twemproxy does
 dproxy fronts pools of memcached and Redis servers: clients talk memcached
 ASCII or Redis RESP to it as to one server, and it shards keys over the
 pool's servers exactly where twemproxy (nutcracker 0.5) would put them. It
 reads nutcracker's YAML configuration and command line as they are.
CONTROL

mkdir -p "$out"
deb="$out/dproxy_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip -z9 --build "$pkg" "$deb" >/dev/null
echo "$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"
