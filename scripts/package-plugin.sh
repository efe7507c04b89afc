#!/usr/bin/env bash
# Packages `kubectl multigres` as it is released with the operator: per platform a tar.gz with the
# binary and the license, its .sha256, and the krew manifest listing every archive in the output
# folder (docs/operations.md).
#
#   scripts/package-plugin.sh <kubectl-multigres binary> <output folder> [<os> <arch>]
#
# RELEASE_URL (required) is where the archives will be downloaded from, HOMEPAGE (default: its
# first three path parts' site) the plugin's page. The version is the workspace's, which is also
# every chart's appVersion.
set -euo pipefail
binary=$1 out=$2
os=${3:-$(uname -s | tr '[:upper:]' '[:lower:]')}
arch=${4:-$(uname -m | sed -e 's/x86_64/amd64/' -e 's/aarch64/arm64/')}
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
release_url=${RELEASE_URL:?set RELEASE_URL to where the archives will be downloaded from}
release_url=${release_url%/}
homepage=${HOMEPAGE:-$(echo "$release_url" | cut -d/ -f1-5)}

[ -x "$binary" ] || { echo "not an executable: $binary" >&2; exit 2; }
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$binary" "$stage/kubectl-multigres"
cp "$root/LICENSE" "$stage/LICENSE"
archive="kubectl-multigres_v${version}_${os}_${arch}.tar.gz"
# Sorted names, fixed owner and time: the same binary gives the same archive and checksum.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" \
  -cf - kubectl-multigres LICENSE | gzip -n > "$out/$archive"
(cd "$out" && sha256sum "$archive" > "$archive.sha256")

platforms=""
for sum in "$out"/kubectl-multigres_v"${version}"_*.tar.gz.sha256; do
  read -r sha name < "$sum"
  platform=${name#kubectl-multigres_v${version}_}
  platform=${platform%.tar.gz}
  platforms+="  - selector:
      matchLabels:
        os: ${platform%_*}
        arch: ${platform##*_}
    uri: $release_url/$name
    sha256: $sha
    bin: kubectl-multigres
"
done
VERSION=$version HOMEPAGE=$homepage PLATFORMS=${platforms%$'\n'} \
  python3 -c 'import os, string, sys; sys.stdout.write(string.Template(open(sys.argv[1]).read()).substitute(os.environ))' \
  "$root/deploy/krew/multigres.yaml" > "$out/multigres.yaml"
echo "$out/$archive"
