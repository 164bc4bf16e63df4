#!/usr/bin/env bash
# Build the VM's initramfs: busybox-static, the modules that mount the host's
# root over virtio-9p (Debian builds them as modules), and .ci/vm/init.
# Everything else (bash, python3, the test binaries, the rest of the modules
# for modprobe) comes from the host's root once it is mounted.
#
# usage: initramfs.sh KERNEL_VERSION OUT.cpio.gz
set -euo pipefail
kver="$1"
out="$2"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d /tmp/campus-vm-initramfs.XXXXXX)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$work/bin/busybox"
for applet in sh mount mkdir insmod switch_root poweroff cat sleep ls wc; do
    ln -s busybox "$work/bin/$applet"
done
# The load order modprobe would use, dependencies first, each module once.
: >"$work/modules/order"
modprobe -S "$kver" --show-depends -a virtio_pci 9pnet_virtio 9p |
    awk '$1 == "insmod" { print $2 }' |
    while read -r ko; do
        name="$(basename "$ko")"
        if ! grep -qx "$name" "$work/modules/order"; then
            case "$ko" in
            *.ko) cp "$ko" "$work/modules/$name" ;;
            *.ko.xz) xz -dc "$ko" >"$work/modules/${name%.xz}"; name="${name%.xz}" ;;
            *.ko.zst) zstd -qdc "$ko" >"$work/modules/${name%.zst}"; name="${name%.zst}" ;;
            *) echo "initramfs: unknown module format: $ko" >&2; exit 1 ;;
            esac
            echo "$name" >>"$work/modules/order"
        fi
    done
[ -s "$work/modules/order" ] || { echo "initramfs: no 9p/virtio modules for $kver" >&2; exit 1; }
install -m 0755 "$here/init" "$work/init"
(cd "$work" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$out"
