//! Booting QEMU on the same guest: the lab guest's bzImage (QEMU's `-kernel` wants the boot
//! protocol format; minivirt boots the same build's ELF `vmlinux`), the same initramfs and the
//! same guest command, its console on stdio.
//!
//! KVM when QEMU can use this host's KVM, TCG otherwise: one probe boot with KVM and a short
//! timeout decides. On the project's nested hosts (`kvm_pvm`, see `shared/docs/host-kvm.md`)
//! QEMU+KVM stops on the kernel's first `int3`, so the probe fails and TCG is used.
//!
//! # Resources
//! - QEMU's direct Linux boot: <https://www.qemu.org/docs/master/system/linuxboot.html>.

use crate::report::BootRun;
use crate::smaps::{self, GuestRam};
use crate::vmm::{self, Launch, VmmError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The QEMU binary looked for on PATH.
pub const QEMU: &str = "qemu-system-x86_64";
/// How to get it on Debian and Ubuntu.
pub const INSTALL_HINT: &str = "apt-get install qemu-system-x86";
/// The guest's RAM in MiB, as minivirt's default `--mem` (bench's `--mem-mib` changes both).
pub const DEFAULT_RAM_MIB: u64 = 256;
/// The kernel options minivirt's VMM adds itself (stage 4's `BASE_CMDLINE` and
/// `FAST_BOOT_CMDLINE`) that QEMU needs too, so that both kernels do the same work;
/// `panic=-1` makes a guest panic end the run instead of hanging.
pub const BASE_CMDLINE: &str = "console=ttyS0 reboot=k nokaslr io_delay=none rodata=off retain_initrd panic=-1";
/// How long the KVM probe may take to reach the marker (TCG takes 2–3 s here).
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// `qemu-system-x86_64` on PATH, if installed.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(QEMU)).find(|p| p.is_file())
}

/// The version from `--version` (`7.2.19`), or `?`.
pub fn version(qemu: &Path) -> String {
    let output = Command::new(qemu).arg("--version").output().ok();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    parse_version(&text).unwrap_or("?").to_string()
}

/// `QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)` → `7.2.19`.
pub fn parse_version(text: &str) -> Option<&str> {
    text.lines().next()?.split("version ").nth(1)?.split_whitespace().next()
}

/// The accelerator: `kvm` or `tcg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// The host's KVM.
    Kvm,
    /// QEMU's own binary translation.
    Tcg,
}

impl Accel {
    /// QEMU's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One way of booting the guest under QEMU.
#[derive(Debug, Clone)]
pub struct QemuBoot {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The kernel (bzImage).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The guest options after [`BASE_CMDLINE`].
    pub append: String,
    /// The guest's RAM in MiB (`-m`).
    pub ram_mib: u64,
    /// When to give up on one boot.
    pub timeout: Duration,
}

impl QemuBoot {
    /// QEMU's arguments with `accel`.
    pub fn args(&self, accel: Accel) -> Vec<String> {
        let mut args: Vec<String> =
            ["-nographic", "-serial", "stdio", "-monitor", "none", "-no-reboot"].map(String::from).into();
        args.extend(["-m".into(), format!("{}M", self.ram_mib)]);
        args.extend(["-accel".into(), accel.name().into()]);
        args.extend(["-kernel".into(), self.kernel.display().to_string()]);
        args.extend(["-initrd".into(), self.initrd.display().to_string()]);
        args.extend(["-append".into(), format!("{BASE_CMDLINE} {}", self.append)]);
        args
    }

    /// Decides the accelerator: KVM if /dev/kvm opens and one probe boot reaches the marker in
    /// [`KVM_PROBE_TIMEOUT`], else TCG. Returns it with a sentence saying why.
    ///
    /// # Errors
    /// When QEMU cannot be started.
    pub fn choose_accel(&self) -> Result<(Accel, String), VmmError> {
        if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
            return Ok((Accel::Tcg, format!("TCG: /dev/kvm cannot be opened ({e})")));
        }
        let probe = Launch {
            program: self.qemu.clone(),
            args: self.args(Accel::Kvm),
            timeout: KVM_PROBE_TIMEOUT,
            stop_when_ready: true,
        };
        let outcome = vmm::run(&probe, |_| ())?;
        Ok(match outcome.ready {
            Some(ready) => (Accel::Kvm, format!("KVM: a probe boot reached the marker in {:.1} s", ready.as_secs_f64())),
            None => (
                Accel::Tcg,
                format!(
                    "TCG: QEMU with KVM did not reach the marker ({}; on nested kvm_pvm hosts it stops on the kernel's int3, see shared/docs/host-kvm.md)",
                    outcome.failure.as_deref().unwrap_or_else(|| vmm::last_line(&outcome.stderr))
                ),
            ),
        })
    }

    /// Boots once with `accel`; the memory overhead is read from QEMU's smaps at the marker.
    ///
    /// # Errors
    /// When QEMU cannot be started.
    pub fn run(&self, accel: Accel) -> Result<BootRun, VmmError> {
        let launch = Launch {
            program: self.qemu.clone(),
            args: self.args(accel),
            timeout: self.timeout,
            stop_when_ready: false,
        };
        let guest = GuestRam::OneMapping { size: self.ram_mib << 20 };
        let outcome = vmm::run(&launch, |pid| smaps::read(pid, guest))?;
        let mut run = outcome.boot_run();
        smaps::record(&mut run, outcome.at_ready, "QEMU", guest);
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_third_word() {
        assert_eq!(
            parse_version("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright"),
            Some("7.2.19")
        );
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn the_command_line_has_the_same_guest_and_console() {
        let boot = QemuBoot {
            qemu: QEMU.into(),
            kernel: "out/bzImage".into(),
            initrd: "out/initramfs.cpio".into(),
            append: "minivirt_run=\"true\"".into(),
            ram_mib: 128,
            timeout: Duration::from_secs(60),
        };
        let args = boot.args(Accel::Tcg).join(" ");
        assert_eq!(
            args,
            "-nographic -serial stdio -monitor none -no-reboot -m 128M -accel tcg -kernel out/bzImage -initrd out/initramfs.cpio \
             -append console=ttyS0 reboot=k nokaslr io_delay=none rodata=off retain_initrd panic=-1 minivirt_run=\"true\""
        );
    }
}
