#!/usr/bin/env bash
# pbskit developer entry point (Debian 12, as root).
#   scripts/dev.sh run    install what is missing, build, start the server on the embedded default
#   scripts/dev.sh test   install what is missing, build, run the whole test suite
#   scripts/dev.sh asan   the same test suite in an AddressSanitizer+UBSan build
#   scripts/dev.sh build  install and build only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(cmake ninja-build g++ pkg-config libboost1.81-dev libboost-filesystem1.81-dev
  libboost-json1.81-dev libboost-url1.81-dev libssl-dev libzstd-dev zstd libarchive-dev
  libfmt-dev libpugixml-dev libgtest-dev libgmock-dev libnghttp2-dev libcli11-dev zlib1g-dev
  openssl)

install_deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

build() {  # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)"
}

cmd=${1:-}
case "$cmd" in
  run)
    install_deps
    build build
    # First start: datastore 'store1' under ./pbskit-data, a self-signed certificate and an
    # API token whose secret is printed once. PBSKIT_LISTEN overrides 0.0.0.0:8007.
    exec ./build/pbskit serve --listen "${PBSKIT_LISTEN:-0.0.0.0:8007}"
    ;;
  test)
    install_deps
    build build
    cd build && exec ctest --output-on-failure -j "$(nproc)"
    ;;
  asan)
    install_deps
    build build-asan -DPBSKIT_SANITIZE=ON
    cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      exec ctest --output-on-failure -j "$(nproc)"
    ;;
  build)
    install_deps
    build build
    ;;
  *)
    echo "usage: scripts/dev.sh run|test|asan|build" >&2
    exit 2
    ;;
esac
