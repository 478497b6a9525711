#!/usr/bin/env bash
# Sequential read throughput of stage 6's virtio-blk: the guest's `dd bs=1M` on /dev/vda against
# the host's `dd bs=1M` on the same image file, in the same run (the file in the host's page
# cache). The guest reads it twice: through its page cache, and with O_DIRECT (no copy inside the
# guest). A third figure, `dd if=/dev/zero of=/dev/null` in the guest, is the guest's own memory
# speed: on a nested host without hardware paging support it, not the device, is the bound.
#
#   bash labs/bench/disk-throughput.sh [SIZE_MIB]     (default 32)
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-32}

# a ready guest (MINIVIRT_GUEST_DIR, which the stages read) is used as it is
[ -n "${MINIVIRT_GUEST_DIR:-}" ] || bash labs/guest/build.sh >/dev/null
cargo build --release -q -p stage06
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
image=$work/data.img
head -c "$((size_mib << 20))" /dev/urandom >"$image"

mib_per_s() { awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.0f MiB/s", mib / s }'; }

# The host: one read to warm the page cache, one measured.
dd if="$image" of=/dev/null bs=1M 2>/dev/null
start=$(date +%s.%N)
dd if="$image" of=/dev/null bs=1M 2>/dev/null
host_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')

# The guest: busybox `time` prints "real 0m 1.23s" after each command.
runs="dd if=/dev/zero of=/dev/null bs=1M count=$size_mib; dd if=/dev/vda of=/dev/null bs=1M; dd if=/dev/vda of=/dev/null bs=1M iflag=direct"
script=$(printf '%s' "$runs" | sed 's/\(dd [^;]*\)/time \1 2>\&1/g')
out=$(target/release/stage06 --disk "$image,ro" --append "minivirt_run=\"$script\"" </dev/null 2>&1)
mapfile -t seconds < <(printf '%s\n' "$out" | tr -d '\r' | awk '$1 == "real" { split($2 $3, t, /[ms]/); print t[1] * 60 + t[2] }')
if [ "${#seconds[@]}" -ne 3 ]; then
    printf '%s\n' "$out" | tail -20
    echo "disk-throughput: expected three timings from the guest" >&2
    exit 1
fi
echo "image: $size_mib MiB of random data, read sequentially with dd bs=1M"
echo "host, page cache:               ${host_s} s, $(mib_per_s "$size_mib" "$host_s")"
echo "guest, through its page cache:  ${seconds[1]} s, $(mib_per_s "$size_mib" "${seconds[1]}")"
echo "guest, O_DIRECT:                ${seconds[2]} s, $(mib_per_s "$size_mib" "${seconds[2]}")"
echo "guest memory (/dev/zero, same size, no device): ${seconds[0]} s, $(mib_per_s "$size_mib" "${seconds[0]}")"
printf '%s\n' "$out" | grep -E '^stage06: ran' || true
