//! The console's escape key, as in QEMU: Ctrl-A followed by a command key.
//!
//! | keys            | action                          |
//! |-----------------|---------------------------------|
//! | Ctrl-A x        | quit the VMM                    |
//! | Ctrl-A c        | switch to the monitor and back (stage 8) |
//! | Ctrl-A Ctrl-A   | send one Ctrl-A to the guest    |
//! | Ctrl-A h or ?   | print this help                 |
//! | Ctrl-A other    | ignored (QEMU drops it too)     |

/// The escape byte: Ctrl-A.
pub const ESCAPE: u8 = 0x01;

/// The help text, with the CR-LF line ends a terminal in raw mode needs.
pub const HELP: &str = "\r\nC-a x    quit the VMM\r\nC-a c    switch between the console and the monitor\r\nC-a C-a  send C-a to the guest\r\nC-a h    print this help\r\n";

/// What the user asked the VMM (not the guest) to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Ctrl-A x.
    Quit,
    /// Ctrl-A h or Ctrl-A ?.
    Help,
    /// Ctrl-A c: switch between the guest's console and the VMM's monitor.
    Monitor,
}

/// Splits typed bytes into what goes to the guest and the commands for the VMM. Keeps state
/// between calls: a Ctrl-A at the end of one read pairs with the first byte of the next.
#[derive(Debug, Default)]
pub struct EscapeFilter {
    after_escape: bool,
}

impl EscapeFilter {
    // qa:begin stage5-escape-filter
    /// Appends the bytes meant for the guest to `to_guest` and returns the commands found, in
    /// order. Bytes after a [`Command::Quit`] are dropped: the VMM is going away.
    pub fn filter(&mut self, typed: &[u8], to_guest: &mut Vec<u8>) -> Vec<Command> {
        let mut commands = Vec::new();
        for &byte in typed {
            if !self.after_escape {
                if byte == ESCAPE {
                    self.after_escape = true;
                } else {
                    to_guest.push(byte);
                }
                continue;
            }
            self.after_escape = false;
            match byte {
                ESCAPE => to_guest.push(ESCAPE),
                b'x' | b'X' => {
                    commands.push(Command::Quit);
                    break;
                }
                b'h' | b'?' => commands.push(Command::Help),
                b'c' | b'C' => commands.push(Command::Monitor),
                _ => {}
            }
        }
        commands
    }
    // qa:end stage5-escape-filter
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(filter: &mut EscapeFilter, typed: &[u8]) -> (Vec<u8>, Vec<Command>) {
        let mut to_guest = Vec::new();
        let commands = filter.filter(typed, &mut to_guest);
        (to_guest, commands)
    }

    #[test]
    fn plain_bytes_pass_through() {
        assert_eq!(run(&mut EscapeFilter::default(), b"ls -l\r"), (b"ls -l\r".to_vec(), vec![]));
    }

    #[test]
    fn ctrl_a_x_quits_and_drops_the_rest() {
        assert_eq!(run(&mut EscapeFilter::default(), b"ab\x01xcd"), (b"ab".to_vec(), vec![Command::Quit]));
    }

    #[test]
    fn ctrl_a_twice_sends_one_ctrl_a() {
        assert_eq!(run(&mut EscapeFilter::default(), b"\x01\x01z"), (b"\x01z".to_vec(), vec![]));
    }

    #[test]
    fn escape_split_across_reads() {
        let mut filter = EscapeFilter::default();
        assert_eq!(run(&mut filter, b"a\x01"), (b"a".to_vec(), vec![]));
        assert_eq!(run(&mut filter, b"x"), (vec![], vec![Command::Quit]));
    }

    #[test]
    fn help_and_unknown_commands_send_nothing() {
        assert_eq!(run(&mut EscapeFilter::default(), b"\x01h\x01q!"), (b"!".to_vec(), vec![Command::Help]));
    }

    #[test]
    fn ctrl_a_c_switches_to_the_monitor() {
        assert_eq!(run(&mut EscapeFilter::default(), b"a\x01cb"), (b"ab".to_vec(), vec![Command::Monitor]));
    }

    #[test]
    fn ctrl_c_is_a_byte_for_the_guest() {
        assert_eq!(run(&mut EscapeFilter::default(), b"\x03"), (b"\x03".to_vec(), vec![]));
    }
}
