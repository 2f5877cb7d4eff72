#!/usr/bin/env bash
# Exit 1 with directions when Node.js is missing or older than package.json's engines.node.
# Debian 12's own nodejs is 18, too old for tswg, and npm would only warn about it.
set -euo pipefail
cd "$(dirname "$0")/.."

required_node=$(sed -n 's/^ *"node": *">=\([0-9.]*\)".*/\1/p' package.json)
node_help="Debian 12's nodejs package is 18. Get Node ${required_node} or later from NodeSource
  (curl -fsSL https://deb.nodesource.com/setup_20.x | bash - && apt-get install -y nodejs)
or the official tarball from https://nodejs.org/dist/ (unpacked with
  tar -xJf node-v20.*-linux-x64.tar.xz -C /usr/local --strip-components=1)."
if ! command -v node >/dev/null 2>&1; then
  echo "install-deps: Node.js is not installed; tswg needs Node >= ${required_node}. ${node_help}" >&2
  exit 1
fi
current_node=$(node -p 'process.versions.node')
if [ "$(printf '%s\n%s\n' "$required_node" "$current_node" | sort -V | head -n1)" != "$required_node" ]; then
  echo "install-deps: Node.js ${current_node} is too old; tswg needs Node >= ${required_node}. ${node_help}" >&2
  exit 1
fi
