#!/bin/busybox sh
# The init of tests/ebpf_arm64.rs's arm64 machine: loads each object of
# /objects with bpftool (every program through the kernel's verifier, its
# maps created), says in COPPER-VM lines what was loaded or why not, and
# powers off.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t bpf bpf /sys/fs/bpf
echo "COPPER-VM kernel $(uname -r) $(uname -m)"
for obj in /objects/*.bpf.o; do
    name=$(basename "$obj" .bpf.o)
    if bpftool prog loadall "$obj" "/sys/fs/bpf/$name" > "/tmp/$name.log" 2>&1; then
        echo "COPPER-VM load $name ok $(ls "/sys/fs/bpf/$name" | tr '\n' ' ')"
        rm -rf "/sys/fs/bpf/$name"
    else
        echo "COPPER-VM load $name refused"
        sed "s/^/COPPER-VM log $name /" "/tmp/$name.log"
    fi
done
echo "COPPER-VM done"
poweroff -f
