//! A VMM's memory overhead from the outside: the resident set of the whole process minus that
//! of its guest RAM mapping, from `/proc/PID/smaps` (what `pmap -x` shows, per mapping).
//!
//! The guest RAM mapping is found by its size: an anonymous mapping at least as large as the
//! guest's RAM and at most a few MiB larger (QEMU adds alignment). QEMU's TCG code buffer is
//! larger still and is QEMU's own memory, so it counts as overhead.
//!
//! # Resources
//! - `/proc/PID/smaps`: <https://docs.kernel.org/filesystems/proc.html#id10>.

/// Slack allowed above the guest RAM size for the mapping that holds it.
pub const RAM_MAPPING_SLACK: u64 = 8 << 20;

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

/// Parses smaps text; `guest_ram` is the guest's RAM size in bytes. `None` when no mapping
/// looks like guest RAM.
pub fn parse(smaps: &str, guest_ram: u64) -> Option<Overhead> {
    let (mut rss, mut guest_rss, mut found) = (0, 0, false);
    let mut in_guest_ram = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            // A mapping header: "start-end perms offset dev inode [path]".
            let size = match (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) {
                (Ok(start), Ok(end)) => end.saturating_sub(start),
                _ => 0,
            };
            let anonymous = fields.nth(4).is_none();
            in_guest_ram = anonymous && size >= guest_ram && size <= guest_ram + RAM_MAPPING_SLACK;
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

/// Reads `/proc/PID/smaps` of a running process.
///
/// # Errors
/// When the file cannot be read (the process is gone, or belongs to someone else).
pub fn read(pid: u32, guest_ram: u64) -> std::io::Result<Option<Overhead>> {
    Ok(parse(&std::fs::read_to_string(format!("/proc/{pid}/smaps"))?, guest_ram))
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

    #[test]
    fn the_guest_ram_mapping_is_found_by_its_size() {
        let o = parse(SMAPS, 256 << 20).unwrap();
        assert_eq!(o.rss, (600 + 30000 + 9000 + 16) * 1024);
        assert_eq!(o.guest_rss, 30000 * 1024);
        assert_eq!(o.overhead(), (600 + 9000 + 16) * 1024, "the 1 GiB TCG buffer is QEMU's own");
    }

    #[test]
    fn no_ram_sized_mapping_is_no_answer() {
        assert_eq!(parse(SMAPS, 64 << 20), None);
        assert_eq!(parse("", 1), None);
    }

    #[test]
    fn this_process_can_be_read() {
        // A test process has no guest RAM mapping of 1 TiB.
        assert_eq!(read(std::process::id(), 1 << 40).unwrap(), None);
    }
}
