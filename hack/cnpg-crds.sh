#!/usr/bin/env bash
# Copies CloudNativePG's published CRDs (Cluster, ScheduledBackup, Backup) from its Go
# module into controllers/testdata/crds/cnpg, for the envtest suites, and records the
# module version beside them. controllers/cnpg_crds_test.go checks that the copies
# equal the module's files.
#
#   hack/cnpg-crds.sh            # the version in controllers/testdata/crds/cnpg/VERSION
#   hack/cnpg-crds.sh v1.28.1    # another version
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/controllers/testdata/crds/cnpg"
module="github.com/cloudnative-pg/cloudnative-pg"
version="${1:-$(cat "$dest/VERSION" 2>/dev/null || echo v1.28.0)}"

# Outside the repository's module: downloading must not touch go.mod or go.sum.
dir="$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$dir" ] || [ ! -d "$dir/config/crd/bases" ]; then
  echo "cnpg-crds: $module@$version has no config/crd/bases" >&2
  exit 1
fi
mkdir -p "$dest"
for kind in clusters scheduledbackups backups; do
  cp "$dir/config/crd/bases/postgresql.cnpg.io_$kind.yaml" "$dest/"
  chmod 0644 "$dest/postgresql.cnpg.io_$kind.yaml"
done
echo "$version" > "$dest/VERSION"
echo "cnpg-crds: copied $module@$version CRDs into ${dest#"$root"/}" >&2
