#!/usr/bin/env bash
# Install what tswg's demo, tests and benchmarks need on a Debian machine (as root):
# the Debian packages below when missing, then the npm dependencies from the lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/check-node.sh  # Node first: Debian 12's own nodejs is 18, too old for tswg, and npm would only warn.

debian_packages=(wireguard-go wireguard-tools iproute2 iperf3 iputils-ping ncat tcpdump iptables nftables coturn bind9-dnsutils dnsmasq etcd-server etcd-client openssl)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund
