#!/usr/bin/env bash
# Installs the real components the local cluster and the tests run: the charm server/CLI, an S3 server
# (versitygw), redis-server, tmux and Chromium (browser tests). Idempotent; binaries are cached per version in
# $CRING_CACHE_DIR/bin.
set -euo pipefail

CHARM_VERSION="${CHARM_VERSION:-v0.12.6}"
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE_DIR="${CRING_CACHE_DIR:-$HOME/.cache/charmed-ring}"
BIN_DIR="$CACHE_DIR/bin"
mkdir -p "$BIN_DIR"

say() { printf '[setup] %s\n' "$*" >&2; }

# go install one module into the cache, named <name>-<version>, unless it is already there.
go_install() {
  local name="$1" module="$2" version="$3" target="$BIN_DIR/$1-$3"
  if [ -x "$target" ]; then return; fi
  command -v go >/dev/null || { say "Go is required to build $name (install Go >= 1.22)"; exit 1; }
  say "building $name $version with go install (first run only)"
  local tmp
  tmp="$(mktemp -d)"
  # -checklinkname=0: Go >= 1.23 refuses some old //go:linkname uses in charm's dependency tree.
  GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -ldflags=-checklinkname=0" go install "$module@$version"
  mv "$tmp/$(basename "${module%%@*}")" "$target"
  rm -rf "$tmp"
}

go_install charm github.com/charmbracelet/charm "$CHARM_VERSION"
go_install versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"
ln -sf "charm-$CHARM_VERSION" "$BIN_DIR/charm"
ln -sf "versitygw-$VERSITYGW_VERSION" "$BIN_DIR/versitygw"

# redis-server for the manifest and queues, redis-sentinel for the failover test; tmux drives the interactive
# `charm link` in tests; Debian's chromium (/usr/bin/chromium) is the browser the dashboard test drives, as test
# tools cannot download their own here; promtool (Debian's prometheus package) checks the shipped alert rules.
missing=""
command -v redis-server >/dev/null || missing="$missing redis-server"
command -v redis-sentinel >/dev/null || missing="$missing redis-sentinel"
command -v promtool >/dev/null || missing="$missing prometheus"
command -v tmux >/dev/null || missing="$missing tmux"
command -v chromium >/dev/null || missing="$missing chromium"
if [ -n "$missing" ]; then
  say "installing$missing from Debian packages"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

say "ready: $("$BIN_DIR/charm" --version), versitygw $VERSITYGW_VERSION, $(redis-server --version | cut -d' ' -f3)"
