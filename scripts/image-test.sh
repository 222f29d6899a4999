#!/usr/bin/env bash
# Build the job image (docker/Dockerfile) with buildah on a local CPU base and run a tiny
# job in it with podman exactly as the Kubernetes Job runs it, publishing to a local S3
# server (moto); then pull and verify the results from the host with scripts/pull.
#
#   bash scripts/image-test.sh               build, run the tiny PTQ job, pull; prints size and times
#   bash scripts/image-test.sh --build-only  build (or reuse) the image and stop
#   bash scripts/image-test.sh --cpu [--build-only]
#                                            the same for the CPU image, docker/Dockerfile.cpu (Paddle CPU
#                                            and OpenVINO), its Job rendered by scripts/launch --device cpu
#
# No Docker engine and no registry here, so the base is made from Debian's archive
# (debootstrap bookworm, Python 3.11) plus CPU paddle 2.6.2, and cached under
# $ACT_IMAGE_CACHE (default /var/tmp/act-image-cache), keyed by everything it is made from.
# Needs root (debootstrap, rootful podman); installs buildah, podman, runc and debootstrap
# from Debian when missing. README "Development" and "Known gaps" give its measured times.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${ACT_IMAGE_CACHE:-/var/tmp/act-image-cache}
IMAGE=localhost/act-job:cpu-test
SUITE=bookworm
MIRROR=${ACT_IMAGE_MIRROR:-http://deb.debian.org/debian}
# g++ and python3-dev: pyrfr (smac's dependency, PTQ's search) builds from source, as on Paddle's image.
PACKAGES=python3,python3-dev,python3-pip,python-is-python3,ca-certificates,g++
PADDLE=paddlepaddle==2.6.2
LOCK=requirements/constraints.txt   # the Python 3.11 lock, bookworm's Python
build_only=0
cpu_image=0
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    --cpu) cpu_image=1 ;;
    *) echo "image-test: unknown argument $arg (--build-only, --cpu)" >&2; exit 2 ;;
  esac
done

say() { echo "image-test: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }

if [ "$(id -u)" != 0 ]; then
  say "needs root (debootstrap and rootful podman with the vfs driver)"; exit 1
fi
missing=()
for tool in buildah podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman runc debootstrap >/dev/null
fi
bash scripts/setup.sh >/dev/null

# Storage and engine settings of our own, so that nothing depends on (or disturbs) the
# machine's defaults: vfs (no overlay mounts here), runc with cgroupfs and no default
# ulimits (crun fails here on setrlimit and hybrid cgroups).
mkdir -p "$CACHE/conf" "$CACHE/base"
cat > "$CACHE/conf/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$CACHE/storage"
runroot = "$CACHE/runroot"
EOF
cat > "$CACHE/conf/containers.conf" <<EOF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_STORAGE_CONF=$CACHE/conf/storage.conf CONTAINERS_CONF=$CACHE/conf/containers.conf

# pip inside a build step trusts the image's CA bundle, which does not know the package
# proxy's certificate: mount the bundle the machine's pip trusts over it.
cert=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
cert=${cert:-/etc/ssl/certs/ca-certificates.crt}
mount_cert=(-v "$cert:/etc/ssl/certs/ca-certificates.crt:ro")

# --- the base: Debian bookworm + Python 3.11 + CPU paddle, cached by its inputs ---------------
recipe="3|$SUITE|$MIRROR|minbase|$PACKAGES|$PADDLE|$(sha256sum "$LOCK" | cut -d' ' -f1)"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
BASE=localhost/act-base:cpu-$key
base_started=$(now)
if [ "$cpu_image" = 1 ] && podman image exists "localhost/act-debian:$SUITE-$key"; then
  say "Debian base localhost/act-debian:$SUITE-$key: cached"
elif podman image exists "$BASE"; then
  say "base $BASE: cached"
else
  tarball=$CACHE/base/debian-$SUITE-$key.tar
  if [ ! -s "$tarball" ]; then
    say "base: debootstrap $SUITE (minbase + $PACKAGES)"
    rootfs=$(mktemp -d "$CACHE/base/rootfs.XXXXXX")
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$CACHE/base/debootstrap.log" 2>&1 \
      || { say "debootstrap failed, see $CACHE/base/debootstrap.log"; rm -rf "$rootfs"; exit 1; }
    # Apt's downloaded packages and lists are of no use in an image.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # mktemp made the folder 0700, and it becomes the image's `/`: a non-root user could not
    # even reach /usr/bin/python.
    chmod 0755 "$rootfs"
    tar -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
  fi
  podman import --quiet "$tarball" "localhost/act-debian:$SUITE-$key" >/dev/null
  # The base stands in for Paddle's GPU image: one system Python that pip installs into,
  # with paddle already there. Debian marks its Python externally managed (PEP 668); this
  # Python is the image's own, so the marker goes.
  # /etc/mtab as every Debian system has it (minbase leaves it to systemd): otherwise podman
  # adds it to each container's root file system, and `podman diff` shows a write in /etc.
  buildah --storage-driver vfs bud --isolation chroot --network host "${mount_cert[@]}" \
    -t "$BASE" -f - requirements <<EOF >"$CACHE/base/build.log" 2>&1 || { tail -n 40 "$CACHE/base/build.log" >&2; say "base build failed"; exit 1; }
FROM localhost/act-debian:$SUITE-$key
COPY constraints.txt /tmp/constraints.txt
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\
    && ln -sf /proc/mounts /etc/mtab \\
    && python -m pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore $PADDLE -c /tmp/constraints.txt \\
    && rm /tmp/constraints.txt
EOF
  say "base $BASE: made in $(since "$base_started") s"
  # Bases made from other inputs are of no further use (each holds GBs in vfs).
  podman images --format '{{.Repository}}:{{.Tag}}' | grep -E '^localhost/act-(base:cpu|debian:'"$SUITE"')-' \
    | grep -v -x -e "$BASE" -e "localhost/act-debian:$SUITE-$key" | xargs -r podman rmi --force >/dev/null 2>&1 || true
  find "$CACHE/base" -name "debian-*.tar" ! -name "debian-$SUITE-$key.tar" -delete
fi

# --- the CPU image (docker/Dockerfile.cpu), on a stand-in for python:3.11-slim ---------------------
if [ "$cpu_image" = 1 ]; then
  # The stand-in: Debian's Python 3.11 without the PEP 668 marker, /etc/mtab as every Debian
  # system has it, and no C++ compiler (as on python:3.11-slim: the build stage installs one).
  PYBASE=localhost/act-pybase:cpu-$key-1   # -1: the recipe below; bump it when that changes
  if ! podman image exists "$PYBASE"; then
    buildah --storage-driver vfs bud --isolation chroot --network host -t "$PYBASE" -f - requirements <<EOF >"$CACHE/base/pybase.log" 2>&1 || { tail -n 40 "$CACHE/base/pybase.log" >&2; say "stand-in base build failed"; exit 1; }
FROM localhost/act-debian:$SUITE-$key
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\
    && ln -sf /proc/mounts /etc/mtab \\
    && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq g++ g++-12 >/dev/null \\
    && rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*
EOF
    say "stand-in base $PYBASE: made"
  fi
  context_hash=$(
    { cat docker/Dockerfile.cpu .dockerignore; find requirements job configs scripts -type f ! -path '*/__pycache__/*' ! -name '*.py[co]' -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-12
  )
  CPU_IMAGE=localhost/act-job-cpu:test
  TAGGED=localhost/act-job-cpu:test-$key-$context_hash
  build_seconds=0
  if podman image exists "$TAGGED"; then
    say "image $TAGGED: cached (nothing it is built from changed)"
  else
    build_started=$(now)
    buildah --storage-driver vfs bud --isolation chroot --network host --format docker --quiet "${mount_cert[@]}" \
      --build-arg BASE_IMAGE="$PYBASE" -f docker/Dockerfile.cpu -t "$TAGGED" . >"$CACHE/build-cpu.log" 2>&1 \
      || { tail -n 40 "$CACHE/build-cpu.log" >&2; say "build failed, log: $CACHE/build-cpu.log"; exit 1; }
    build_seconds=$(since "$build_started")
    # Older builds of the CPU image are of no further use: free their space.
    podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/act-job-cpu:test-' | grep -v -x -e "$TAGGED" \
      | xargs -r podman rmi --force >/dev/null 2>&1 || true
  fi
  podman tag "$TAGGED" "$CPU_IMAGE"
  podman image prune --force >/dev/null
  size=$(podman image inspect --format '{{.Size}}' "$CPU_IMAGE")
  say "image $CPU_IMAGE: $((size / 1000000)) MB, built in $build_seconds s"
  [ "$build_only" = 1 ] && exit 0
  ACT_IMAGE_CACHE=$CACHE exec .venv/bin/python tests/image_harness.py run --image "$CPU_IMAGE" --device cpu
fi

# --- the image ----------------------------------------------------------------------------------
# With vfs every build step's layer is a full copy of the file system (about 3 GB here), so
# the build commits one layer (no --layers) and the image is cached whole instead: tagged by
# the hash of its base and of every file the build context holds, rebuilt when one changes.
context_hash=$(
  { cat docker/Dockerfile .dockerignore; find requirements job configs scripts -type f ! -path '*/__pycache__/*' ! -name '*.py[co]' -print0 | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-12
)
TAGGED=localhost/act-job:cpu-$key-$context_hash
build_seconds=0
if podman image exists "$TAGGED"; then
  say "image $TAGGED: cached (nothing it is built from changed)"
else
  build_started=$(now)
  buildah --storage-driver vfs bud --isolation chroot --network host --format docker --quiet "${mount_cert[@]}" \
    --build-arg BASE_IMAGE="$BASE" --build-arg PADDLE_DIST=paddlepaddle --build-arg CONSTRAINTS="$LOCK" \
    -f docker/Dockerfile -t "$TAGGED" . >"$CACHE/build.log" 2>&1 || { tail -n 40 "$CACHE/build.log" >&2; say "build failed, log: $CACHE/build.log"; exit 1; }
  build_seconds=$(since "$build_started")
  # Older builds of this image are of no further use: free their space.
  podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/act-job:cpu-' | grep -v -x -e "$TAGGED" -e "$IMAGE" \
    | xargs -r podman rmi --force >/dev/null 2>&1 || true
fi
podman tag "$TAGGED" "$IMAGE"
podman image prune --force >/dev/null  # the image $IMAGE named before, if any
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "image $IMAGE: $((size / 1000000)) MB, built in $build_seconds s"
[ "$build_only" = 1 ] && exit 0

# --- the tiny job in the image, as the Job runs it, then the pull ------------------------------
ACT_IMAGE_CACHE=$CACHE exec .venv/bin/python tests/image_harness.py run --image "$IMAGE"
