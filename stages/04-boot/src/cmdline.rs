//! The kernel command line the VMM passes.

/// What every boot gets: the console on the first serial port, reboot through the keyboard
/// controller (which the VMM watches to end the run), a panic rebooting at once and in warm
/// mode (so the VMM can tell it from a reboot: `devices::i8042`), no address-space
/// randomisation, and no `outb` to port 0x80 for I/O delays (each one would be a VM exit).
pub const BASE_CMDLINE: &str = "console=ttyS0 reboot=k,panic_warm panic=-1 nokaslr io_delay=none";

/// Two options that skip work the kernel does at the end of its boot, which a VM can do
/// without and which cost about a sixth of a boot where guest kernel code is emulated (as
/// on this course's nested hosts):
/// - `rodata=off`: the kernel does not make its code and read-only data read-only once booted
///   (page-attribute changes over 8 MiB, then freeing the gaps between the sections). It
///   leaves the kernel's text writable: a hardening a teaching VM can give up.
/// - `retain_initrd`: the kernel keeps the initrd's pages after unpacking it, instead of
///   poisoning them byte by byte and freeing them; the guest has that much less free RAM.
pub const FAST_BOOT_CMDLINE: &str = "rodata=off retain_initrd";

/// Errors in the command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmdlineError {
    /// Longer than the kernel accepts.
    #[error("the kernel command line is {len} bytes; this kernel accepts at most {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The kernel's `cmdline_size`.
        max: usize,
    },
    /// Contains a NUL byte.
    #[error("the kernel command line contains a NUL byte")]
    Nul,
}

// qa:begin stage4-cmdline
/// Joins the parts that are not empty with spaces and checks the result against `max_len`.
pub fn build_cmdline(parts: &[&str], max_len: usize) -> Result<String, CmdlineError> {
    let line = parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ");
    if line.contains('\0') {
        return Err(CmdlineError::Nul);
    }
    if line.len() > max_len {
        return Err(CmdlineError::TooLong { len: line.len(), max: max_len });
    }
    Ok(line)
}
// qa:end stage4-cmdline

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_joined_and_empty_ones_dropped() {
        assert_eq!(build_cmdline(&["console=ttyS0", "", " quiet "], 100).unwrap(), "console=ttyS0 quiet");
    }

    #[test]
    fn too_long_or_nul_is_refused() {
        assert_eq!(build_cmdline(&["abcd"], 3), Err(CmdlineError::TooLong { len: 4, max: 3 }));
        assert_eq!(build_cmdline(&["a\0b"], 10), Err(CmdlineError::Nul));
    }
}
