#!/usr/bin/env bash
# Installs, with apt, every Debian 12 package possync needs to build, test and benchmark.
# Idempotent: packages already present are left alone, and nothing runs when none is missing.
# Run as root (or with sudo available) on a fresh Debian 12 machine.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libcaf-dev                                   # CAF 0.17.6 (actors)
  librocksdb-dev                               # RocksDB 7.8 (storage)
  libprotobuf-dev protobuf-compiler            # protobuf 3.21
  libgrpc++-dev protobuf-compiler-grpc         # gRPC 1.51 (+ grpc_cpp_plugin)
  libssl-dev openssl                           # OpenSSL 3 (TLS, signatures, encryption)
  libgtest-dev libgmock-dev libbenchmark-dev   # tests and micro-benchmarks
  libcli11-dev libspdlog-dev nlohmann-json3-dev libyaml-cpp-dev
  libjemalloc-dev                              # allocator of the possync binary
  libcpp-httplib-dev                           # /metrics, /healthz and the status page
  chromium libpng-dev                          # status page test: headless browser, screenshot decoding
  python3                                      # bench/run aggregation
  clang libclang-rt-14-dev                     # fuzz/run: libFuzzer (coverage-guided fuzzing on demand)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
