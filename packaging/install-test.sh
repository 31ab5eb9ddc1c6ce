#!/usr/bin/env bash
# Install test for the two packages, run by .ci/run.
#
#   packaging/install-test.sh [WORK_DIR]      (default: target/install-test; needs root)
#
# 1. Builds enclave_<version>-1_amd64.deb (cargo deb --strip) and
#    enclave-models-default_<version>_all.deb, and runs lintian on both.
# 2. Makes a fresh Debian bookworm root with debootstrap (minbase + adduser;
#    the pristine root is cached in WORK_DIR/base for the next run).
# 3. In a network namespace with only loopback (so the install and the whole
#    flow prove they need no network), chrooted into that root: installs both
#    packages with dpkg, checks the user, modes and unit, verifies the models,
#    creates an admin and an auditor, starts `enclave serve` as the enclave user
#    with no new privileges and umask 0027 (what enclave.service does), uploads
#    a document and asks about it over HTTPS, then a scanned (image-only) PDF
#    that only OCR can read, exports the audit log and
#    verifies it, stops the server, runs doctor.
# 4. Removes (the conffile stays), then purges: compares the root with the
#    listing taken before the install; only /var/lib/enclave may remain.
# Prints the package sizes and the install time.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${1:-$repo/target/install-test}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
conf=/etc/enclave/enclave.toml
base_url=https://127.0.0.1:8443

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'INSTALL TEST FAILED: %s\n' "$*" >&2; exit 1; }

# Runs a command inside the root as the enclave user, as the unit would.
as_enclave() {
  chroot "$root" /usr/bin/setpriv --reuid=enclave --regid=enclave --init-groups \
    --no-new-privs /bin/sh -c 'umask 0027; exec "$@"' sh "$@"
}

# Lists the root: path, mode, owner. Left out: dpkg's own bookkeeping, logs,
# the kernel's file systems, and the shadow tools' backups of the account files
# (/etc/passwd- and the like, written by every adduser/deluser; the account
# files themselves are compared byte for byte).
listing() {
  (cd "$root" && find . -xdev \
    \( -path ./proc -o -path ./dev -o -path ./tmp -o -path ./var/lib/dpkg \
       -o -path ./var/log -o -path ./var/cache -o -path ./run \) -prune \
    -o \( -regex '\./etc/\(passwd\|group\|shadow\|gshadow\|subuid\|subgid\)-' \) -prune \
    -o -printf '%p %m %U:%G\n' | LC_ALL=C sort)
}

# Prints one field of the JSON on stdin: json_get uploads.0.id
json_get() {
  python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"
}

seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Uploads FILE (of TYPE) as the admin into `default` and waits until it is
# indexed; sets $id. Uses $jar and $token of the admin's session.
upload_and_wait() {
  local up state
  up=$(curl -skf -b "$jar" -H "X-CSRF-Token: $token" -F collection=default \
    -F "file=@$1;type=$2" "$base_url/api/uploads")
  id=$(echo "$up" | json_get uploads.0.id)
  for _ in $(seq 1 240); do
    state=$(curl -skf -b "$jar" "$base_url/api/uploads/$id" | json_get state)
    case $state in done) break ;; rejected|failed|duplicate)
      curl -skf -b "$jar" "$base_url/api/uploads/$id"; fail "upload of $1 $state" ;; esac
    sleep 0.5
  done
  [ "$state" = done ] || fail "upload of $1 still $state"
}

# Asks QUESTION; the answer must be grounded, quote FACT, and cite a
# document titled one of the remaining arguments.
ask_expecting() {
  local question=$1 fact=$2 answer
  shift 2
  curl -skf -N -b "$jar" -H 'Content-Type: application/json' -H "X-CSRF-Token: $token" \
    -d "{\"question\":\"$question\"}" "$base_url/api/ask" >"$work/ask.sse"
  answer=$(sed -n 's/^data: //p' "$work/ask.sse" | python3 -c '
import json, sys
fact, titles = sys.argv[1], sys.argv[2:]
for line in sys.stdin:
    d = json.loads(line)
    if "answer" in d and isinstance(d["answer"], dict):
        a = d["answer"]
        assert a["status"] == "answered", a
        assert any(s["document_title"] in titles for s in a["sources"]), a
        assert a["verification"] in ("verified", "partial", "quoted"), a
        assert any(fact in q["quote"] for q in a["quotes"]), a
        print(a["text"])
        break
else:
    sys.exit("no done event")' "$fact" "$@") || { cat "$work/ask.sse"; fail "no grounded answer to: $question"; }
  echo "answer: $answer"
}

# Everything that needs the packages installed, run inside `unshare --net --mount`.
inner() {
  ip link set lo up
  [ "$(ip -o link | wc -l)" = 1 ] || fail "the namespace has more than loopback"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"

  step "install (no network)"
  local t0
  t0=$(date +%s.%N)
  chroot "$root" dpkg -i /tmp/debs/enclave-models-default.deb /tmp/debs/enclave.deb
  echo "install time: $(seconds_since "$t0") s (dpkg -i of both packages)" | tee "$work/install-time"

  step "what the packages set up"
  chroot "$root" getent passwd enclave | grep -q ':/var/lib/enclave:/usr/sbin/nologin$' \
    || fail "no enclave system user with a nologin shell"
    # stat inside the root: owner names are the root's, not the host's.
  [ "$(chroot "$root" stat -c '%a %U:%G' /var/lib/enclave)" = "750 enclave:enclave" ] || fail "data dir mode"
  [ "$(chroot "$root" stat -c '%a %U:%G' "$conf")" = "640 root:enclave" ] || fail "conffile mode"
  [ -x "$root/usr/bin/enclave" ] || fail "no /usr/bin/enclave"
  unit=$(ls "$root"/lib/systemd/system/enclave.service "$root"/usr/lib/systemd/system/enclave.service 2>/dev/null | head -1)
  [ -n "$unit" ] || fail "no enclave.service"
  for k in ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
           MemoryDenyWriteExecute=yes ReadWritePaths=/var/lib/enclave IPAddressDeny=any \
           "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" User=enclave; do
    grep -qx "$k" "$unit" || fail "unit lacks $k"
  done
  as_enclave enclave --config "$conf" models verify
  [ "$(chroot "$root" stat -c '%a %U:%G' /etc/enclave/audit.pub)" = "644 root:root" ] || fail "no pinned audit.pub"
  [ "$(chroot "$root" stat -c '%a %U' /var/lib/enclave/audit-key)" = "400 enclave" ] || fail "audit key mode"
  [ "$(as_enclave enclave --config "$conf" audit key 2>/dev/null)" = "$(cat "$root/etc/enclave/audit.pub")" ] \
    || fail "the pinned key is not the data dir's"

  step "accounts"
  echo 'install-admin-pw-1' | as_enclave enclave --config "$conf" user add admin --role admin --password-stdin
  echo 'install-audit-pw-1' | as_enclave enclave --config "$conf" user add auditor --role auditor --password-stdin
  as_enclave enclave --config "$conf" grant add default --user admin

  step "serve as the enclave user"
  # exec: $! is then the server itself, not a subshell, so SIGTERM reaches it.
  (exec chroot "$root" /usr/bin/setpriv --reuid=enclave --regid=enclave --init-groups \
    --no-new-privs /bin/sh -c 'umask 0027; exec enclave --config /etc/enclave/enclave.toml serve') \
    >"$work/serve.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 240); do
    curl -skf -o /dev/null "$base_url/login" && break
    kill -0 $server 2>/dev/null || { cat "$work/serve.log"; fail "enclave serve exited"; }
    sleep 0.5
  done
  curl -skf -o /dev/null "$base_url/login" || fail "server did not answer on $base_url"

  step "log in, upload, ask over HTTPS"
  jar=$work/admin.jar
  token=$(curl -skf -c "$jar" -H 'Content-Type: application/json' \
    -d '{"username":"admin","password":"install-admin-pw-1"}' "$base_url/api/login" | json_get csrf_token)
  printf '# Loading dock\n\nThe loading dock behind building C opens at 06:30 on weekdays.\nDeliveries after 18:00 go to the night porter.\n' >"$work/dock.md"
  upload_and_wait "$work/dock.md" text/markdown
  ask_expecting "When does the loading dock open?" "06:30" "Loading dock" "dock"

  step "a scanned PDF (image only), read by OCR, asked about"
  cp "$repo/tests/fixtures/scans/scanned-memo.pdf" "$work/scanned-memo.pdf"
  upload_and_wait "$work/scanned-memo.pdf" application/pdf
  echo "upload: $(curl -skf -b "$jar" "$base_url/api/uploads/$id" | json_get detail)"
  ask_expecting "Which room has the backup unit for vaccines?" "C214" "scanned memo"

  step "audit export and verify"
  local ajar=$work/auditor.jar
  curl -skf -c "$ajar" -H 'Content-Type: application/json' \
    -d '{"username":"auditor","password":"install-audit-pw-1"}' "$base_url/api/login" >/dev/null
  curl -skf -b "$ajar" "$base_url/api/audit/export?format=jsonl" >"$root/tmp/audit.jsonl"
  for action in login document.upload question answer audit.export; do
    grep -q "\"$action\"" "$root/tmp/audit.jsonl" || fail "audit export lacks $action"
  done
  chroot "$root" enclave audit verify --public-key /etc/enclave/audit.pub /tmp/audit.jsonl

  step "stop, doctor"
  kill -TERM $server
  wait $server || fail "serve exited with $? on SIGTERM"
  trap - EXIT
  as_enclave enclave --config "$conf" doctor
  as_enclave enclave --config "$conf" audit verify --db

  step "remove, then purge"
  chroot "$root" dpkg --remove enclave enclave-models-default
  [ ! -e "$root/usr/bin/enclave" ] || fail "binary left after remove"
  [ -f "$root$conf" ] || fail "remove must keep the conffile"
  # The models package has no conffiles: removing it left nothing to purge.
  ! chroot "$root" dpkg -s enclave-models-default >/dev/null 2>&1 || fail "models package still known to dpkg"
  chroot "$root" dpkg --purge enclave
  [ ! -e "$root/etc/enclave" ] || fail "/etc/enclave left after purge"
  ! chroot "$root" getent passwd enclave >/dev/null || fail "user left after purge"
  ! chroot "$root" getent group enclave >/dev/null || fail "group left after purge"
  [ -f "$root/var/lib/enclave/enclave.sqlite" ] || fail "purge must keep the data (audit log)"
  [ ! -e "$root/var/lib/enclave/models" ] || fail "models left after purge"
}

if [ "${ENCLAVE_INSTALL_TEST_INNER:-}" = 1 ]; then
  root=$2
  inner
  exit 0
fi

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, network namespace)"
for tool in debootstrap lintian curl unshare ip cargo-deb; do
  command -v "$tool" >/dev/null || fail "missing $tool (.ci/run installs it)"
done
mkdir -p "$work"
root=$work/root

step "build the packages"
cd "$repo"
cargo deb --strip --quiet
"$repo/packaging/build-models-deb.sh" "$repo/target/debian"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
deb=$repo/target/debian/enclave_${version}-1_amd64.deb
models_deb=$repo/target/debian/enclave-models-default_${version}_all.deb
for f in "$deb" "$models_deb"; do
  echo "$(basename "$f"): $(stat -c %s "$f") bytes, installed size $(dpkg-deb -f "$f" Installed-Size) KiB"
done

step "lintian"
# As nobody: lintian warns when run as root.
setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp \
  lintian --fail-on error,warning "$deb" "$models_deb"

step "a fresh Debian root"
# The packages' dependencies from Debian (what an air-gapped site's local
# mirror serves): adduser, and Tesseract with its English models for OCR.
include=adduser,libtesseract5,tesseract-ocr-eng
if [ "$(cat "$work/base/.complete" 2>/dev/null)" != "$include" ]; then
  rm -rf "$work/base"
  debootstrap --variant=minbase --include="$include" bookworm "$work/base" "$mirror"
  echo "$include" >"$work/base/.complete"
fi
rm -rf "$root"
cp -a "$work/base" "$root"
rm "$root/.complete"
install -d "$root/tmp/debs"
cp "$deb" "$root/tmp/debs/enclave.deb"
cp "$models_deb" "$root/tmp/debs/enclave-models-default.deb"
listing >"$work/before.txt"

ENCLAVE_INSTALL_TEST_INNER=1 unshare --net --mount --fork -- "$0" "$work" "$root"

step "nothing left but the data"
listing >"$work/after.txt"
extra=$(LC_ALL=C comm -13 "$work/before.txt" "$work/after.txt" | grep -v '^\./var/lib/enclave[/ ]' || true)
missing=$(LC_ALL=C comm -23 "$work/before.txt" "$work/after.txt" || true)
[ -z "$extra" ] || fail "left after purge: $extra"
[ -z "$missing" ] || fail "changed or missing after purge: $missing"
for f in passwd group shadow gshadow; do
  cmp -s "$work/base/etc/$f" "$root/etc/$f" || fail "/etc/$f differs from before the install"
done
echo "kept: $(cd "$root" && find var/lib/enclave | wc -l) paths under /var/lib/enclave"
cat "$work/install-time"
rm -rf "$root"
echo "install test passed"
