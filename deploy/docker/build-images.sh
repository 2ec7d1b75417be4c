#!/usr/bin/env bash
# Builds the two images that docker-compose.yml and deploy/kubernetes run,
# without pulling anything from a registry:
#
#   workq:latest        coordinator and worker, static Go binaries (CGO_ENABLED=0)
#                       built with the local Go toolchain, FROM scratch, plus a
#                       static busybox (Debian's busybox-static) for /bin/sh, and
#                       the example Job's files in /usr/share/workq/examples/.
#                       Runs as 10001:10001, like the Dockerfile's image.
#   workq-redis:latest  Debian's Redis server and redis-cli with the shared
#                       libraries that ldd finds for them, plus the same busybox
#                       (the Kubernetes probes run sh and grep). Runs as 999:999
#                       with its data in /data, like the official redis image.
#
# Each image is `docker import` of a root filesystem built here. The tar of that
# root filesystem is reproducible (sorted, fixed times and owners) and its
# sha256 is stored in the image's label io.workq.rootfs.sha256, so a second run
# with nothing changed imports nothing: the script is idempotent.
#
# Usage:
#   deploy/docker/build-images.sh [--no-apt]
#
#   --no-apt   never run apt-get: when a Debian package is missing, say which
#              and exit 3 (by default the script installs them with apt-get,
#              through sudo when not root)
#
# Environment:
#   WORKQ_IMAGE        the workq image's tag (default workq:latest)
#   WORKQ_REDIS_IMAGE  the Redis image's tag (default workq-redis:latest)
#
# Needs: Linux with apt (Debian or Ubuntu) whose architecture is the Docker
# engine's, Go 1.26 or later, a Docker engine, and the Debian packages
# busybox-static and redis-tools (installed when missing; redis-tools holds
# the Redis server binary too, so no Redis service gets installed or started).
#
# Exit codes: 0 built or up to date, 1 a step failed, 2 bad usage,
# 3 Debian packages are missing and were not installed.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

apt=1
for arg in "$@"; do
  case "$arg" in
    --no-apt) apt=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "build-images.sh: unknown argument $arg; see --help" >&2; exit 2 ;;
  esac
done

workq_image="${WORKQ_IMAGE:-workq:latest}"
redis_image="${WORKQ_REDIS_IMAGE:-workq-redis:latest}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

say() { echo "build-images.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# --- tools --------------------------------------------------------------------

command -v docker >/dev/null || die "the docker command is missing; install Docker Engine (https://docs.docker.com/engine/install/), then run this again"
command -v go >/dev/null || die "the go command is missing; install Go 1.26 or later (https://go.dev/dl/) and put it on PATH"
for tool in tar ldd sha256sum dpkg-query; do
  command -v "$tool" >/dev/null || die "the $tool command is missing; this script runs on Debian or Ubuntu"
done
engine="$(docker version --format '{{.Server.Os}}/{{.Server.Arch}}' 2>&1)" ||
  die "no Docker engine answers (docker version: $engine); start it, or check DOCKER_HOST and your access to the socket"

# Debian's binaries run in the images, so the engine must have their architecture.
deb_arch="$(dpkg --print-architecture)"
case "$deb_arch" in
  i386) go_arch=386 ;;
  ppc64el) go_arch=ppc64le ;;
  armhf | armel) go_arch=arm ;;
  *) go_arch="$deb_arch" ;;
esac
[ "$engine" = "linux/$go_arch" ] ||
  die "the Docker engine runs $engine, but this machine's Debian packages are $deb_arch (linux/$go_arch); run this script where they match"

# --- Debian packages ----------------------------------------------------------

# file -> the package that provides it
declare -A needs=(
  [/bin/busybox]=busybox-static
  [/usr/bin/redis-check-rdb]=redis-tools
  [/usr/bin/redis-cli]=redis-tools
)
missing_packages() {
  local file
  for file in "${!needs[@]}"; do
    [ -e "$file" ] || echo "${needs[$file]}"
  done | sort -u
}
mapfile -t missing < <(missing_packages)
if ((${#missing[@]})); then
  install="apt-get install -y --no-install-recommends ${missing[*]}"
  if ((!apt)); then
    say "missing Debian packages: ${missing[*]}; install them with: sudo apt-get update && sudo $install"
    exit 3
  fi
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || {
      say "missing Debian packages: ${missing[*]}, and no sudo to install them; as root run: apt-get update && $install"
      exit 3
    }
    sudo=(sudo)
  fi
  say "installing ${missing[*]} with apt-get"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive $install -qq >/dev/null
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) || die "apt-get installed ${missing[*]}, but their files are still missing"
fi
if ldd /bin/busybox >/dev/null 2>&1; then
  die "/bin/busybox is linked dynamically (Debian's busybox package); install busybox-static, which replaces it: sudo apt-get install busybox-static"
fi

# --- root filesystems ---------------------------------------------------------

work="$(mktemp -d "${TMPDIR:-/tmp}/workq-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# add_busybox DIR: /bin/busybox, a symlink per applet (sh, grep, sleep, ...)
# and /sbin/nologin.
add_busybox() {
  local dir="$1" applet
  mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $(/bin/busybox --list); do
    case "$applet" in busybox | */*) continue ;; esac
    [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
  done
  ln -sf /bin/busybox "$dir/sbin/nologin"
}

# pack DIR: a reproducible tar of DIR (sorted, fixed times and owners).
pack() {
  local dir="$1"
  chmod -R u=rwX,go=rX "$dir"
  chmod 1777 "$dir/tmp"
  [ ! -d "$dir/data" ] || chmod 1777 "$dir/data"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$dir" -cf "$dir.tar" .
}

# import_image TAG DIR CHANGE...: imports the tar of DIR as TAG unless TAG
# already holds the same root filesystem; prints "built" or "up to date".
import_image() {
  local tag="$1" dir="$2" sum have
  shift 2
  sum="$(sha256sum "$dir.tar" | cut -d' ' -f1)"
  have="$(docker image inspect --format '{{index .Config.Labels "io.workq.rootfs.sha256"}}' "$tag" 2>/dev/null || true)"
  if [ "$have" = "$sum" ]; then
    echo "up to date"
    return
  fi
  local changes=() c
  for c in "$@" "LABEL io.workq.rootfs.sha256=$sum"; do
    changes+=(--change "$c")
  done
  docker import "${changes[@]}" --message "deploy/docker/build-images.sh" - "$tag" <"$dir.tar" >/dev/null
  echo "built"
}

# workq: the binaries, busybox, the examples.
say "building coordinator and worker (CGO_ENABLED=0, linux/$go_arch)"
wq="$work/workq"
mkdir -p "$wq/usr/local/bin" "$wq/usr/share/workq/examples" "$wq/etc" "$wq/tmp"
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH="$go_arch" \
  go build -trimpath -ldflags "-s -w" -o "$wq/usr/local/bin/" ./cmd/coordinator ./cmd/worker)
add_busybox "$wq"
cp "$root/examples/words.txt" "$root/examples/wordlen.sh" "$wq/usr/share/workq/examples/"
chmod +x "$wq/usr/share/workq/examples/wordlen.sh"
printf 'root:x:0:0:root:/root:/bin/sh\nworkq:x:10001:10001:workq:/nonexistent:/sbin/nologin\n' >"$wq/etc/passwd"
printf 'root:x:0:\nworkq:x:10001:\n' >"$wq/etc/group"
pack "$wq"
workq_result="$(import_image "$workq_image" "$wq" \
  "ENV PATH=/usr/local/bin:/usr/bin:/bin" \
  "USER 10001:10001" \
  "WORKDIR /tmp" \
  "EXPOSE 8080 9090" \
  'CMD ["coordinator", "--help"]' \
  "LABEL org.opencontainers.image.title=workq")"

# Redis: Debian's binary (redis-check-rdb is the server when named
# redis-server), redis-cli, their libraries and the dynamic loader, busybox.
say "collecting Debian's redis-server, redis-cli and their shared libraries"
rd="$work/redis"
mkdir -p "$rd/usr/bin" "$rd/etc" "$rd/data" "$rd/tmp"
cp "$(readlink -f /usr/bin/redis-check-rdb)" "$rd/usr/bin/redis-server"
cp "$(readlink -f /usr/bin/redis-cli)" "$rd/usr/bin/redis-cli"
ln -s redis-server "$rd/usr/bin/redis-check-rdb"
ln -s redis-server "$rd/usr/bin/redis-check-aof"
libs="$(ldd /usr/bin/redis-check-rdb /usr/bin/redis-cli)"
if grep -q 'not found' <<<"$libs"; then
  die "ldd cannot find every library of redis-check-rdb and redis-cli:
$(grep 'not found' <<<"$libs")
reinstall them: sudo apt-get install --reinstall redis-tools"
fi
for lib in $(grep -o '/[^ ]* (0x' <<<"$libs" | cut -d' ' -f1 | sort -u); do
  mkdir -p "$rd$(dirname "$lib")"
  cp "$(readlink -f "$lib")" "$rd$lib"
done
add_busybox "$rd"
printf 'root:x:0:0:root:/root:/bin/sh\nredis:x:999:999:redis:/data:/sbin/nologin\n' >"$rd/etc/passwd"
printf 'root:x:0:\nredis:x:999:\n' >"$rd/etc/group"
pack "$rd"
redis_result="$(import_image "$redis_image" "$rd" \
  "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  "USER 999:999" \
  "WORKDIR /data" \
  "VOLUME /data" \
  "EXPOSE 6379" \
  'CMD ["redis-server"]' \
  "LABEL org.opencontainers.image.title=workq-redis")"

# --- what was built -----------------------------------------------------------

describe() {
  docker image inspect --format '{{.Id}} {{.Size}}' "$1" |
    awk '{ printf "%s, %.1f MB", substr($1, 1, 19), $2 / 1e6 }'
}
compose_env() {
  [ "$workq_image" = workq:latest ] || echo "  WORKQ_IMAGE=$workq_image"
  echo "  WORKQ_REDIS_IMAGE=$redis_image"
}
go_version="$(go version | cut -d' ' -f3)"
busybox_version="$(dpkg-query -W -f='${Version}' busybox-static)"
redis_version="$(dpkg-query -W -f='${Version}' redis-tools)"
cat <<EOF
$workq_image: $workq_result ($(describe "$workq_image"))
    coordinator and worker ($go_version, static), busybox $busybox_version, examples; user 10001
$redis_image: $redis_result ($(describe "$redis_image"))
    redis-server and redis-cli $redis_version (Debian), busybox $busybox_version; user 999, data in /data

Run the Compose stack on them: set in .env (Compose reads it for every command)
$(compose_env)
then: docker compose up --no-build    (Compose v2)
  or: docker-compose up --no-build    (docker-compose v1)
EOF
if [ "$workq_image" = workq:latest ] && [ "$redis_image" = workq-redis:latest ]; then
  echo "Kubernetes: load both into the cluster (see the README), then: kubectl apply -k deploy/kubernetes-local"
fi
