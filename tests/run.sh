#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs
# formatting and lint checks and every test. Used by CI (.ci/run) and by developers.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests use (systemd-analyze checks the unit file).
pkgs=()
command -v systemd-analyze >/dev/null 2>&1 || pkgs+=(systemd)
command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
command -v cc >/dev/null 2>&1 || pkgs+=(gcc)
command -v pgrep >/dev/null 2>&1 || pkgs+=(procps)
# The mail watcher's tests run a real IMAP server (Dovecot) on loopback.
[ -x /usr/sbin/dovecot ] || pkgs+=(dovecot-imapd)
# The approval handler's tests run a real SMTP server (aiosmtpd) under Debian's python3.
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || pkgs+=(python3-aiosmtpd)
# ... and a real Postfix (its own instance per test, on loopback ports; needs root) for
# what reaches a strict and a lenient mail server.
[ -x /usr/sbin/postconf ] || pkgs+=(postfix)
# The metrics endpoint is checked with Prometheus' own promtool.
command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
# Frontmatter is read back by a real YAML 1.1 reader (PyYAML) under Debian's python3.
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || pkgs+=(python3-yaml)
if [ ${#pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing ${pkgs[*]}"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  else
    echo "note: missing ${pkgs[*]} and no apt-get; the tests that need them will say so" >&2
  fi
fi

# The control socket's owner check is tested against a second user.
if [ "$(id -u)" -eq 0 ] && ! id ai-employee-test >/dev/null 2>&1; then
  log "creating the user ai-employee-test (a second uid for the control-socket tests)"
  useradd --system --no-create-home --shell /usr/sbin/nologin ai-employee-test 2>/dev/null \
    || adduser --system --no-create-home ai-employee-test >/dev/null 2>&1 || true
fi

command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test --workspace"
cargo test --workspace --all-targets --locked

# Timing-sensitive under the suite's parallel I/O (its windows are microseconds when the
# disk is quiet): run alone.
log "cargo test (alone): Dashboard saves in place from another process"
cargo test --test it --locked -- --ignored --exact dashboard::saves_in_place_from_another_process_are_never_lost
