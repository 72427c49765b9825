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
# The work queue's tests run a real Redis (tests/it/queue.rs), started on a loopback port.
command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
# The queue's chaos run puts each worker in a network namespace (ip netns, veth; as root).
command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)
# Workers' runs in containers (tests/it/podman.rs): podman with runc (Debian 12: 21 MB,
# about 25 s of the install). The tests say SKIPPED where the sandbox refuses containers.
command -v podman >/dev/null 2>&1 || pkgs+=(podman runc)
# Frontmatter is read back by a real YAML 1.1 reader (PyYAML) under Debian's python3.
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || pkgs+=(python3-yaml)
# `top` and `setup` are driven in a real terminal: a tmux pane (tests/it/top.rs, setup.rs).
command -v tmux >/dev/null 2>&1 || pkgs+=(tmux)
# The real Claude Code CLI comes from npm (below); Debian's npm brings Node.js along. A
# Node.js without npm (another vendor's) is left alone.
command -v npm >/dev/null 2>&1 || command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
if [ ${#pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    log "installing ${pkgs[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  else
    echo "note: missing ${pkgs[*]} and no apt-get; the tests that need them will say so" >&2
  fi
fi

# The real Claude Code CLI, pinned (tests/it/claude_cli.rs: the agent's default command
# line against its argument parser, and its not-logged-in answer). The package brings its
# native binary as an optional dependency; nothing else is downloaded. Without npm or the
# registry the tests that need it say SKIPPED.
CLAUDE_CODE_VERSION=2.1.332
if DISABLE_AUTOUPDATER=1 claude --version 2>/dev/null | grep -q "^$CLAUDE_CODE_VERSION "; then
  :
elif command -v npm >/dev/null 2>&1; then
  log "installing Claude Code $CLAUDE_CODE_VERSION (npm)"
  timeout 900 $sudo npm install -g --no-fund --no-audit --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" \
    || echo "note: Claude Code could not be installed from npm; the tests that need it will say SKIPPED" >&2
else
  echo "note: no npm; the Claude Code tests will say SKIPPED" >&2
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

# The Debian package (docs/packages.md): cargo-deb from crates.io packages the debug binary
# the tests built (same files as a release package, no second optimised build); dpkg
# installs it; the installed binary, man pages, completions and units are checked; then
# it is removed. Needs root and dpkg (CI has both); elsewhere it says SKIPPED.
if [ "$(id -u)" -eq 0 ] && command -v dpkg >/dev/null 2>&1; then
  if ! command -v cargo-deb >/dev/null 2>&1; then
    log "installing cargo-deb (crates.io)"
    cargo install cargo-deb --locked --version 3.8.0 --quiet
  fi
  log "Debian package: build, dpkg -i, check, remove"
  cargo build --locked --bin ai-employee --quiet
  packaging/deb.sh --profile dev --no-build --fast
  deb=$(ls -t target/debian/ai-employee_*.deb | head -n1)
  dpkg -i "$deb"
  /usr/bin/ai-employee --version
  test -s /usr/share/man/man1/ai-employee.1.gz && test -s /usr/share/man/man1/ai-employee-supervise.1.gz
  test -s /usr/share/bash-completion/completions/ai-employee
  test -s /usr/share/zsh/vendor-completions/_ai-employee
  test -s /usr/share/fish/vendor_completions.d/ai-employee.fish
  verify_dir=$(mktemp -d)
  # systemd-analyze exits 0 on some problems (an unknown setting is only a warning): any
  # line it prints that names the unit fails the check. A template is verified as an
  # instance of it; a user unit needs a runtime folder only.
  verify() {  # UNIT-NAME systemd-analyze-ARGS...
    local name=$1 out; shift
    out=$(SYSTEMD_LOG_LEVEL=warning XDG_RUNTIME_DIR=$verify_dir systemd-analyze "$@" 2>&1) \
      || { echo "$out"; return 1; }
    if grep -F "$name" <<<"$out"; then return 1; fi
  }
  cp /lib/systemd/system/ai-employee@.service "$verify_dir/ai-employee@root.service"
  verify ai-employee@ verify --man=no --generators=no "$verify_dir/ai-employee@root.service"
  for unit in ai-employee.service ai-employee-worker.service; do
    verify "$unit" --user verify --man=no --generators=no "/usr/lib/systemd/user/$unit"
  done
  # ... and the check itself catches a broken unit.
  sed 's/^Type=notify$/Type=notify\nBogusSetting=1/' /lib/systemd/system/ai-employee@.service \
    >"$verify_dir/ai-employee@root.service"
  if verify ai-employee@ verify --man=no --generators=no "$verify_dir/ai-employee@root.service" >/dev/null; then
    echo "the unit check did not catch an unknown setting" >&2; exit 1
  fi
  rm -rf "$verify_dir"
  dpkg -r ai-employee >/dev/null
  echo "package: $deb installed, checked and removed"
else
  echo "SKIPPED: the Debian package check (needs root and dpkg)"
fi
