#!/bin/sh
# edgefleet: copy the cluster's manifests from this node's seed (the CD labelled cidata) into
# the k3s auto-deploy folder, and remove the files an earlier copy put there that the seed no
# longer holds. Files others put in the folder are left alone. Run at boot and whenever the
# agent changes the seed's media. POSIX sh: runs under dash and busybox alike.
set -eu

target="${EDGEFLEET_MANIFESTS:-/var/lib/rancher/k3s/server/manifests}"
state="${EDGEFLEET_MANIFESTS_STATE:-/var/lib/edgefleet/manifests.list}"
seed="${EDGEFLEET_SEED:-}"
if [ -z "$seed" ]; then
  seed="$(findfs LABEL=cidata 2>/dev/null || echo /dev/sr0)"
fi

mnt="$(mktemp -d)"
cleanup() {
  umount "$mnt" 2>/dev/null || true
  rmdir "$mnt"
}
trap cleanup EXIT
mount -t iso9660 -o ro "$seed" "$mnt"

mkdir -p "$target" "$(dirname "$state")"
fresh="$state.new"
: > "$fresh"
if [ -d "$mnt/manifests" ]; then
  for file in "$mnt"/manifests/*; do
    [ -f "$file" ] || continue
    name="$(basename "$file")"
    # k3s reads only *.yaml, *.yml and *.json: the partial copy is never picked up
    cp "$file" "$target/.$name.partial"
    chmod 0600 "$target/.$name.partial"
    mv "$target/.$name.partial" "$target/$name"
    echo "$name" >> "$fresh"
  done
fi
if [ -f "$state" ]; then
  while IFS= read -r name; do
    grep -qxF "$name" "$fresh" || rm -f "$target/$name"
  done < "$state"
fi
mv "$fresh" "$state"
