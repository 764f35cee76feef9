# Sourced by docker/nantools and docker/run-tests: build and run the image with Docker when an
# engine answers, otherwise with podman set up the way these machines need it (vfs storage,
# chroot isolation, runc, cgroupfs, no rlimits, a base image made offline by debootstrap).
# Defines: IMAGE, ENGINE, engine_build ARGS..., engine_image, engine_run ARGS...,
# engine_copy_out IMAGE FOLDER DEST, engine_clean.

IMAGE=${NANTOOLS_IMAGE:-caffe-nantools}
BASE_IMAGE=docker.io/library/debian:bullseye-slim
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CREATED_BASE=

say() { echo "caffe-nantools: $*" >&2; }

# The proxy's CA certificates, for pip inside the build (docker/certs is git-ignored).
find "$REPO_ROOT/docker/certs" -name '*.crt' -delete
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$REPO_ROOT/docker/certs/"
fi

# Whether the kernel lets us mount an overlay here: podman's overlay storage then keeps each
# layer as its changes alone, where vfs copies the whole root (~1.5 GB) for every layer, which
# made a fresh build minutes slower. Cleaned up with rmdir alone, which never follows a mount
# or removes anything but an empty folder.
overlay_mounts() {
  local dir ok=1
  dir=$(mktemp -d) || return 1
  mkdir "$dir/lower" "$dir/upper" "$dir/work" "$dir/merged"
  if mount -t overlay overlay -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/work" \
    "$dir/merged" 2>/dev/null; then
    umount "$dir/merged" && ok=0
  fi
  rmdir "$dir/merged" "$dir/work"/* "$dir/work" "$dir/upper" "$dir/lower" "$dir" 2>/dev/null || true
  return "$ok"
}

# podman's storage options: overlay in a store of its own (a store keeps the driver it was made
# with), else vfs in the default store. NANTOOLS_STORAGE=vfs|overlay overrides the probe.
podman_storage() {
  local driver=${NANTOOLS_STORAGE:-}
  [ -n "$driver" ] || { overlay_mounts && driver=overlay || driver=vfs; }
  if [ "$driver" = overlay ]; then
    echo --storage-driver overlay --root /var/lib/containers/caffe-nantools-overlay \
      --runroot /run/containers/caffe-nantools-overlay
  else
    echo --storage-driver vfs
  fi
}

if docker info >/dev/null 2>&1; then
  ENGINE=(docker)
  BUILD=(docker build)
  CONTAINERS=(docker)
  RUN=(docker run --rm)
else
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    say "no Docker engine answers and podman/runc are missing; install Docker, or: apt-get install podman runc debootstrap"
    exit 2
  fi
  ENGINE=(podman $(podman_storage))
  BUILD=("${ENGINE[@]}" build --isolation chroot --network host)
  CONTAINERS=("${ENGINE[@]}" --runtime runc --cgroup-manager cgroupfs)
  RUN=("${CONTAINERS[@]}" run --rm --network host)
  # crun and podman's default rlimits fail in these sandboxes.
  export CONTAINERS_CONF="${TMPDIR:-/tmp}/caffe-nantools-containers.conf"
  printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"
  if ! "${ENGINE[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if ! timeout 60 "${ENGINE[@]}" pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
      command -v debootstrap >/dev/null || { say "no registry and no debootstrap to make $BASE_IMAGE: apt-get install debootstrap"; exit 2; }
      say "making $BASE_IMAGE offline with debootstrap (about 30 s)"
      root=$(mktemp -d)
      debootstrap --variant=minbase bullseye "$root" >"$root.log" 2>&1 || { say "debootstrap failed, see $root.log"; exit 2; }
      tar -C "$root" -c . | "${ENGINE[@]}" import -q - "$BASE_IMAGE" >/dev/null
      rm -rf "$root" "$root.log"
      CREATED_BASE=1
    fi
  fi
fi

engine_build() { (cd "$REPO_ROOT" && "${BUILD[@]}" -f docker/Dockerfile "$@" .); }

# The runtime image, brought up to date with the checkout (quick when the cache holds). The
# build's own output (apt's and pip's notes) goes to a log that is shown only when it fails.
engine_image() {
  "${ENGINE[@]}" image inspect "$IMAGE" >/dev/null 2>&1 || say "building the image $IMAGE (first time: a few minutes)"
  local log
  log=$(mktemp "${TMPDIR:-/tmp}/caffe-nantools-build.XXXXXX")
  if ! engine_build --target runtime -t "$IMAGE" >"$log" 2>&1; then
    cat "$log" >&2
    say "building the image $IMAGE failed (the build's log is above, and in $log)"
    exit 2
  fi
  rm -f "$log"
}
engine_run() { "${RUN[@]}" "$@"; }

# Copies the folder FOLDER of IMAGE to DEST (which must not exist) by way of a container that
# is created, never started, and removed again.
engine_copy_out() {
  local container status=0
  container=$("${CONTAINERS[@]}" create "$1" true) || return 1
  "${CONTAINERS[@]}" cp "$container:$2" "$3" || status=$?
  "${CONTAINERS[@]}" rm "$container" >/dev/null || true
  return "$status"
}

# Removes the images this script built (and the base image if it made it), so repeated CI
# runs do not fill the disk; vfs keeps a full copy of the root per layer.
engine_clean() {
  "${ENGINE[@]}" rmi -f "$IMAGE" "$IMAGE-test" >/dev/null 2>&1 || true
  [ -z "$CREATED_BASE" ] || "${ENGINE[@]}" rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
  "${ENGINE[@]}" image prune -f >/dev/null 2>&1 || true
  find "$REPO_ROOT/docker/certs" -name '*.crt' -delete
}
