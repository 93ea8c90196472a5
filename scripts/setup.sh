#!/usr/bin/env bash
# Installs what sparq needs on Debian 12 and builds it. Safe to run again: it does only what is
# missing, and a run that finds nothing missing says so and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
Usage: scripts/setup.sh [OPTION]...
Installs sparq's Debian packages and a Python virtual environment (.venv), then builds into build/.

Options:
  --dev        also install torch, transformers, compressed-tensors and llmcompressor into .venv
               (regenerating the test fixtures and the demo model)
  --bench      also install numpy, safetensors, gguf and llama-cpp-python into .venv
               (benchmarks side by side with llama.cpp)
  --no-build   install only; do not configure or build
  --dry-run    say what would be installed and built, change nothing
  -h, --help   show this help

Debian packages are installed with apt-get (as root, or through sudo). Python packages go into
.venv only; the runtime itself never needs Python.
EOF
}

dev=0; bench=0; build=1; dry_run=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --bench) bench=1 ;;
    --no-build) build=0 ;;
    --dry-run) dry_run=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

# Debian packages: name | what sparq needs it for | a file or command that must exist once it is
# installed (checked before the build, so a missing piece is named here and not deep inside CMake).
apt_table=(
  "build-essential|C++ compiler (g++) and make|cmd:g++"
  "cmake|build configuration|cmd:cmake"
  "ninja-build|build tool|cmd:ninja"
  "pkg-config|finds sentencepiece, PCRE2, xxhash, libedit|cmd:pkg-config"
  "git|fetching and updating the source|cmd:git"
  "clang|fuzz targets (libFuzzer needs clang)|cmd:clang++"
  "libclang-rt-14-dev|libFuzzer and sanitizer runtimes for clang|glob:/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a"
  "libomp-dev|OpenMP for the clang builds|glob:/usr/lib/llvm-14/lib/libomp.so"
  "libdnnl-dev|oneDNN INT8/BF16 GEMMs of the CPU backend|file:/usr/include/dnnl.hpp"
  "ocl-icd-opencl-dev|OpenCL headers and loader, which oneDNN's CMake package config requires (libdnnl-dev only recommends it)|file:/usr/include/CL/cl.h"
  "libxsimd-dev|portable SIMD for the CPU kernels|file:/usr/include/xsimd/xsimd.hpp"
  "libsentencepiece-dev|SentencePiece tokenizer.model files|file:/usr/include/sentencepiece_processor.h"
  "sentencepiece|spm_train, for regenerating the tokenizer fixtures|cmd:spm_train"
  "nlohmann-json3-dev|JSON (model metadata, tokenizer files, CLI output)|file:/usr/include/nlohmann/json.hpp"
  "catch2|unit tests (Catch2 v2)|file:/usr/include/catch2/catch.hpp"
  "libpcre2-dev|Unicode regexes of byte-level BPE pre-tokenizers and compressed-tensors targets|file:/usr/include/pcre2.h"
  "libcpp-httplib-dev|HTTP server of sparq serve|file:/usr/include/httplib.h"
  "haproxy|the load-balancer test of two sparq serve replicas (docs/DEPLOY.md)|cmd:haproxy"
  "libcli11-dev|command-line flags|file:/usr/include/CLI/CLI.hpp"
  "libedit-dev|line editing and history in sparq chat|file:/usr/include/histedit.h"
  "libxxhash-dev|model file checksums (XXH3)|file:/usr/include/xxhash.h"
  "libssl-dev|SHA-256 of converted configs|file:/usr/include/openssl/sha.h"
  "libicu-dev|Unicode normalization for tokenizers|file:/usr/include/unicode/unorm2.h"
  "libvulkan-dev|Vulkan headers and loader (Vulkan backend)|file:/usr/include/vulkan/vulkan.h"
  "glslc|compiles the Vulkan backend's shaders|cmd:glslc"
  "mesa-vulkan-drivers|lavapipe, Vulkan on the CPU for tests|glob:/usr/share/vulkan/icd.d/lvp_icd.*.json"
  "python3|tests and fixture scripts|cmd:python3"
  "python3-venv|the .venv for pytest|glob:/usr/lib/python3*/ensurepip/__init__.py"
  "ca-certificates|pip reaches PyPI over HTTPS|file:/etc/ssl/certs/ca-certificates.crt"
)

# Python packages of .venv: name | why.
pip_base=("pytest|runs the CLI, reference and demo-model tests" "jinja2|reference renderer for the chat-template tests"
  "openai|the official client in the server tests" "requests|raw HTTP in the server tests"
  "lm-eval[api]|lm-evaluation-harness against sparq serve in the server tests"
  "llguidance|the oracle the grammar tests compare sparq's JSON-schema and GBNF matching with")
pip_dev=("torch|fixture and demo-model generation" "transformers|reference forward passes" \
  "compressed-tensors|reference quantized checkpoints" "llmcompressor|quantizes the fixtures and the demo model" \
  "sentencepiece|tokenizer references" "tokenizers|tokenizer references" "safetensors|checkpoint files" "numpy|arrays")
pip_bench=("numpy|benchmark arithmetic" "safetensors|full-size random checkpoints" \
  "gguf|GGUF files for llama.cpp" "llama-cpp-python[server]|llama.cpp and its OpenAI server, the peer in benchmarks")

probe_ok() {  # kind:target -> true when present
  local kind="${1%%:*}" target="${1#*:}"
  case "$kind" in
    cmd) command -v "$target" >/dev/null 2>&1 ;;
    file) [ -e "$target" ] ;;
    glob) compgen -G "$target" >/dev/null ;;
    *) die "bad probe '$1' in setup.sh" ;;
  esac
}

# --- Debian packages --------------------------------------------------------------------------
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null \
  || die "this script installs with apt-get and dpkg (Debian 12); neither was found on this machine"
if [ -r /etc/os-release ]; then
  os_id=$(. /etc/os-release; echo "${ID:-?} ${VERSION_ID:-?}")
  [ "$os_id" = "debian 12" ] || say "warning: written for Debian 12, this is '$os_id'; package names may differ"
fi

missing=(); missing_why=()
for row in "${apt_table[@]}"; do
  IFS='|' read -r pkg why _ <<<"$row"
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || { missing+=("$pkg"); missing_why+=("$why"); }
done
did_something=0
if ((${#missing[@]})); then
  say "${#missing[@]} Debian package(s) to install:"
  for i in "${!missing[@]}"; do printf '  %-22s %s\n' "${missing[$i]}" "${missing_why[$i]}"; done
  if ((dry_run)); then :; else
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || die "installing Debian packages needs root: run as root, or install sudo"
      sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" apt-get update -qq || die "apt-get update failed: check this machine's apt sources and network"
    if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
         "${missing[@]}" >/tmp/sparq-setup-apt.log 2>&1; then
      cat /tmp/sparq-setup-apt.log >&2
      for pkg in "${missing[@]}"; do
        apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]' \
          || echo "setup: error: Debian package '$pkg' has no installation candidate in this machine's apt sources" >&2
      done
      die "apt-get install failed (output above)"
    fi
    did_something=1
  fi
fi

# Everything the build reads must now be there; name the piece and its package if not.
if ! ((dry_run)); then
  absent=0
  for row in "${apt_table[@]}"; do
    IFS='|' read -r pkg why probe <<<"$row"
    if ! probe_ok "$probe"; then
      echo "setup: error: ${probe#*:} is missing ($why); it comes from the Debian package '$pkg'" >&2
      absent=1
    fi
  done
  ((absent == 0)) || die "some pieces the build needs are missing (above); nothing was built"
fi

# --- Python (tests, fixtures and benchmarks only) ---------------------------------------------
pip_needed=(); pip_needed_why=()
want_pip=("${pip_base[@]}")
((dev)) && want_pip+=("${pip_dev[@]}")
((bench)) && want_pip+=("${pip_bench[@]}")
for row in "${want_pip[@]}"; do
  IFS='|' read -r name why <<<"$row"
  [[ " ${pip_needed[*]-} " == *" $name "* ]] && continue
  # pip show knows the distribution, not its extras ("lm-eval[api]" -> "lm-eval").
  if [ -x .venv/bin/python ] && .venv/bin/python -m pip show -q "${name%%[*}" >/dev/null 2>&1; then continue; fi
  pip_needed+=("$name"); pip_needed_why+=("$why")
done
if [ ! -x .venv/bin/python ]; then
  say "creating the Python virtual environment .venv (tests only; the runtime never needs Python)"
  ((dry_run)) || python3 -m venv .venv || die "python3 -m venv failed: is python3-venv installed?"
  did_something=1
fi
if ((${#pip_needed[@]})); then
  say "${#pip_needed[@]} Python package(s) to install into .venv:"
  for i in "${!pip_needed[@]}"; do printf '  %-22s %s\n' "${pip_needed[$i]}" "${pip_needed_why[$i]}"; done
  if ! ((dry_run)); then
    .venv/bin/python -m pip install -q --disable-pip-version-check "${pip_needed[@]}" \
      || die "pip install ${pip_needed[*]} failed (PyPI unreachable? output above)"
    did_something=1
  fi
fi

# --- Build ------------------------------------------------------------------------------------
if ((build)); then
  if [ ! -f build/build.ninja ]; then
    say "configuring the Release build in build/"
    if ! ((dry_run)); then
      log=$(mktemp)
      if ! cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARQ_WERROR=ON >"$log" 2>&1; then
        tail -25 "$log" >&2
        grep -hoE "Could NOT find [A-Za-z0-9_]+[^)]*\)?|Could not find a package configuration file provided by \"[^\"]+\"" \
          "$log" | sort -u | sed 's/^/setup: error: configure: /' >&2 || true
        rm -rf build "$log"
        die "configuring the build failed: a dependency setup.sh should install is missing (see above)"
      fi
      rm -f "$log"
    fi
    did_something=1
  fi
  if ((dry_run)); then
    say "would build (cmake --build build), or find it up to date"
  else
    # ninja itself knows whether anything is out of date: its "no work to do" is not echoed.
    log=$(mktemp)
    set +e
    cmake --build build -j"$(nproc)" 2>&1 | tee "$log" | grep -vE '^\[0/[0-9]+\] Re-checking globbed directories|^ninja: no work to do'
    rc=${PIPESTATUS[0]}
    set -e
    grep -q '^ninja: no work to do' "$log" || did_something=1
    rm -f "$log"
    ((rc == 0)) || die "the build failed (output above)"
  fi
fi

if ((dry_run)); then
  say "dry run: nothing was changed"
elif ((did_something == 0)); then
  say "nothing to do: ${#apt_table[@]} Debian packages present, .venv complete$( ((build)) && echo ', build/ up to date')"
else
  say "done"
fi
