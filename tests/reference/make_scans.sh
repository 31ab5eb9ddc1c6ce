#!/usr/bin/env bash
# make_scans.sh OUT_DIR [CORPUS_DIR]
#
# Builds a *scanned* OCR test set: page 1 of every *.pdf in CORPUS_DIR (default:
# ../shared/corpus/pdf-text relative to the repo root) is rendered to images the
# way a scanner or fax machine would produce them, and wrapped as image-only
# files with no text layer. The original page's text layer (pdftotext) is kept
# as the truth, so an OCR pipeline can be scored (word-level F1) per variant.
#
# Pages are skipped (reason on stderr) when pdftoppm/ImageMagick fails on them
# (e.g. an A0 page exceeds ImageMagick's policy area limit at 300 dpi) or when
# the truth has fewer than 40 words (tokens with a letter or digit).
#
# Needs: pdftoppm, pdftotext (apt: poppler-utils); convert (apt: imagemagick,
# ImageMagick 6; never used to write PDF, which Debian's policy forbids);
# img2pdf (apt: img2pdf); tiffcp, tiffset, tiffinfo (apt: libtiff-tools); python3.
#
# Output layout (all paths in manifest.jsonl are relative to OUT_DIR):
#   truth/STEM.txt             page-1 text layer of STEM.pdf (pdftotext -enc UTF-8)
#   clean300/STEM.pdf          300 dpi 8-bit gray, lossless (the reference: what OCR
#                                reads off a perfect scan of the page)
#   gray300/STEM.pdf           300 dpi 8-bit gray, JPEG q85 (DCTDecode), via img2pdf
#   jpeg/STEM.jpg              that same JPEG (the "photo of a page" upload case)
#   gray200/STEM.pdf           200 dpi 8-bit gray, lossless PNG -> FlateDecode
#   fax200/STEM.pdf            200 dpi 1-bit (pdftoppm -mono), CCITT G4 (CCITTFaxDecode)
#   rotated-gray300/STEM.pdf   every third corpus file (sorted index 0,3,6,...):
#   rotated-fax200/STEM.pdf      the renders rotated by +1, -2, +3, -1.5, +2.5 deg
#                                (cycling), white background, canvas grown as IM does;
#                                fax = rotate 8-bit 200 dpi gray, threshold 50%, G4
#   tiff/fax-multipage.tif     G4 multi-page TIFF: fax pages of the first <=8 kept files
#   tiff/fax-multipage-g3.tif  the same pages, CCITT Group 3 (1-D, IM "-compress Fax")
#   manifest.jsonl             one line per (file, page):
#     {"variant": "gray300", "file": "gray300/STEM.pdf", "page": 1, "truth": "truth/STEM.txt"}
#     variants: clean300 gray300 jpeg300 gray200 fax200 rotated-gray300 rotated-fax200 tiff-g4 tiff-g3
#
# STEM is the file name without .pdf, with every char outside [A-Za-z0-9_-] -> "_".
# Re-running over an existing OUT_DIR deletes and rebuilds the entries above
# (only those; nothing else in OUT_DIR is touched).
set -euo pipefail

usage() { echo "usage: $0 OUT_DIR [CORPUS_DIR]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
out=$1
corpus=${2:-$repo_root/../shared/corpus/pdf-text}
if [[ -d $corpus ]]; then corpus=$(cd "$corpus" && pwd); fi

missing=()
for tool in pdftoppm pdftotext convert img2pdf tiffcp tiffset tiffinfo python3; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "error: missing tool(s): ${missing[*]}" >&2
    echo "       apt-get install poppler-utils imagemagick img2pdf libtiff-tools python3" >&2
    exit 1
fi
[[ -d $corpus ]] || { echo "error: corpus dir not found: $corpus" >&2; exit 1; }

start_s=$SECONDS
mkdir -p "$out"
out=$(cd "$out" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/make_scans.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

variants_dirs=(truth clean300 gray300 jpeg gray200 fax200 rotated-gray300 rotated-fax200 tiff)
for d in "${variants_dirs[@]}"; do rm -rf "${out:?}/$d"; mkdir -p "$out/$d"; done
manifest=$out/manifest.jsonl
: >"$manifest"

angles=(1.0 -2.0 3.0 -1.5 2.5)
dens() { echo -density "$1" -units PixelsPerInch; }

emit() { # variant file page truth
    printf '{"variant": "%s", "file": "%s", "page": %d, "truth": "%s"}\n' "$1" "$2" "$3" "$4" >>"$manifest"
}

count_words() { # file -> number of whitespace tokens holding a letter or digit
    python3 -c '
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
print(sum(1 for t in text.split() if re.search(r"[^\W_]", t)))' "$1"
}

# Runs a command; on failure prints its stderr's last line as the skip reason.
step() { # what cmd...
    local what=$1; shift
    if ! "$@" 2>"$tmp/err"; then
        reason="$what failed: $(grep -v '^\s*$' "$tmp/err" | head -n1)"
        return 1
    fi
}

# Builds every variant of one page in $w (a scratch dir); nothing lands in $out
# unless all steps succeed.
build_page() { # pdf stem rotate_angle(or "")
    local pdf=$1 stem=$2 angle=$3 w=$tmp/$2
    rm -rf "$w"; mkdir -p "$w"
    # PGM, not -png: pdftoppm -gray -png writes an RGB PNG (poppler 22.12).
    step "pdftoppm 300 gray" pdftoppm -r 300 -gray -f 1 -l 1 -singlefile "$pdf" "$w/g300" || return 1
    step "pdftoppm 200 gray" pdftoppm -r 200 -gray -f 1 -l 1 -singlefile "$pdf" "$w/g200" || return 1
    step "pdftoppm 200 mono" pdftoppm -r 200 -mono -f 1 -l 1 -singlefile "$pdf" "$w/m200" || return 1
    # shellcheck disable=SC2046
    step "convert jpeg" convert "$w/g300.pgm" $(dens 300) -quality 85 "$w/g300.jpg" || return 1
    # shellcheck disable=SC2046
    step "convert png" convert "$w/g200.pgm" $(dens 200) -define png:color-type=0 \
        -define png:bit-depth=8 "$w/g200.png" || return 1
    # shellcheck disable=SC2046
    step "convert clean png" convert "$w/g300.pgm" $(dens 300) -define png:color-type=0 \
        -define png:bit-depth=8 "$w/g300.png" || return 1
    step "img2pdf clean300" img2pdf -o "$w/clean300.pdf" "$w/g300.png" || return 1
    step "img2pdf gray300" img2pdf -o "$w/gray300.pdf" "$w/g300.jpg" || return 1
    step "img2pdf gray200" img2pdf -o "$w/gray200.pdf" "$w/g200.png" || return 1
    # shellcheck disable=SC2046
    step "convert G4" convert "$w/m200.pbm" $(dens 200) -compress Group4 "$w/fax.tif" || return 1
    step "img2pdf fax200" img2pdf -o "$w/fax200.pdf" "$w/fax.tif" || return 1
    if [[ -n $angle ]]; then
        # shellcheck disable=SC2046
        step "convert rotate gray" convert "$w/g300.pgm" -background white -rotate "$angle" +repage \
            $(dens 300) -quality 85 "$w/rot300.jpg" || return 1
        step "img2pdf rotated-gray300" img2pdf -o "$w/rotated-gray300.pdf" "$w/rot300.jpg" || return 1
        # shellcheck disable=SC2046
        step "convert rotate fax" convert "$w/g200.pgm" -background white -rotate "$angle" +repage \
            -threshold 50% -type bilevel $(dens 200) -compress Group4 "$w/rotfax.tif" || return 1
        step "img2pdf rotated-fax200" img2pdf -o "$w/rotated-fax200.pdf" "$w/rotfax.tif" || return 1
    fi
}

kept=() skipped=() fax_pages=() fax_truths=()
declare -A seen_stem=()
nrot=0 idx=-1
shopt -s nullglob
mapfile -t pdfs < <(printf '%s\n' "$corpus"/*.pdf | LC_ALL=C sort)
for pdf in "${pdfs[@]}"; do
    idx=$((idx + 1))
    name=$(basename "$pdf")
    stem=$(printf '%s' "${name%.pdf}" | LC_ALL=C sed 's/[^A-Za-z0-9_-]/_/g')
    skip() { echo "skip $name: $1" >&2; skipped+=("$name: $1"); }
    if [[ -n ${seen_stem[$stem]:-} ]]; then skip "stem '$stem' already used by ${seen_stem[$stem]}"; continue; fi

    truth=$tmp/$stem.txt
    if ! pdftotext -f 1 -l 1 -enc UTF-8 "$pdf" "$truth" 2>"$tmp/err"; then
        skip "pdftotext failed: $(tail -n1 "$tmp/err")"; continue
    fi
    words=$(count_words "$truth")
    if ((words < 40)); then skip "only $words words of text on page 1 (< 40)"; continue; fi

    angle=""
    if ((idx % 3 == 0)); then angle=${angles[nrot % ${#angles[@]}]}; fi
    reason=""
    if ! build_page "$pdf" "$stem" "$angle"; then skip "$reason"; rm -rf "${tmp:?}/$stem"; continue; fi

    w=$tmp/$stem
    seen_stem[$stem]=$name
    kept+=("$name")
    cp "$truth" "$out/truth/$stem.txt"
    mv "$w/clean300.pdf" "$out/clean300/$stem.pdf"
    mv "$w/gray300.pdf" "$out/gray300/$stem.pdf"
    mv "$w/g300.jpg" "$out/jpeg/$stem.jpg"
    mv "$w/gray200.pdf" "$out/gray200/$stem.pdf"
    mv "$w/fax200.pdf" "$out/fax200/$stem.pdf"
    t=truth/$stem.txt
    emit clean300 "clean300/$stem.pdf" 1 "$t"
    emit gray300 "gray300/$stem.pdf" 1 "$t"
    emit jpeg300 "jpeg/$stem.jpg" 1 "$t"
    emit gray200 "gray200/$stem.pdf" 1 "$t"
    emit fax200 "fax200/$stem.pdf" 1 "$t"
    if [[ -n $angle ]]; then
        mv "$w/rotated-gray300.pdf" "$out/rotated-gray300/$stem.pdf"
        mv "$w/rotated-fax200.pdf" "$out/rotated-fax200/$stem.pdf"
        emit rotated-gray300 "rotated-gray300/$stem.pdf" 1 "$t"
        emit rotated-fax200 "rotated-fax200/$stem.pdf" 1 "$t"
        echo "kept $name ($words words, rotated $angle deg)" >&2
        nrot=$((nrot + 1))
    else
        echo "kept $name ($words words)" >&2
    fi
    if ((${#fax_pages[@]} < 8)); then
        mv "$w/fax.tif" "$tmp/fax-$stem.tif"
        fax_pages+=("$tmp/fax-$stem.tif")
        fax_truths+=("$t")
    fi
    rm -rf "$w"
done

# Multi-page TIFFs: G4 via tiffcp (keeps the G4 strips), G3 via convert.
n=${#fax_pages[@]}
if ((n > 0)); then
    g4=$out/tiff/fax-multipage.tif g3=$out/tiff/fax-multipage-g3.tif
    tiffcp "${fax_pages[@]}" "$g4"
    # tiffcp numbers pages "i of 0"; store "i of n" (0-based, as TIFF does).
    for ((i = 0; i < n; i++)); do tiffset -d "$i" -s PageNumber "$i" "$n" "$g4" >/dev/null; done
    convert "${fax_pages[@]}" -compress Fax "$g3"
    for f in "$g4" "$g3"; do
        pages=$(tiffinfo "$f" 2>/dev/null | grep -c '^TIFF Directory')
        [[ $pages -eq $n ]] || { echo "error: $f has $pages pages, expected $n" >&2; exit 1; }
    done
    tiffinfo "$g4" 2>/dev/null | grep 'Compression Scheme' | grep -qv 'CCITT Group 4' &&
        { echo "error: $g4 is not all CCITT Group 4" >&2; exit 1; }
    tiffinfo "$g3" 2>/dev/null | grep 'Compression Scheme' | grep -qv 'CCITT Group 3' &&
        { echo "error: $g3 is not all CCITT Group 3" >&2; exit 1; }
    for ((i = 0; i < n; i++)); do
        emit tiff-g4 tiff/fax-multipage.tif $((i + 1)) "${fax_truths[i]}"
    done
    for ((i = 0; i < n; i++)); do
        emit tiff-g3 tiff/fax-multipage-g3.tif $((i + 1)) "${fax_truths[i]}"
    done
fi

echo "== make_scans summary ==" >&2
echo "corpus: $corpus" >&2
echo "kept ${#kept[@]} file(s), skipped ${#skipped[@]}" >&2
for s in "${skipped[@]}"; do echo "  skipped $s" >&2; done
echo "manifest entries per variant:" >&2
python3 -c '
import collections, json, sys
c = collections.Counter(json.loads(l)["variant"] for l in open(sys.argv[1]))
for v, n in c.items():
    print(f"  {v:16} {n}")' "$manifest" >&2
echo "total size: $(du -sh "$out" | cut -f1) in $out ($((SECONDS - start_s)) s)" >&2
