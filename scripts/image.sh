#!/bin/bash
# Builds the slabtrace OCI image from the build tree, from scratch: no base
# image, no registry. The image holds the stripped binary, the dynamic loader
# and exactly the shared libraries the loader resolves for it; nothing else
# (no shell, no /etc, nothing from /usr/share), since slabtrace reads only the
# host's /proc and /sys and the directories the DaemonSet mounts.
#
#   scripts/image.sh [--build DIR] [--tag REF] [--store DIR] [--archive FILE]
#
#   --build DIR     build tree holding the slabtrace binary (default: build/)
#   --tag REF       image reference (default: localhost/slabtrace:<version>)
#   --store DIR     a containers-storage of its own under DIR (graph root,
#                   run root; vfs driver), instead of the host's default store:
#                   the tests use it and remove it whole
#   --archive FILE  also write a docker-archive tarball, for `docker load`,
#                   `podman load` or `ctr -n k8s.io images import`
#
# Prints the image reference as its last line.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

build="$root/build"
tag=""
store=""
archive=""
while (($#)); do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --store) store="$2"; shift 2 ;;
    --archive) archive="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

binary="$build/slabtrace"
[[ -x "$binary" ]] || { echo "image.sh: no slabtrace binary in $build (run scripts/build.sh first)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "image.sh: buildah is missing (scripts/setup.sh installs it)" >&2; exit 1; }

version="$("$binary" --version)"
revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ $revision != unknown ]] && ! git -C "$root" diff --quiet HEAD -- 2>/dev/null; then
  revision="$revision-dirty"
fi
tag="${tag:-localhost/slabtrace:$version}"

buildah=(buildah)
if [[ -n $store ]]; then
  mkdir -p "$store"
  store="$(cd "$store" && pwd)"
  # vfs needs no overlay support from the kernel or the file system under DIR.
  buildah=(buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs)
fi

stage="$(mktemp -d /tmp/slabtrace-image.XXXXXX)"
container=""
cleanup() {
  [[ -n $container ]] && "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup EXIT

rootfs="$stage/rootfs"
mkdir -p "$rootfs/usr/bin"
strip --strip-all -o "$rootfs/usr/bin/slabtrace" "$binary"

# The loader's own answer for this binary: every library it maps, at the path
# it found it (ldd runs the loader in trace mode; nothing of slabtrace runs).
# Each is copied as a file at that path, so the image needs no ld.so.cache.
linked="$(ldd "$binary")"
if grep -q "not found" <<<"$linked"; then
  echo "image.sh: $binary needs libraries this machine lacks: $(grep "not found" <<<"$linked" | awk '{print $1}' | tr '\n' ' ')" >&2
  exit 1
fi
mapfile -t libraries < <(awk '/=> \// { print $3 } /^\t\/[^ ]+ \(0x/ { print $1 }' <<<"$linked")
((${#libraries[@]})) || { echo "image.sh: ldd listed no libraries for $binary" >&2; exit 1; }
for lib in "${libraries[@]}"; do
  mkdir -p "$rootfs$(dirname "$lib")"
  strip --strip-unneeded -o "$rootfs$lib" "$(readlink -f "$lib")"
done

container="$("${buildah[@]}" from scratch)"
"${buildah[@]}" copy --quiet "$container" "$rootfs/" / >/dev/null
"${buildah[@]}" config \
  --entrypoint '["/usr/bin/slabtrace"]' \
  --cmd '["serve", "--listen", "0.0.0.0:9464"]' \
  --port 9464/tcp \
  --user 0:0 \
  --workingdir / \
  --stop-signal SIGTERM \
  --label org.opencontainers.image.title=slabtrace \
  --label "org.opencontainers.image.description=Attributes kernel slab memory growth to caches, cgroups, kernel stacks and sockets" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  "$container"
"${buildah[@]}" commit --quiet --rm --format oci "$container" "$tag" >/dev/null
container=""

files="$(du -sb "$rootfs" | cut -f1)"
echo "image.sh: $tag: ${#libraries[@]} libraries + slabtrace, $((files / 1024)) KiB unpacked, revision $revision" >&2

if [[ -n $archive ]]; then
  rm -f "$archive"
  "${buildah[@]}" push --quiet "$tag" "docker-archive:$archive:$tag" >/dev/null
  echo "image.sh: wrote $archive ($(( $(stat -c %s "$archive") / 1024 )) KiB)" >&2
fi
echo "$tag"
