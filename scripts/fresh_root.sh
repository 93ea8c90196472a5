#!/usr/bin/env bash
# Runs a command in a brand-new Debian 12 root filesystem, as a new user's machine would: nothing
# installed but Debian's minimal 'apt' variant, a clean copy of this checkout (tracked and
# untracked files, nothing git ignores: no build/, no .venv) and ../shared beside it.
# Proves that scripts/setup.sh installs everything the build and the tests need.
#
#   scripts/fresh_root.sh [--refresh] [--keep] [-- COMMAND...]
#     COMMAND      run inside the root, in the checkout (default: bash scripts/test.sh)
#     --refresh    rebuild the cached root filesystem tarball even if it is recent
#     --keep       keep the unpacked root afterwards (its path is printed)
#
# Needs root (chroot, mounts) and mmdebstrap (installed here if missing). The tarball is cached in
# ${SPARQ_CACHE_DIR:-~/.cache/sparq}/fresh-root and rebuilt when older than 7 days; downloaded
# .deb files are cached there too, so later runs install from disk (every package must still be
# named by setup.sh to get installed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

refresh=0; keep=0; cmd=(bash scripts/test.sh)
while (($#)); do
  case "$1" in
    --refresh) refresh=1 ;;
    --keep) keep=1 ;;
    --) shift; (($#)) && cmd=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "fresh_root.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "fresh-root: $*"; }
die() { echo "fresh-root: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (chroot and mounts)"
[ -d ../shared ] || die "../shared (the shared data beside the checkout) is missing"
command -v git >/dev/null || die "needs git to list the checkout's files"
if ! command -v mmdebstrap >/dev/null; then
  say "installing mmdebstrap (builds the Debian 12 root filesystem)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null \
    || die "could not install mmdebstrap"
fi

cache="${SPARQ_CACHE_DIR:-$HOME/.cache/sparq}/fresh-root"
tarball="$cache/bookworm-apt.tar"
mkdir -p "$cache/apt-archives/partial"
start=$(date +%s)
if ((refresh)) || [ ! -s "$tarball" ] || [ -n "$(find "$tarball" -mtime +7)" ]; then
  say "building a Debian 12 root filesystem with mmdebstrap (variant apt)"
  # The machine's own apt sources (deb822 or one-line), so the root reaches the same mirror.
  sources=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^#' || true)
  [ -n "$sources" ] || sources=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$sources" ] || die "no apt sources found in /etc/apt"
  mmdebstrap --quiet --variant=apt --format=tar bookworm "$tarball.tmp" - <<<"$sources" || die "mmdebstrap failed"
  mv "$tarball.tmp" "$tarball"
fi

root=$(mktemp -d /var/tmp/sparq-fresh-root.XXXXXX)
cleanup() {
  # The mounts live in the child's private mount namespace and vanished with it; still, never
  # delete through a mount point.
  if ((keep)); then say "root kept at $root"; return; fi
  if findmnt -rno TARGET | grep -q "^$root"; then say "mounts remain under $root; not deleting it"; return; fi
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$tarball"
mkdir -p "$root/work/sparq" "$root/work/shared"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar -C "$repo" --null -T - -cf - | tar -C "$root/work/sparq" -xf -
cp -a ../shared/. "$root/work/shared/"
rm -f "$root/etc/resolv.conf"; cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# Generic host configuration, not a dependency: where this machine reaches PyPI through a proxy
# that re-signs TLS, only the host's CA bundle is trusted by it. It is handed to pip as PIP_CERT;
# the root's own ca-certificates package (installed by setup.sh) is left untouched.
pip_cert=()
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/host-ca-bundle.crt"
  pip_cert=(PIP_CERT=/etc/host-ca-bundle.crt)
fi
# nvcc is not a Debian package: the CUDA toolkit the machine provides is lent read-only, so the
# CUDA backend still compiles in the fresh root.
cuda_dir=""
if [ -x /usr/local/cuda/bin/nvcc ]; then cuda_dir=$(readlink -f /usr/local/cuda); fi
say "root ready in $(( $(date +%s) - start )) s; running: ${cmd[*]}"

# A private mount and PID namespace: every mount and process of the run goes away with it.
inside=$(cat <<'EOS'
set -euo pipefail
root=$1 cache=$2 cuda_dir=$3; shift 3
envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/tmp"
mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
if [ -n "$cuda_dir" ]; then
  mkdir -p "$root$cuda_dir"
  mount --bind -o ro "$cuda_dir" "$root$cuda_dir"
  ln -sfn "$cuda_dir" "$root/usr/local/cuda"
fi
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ -z "$cuda_dir" ] || path="$path:/usr/local/cuda/bin"
exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" PATH="$path" "${envs[@]}" \
  /bin/bash -c 'cd /work/sparq && exec "$@"' bash "$@"
EOS
)
unshare --mount --pid --fork --kill-child -- bash -c "$inside" bash "$root" "$cache" "$cuda_dir" "${pip_cert[@]}" -- "${cmd[@]}" </dev/null
