#!/usr/bin/env bash
# Boot time of stage 4: boots the lab guest N times (default 3) and prints, per boot and as a
# median, the wall-clock seconds until the initramfs marker line and until the VMM exits,
# plus the VMM's exit counts. Usage: labs/bench/boot-time.sh [N] [extra stage04 flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}; shift || true
# a ready guest (MINIVIRT_GUEST_DIR, which the stages read) is used as it is
[ -n "${MINIVIRT_GUEST_DIR:-}" ] || bash labs/guest/build.sh >/dev/null
cargo build -q --release --bin stage04
for i in $(seq "$runs"); do
    start=$(date +%s.%N)
    ./target/release/stage04 "$@" --append 'minivirt_run="true"' 2>&1 | while IFS= read -r line; do
        case $line in
            MINIVIRT-GUEST-READY*) printf 'marker %.2f\n' "$(echo "$(date +%s.%N) - $start" | bc)" ;;
            stage04:\ ran*) printf 'stats %s\n' "${line#stage04: }" ;;
        esac
    done
    printf 'exit %.2f\n' "$(echo "$(date +%s.%N) - $start" | bc)"
done | awk '
    /^marker/ { m[++nm] = $2; printf "boot %d: marker after %.2f s", nm, $2 }
    /^stats/  { sub(/^stats /, ""); stats = $0 }
    /^exit/   { e[++ne] = $2; printf ", exit after %.2f s\n", $2 }
    function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END { printf "median of %d: marker %.2f s, exit %.2f s\nlast run: %s\n", nm, median(m, nm), median(e, ne), stats }'
