#!/usr/bin/env bash
# Installs what sparq needs on Debian 12 and builds it. Safe to run again: it only does what is missing.
#   scripts/setup.sh            Debian packages, the test venv (.venv: pytest), Release build in build/
#   scripts/setup.sh --dev      also torch, transformers, compressed-tensors, llmcompressor (fixture generation)
#   scripts/setup.sh --bench    also numpy, safetensors, gguf, llama-cpp-python (benchmarks against llama.cpp)
#   scripts/setup.sh --no-build only install
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0; bench=0; build=1
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --bench) bench=1 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

apt_packages=(
  build-essential cmake ninja-build pkg-config git clang libclang-rt-14-dev
  libdnnl-dev libxsimd-dev libsentencepiece-dev sentencepiece nlohmann-json3-dev catch2
  libpcre2-dev libcpp-httplib-dev libcli11-dev libedit-dev libxxhash-dev libssl-dev libomp-dev
  libvulkan-dev mesa-vulkan-drivers glslc libicu-dev
  python3 python3-venv python3-jinja2 tmux
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python is for tests, fixtures and benchmarks only; the runtime never needs it.
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
pip_install() {
  local need=()
  for spec in "$@"; do
    local name="${spec%%[<>=]*}"
    .venv/bin/python -m pip show -q "$name" >/dev/null 2>&1 || need+=("$spec")
  done
  if ((${#need[@]})); then
    echo "setup: pip install ${need[*]}"
    .venv/bin/python -m pip install -q --disable-pip-version-check "${need[@]}"
  fi
}
pip_install pytest jinja2
if ((dev)); then
  pip_install torch transformers compressed-tensors llmcompressor sentencepiece tokenizers safetensors numpy
fi
if ((bench)); then
  pip_install numpy safetensors gguf llama-cpp-python
fi

if ((build)); then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARQ_WERROR=ON >/dev/null
  cmake --build build -j"$(nproc)"
fi
