#!/usr/bin/env bash
# Build the minivirt lab guest: a minimal Linux kernel (vmlinux + bzImage; 6.1 by default), a
# busybox initramfs and an ext4 disk image, into labs/guest/out/. See README.md beside this file.
#
#   labs/guest/build.sh           build what is missing or out of date (cached; safe to run
#                                 many times and concurrently)
#   labs/guest/build.sh --check   exit 0 if out/ is complete and up to date, 1 otherwise
#   --out DIR                     build into (or check) DIR instead of labs/guest/out: a guest
#                                 to hand out, found through MINIVIRT_GUEST_DIR=DIR
#
# Environment: MINIVIRT_CACHE (cache root, default ${XDG_CACHE_HOME:-~/.cache}/minivirt),
#              MINIVIRT_JOBS (make -j, default nproc), MINIVIRT_KERNEL_SOURCE (the kernel
#              source package's version: 6.1, 6.8, 6.12; default 6.1, or the only one installed).
# The build_* functions run through ensure_cached ("$builder" ...), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$HERE/out
CACHE=${MINIVIRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minivirt}/guest
JOBS=${MINIVIRT_JOBS:-$(nproc)}
# The kernel source when nothing else is asked for or installed (Debian 12's)
DEFAULT_KERNEL_SOURCE=6.1
DISK_SIZE_MIB=64
DATA_BIN_SIZE=1048576
# sha256 of the generated data.bin; guards the generator's determinism
DATA_BIN_SHA256=4a772ad90ae18d1ca47a81aae00b65734bf72cb31955334608f7f46226a6c983
# (the kernel source package, $LINUX_PKG, is chosen at run time: see kernel_source_package)
PACKAGES=(busybox-static build-essential libc6-dev flex bison bc libelf-dev
          libssl-dev lz4 cpio e2fsprogs xz-utils bzip2 gzip openssl perl util-linux coreutils musl-tools)
ARTIFACTS=(vmlinux bzImage System.map kernel.config initramfs.cpio initramfs.cpio.gz
           disk.ext4 disk.sha256)

say() { printf 'minivirt guest: %s\n' "$*"; }
die() { printf 'minivirt guest: error: %s\n' "$*" >&2; exit 2; }
sha() { sha256sum | cut -d' ' -f1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
rel() { local p=$1; case $p in "$PWD"/*) p=${p#"$PWD"/} ;; esac; printf '%s' "$p"; }

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------------------
# dependencies
# The kernel source: Debian ships linux-source-6.1 (12) and linux-source-6.12 (13, and 12's
# security updates) as /usr/src/linux-source-X.Y.tar.xz; Ubuntu ships linux-source-6.8.0 (24.04)
# as /usr/src/linux-source-6.8.0/linux-source-6.8.0.tar.bz2. Both unpack to one folder.
installed_kernel_sources() { # the installed kernel source packages, named by their tarballs
    local tarball name
    for tarball in /usr/src/linux-source-*.tar.* /usr/src/linux-source-*/linux-source-*.tar.*; do
        [ -f "$tarball" ] || continue
        name=${tarball##*/}
        printf '%s\n' "${name%%.tar.*}"
    done | LC_ALL=C sort -u
}

apt_has() { apt-cache policy "$1" 2>/dev/null | grep -q '^ *Candidate: [^(]'; }

# The kernel source package to build from: the version MINIVIRT_KERNEL_SOURCE names (Debian's
# linux-source-X.Y, or Ubuntu's linux-source-X.Y.0), else $DEFAULT_KERNEL_SOURCE if installed,
# else the only one installed, else $DEFAULT_KERNEL_SOURCE if apt has it, else the one the
# distribution's `linux-source` package depends on. Prints nothing and fails if there is none.
kernel_source_package() {
    local want=${MINIVIRT_KERNEL_SOURCE:-} installed p
    installed=$(installed_kernel_sources)
    if [ -n "$want" ]; then
        for p in "linux-source-$want" "linux-source-$want.0"; do
            if grep -qxF "$p" <<<"$installed" || apt_has "$p"; then printf '%s' "$p"; return 0; fi
        done
        return 1
    fi
    p=linux-source-$DEFAULT_KERNEL_SOURCE
    if grep -qxF "$p" <<<"$installed"; then printf '%s' "$p"; return 0; fi
    if [ -n "$installed" ] && [ "$(wc -l <<<"$installed")" -eq 1 ]; then printf '%s' "$installed"; return 0; fi
    if [ -n "$installed" ]; then return 1; fi
    if apt_has "$p"; then printf '%s' "$p"; return 0; fi
    p=$(apt-cache depends linux-source 2>/dev/null | sed -n 's/^ *Depends: \(linux-source-[0-9][0-9.]*\)$/\1/p' | head -n1)
    [ -n "$p" ] && printf '%s' "$p"
}

no_kernel_source() { # why kernel_source_package found nothing
    local installed
    installed=$(installed_kernel_sources | paste -sd' ')
    if [ -n "${MINIVIRT_KERNEL_SOURCE:-}" ]; then
        die "MINIVIRT_KERNEL_SOURCE=$MINIVIRT_KERNEL_SOURCE: neither linux-source-$MINIVIRT_KERNEL_SOURCE nor linux-source-$MINIVIRT_KERNEL_SOURCE.0 is installed or known to apt (installed: ${installed:-none})"
    elif [ -n "$installed" ]; then
        die "several kernel sources are installed ($installed): choose one with MINIVIRT_KERNEL_SOURCE=X.Y"
    else
        die "no kernel source package: apt knows neither linux-source-$DEFAULT_KERNEL_SOURCE nor linux-source; set MINIVIRT_KERNEL_SOURCE=X.Y"
    fi
}

kernel_tarball() { # PACKAGE: its tarball in /usr/src
    local tarball
    for tarball in "/usr/src/$1".tar.* "/usr/src/$1/$1".tar.*; do
        if [ -f "$tarball" ]; then printf '%s' "$tarball"; return 0; fi
    done
    die "$1 is installed but has no /usr/src/$1.tar.* or /usr/src/$1/$1.tar.*"
}

missing_packages() { # PACKAGE...: those not installed
    local installed p
    installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "$@" 2>/dev/null |
        sed -n 's/^ii *//p' || true)
    for p in "$@"; do
        grep -qxF "$p" <<<"$installed" || printf '%s\n' "$p"
    done
}

apt_install() { # PACKAGE...: apt-get update, then install them (through sudo unless root)
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/minivirt-apt.XXXXXX")
    if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update &&
           { [ $# -eq 0 ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }
         } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "installing packages failed (log: $log)"
    fi
    rm -f "$log"
}

# Sets LINUX_PKG and LINUX_TARBALL, and installs what is missing.
ensure_packages() {
    command -v dpkg-query >/dev/null || die "needs a Debian system (dpkg/apt) to install its build dependencies"
    local missing
    if ! LINUX_PKG=$(kernel_source_package); then
        # apt's lists may be empty (a fresh container): update them and ask again
        [ -n "$(installed_kernel_sources)" ] && [ -z "${MINIVIRT_KERNEL_SOURCE:-}" ] && no_kernel_source
        say "looking for a kernel source package (apt-get update)..."
        apt_install
        LINUX_PKG=$(kernel_source_package) || no_kernel_source
    fi
    missing=$(missing_packages "${PACKAGES[@]}" "$LINUX_PKG")
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086
        say "installing build dependencies:" $missing
        # shellcheck disable=SC2086
        apt_install $missing
    fi
    LINUX_TARBALL=$(kernel_tarball "$LINUX_PKG")
}

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo missing; }

busybox_bin() { # the static busybox shipped by busybox-static
    local b
    b=$(dpkg-query -L busybox-static 2>/dev/null | grep -E '/bin/busybox$' | head -n1 || true)
    if [ -z "$b" ] || [ ! -x "$b" ]; then die "busybox-static's /bin/busybox not found"; fi
    printf '%s' "$b"
}

# ---------------------------------------------------------------------------------------
# cache keys: a hash of everything that goes into each artifact, including the recipe
# itself (the text of the function that builds it, as bash prints it)
hash_tree() { # DIR: names, types, modes, link targets and contents of everything under DIR
    local dir=$1
    [ -d "$dir" ] || { echo none; return; }
    (
        cd "$dir"
        find . -mindepth 1 ! -name .keep -printf '%y %m %p -> %l\n' | LC_ALL=C sort
        find . -type f ! -name .keep -print0 | LC_ALL=C sort -z | xargs -0r sha256sum
    ) | sha
}

compute_keys() {
    LINUX_VERSION=$(pkg_version "$LINUX_PKG")
    BUSYBOX_VERSION=$(pkg_version busybox-static)
    E2FS_VERSION=$(pkg_version e2fsprogs)
    GCC_VERSION=$( (gcc -dumpfullversion 2>/dev/null || echo none) | head -n1)
    KERNEL_KEY=$( {
        echo "linux=$LINUX_PKG $LINUX_VERSION gcc=$GCC_VERSION"
        ld --version 2>/dev/null | head -n1 || true
        declare -f build_kernel
        grep -E '^(CONFIG_|# CONFIG_[A-Za-z0-9_]+ is not set$)' "$HERE/kernel.config"
    } | sha)
    INITRAMFS_KEY=$( {
        echo "kernel=$KERNEL_KEY busybox=$BUSYBOX_VERSION libc6-dev=$(pkg_version libc6-dev) musl-tools=$(pkg_version musl-tools)"
        declare -f build_initramfs build_guest_programs
        sha256sum <"$HERE/init"
        hash_tree "$HERE/rootfs"
        hash_tree "$HERE/edu"
        hash_tree "$HERE/inspect"
        hash_tree "$HERE/hostile"
        hash_tree "$HERE/workloads"
    } | sha)
    DISK_KEY=$( {
        echo "e2fsprogs=$E2FS_VERSION size=$DISK_SIZE_MIB"
        declare -f build_disk gen_data_bin
        hash_tree "$HERE/disk"
    } | sha)
}

# ---------------------------------------------------------------------------------------
# kernel: tinyconfig + kernel.config, built out of tree in the cache
build_kernel() { # DEST
    local dest=$1 src build log top release series
    src=$CACHE/src/linux-$LINUX_VERSION
    build=$CACHE/build/linux-$LINUX_VERSION
    log=$CACHE/logs/kernel-${KERNEL_KEY:0:16}.log
    mkdir -p "$CACHE/src" "$CACHE/build" "$CACHE/logs"
    if [ ! -e "$src/.minivirt-extracted" ]; then
        say "extracting $LINUX_TARBALL..."
        rm -rf "$src" "$src.tmp"
        mkdir -p "$src.tmp"
        tar -xf "$LINUX_TARBALL" -C "$src.tmp"
        # one folder, named like the package (linux-source-6.1, linux-source-6.8.0)
        top=$(find "$src.tmp" -mindepth 1 -maxdepth 1)
        [ -d "$top" ] || die "$LINUX_TARBALL does not unpack to one folder"
        mv "$top" "$src"
        rmdir "$src.tmp"
        touch "$src/.minivirt-extracted"
    fi
    say "building kernel (about 5 minutes on 2 cores; log: $(rel "$log"))..."
    local kmake=(make -C "$src" O="$build" ARCH=x86_64
                 KBUILD_BUILD_USER=minivirt KBUILD_BUILD_HOST=minivirt
                 KBUILD_BUILD_TIMESTAMP="2024-01-01 00:00:00 UTC")
    local start=$SECONDS
    if ! {
        "${kmake[@]}" tinyconfig &&
        "$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$HERE/kernel.config" &&
        "${kmake[@]}" olddefconfig
    } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "kernel configuration failed (full log: $log)"
    fi
    verify_kernel_config "$HERE/kernel.config" "$build/.config"
    if ! "${kmake[@]}" -j"$JOBS" vmlinux bzImage >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "kernel build failed (full log: $log)"
    fi
    mkdir -p "$dest"
    cp "$build/vmlinux" "$build/System.map" "$dest/"
    cp "$build/arch/x86/boot/bzImage" "$dest/bzImage"
    cp "$build/.config" "$dest/kernel.config"
    cp "$build/usr/gen_init_cpio" "$dest/gen_init_cpio"
    release=$(cat "$build/include/config/kernel.release")
    # the release the guest prints (uname -r) is the source's: 6.12.x from linux-source-6.12
    series=$(cut -d. -f1,2 <<<"${LINUX_PKG#linux-source-}")
    case $release in
        "$series" | "$series".*) ;;
        *) die "the kernel built from $LINUX_PKG calls itself $release" ;;
    esac
    printf '%s\n' "$release" >"$dest/kernel.release"
    cp "$log" "$dest/build.log"
    say "kernel $(cat "$dest/kernel.release") built in $((SECONDS - start)) s"
}

verify_kernel_config() { # FRAGMENT CONFIG: fail naming every fragment option that did not stick
    local frag=$1 config=$2 bad=() line name want
    while IFS= read -r line; do
        case $line in
            CONFIG_*=*)
                name=${line%%=*}; want=${line#*=}
                grep -qxF "$name=$want" "$config" || bad+=("$name=$want (got: $(grep -E "^(# )?${name}[= ]" "$config" || echo absent))") ;;
            "# CONFIG_"*" is not set")
                name=${line#"# "}; name=${name%" is not set"}
                grep -qE "^$name=" "$config" && bad+=("$name not set (got: $(grep -E "^$name=" "$config"))") ;;
        esac
    done <"$frag"
    if [ ${#bad[@]} -gt 0 ]; then
        printf 'minivirt guest: error: kernel.config options not in the final .config (a missing dependency or a forcing select?):\n' >&2
        printf '  %s\n' "${bad[@]}" >&2
        exit 2
    fi
}

# ---------------------------------------------------------------------------------------
# guest programs: static executables for the initramfs (-static: no libraries in the
# guest), built from their C sources here
build_guest_programs() { # STAGE: writes STAGE/edu-test, STAGE/gva-demo, STAGE/boot-done, STAGE/hostile, STAGE/workloads
    local stage=$1 program
    # musl, not glibc: 60 KB instead of 700 KB, which the guest kernel would unpack at every
    # boot (about a quarter of the initramfs)
    musl-gcc -static -O2 -Wall -Wextra -Werror -s -o "$stage/edu-test" "$HERE/edu/edu-test.c" ||
        die "building edu/edu-test.c failed"
    # stage 8's programs use no C library (inspect/nolibc.h): a few KB each instead of
    # ~700 KB, which the guest kernel would unpack at every boot
    for program in gva-demo boot-done; do
        gcc -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin -O2 -Wall -Wextra -Werror -s \
            -o "$stage/$program" "$HERE/inspect/$program.c" || die "building inspect/$program.c failed"
    done
    # the hostile guest of stage 7's checkpoint, the same way
    gcc -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin -O2 -Wall -Wextra -Werror -s \
        -o "$stage/hostile" "$HERE/hostile/hostile.c" || die "building hostile/hostile.c failed"
    # bench's guest workloads: the same command builds them for the host (bench/src/workloads.rs)
    gcc -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin -O2 -Wall -Wextra -Werror -s \
        -o "$stage/workloads" "$HERE/workloads/workloads.c" || die "building workloads/workloads.c failed"
    touch -d @0 "$stage/edu-test" "$stage/gva-demo" "$stage/boot-done" "$stage/hostile" "$stage/workloads"
}

# ---------------------------------------------------------------------------------------
# initramfs: busybox + /bin/sh + /init + the guest programs + the rootfs/ overlay,
# packed by the kernel's usr/gen_init_cpio (device nodes and root-owned files without root
# or fakeroot)
build_initramfs() { # DEST KERNEL_DIR
    local dest=$1 kdir=$2 bb stage list
    say "building initramfs..."
    bb=$(busybox_bin)
    stage=$dest.stage
    rm -rf "$stage"; mkdir -p "$stage" "$dest"
    cp "$bb" "$stage/busybox"
    cp "$HERE/init" "$stage/init"
    touch -d @0 "$stage/busybox" "$stage/init"
    build_guest_programs "$stage"
    list=$dest/initramfs.list
    declare -A entry=()
    local order=()
    add() { # PATH LINE: a later entry for the same path replaces the earlier one
        [ -n "${entry[$1]+x}" ] || order+=("$1")
        entry[$1]=$2
    }
    local d
    for d in /bin /sbin /usr /usr/bin /usr/sbin /etc /proc /sys /dev /mnt /run /var; do
        add "$d" "dir $d 0755 0 0"
    done
    add /root "dir /root 0700 0 0"
    add /tmp "dir /tmp 1777 0 0"
    add /dev/console "nod /dev/console 0600 0 0 c 5 1"
    add /dev/ttyS0 "nod /dev/ttyS0 0660 0 0 c 4 64"
    add /dev/null "nod /dev/null 0666 0 0 c 1 3"
    add /bin/busybox "file /bin/busybox $stage/busybox 0755 0 0"
    # /bin/sh only: Debian's busybox shell runs its applets by name without links, and each of
    # the ~270 links would cost every boot time to unpack; /init makes them for an interactive
    # session (`busybox --install -s`)
    add /bin/sh "slink /bin/sh busybox 0777 0 0"
    # the applets checkpoints run as the kernel's init (`rdinit=`), where no shell finds them
    add /bin/false "slink /bin/false busybox 0777 0 0"
    add /sbin/reboot "slink /sbin/reboot /bin/busybox 0777 0 0"
    add /init "file /init $stage/init 0755 0 0"
    add /usr/bin/edu-test "file /usr/bin/edu-test $stage/edu-test 0755 0 0"
    add /usr/bin/gva-demo "file /usr/bin/gva-demo $stage/gva-demo 0755 0 0"
    add /usr/bin/boot-done "file /usr/bin/boot-done $stage/boot-done 0755 0 0"
    add /usr/bin/hostile "file /usr/bin/hostile $stage/hostile 0700 0 0"
    add /usr/bin/workloads "file /usr/bin/workloads $stage/workloads 0755 0 0"
    if [ -d "$HERE/rootfs" ]; then
        local type mode path target
        while IFS=$'\t' read -r type mode path target; do
            path=${path#.}
            case $path$target in *" "*) die "rootfs/: names with spaces are not supported: $path" ;; esac
            case $type in
                d) add "$path" "dir $path $mode 0 0" ;;
                f) add "$path" "file $path $HERE/rootfs$path $mode 0 0" ;;
                l) add "$path" "slink $path $target 0777 0 0" ;;
                *) die "rootfs/: unsupported file type: $path" ;;
            esac
        done < <(cd "$HERE/rootfs" && find . -mindepth 1 ! -name .keep -printf '%y\t%m\t%p\t%l\n' | LC_ALL=C sort)
    fi
    local p
    for p in "${order[@]}"; do printf '%s\n' "${entry[$p]}"; done >"$list"
    "$kdir/gen_init_cpio" -t 0 "$list" >"$dest/initramfs.cpio"
    gzip -n -9 -c "$dest/initramfs.cpio" >"$dest/initramfs.cpio.gz"
    rm -rf "$stage"
}

# ---------------------------------------------------------------------------------------
# disk: ext4 image of disk/ plus a generated data.bin, and the sha256sums of its files
gen_data_bin() { # FILE: 1 MiB of deterministic pseudo-random bytes (AES-128-CTR keystream)
    head -c "$DATA_BIN_SIZE" /dev/zero |
        openssl enc -aes-128-ctr -nosalt \
            -K 6d696e69766972742d67756573743031 -iv 00000000000000000000000000000000 >"$1"
}

build_disk() { # DEST
    local dest=$1 root sum
    say "building disk image..."
    root=$dest.root
    rm -rf "$root"; mkdir -p "$root" "$dest"
    cp -R "$HERE/disk/." "$root/"
    find "$root" -name .keep -delete
    gen_data_bin "$root/data.bin"
    sum=$(sha <"$root/data.bin")
    if [ "$DATA_BIN_SHA256" != UNSET ] && [ "$sum" != "$DATA_BIN_SHA256" ]; then
        die "data.bin generator is not deterministic here: $sum != $DATA_BIN_SHA256"
    fi
    (cd "$root" && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum) >"$dest/disk.sha256"
    # the guest can check the disk by itself: cd /mnt && sha256sum -c SHA256SUMS
    cp "$dest/disk.sha256" "$root/SHA256SUMS"
    chmod -R u+rwX,go+rX,go-w "$root"
    find "$root" -exec touch -h -d @1704067200 {} +
    rm -f "$dest/disk.ext4"
    truncate -s "${DISK_SIZE_MIB}M" "$dest/disk.ext4"
    E2FSPROGS_FAKE_TIME=1704067200 mkfs.ext4 -q -F -L minivirt -d "$root" \
        -U 6d696e69-7669-7274-2d64-69736b000001 \
        -E root_owner=0:0,hash_seed=6d696e69-7669-7274-2d68-617368000001 \
        "$dest/disk.ext4"
    rm -rf "$root"
}

# keep the few most recently used entries of each kind in the cache
# one cache entry: DIR is complete once DIR/.done exists; it is built in DIR.tmp and renamed,
# so an interrupted build never looks finished. Touching DIR marks it recently used.
ensure_cached() { # DIR KIND BUILDER [ARGS...]: runs BUILDER DIR.tmp ARGS... unless DIR is done
    local dir=$1 kind=$2 builder=$3
    shift 3
    if [ ! -e "$dir/.done" ]; then
        rm -rf "$dir" "$dir.tmp"
        "$builder" "$dir.tmp" "$@"
        touch "$dir.tmp/.done"
        mv "$dir.tmp" "$dir"
        prune_cache "$kind"
    fi
    touch "$dir"
}

prune_cache() { # KIND
    local dir=$CACHE/$1 keep=4
    [ -d "$dir" ] || return 0
    find "$dir" -mindepth 1 -maxdepth 1 -type d ! -name '*.tmp' -printf '%T@ %p\n' |
        LC_ALL=C sort -rn | tail -n +$((keep + 1)) | cut -d' ' -f2- |
        while IFS= read -r old; do rm -rf "$old"; done
}

# ---------------------------------------------------------------------------------------
# out/: copies (never hard links: a VMM may write to out/disk.ext4) and guest.json
json_escape() { local s=$1; s=${s//\\/\\\\}; s=${s//\"/\\\"}; printf '%s' "$s"; }

write_guest_json() { # FILE
    local f first=1
    {
        printf '{\n'
        printf '  "schema": 1,\n'
        printf '  "kernel_release": "%s",\n' "$(json_escape "$KERNEL_RELEASE")"
        printf '  "kernel_source": "%s",\n' "$(json_escape "$LINUX_PKG")"
        printf '  "keys": {"kernel": "%s", "initramfs": "%s", "disk": "%s"},\n' "$KERNEL_KEY" "$INITRAMFS_KEY" "$DISK_KEY"
        printf '  "versions": {"linux_source": "%s", "busybox_static": "%s", "e2fsprogs": "%s", "gcc": "%s"},\n' \
            "$(json_escape "$LINUX_VERSION")" "$(json_escape "$BUSYBOX_VERSION")" \
            "$(json_escape "$E2FS_VERSION")" "$(json_escape "$GCC_VERSION")"
        printf '  "disk_label": "minivirt",\n'
        printf '  "files": {'
        for f in "${ARTIFACTS[@]}"; do
            [ $first = 1 ] || printf ','
            first=0
            printf '\n    "%s": {"size": %s, "sha256": "%s"}' "$f" "$(stat -c %s "$OUT/$f")" "$(sha <"$OUT/$f")"
        done
        printf '\n  }\n}\n'
    } >"$1"
}

# up to date = guest.json has the current keys and every artifact has the recorded size and
# sha256 (a VMM that wrote to out/disk.ext4 makes it out of date: the next build restores it)
out_up_to_date() {
    local json=$OUT/guest.json f rec
    [ -f "$json" ] || return 1
    grep -qF "\"keys\": {\"kernel\": \"$KERNEL_KEY\", \"initramfs\": \"$INITRAMFS_KEY\", \"disk\": \"$DISK_KEY\"}" "$json" || return 1
    for f in "${ARTIFACTS[@]}"; do
        [ -f "$OUT/$f" ] || return 1
        rec=$(sed -n "s/^    \"$f\": {\"size\": \([0-9]*\), \"sha256\": \"\([0-9a-f]*\)\"}.*/\1 \2/p" "$json")
        [ "${rec%% *}" = "$(stat -c %s "$OUT/$f")" ] || return 1
        [ "${rec#* }" = "$(sha <"$OUT/$f")" ] || return 1
    done
}

# ---------------------------------------------------------------------------------------
# The whole script is parsed before main runs, so editing build.sh (or a git pull) while a
# build runs or waits for the lock cannot break that build.
main() {
    local check=0 f out_arg=""
    while [ $# -gt 0 ]; do
        case $1 in
            --check) check=1 ;;
            --out) [ $# -ge 2 ] && [ -n "$2" ] || die "--out needs a folder"; OUT=$(realpath -m -- "$2"); out_arg=" --out $2"; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
        shift
    done

    if [ "$check" = 1 ]; then
        if ! LINUX_PKG=$(kernel_source_package) ||
           [ -n "$(missing_packages "${PACKAGES[@]}" "$LINUX_PKG" 2>/dev/null || echo x)" ]; then
            say "out of date: build dependencies are missing"; exit 1
        fi
        compute_keys
        if out_up_to_date; then say "up to date ($(rel "$OUT"))"; exit 0; fi
        say "out of date ($(rel "$OUT")): run $(rel "$HERE")/build.sh$out_arg"; exit 1
    fi

    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    if ! flock -n 9; then
        say "waiting for another build to finish (lock: $CACHE/.lock)..."
        flock 9
    fi

    ensure_packages
    compute_keys
    if out_up_to_date; then
        say "up to date ($(rel "$OUT"))"
        exit 0
    fi

    KDIR=$CACHE/kernel/$KERNEL_KEY
    ensure_cached "$KDIR" kernel build_kernel
    KERNEL_RELEASE=$(cat "$KDIR/kernel.release")

    IDIR=$CACHE/initramfs/$INITRAMFS_KEY
    ensure_cached "$IDIR" initramfs build_initramfs "$KDIR"

    DDIR=$CACHE/disk/$DISK_KEY
    ensure_cached "$DDIR" disk build_disk

    mkdir -p "$OUT"
    rm -f "$OUT/guest.json"
    for f in vmlinux bzImage System.map kernel.config; do cp -f "$KDIR/$f" "$OUT/$f.tmp"; done
    for f in initramfs.cpio initramfs.cpio.gz; do cp -f "$IDIR/$f" "$OUT/$f.tmp"; done
    cp -f --sparse=always "$DDIR/disk.ext4" "$OUT/disk.ext4.tmp"
    cp -f "$DDIR/disk.sha256" "$OUT/disk.sha256.tmp"
    for f in "${ARTIFACTS[@]}"; do mv -f "$OUT/$f.tmp" "$OUT/$f"; done
    write_guest_json "$OUT/guest.json.tmp"
    mv -f "$OUT/guest.json.tmp" "$OUT/guest.json"
    say "done: $(rel "$OUT") (kernel $KERNEL_RELEASE from $LINUX_PKG)"
}

main "$@"; exit
