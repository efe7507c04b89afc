#!/usr/bin/env bash
# Makes the root filesystem `just conformance` runs Multigres' processes in (docs/conformance.md):
# a Debian sid minbase with PostgreSQL 17 and postgres_exporter from trixie (Multigres refuses
# PostgreSQL 18) and pgBackRest from sid
# (Multigres wants >= 2.57; trixie has 2.55), the en_US.UTF-8 locale and a non-root user, since every
# Multigres binary refuses to run as root. It installs no Multigres: the user brings those binaries.
#
# usage: sudo scripts/conformance-root.sh <root-dir>     (about 3 minutes; re-running is cheap)
set -euo pipefail

root="${1:?usage: conformance-root.sh <root-dir>}"
user_name="${CONFORMANCE_USER:-multigres}"
user_id="${CONFORMANCE_UID:-999}"

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot)" >&2; exit 1; }

if [ ! -x "$root/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || apt-get install -y debootstrap
  debootstrap --variant=minbase --include=ca-certificates,locales sid "$root" http://deb.debian.org/debian
fi

cat >"$root/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian sid main
deb http://deb.debian.org/debian trixie main
EOF
# A mirror (or a machine clock) a few weeks apart makes apt refuse sid's Release file as expired.
echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99conformance-no-expiry"

# Package scripts inside the chroot want /proc and /dev; mounted only while this script runs.
mounted=()
cleanup() { for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" || true; done; }
trap cleanup EXIT
for m in proc dev; do
  if ! mountpoint -q "$root/$m"; then
    mount --bind "/$m" "$root/$m"
    mounted+=("$root/$m")
  fi
done

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

echo 'en_US.UTF-8 UTF-8' >"$root/etc/locale.gen"
in_root locale-gen
in_root apt-get update -q
# Two steps, because apt's solver finds no plan for the mix in one: first what comes from sid
# (pgBackRest >= 2.57, which Multigres checks; postgresql-common), then postgresql-17 from trixie,
# the newest major Multigres accepts (sid has moved on to 18, which Multigres refuses).
in_root apt-get install -y -q --no-install-recommends \
  pgbackrest/sid postgresql-common postgresql-client-common perl procps
in_root apt-get install -y -q --no-install-recommends postgresql-17/trixie postgresql-client-17/trixie
# The pool pods' postgres_exporter sidecar, at the version its default image pins (trixie: 0.17.1),
# under the name that image runs it by.
in_root apt-get install -y -q --no-install-recommends prometheus-postgres-exporter/trixie
ln -sf prometheus-postgres-exporter "$root/usr/bin/postgres_exporter"
# Debian starts a cluster on install; Multigres' pgctld makes its own data directories.
in_root sh -c 'pg_dropcluster --stop 17 main 2>/dev/null || true'

if ! in_root id -u "$user_name" >/dev/null 2>&1; then
  in_root useradd --create-home --uid "$user_id" --shell /bin/bash "$user_name"
fi

pg=$(in_root /usr/lib/postgresql/17/bin/postgres --version)
br=$(in_root pgbackrest version)
echo "root ready: $root  ($pg; $br; user $user_name uid $user_id)"
