#!/usr/bin/env bash
# Build the Debian package with cargo-deb (crates.io: `cargo install cargo-deb`).
#
#   packaging/deb.sh [--profile release|dev] [--no-build] [--fast]
#
# The package (target/debian/ai-employee_<version>-1_<arch>.deb) holds:
#   /usr/bin/ai-employee
#   /usr/lib/systemd/user/ai-employee.service, ai-employee-worker.service (per-user units)
#   /lib/systemd/system/ai-employee@.service (a system unit per user: ai-employee@alice)
#   /usr/share/man/man1/ai-employee*.1.gz (one page per subcommand)
#   bash, zsh and fish completions
#   /usr/share/doc/ai-employee/ (README, the docs)
# The man pages, the completions and the per-user units (ExecStart=/usr/bin/ai-employee
# instead of ~/.cargo/bin) are made from the built binary and systemd/ into
# target/<profile dir>/package/ first; Cargo.toml's [package.metadata.deb] lists them.
# --profile dev packages the debug binary (tests/run.sh does, to check the package without
# a second, optimised build); release packages are built with the default.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=release
BUILD=1
FAST=()
while [ $# -gt 0 ]; do
    case $1 in
        --profile) PROFILE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --fast) FAST=(--fast); shift ;;
        *) echo "deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $PROFILE in
    release) DIR=target/release ;;
    dev) DIR=target/debug ;;
    *) echo "deb.sh: --profile release or dev" >&2; exit 2 ;;
esac
command -v cargo-deb >/dev/null 2>&1 || { echo "deb.sh: cargo-deb not found (cargo install cargo-deb --locked)" >&2; exit 2; }

if [ "$BUILD" = 1 ]; then
    cargo build --locked --profile "$PROFILE" --bin ai-employee
fi
BIN=$DIR/ai-employee
[ -x "$BIN" ] || { echo "deb.sh: no binary at $BIN" >&2; exit 2; }

OUT=$DIR/package
rm -rf "$OUT"
mkdir -p "$OUT/man" "$OUT/completions" "$OUT/systemd"
"$BIN" man --dir "$OUT/man"
gzip -9n "$OUT"/man/*.1
"$BIN" completions bash >"$OUT/completions/ai-employee"
"$BIN" completions zsh >"$OUT/completions/_ai-employee"
"$BIN" completions fish >"$OUT/completions/ai-employee.fish"
for unit in ai-employee.service ai-employee-worker.service; do
    sed 's#%h/.cargo/bin/ai-employee#/usr/bin/ai-employee#' "systemd/$unit" >"$OUT/systemd/$unit"
    grep -q '^ExecStart=/usr/bin/ai-employee ' "$OUT/systemd/$unit" \
        || { echo "deb.sh: systemd/$unit: ExecStart not rewritten to /usr/bin" >&2; exit 1; }
done

# cargo-deb maps target/release/ in asset paths to the profile's folder.
cargo deb --no-build --profile "$PROFILE" "${FAST[@]}"
