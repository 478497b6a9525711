#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu). Written
# by `grade autograder` (grade/README.md, "Gradescope").
#
# It installs what grading minivirt needs: a C toolchain and curl, Rust through rustup, and
# the packages labs/guest/build.sh builds the lab guest with. Then it builds the grader from
# the handout beside it (every exercise stubbed: nothing in the image gives a solution away),
# grades that handout once so that the crates every submission uses are compiled in the image,
# and builds the lab guest once (cached by content: a submission whose labs/guest is
# unchanged reuses it), unless the autograder carries a ready one in source/guest (a folder made
# by `labs/guest/build.sh --out DIR`): run_autograder then grades with MINIVIRT_GUEST_DIR there.
#
# Environment (to try it elsewhere): MINIVIRT_AUTOGRADER replaces /autograder.
set -euo pipefail

ROOT=${MINIVIRT_AUTOGRADER:-/autograder}
SOURCE=$ROOT/source
READY_GUEST=$SOURCE/guest
TOOLCHAIN=@TOOLCHAIN@
# The plain package names of PACKAGES in labs/guest/build.sh when this was written; build.sh
# installs anything else it needs itself.
GUEST_PACKAGES=(@GUEST_PACKAGES@)
STAGES=(@STAGES@)

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends ca-certificates curl build-essential pkg-config
# One at a time when some are not in this release (each kernel source package is in some).
if [ -d "$READY_GUEST" ]; then
    echo "setup.sh: a ready guest in $READY_GUEST: its build packages are not needed"
elif ! apt-get install -y --no-install-recommends "${GUEST_PACKAGES[@]}"; then
    for package in "${GUEST_PACKAGES[@]}"; do
        apt-get install -y --no-install-recommends "$package" || echo "setup.sh: no package $package here"
    done
fi

curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --default-toolchain "$TOOLCHAIN"
# shellcheck source=/dev/null
. "$HOME/.cargo/env"

cargo build --release --manifest-path "$SOURCE/minivirt/Cargo.toml" -p grade
mkdir -p "$SOURCE/bin"
cp "$SOURCE/minivirt/target/release/grade" "$SOURCE/bin/grade"

# The lab guest for stages 4-7. Without it, those stages' checks say why.
if [ -d "$READY_GUEST" ]; then
    export MINIVIRT_GUEST_DIR=$READY_GUEST
else
    bash "$SOURCE/minivirt/labs/guest/build.sh" || echo "setup.sh: the lab guest did not build"
fi

# Grading the handout (its stubs lose every point) builds every stage in $ROOT/work, where
# run_autograder builds each submission: only the submission's own crates are compiled then.
"$SOURCE/bin/grade" run --repo "$SOURCE/minivirt" --work "$ROOT/work" \
    --checkpoints "$SOURCE/checkpoints" "${STAGES[@]}" >/dev/null || true
echo "setup.sh: done"
