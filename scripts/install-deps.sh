#!/usr/bin/env bash
# Installs the Debian packages dproxy needs to build, test and run (only the missing ones).
set -euo pipefail

PACKAGES=(
  cmake g++ make pkg-config
  libasio-dev libhiredis-dev nlohmann-json3-dev libyaml-cpp-dev doctest-dev
  memcached redis-server redis-tools nutcracker libmemcached-tools
  python3 python3-pymemcache python3-redis python3-pylibmc ruby ruby-dalli php-cli php-memcached
  ruby-redis node-redis php-redis
  clang-format curl iproute2 mount
  clang libclang-rt-14-dev
  netcat-openbsd
  # TLS (issue 20): OpenSSL 3 for the build, the openssl CLI for the tests' certificates
  libssl-dev openssl
  # scripts/package.sh and its test: dpkg-shlibdeps, the man page, systemd-analyze, logrotate
  dpkg-dev binutils go-md2man man-db groff-base systemd logrotate
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
