#!/bin/sh
# Generates the cluster's server key once (the SSH host key that also signs every JWT) and gives each charm
# backend's data volume the same copy, so a token minted by one backend is valid on all of them.
set -eu
first="$1"; shift
if [ ! -f "$first/.ssh/charm_server_ed25519" ]; then
  mkdir -p "$first/.ssh" && chmod 700 "$first/.ssh"
  ssh-keygen -q -t ed25519 -N '' -C '' -f "$first/.ssh/charm_server_ed25519"
  echo "generated a new server key in $first/.ssh"
fi
for dir in "$@"; do
  mkdir -p "$dir/.ssh" && chmod 700 "$dir/.ssh"
  cp "$first/.ssh/charm_server_ed25519" "$first/.ssh/charm_server_ed25519.pub" "$dir/.ssh/"
done
# Workers mint short-lived JWTs for repairs with the same key.
if [ -n "${KEY_OUT:-}" ]; then
  mkdir -p "$KEY_OUT"
  cp "$first/.ssh/charm_server_ed25519" "$first/.ssh/charm_server_ed25519.pub" "$KEY_OUT/"
  # The gateway runs as the image's node user (uid 1000); the replicator and healer as root.
  chown 1000:1000 "$KEY_OUT"/charm_server_ed25519* && chmod 600 "$KEY_OUT/charm_server_ed25519"
fi
