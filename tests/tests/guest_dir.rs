//! A ready guest folder (`MINIVIRT_GUEST_DIR`): the harness uses it instead of building the
//! guest, and an incomplete one fails the checkpoint with one line naming the missing file.
//! One test in its own binary, because it sets the variable for the whole process.

use checkpoints::{run_checkpoint, Check, Checkpoint};
use std::path::Path;

/// A checkpoint that needs the guest and lists its folder through `{guest}`.
fn lists_the_guest() -> Checkpoint {
    Checkpoint {
        name: "lists the guest".into(),
        args: vec!["-c".into(), "ls \"$0\"".into(), "{guest}".into()],
        stdin: None,
        timeout: 10,
        exit_code: 0,
        needs_kvm: false,
        needs_guest: true,
        before: vec![],
        after: vec![],
        steps: vec![],
        checks: vec![Check {
            name: "sees the kernel".into(),
            points: 1,
            pattern: "(?m)^vmlinux$".into(),
            absent: false,
        }],
    }
}

#[test]
fn a_ready_guest_folder_is_used_as_is_and_an_incomplete_one_is_named() {
    let scratch = std::env::temp_dir().join(format!("checkpoints-guest-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    // A repository whose build script leaves a trace: it must not run while the variable is set.
    let repo = scratch.join("repo");
    let trace = scratch.join("build.sh ran");
    std::fs::create_dir_all(repo.join("labs/guest/out")).unwrap();
    std::fs::write(repo.join("labs/guest/build.sh"), format!("touch '{}'\n", trace.display())).unwrap();
    std::fs::write(repo.join("labs/guest/out/vmlinux"), b"built").unwrap();
    let guest = scratch.join("guest");
    std::fs::create_dir_all(&guest).unwrap();
    for file in ["vmlinux", "bzImage", "System.map", "disk.ext4"] {
        std::fs::write(guest.join(file), b"ready").unwrap();
    }
    let sh = Path::new("/bin/sh");

    std::env::set_var("MINIVIRT_GUEST_DIR", &guest);
    let result = run_checkpoint(&lists_the_guest(), sh, &repo);
    assert!(!result.passed());
    let expected = format!(
        "MINIVIRT_GUEST_DIR={} is not a complete lab guest: it has no initramfs.cpio (build one with labs/guest/build.sh --out DIR)",
        guest.display()
    );
    assert_eq!(result.checks[0].message, expected, "one line naming the missing file");
    assert_eq!(result.ending, None, "the binary did not run");

    std::fs::write(guest.join("initramfs.cpio"), b"ready").unwrap();
    let result = run_checkpoint(&lists_the_guest(), sh, &repo);
    assert!(result.passed(), "{}", result.report());
    assert!(result.output.contains("initramfs.cpio\n"), "{{guest}} is the ready folder: {}", result.output);
    assert!(!trace.exists(), "build.sh must not run when MINIVIRT_GUEST_DIR is complete");

    // Unset: the repository's own guest, built (here: traced) by its script.
    std::env::remove_var("MINIVIRT_GUEST_DIR");
    let result = run_checkpoint(&lists_the_guest(), sh, &repo);
    assert!(result.passed(), "{}", result.report());
    assert!(!result.output.contains("initramfs.cpio"), "{}", result.output);
    assert!(trace.exists(), "without the variable the harness runs build.sh");
    std::fs::remove_dir_all(&scratch).unwrap();
}
