//! A VMM's memory overhead from the outside: the resident set of the whole process minus that
//! of its guest RAM mappings, from `/proc/PID/smaps` (what `pmap -x` shows, per mapping), read
//! while the VMM runs (at the guest's marker line, see [`crate::vmm::run`]).
//!
//! Which mappings hold guest RAM depends on the VMM ([`GuestRam`]): QEMU's RAM block is one
//! private anonymous mapping at least as large as the guest's RAM and at most a few MiB larger
//! (QEMU adds alignment); its TCG code buffer is larger still and is QEMU's own memory, so it
//! counts as overhead. minivirt maps each region of guest RAM shared and anonymous (stage 2's
//! `memory.rs`), which smaps shows as `/dev/zero (deleted)`, and maps nothing else that way.
//!
//! # Resources
//! - `/proc/PID/smaps`: <https://docs.kernel.org/filesystems/proc.html#id10>.

use crate::report::BootRun;

/// Slack allowed above the guest RAM size for the mapping that holds it.
pub const RAM_MAPPING_SLACK: u64 = 8 << 20;
/// The name smaps gives a shared anonymous mapping (`MAP_SHARED | MAP_ANONYMOUS`).
pub const SHARED_ANONYMOUS_PATH: &str = "/dev/zero (deleted)";

/// How to recognise a VMM's guest RAM among its mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestRam {
    /// One private anonymous mapping of the RAM size, or up to [`RAM_MAPPING_SLACK`] more (QEMU).
    OneMapping {
        /// The guest's RAM in bytes.
        size: u64,
    },
    /// Every shared anonymous mapping ([`SHARED_ANONYMOUS_PATH`]): minivirt's memory regions.
    SharedAnonymous,
}

impl GuestRam {
    /// Whether a mapping of `size` bytes with permissions `perms` and path `path` (empty for
    /// an anonymous one) holds guest RAM.
    pub fn holds(&self, size: u64, perms: &str, path: &str) -> bool {
        match *self {
            GuestRam::OneMapping { size: ram } => path.is_empty() && size >= ram && size <= ram + RAM_MAPPING_SLACK,
            GuestRam::SharedAnonymous => perms.ends_with('s') && path == SHARED_ANONYMOUS_PATH,
        }
    }
}

/// Resident memory of a process split into guest RAM and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overhead {
    /// Resident bytes of the whole process.
    pub rss: u64,
    /// Resident bytes of the guest RAM mapping(s).
    pub guest_rss: u64,
}

impl Overhead {
    /// The VMM's own bytes.
    pub fn overhead(&self) -> u64 {
        self.rss.saturating_sub(self.guest_rss)
    }
}

/// Parses smaps text; `guest` says which mappings are guest RAM. `None` when none is.
pub fn parse(smaps: &str, guest: GuestRam) -> Option<Overhead> {
    let (mut rss, mut guest_rss, mut found) = (0, 0, false);
    let mut in_guest_ram = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            // A mapping header: "start-end perms offset dev inode [path]"; the path may have spaces.
            let size = match (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) {
                (Ok(start), Ok(end)) => end.saturating_sub(start),
                _ => 0,
            };
            let perms = fields.next().unwrap_or_default();
            let path = fields.skip(3).collect::<Vec<_>>().join(" ");
            in_guest_ram = guest.holds(size, perms, &path);
            found |= in_guest_ram;
        } else if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            rss += kib * 1024;
            if in_guest_ram {
                guest_rss += kib * 1024;
            }
        }
    }
    found.then_some(Overhead { rss, guest_rss })
}

/// Puts a sample taken at the marker (by [`read`]) into `run`: the overhead and where it came
/// from, or why there is none. `vmm` names the VMM in the explanation.
pub fn record(run: &mut BootRun, sample: Option<std::io::Result<Option<Overhead>>>, vmm: &str, guest: GuestRam) {
    match sample {
        Some(Ok(Some(memory))) => {
            run.overhead_bytes = Some(memory.overhead());
            let ram = match guest {
                GuestRam::OneMapping { .. } => "the guest RAM mapping's Rss",
                GuestRam::SharedAnonymous => "the Rss of the guest RAM regions (shared anonymous mappings)",
            };
            run.overhead_source = Some(format!("{vmm}'s /proc/PID/smaps at the marker: Rss minus {ram}"));
        }
        Some(Ok(None)) => run.overhead_source = Some(format!("no guest RAM mapping in {vmm}'s smaps")),
        Some(Err(e)) => run.overhead_source = Some(format!("{vmm}'s smaps unreadable: {e}")),
        None => {}
    }
}

/// Reads `/proc/PID/smaps` of a running process.
///
/// # Errors
/// When the file cannot be read (the process is gone, or belongs to someone else).
pub fn read(pid: u32, guest: GuestRam) -> std::io::Result<Option<Overhead>> {
    Ok(parse(&std::fs::read_to_string(format!("/proc/{pid}/smaps"))?, guest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
555555554000-555555600000 r-xp 00000000 08:01 1234 /usr/bin/qemu-system-x86_64
Size:                688 kB
Rss:                 600 kB
7f0000000000-7f0010200000 rw-p 00000000 00:00 0 
Size:             264192 kB
Rss:               30000 kB
7f2000000000-7f2040000000 rwxp 00000000 00:00 0 
Size:            1048576 kB
Rss:                9000 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  16 kB
";

    const QEMU: GuestRam = GuestRam::OneMapping { size: 256 << 20 };

    #[test]
    fn the_guest_ram_mapping_is_found_by_its_size() {
        let o = parse(SMAPS, QEMU).unwrap();
        assert_eq!(o.rss, (600 + 30000 + 9000 + 16) * 1024);
        assert_eq!(o.guest_rss, 30000 * 1024);
        assert_eq!(o.overhead(), (600 + 9000 + 16) * 1024, "the 1 GiB TCG buffer is QEMU's own");
    }

    #[test]
    fn no_ram_sized_mapping_is_no_answer() {
        assert_eq!(parse(SMAPS, GuestRam::OneMapping { size: 64 << 20 }), None);
        assert_eq!(parse(SMAPS, GuestRam::SharedAnonymous), None, "QEMU's RAM is private");
        assert_eq!(parse("", QEMU), None);
    }

    /// minivirt at the marker: two guest RAM regions (640 KiB and 255 MiB), a private
    /// anonymous mapping of 640 KiB + 4 KiB (a large heap allocation), the read-only BIOS area.
    const MINIVIRT_SMAPS: &str = "\
5581d23c9000-5581d250e000 r-xp 00067000 fe:00 6080522                    /work/target/release/stage08
Size:               1300 kB
Rss:                1236 kB
7f7dd9a54000-7f7dd9af5000 rw-p 00000000 00:00 0 
Size:                644 kB
Rss:                 624 kB
7f7dd9b00000-7f7dd9ba0000 rw-s 00000000 00:01 3564                       /dev/zero (deleted)
Size:                640 kB
Rss:                 120 kB
7f7dd9c34000-7f7de9b34000 rw-s 00000000 00:01 3565                       /dev/zero (deleted)
Size:             261120 kB
Rss:               14052 kB
7f7de9c00000-7f7de9c20000 r--p 00000000 00:00 0 
Size:                128 kB
Rss:                   0 kB
";

    #[test]
    fn minivirts_regions_are_its_shared_anonymous_mappings() {
        let o = parse(MINIVIRT_SMAPS, GuestRam::SharedAnonymous).unwrap();
        assert_eq!(o.guest_rss, (120 + 14052) * 1024);
        assert_eq!(o.overhead(), (1236 + 624) * 1024, "the heap allocation of RAM-region size is the VMM's own");
        assert_eq!(parse(MINIVIRT_SMAPS, QEMU), None, "no private mapping of RAM size");
    }

    #[test]
    fn this_process_can_be_read() {
        // A test process has no guest RAM mapping of 1 TiB, and no shared anonymous one.
        assert_eq!(read(std::process::id(), GuestRam::OneMapping { size: 1 << 40 }).unwrap(), None);
        assert_eq!(read(std::process::id(), GuestRam::SharedAnonymous).unwrap(), None);
    }
}
