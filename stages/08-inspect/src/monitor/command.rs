//! Monitor command lines, parsed with QEMU's names and syntax so that QEMU's documentation
//! applies: `x /4xg 0x1000`, `xp/8cb $rsp`, `gva2gpa 0xffffffff81000000`, `info mtree`.
//!
//! A line is a command name (which ends at a space or at `/`), then its arguments. Addresses
//! are expressions as in QEMU: numbers (`0x` hex, a leading `0` octal, otherwise decimal) and
//! registers (`$rip`, `$cr3`), added and subtracted: `$rsp+8`.
//!
//! `x` and `xp` take QEMU's `/Nfu` format: a count N (default 1), a format letter f and a unit
//! letter u, in any order after the count. A letter left out is the one the previous `x` or
//! `xp` used; at first `x` (hex) and `w` (4 bytes). So `xp/2g 0x1000` after `xp/c` prints
//! eight-byte units as characters — QEMU's rule, kept by [`CommandParser`].
//!
//! Every error is one line, and the monitor goes on.
//!
//! # Resources
//! - QEMU monitor documentation: <https://www.qemu.org/docs/master/system/monitor.html>.
//! - QEMU `hmp-commands.hx` (names, `/fmt` description), `monitor/hmp.c` (`get_command_name`,
//!   the `/` argument parser and `expr_unary`).

use std::fmt;

/// The most bytes one `x`/`xp` may dump: bounds what a typo like `x/99999999g` prints.
pub const MAX_DUMP_BYTES: u64 = 64 * 1024;

/// One command the monitor understands, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help [command]` (also `?`): the command list, or one command's line.
    Help(Option<&'static str>),
    /// `info mtree|registers|cpus|stats`.
    Info(InfoTopic),
    /// `stop` (also `s`): pause every vCPU.
    Stop,
    /// `cont` (also `c`): let them run again.
    Cont,
    /// `quit` (also `q`): stop the VM and the VMM.
    Quit,
    /// `x /fmt ADDR` (virtual) and `xp /fmt ADDR` (physical): dump memory.
    Dump {
        /// Whether ADDR is a GVA (`x`, translated with the current vCPU's tables) or a GPA (`xp`).
        space: AddressSpace,
        /// Count, format and unit.
        format: DumpFormat,
        /// The first address.
        address: Expr,
    },
    /// `gva2gpa ADDR`: the guest-physical address of a guest-virtual one.
    Gva2Gpa(Expr),
    /// `gpa2hva ADDR`: the VMM's address for a guest-physical one.
    Gpa2Hva(Expr),
    /// `gpa2hpa ADDR`: the host-physical address for a guest-physical one.
    Gpa2Hpa(Expr),
    /// `translate ADDR`: minivirt's own, the whole chain GVA→GPA→HVA→HPA with every table level.
    Translate(Expr),
    /// `cpu N`: the vCPU that address and register commands use.
    Cpu(u32),
}

/// What `info` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoTopic {
    /// The memory map: RAM slots, MMIO windows, port ranges.
    Mtree,
    /// The current vCPU's registers.
    Registers,
    /// Every vCPU.
    Cpus,
    /// Exit statistics so far.
    Stats,
}

/// Which address space a dump reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSpace {
    /// Guest-virtual, through the current vCPU's page tables (`x`).
    Virtual,
    /// Guest-physical (`xp`).
    Physical,
}

/// How `x`/`xp` prints each unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `x`: hexadecimal, zero-padded to the unit's width.
    Hex,
    /// `d`: signed decimal.
    Signed,
    /// `u`: unsigned decimal.
    Unsigned,
    /// `o`: octal.
    Octal,
    /// `c`: characters, one per byte.
    Char,
}

impl Format {
    /// The format for QEMU's letter (`i`, instructions, is refused by the parser: no disassembler).
    pub fn from_letter(letter: char) -> Option<Format> {
        Some(match letter {
            'x' => Format::Hex,
            'd' => Format::Signed,
            'u' => Format::Unsigned,
            'o' => Format::Octal,
            'c' => Format::Char,
            _ => return None,
        })
    }
}

/// The size of one unit of `x`/`xp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `b`: 1 byte.
    Byte = 1,
    /// `h`: 2 bytes ("half word").
    Half = 2,
    /// `w`: 4 bytes ("word").
    Word = 4,
    /// `g`: 8 bytes ("giant"; QEMU also accepts `L`).
    Giant = 8,
}

impl Unit {
    /// The unit for QEMU's letter.
    pub fn from_letter(letter: char) -> Option<Unit> {
        Some(match letter {
            'b' => Unit::Byte,
            'h' => Unit::Half,
            'w' => Unit::Word,
            'g' | 'L' => Unit::Giant,
            _ => return None,
        })
    }

    /// Bytes per unit.
    pub fn bytes(self) -> usize {
        self as usize
    }
}

/// A complete `/Nfu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpFormat {
    /// How many units.
    pub count: u32,
    /// How each is printed.
    pub format: Format,
    /// Its size.
    pub unit: Unit,
}

impl DumpFormat {
    /// Bytes the dump covers: count × unit, as QEMU counts it (also for `c`, which then prints
    /// every byte of those units: `x/4c` with unit `w` shows 16 characters).
    pub fn len(&self) -> u64 {
        u64::from(self.count) * self.unit.bytes() as u64
    }

    /// Whether the dump covers no bytes (`x/0x`).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A vCPU register an address expression may name, as `$name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names say it all
pub enum Register {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    Rip,
    Rflags,
    Cr0,
    Cr2,
    Cr3,
    Cr4,
}

impl Register {
    /// Every register with its names (QEMU's `pc` and `eflags` included).
    pub const NAMES: [(&'static str, Register); 24] = [
        ("rax", Register::Rax),
        ("rbx", Register::Rbx),
        ("rcx", Register::Rcx),
        ("rdx", Register::Rdx),
        ("rsi", Register::Rsi),
        ("rdi", Register::Rdi),
        ("rbp", Register::Rbp),
        ("rsp", Register::Rsp),
        ("r8", Register::R8),
        ("r9", Register::R9),
        ("r10", Register::R10),
        ("r11", Register::R11),
        ("r12", Register::R12),
        ("r13", Register::R13),
        ("r14", Register::R14),
        ("r15", Register::R15),
        ("rip", Register::Rip),
        ("pc", Register::Rip),
        ("rflags", Register::Rflags),
        ("eflags", Register::Rflags),
        ("cr0", Register::Cr0),
        ("cr2", Register::Cr2),
        ("cr3", Register::Cr3),
        ("cr4", Register::Cr4),
    ];

    /// The register called `name` (case-insensitive, without the `$`).
    pub fn from_name(name: &str) -> Option<Register> {
        Register::NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, r)| r)
    }
}

/// One term of an address expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// A number.
    Number(u64),
    /// A register's value, read when the command runs.
    Register(Register),
}

/// An address: terms added or subtracted (wrapping, as QEMU's 64-bit arithmetic does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// `(negated, term)` pairs, summed.
    pub terms: Vec<(bool, Term)>,
}

impl Expr {
    /// An expression that is just a number.
    pub fn number(value: u64) -> Expr {
        Expr { terms: vec![(false, Term::Number(value))] }
    }

    /// The value, with `register` giving each register's value.
    pub fn evaluate(&self, mut register: impl FnMut(Register) -> u64) -> u64 {
        self.terms.iter().fold(0u64, |sum, &(negated, term)| {
            let value = match term {
                Term::Number(n) => n,
                Term::Register(r) => register(r),
            };
            if negated {
                sum.wrapping_sub(value)
            } else {
                sum.wrapping_add(value)
            }
        })
    }

    /// Whether evaluating needs a vCPU's registers.
    pub fn uses_registers(&self) -> bool {
        self.terms.iter().any(|(_, t)| matches!(t, Term::Register(_)))
    }
}

/// One line of `help`: a command, its parameters and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHelp {
    /// The name, with its short forms as QEMU writes them: `cont|c`.
    pub names: &'static str,
    /// The parameters.
    pub params: &'static str,
    /// What it does.
    pub help: &'static str,
}

impl CommandHelp {
    /// The command's full name (before any `|`).
    pub fn name(&self) -> &'static str {
        self.names.split('|').next().unwrap_or(self.names)
    }

    fn is_called(&self, name: &str) -> bool {
        self.names.split('|').any(|n| n == name)
    }
}

impl fmt::Display for CommandHelp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.params.is_empty() {
            write!(f, "{} -- {}", self.names, self.help)
        } else {
            write!(f, "{} {} -- {}", self.names, self.params, self.help)
        }
    }
}

/// The commands, in the order `help` lists them (QEMU's help texts where QEMU has the command).
pub const COMMANDS: [CommandHelp; 12] = [
    CommandHelp { names: "help|?", params: "[cmd]", help: "show the help" },
    CommandHelp { names: "info", params: "[subcommand]", help: "show various information about the system state" },
    CommandHelp { names: "stop|s", params: "", help: "stop emulation" },
    CommandHelp { names: "cont|c", params: "", help: "resume emulation" },
    CommandHelp { names: "x", params: "/fmt addr", help: "virtual memory dump starting at 'addr'" },
    CommandHelp { names: "xp", params: "/fmt addr", help: "physical memory dump starting at 'addr'" },
    CommandHelp {
        names: "gva2gpa",
        params: "addr",
        help: "print the guest physical address corresponding to a guest virtual address",
    },
    CommandHelp {
        names: "gpa2hva",
        params: "addr",
        help: "print the host virtual address corresponding to a guest physical address",
    },
    CommandHelp {
        names: "gpa2hpa",
        params: "addr",
        help: "print the host physical address corresponding to a guest physical address",
    },
    CommandHelp {
        names: "translate",
        params: "addr",
        help: "show the whole chain GVA->GPA->HVA->HPA for a guest virtual address, every page-table level included",
    },
    CommandHelp { names: "cpu", params: "index", help: "set the default CPU" },
    CommandHelp { names: "quit|q", params: "", help: "quit the emulator" },
];

/// The `info` topics, as `help info` lists them.
pub const INFO_TOPICS: [(&str, InfoTopic, &str); 4] = [
    ("mtree", InfoTopic::Mtree, "show memory tree: RAM slots with their host addresses, MMIO windows, port ranges"),
    ("registers", InfoTopic::Registers, "show the cpu registers"),
    ("cpus", InfoTopic::Cpus, "show infos for each CPU"),
    ("stats", InfoTopic::Stats, "show VM exit statistics, hot spots and the boot timeline so far"),
];

/// Why a line is not a command. Each message is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No such command.
    #[error("unknown command: '{0}' (try 'help')")]
    UnknownCommand(String),
    /// No such `info` topic.
    #[error("info: unknown topic '{0}' (try 'help info')")]
    UnknownInfo(String),
    /// An argument is missing.
    #[error("{command}: {what} expected (try 'help {command}')")]
    MissingArgument {
        /// The command.
        command: &'static str,
        /// What it needs.
        what: &'static str,
    },
    /// Something is left after the arguments.
    #[error("{0}: extraneous characters at the end of line")]
    Extraneous(&'static str),
    /// A number that does not parse.
    #[error("malformed number: '{0}'")]
    BadNumber(String),
    /// A character in `/fmt` that is neither a format nor a unit letter.
    #[error("invalid char in format: '{0}'")]
    BadFormat(char),
    /// The `i` format: QEMU disassembles, minivirt has no disassembler.
    #[error("format 'i' (instructions) needs a disassembler, which minivirt does not have")]
    InstructionFormat,
    /// `$name` that is not a register.
    #[error("unknown register: '${0}'")]
    UnknownRegister(String),
    /// A dump longer than [`MAX_DUMP_BYTES`].
    #[error("{command}: {bytes} bytes is more than one dump shows (at most {MAX_DUMP_BYTES})")]
    DumpTooLong {
        /// `x` or `xp`.
        command: &'static str,
        /// count × unit.
        bytes: u64,
    },
}

/// Parses monitor lines, remembering the last `x`/`xp` format and unit as QEMU does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandParser {
    format: Format,
    unit: Unit,
}

impl Default for CommandParser {
    fn default() -> Self {
        CommandParser { format: Format::Hex, unit: Unit::Word }
    }
}

impl CommandParser {
    /// A parser with QEMU's initial dump defaults: hex, 4-byte units.
    pub fn new() -> CommandParser {
        CommandParser::default()
    }

    /// Parses one line; `Ok(None)` for a blank line.
    ///
    /// # Errors
    /// A [`CommandError`] saying, in one line, what is wrong.
    ///
    /// # Example
    /// ```
    /// use stage08::monitor::command::{AddressSpace, Command, CommandParser, Expr, Format, Unit};
    ///
    /// let mut parser = CommandParser::new();
    /// let Some(Command::Dump { space, format, address }) = parser.parse("xp /2xg 0x1000").unwrap() else {
    ///     panic!()
    /// };
    /// assert_eq!((space, format.count, format.format, format.unit), (AddressSpace::Physical, 2, Format::Hex, Unit::Giant));
    /// assert_eq!(address, Expr::number(0x1000));
    /// assert_eq!(parser.parse("foo").unwrap_err().to_string(), "unknown command: 'foo' (try 'help')");
    /// ```
    pub fn parse(&mut self, line: &str) -> Result<Option<Command>, CommandError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        // The name ends at a space or a `/`, so `x/4xg` works without a space.
        let name_end = line.find(|c: char| c.is_whitespace() || c == '/').unwrap_or(line.len());
        let (name, rest) = line.split_at(name_end);
        let rest = rest.trim_start();
        let help = COMMANDS.iter().find(|c| c.is_called(name)).ok_or_else(|| unknown(name))?;
        let command = help.name();
        let command = match command {
            "help" => Command::Help(parse_help_topic(rest)?),
            "info" if rest.is_empty() => Command::Help(Some("info")),
            "info" => Command::Info(parse_info(rest)?),
            "stop" => no_arguments(command, rest, Command::Stop)?,
            "cont" => no_arguments(command, rest, Command::Cont)?,
            "quit" => no_arguments(command, rest, Command::Quit)?,
            "x" | "xp" => self.parse_dump(command, rest)?,
            "gva2gpa" => Command::Gva2Gpa(parse_address(command, rest)?),
            "gpa2hva" => Command::Gpa2Hva(parse_address(command, rest)?),
            "gpa2hpa" => Command::Gpa2Hpa(parse_address(command, rest)?),
            "translate" => Command::Translate(parse_address(command, rest)?),
            "cpu" => Command::Cpu(parse_cpu_index(rest)?),
            _ => unreachable!("every name in COMMANDS is handled"),
        };
        Ok(Some(command))
    }

    // qa:begin stage8-dump-format
    fn parse_dump(&mut self, command: &'static str, rest: &str) -> Result<Command, CommandError> {
        let space = if command == "x" { AddressSpace::Virtual } else { AddressSpace::Physical };
        let (format, address) = match rest.strip_prefix('/') {
            Some(spec) => {
                let end = spec.find(char::is_whitespace).unwrap_or(spec.len());
                (self.parse_format(&spec[..end])?, &spec[end..])
            }
            None => (DumpFormat { count: 1, format: self.format, unit: self.unit }, rest),
        };
        if format.len() > MAX_DUMP_BYTES {
            return Err(CommandError::DumpTooLong { command, bytes: format.len() });
        }
        Ok(Command::Dump { space, format, address: parse_address(command, address)? })
    }

    /// `N`, then format and unit letters in any order; what is left out comes from the last dump.
    fn parse_format(&mut self, spec: &str) -> Result<DumpFormat, CommandError> {
        let digits = spec.find(|c: char| !c.is_ascii_digit()).unwrap_or(spec.len());
        let count = match &spec[..digits] {
            "" => 1,
            n => n.parse().map_err(|_| CommandError::BadNumber(n.to_string()))?,
        };
        let (mut format, mut unit) = (None, None);
        for letter in spec[digits..].chars() {
            if letter == 'i' {
                return Err(CommandError::InstructionFormat);
            } else if let Some(f) = Format::from_letter(letter) {
                format = Some(f);
            } else if let Some(u) = Unit::from_letter(letter) {
                unit = Some(u);
            } else {
                return Err(CommandError::BadFormat(letter));
            }
        }
        self.format = format.unwrap_or(self.format);
        self.unit = unit.unwrap_or(self.unit);
        Ok(DumpFormat { count, format: self.format, unit: self.unit })
    }
    // qa:end stage8-dump-format
}

fn unknown(name: &str) -> CommandError {
    CommandError::UnknownCommand(name.to_string())
}

fn no_arguments(command: &'static str, rest: &str, parsed: Command) -> Result<Command, CommandError> {
    if rest.is_empty() {
        Ok(parsed)
    } else {
        Err(CommandError::Extraneous(command))
    }
}

fn parse_help_topic(rest: &str) -> Result<Option<&'static str>, CommandError> {
    let mut words = rest.split_whitespace();
    let Some(topic) = words.next() else { return Ok(None) };
    if words.next().is_some() {
        return Err(CommandError::Extraneous("help"));
    }
    COMMANDS.iter().find(|c| c.is_called(topic)).map(|c| Some(c.name())).ok_or_else(|| unknown(topic))
}

fn parse_info(rest: &str) -> Result<InfoTopic, CommandError> {
    let mut words = rest.split_whitespace();
    let topic = words.next().unwrap_or_default();
    let (_, info, _) = INFO_TOPICS
        .iter()
        .find(|(name, _, _)| *name == topic)
        .ok_or_else(|| CommandError::UnknownInfo(topic.to_string()))?;
    if words.next().is_some() {
        return Err(CommandError::Extraneous("info"));
    }
    Ok(*info)
}

fn parse_cpu_index(rest: &str) -> Result<u32, CommandError> {
    if rest.is_empty() {
        return Err(CommandError::MissingArgument { command: "cpu", what: "index" });
    }
    if rest.contains(char::is_whitespace) {
        return Err(CommandError::Extraneous("cpu"));
    }
    let index = parse_number(rest)?;
    u32::try_from(index).map_err(|_| CommandError::BadNumber(rest.to_string()))
}

/// An address expression: `TERM ([+-] TERM)*`, spaces allowed around the signs, a leading sign too.
fn parse_address(command: &'static str, text: &str) -> Result<Expr, CommandError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CommandError::MissingArgument { command, what: "address" });
    }
    let mut terms = Vec::new();
    let mut negated = false;
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('-') {
            negated = !negated;
            rest = after;
            continue;
        }
        if let Some(after) = rest.strip_prefix('+') {
            rest = after;
            continue;
        }
        let end = rest.find(|c: char| c == '+' || c == '-' || c.is_whitespace()).unwrap_or(rest.len());
        let (token, after) = rest.split_at(end);
        if token.is_empty() {
            return Err(CommandError::MissingArgument { command, what: "address" });
        }
        terms.push((negated, parse_term(token)?));
        negated = false;
        rest = after.trim_start();
        match rest.chars().next() {
            None => return Ok(Expr { terms }),
            Some('+' | '-') => {}
            Some(_) => return Err(CommandError::Extraneous(command)),
        }
    }
}

fn parse_term(token: &str) -> Result<Term, CommandError> {
    match token.strip_prefix('$') {
        Some(name) => {
            Register::from_name(name).map(Term::Register).ok_or_else(|| CommandError::UnknownRegister(name.to_string()))
        }
        None => parse_number(token).map(Term::Number),
    }
}

/// A number as C's `strtoull(text, 0)` reads it: `0x` hex, a leading `0` octal, else decimal.
fn parse_number(text: &str) -> Result<u64, CommandError> {
    let bad = || CommandError::BadNumber(text.to_string());
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        (hex, 16)
    } else if text.len() > 1 && text.starts_with('0') {
        (&text[1..], 8)
    } else {
        (text, 10)
    };
    // from_str_radix would accept a sign: the sign belongs to the expression, not the number.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    u64::from_str_radix(digits, radix).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<Command>, CommandError> {
        CommandParser::new().parse(line)
    }

    fn command(line: &str) -> Command {
        parse(line).unwrap_or_else(|e| panic!("{line}: {e}")).unwrap()
    }

    fn error(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    fn dump(line: &str, parser: &mut CommandParser) -> (AddressSpace, DumpFormat, Expr) {
        match parser.parse(line).unwrap() {
            Some(Command::Dump { space, format, address }) => (space, format, address),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn simple_commands_and_their_short_forms() {
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(command("help"), Command::Help(None));
        assert_eq!(command("? x"), Command::Help(Some("x")));
        assert_eq!(command("help c"), Command::Help(Some("cont")));
        assert_eq!(command("info"), Command::Help(Some("info")));
        assert_eq!(command("stop"), Command::Stop);
        assert_eq!(command("s"), Command::Stop);
        assert_eq!(command("  cont  "), Command::Cont);
        assert_eq!(command("c"), Command::Cont);
        assert_eq!(command("q"), Command::Quit);
        assert_eq!(command("cpu 1"), Command::Cpu(1));
    }

    #[test]
    fn info_topics() {
        assert_eq!(command("info mtree"), Command::Info(InfoTopic::Mtree));
        assert_eq!(command("info registers"), Command::Info(InfoTopic::Registers));
        assert_eq!(command("info cpus"), Command::Info(InfoTopic::Cpus));
        assert_eq!(command("info  stats"), Command::Info(InfoTopic::Stats));
        assert_eq!(error("info tlb"), "info: unknown topic 'tlb' (try 'help info')");
        assert_eq!(error("info mtree -f"), "info: extraneous characters at the end of line");
    }

    #[test]
    fn address_commands_take_numbers_in_qemus_bases() {
        assert_eq!(command("gva2gpa 0xffffffff81000000"), Command::Gva2Gpa(Expr::number(0xffff_ffff_8100_0000)));
        assert_eq!(command("gpa2hva 4096"), Command::Gpa2Hva(Expr::number(4096)));
        assert_eq!(command("gpa2hpa 0X1000"), Command::Gpa2Hpa(Expr::number(0x1000)));
        assert_eq!(command("translate 010"), Command::Translate(Expr::number(8)), "a leading 0 is octal, as in C");
        assert_eq!(command("translate 0"), Command::Translate(Expr::number(0)));
    }

    #[test]
    fn addresses_may_add_registers_and_numbers() {
        let Command::Translate(expr) = command("translate $rsp + 0x10 - 2") else { panic!() };
        assert!(expr.uses_registers());
        let value = expr.evaluate(|r| if r == Register::Rsp { 0x1000 } else { 0 });
        assert_eq!(value, 0x100e);
        let Command::Gva2Gpa(expr) = command("gva2gpa $PC+8") else { panic!() };
        assert_eq!(expr.evaluate(|r| if r == Register::Rip { 0x40 } else { 0 }), 0x48);
        let Command::Gpa2Hva(expr) = command("gpa2hva -1") else { panic!() };
        assert_eq!(expr.evaluate(|_| 0), u64::MAX, "wrapping, as QEMU's int64 arithmetic");
    }

    #[test]
    fn dump_formats_follow_qemu() {
        let mut parser = CommandParser::new();
        let (space, format, address) = dump("x/4xg 0x1000", &mut parser);
        assert_eq!(space, AddressSpace::Virtual);
        assert_eq!(format, DumpFormat { count: 4, format: Format::Hex, unit: Unit::Giant });
        assert_eq!(address, Expr::number(0x1000));
        // Letters in any order; unit and format stick for the next dump.
        let (space, format, _) = dump("xp /bc 0", &mut parser);
        assert_eq!(space, AddressSpace::Physical);
        assert_eq!(format, DumpFormat { count: 1, format: Format::Char, unit: Unit::Byte });
        assert_eq!(dump("xp /8 0", &mut parser).1, DumpFormat { count: 8, format: Format::Char, unit: Unit::Byte });
        assert_eq!(dump("x 0", &mut parser).1, DumpFormat { count: 1, format: Format::Char, unit: Unit::Byte });
        assert_eq!(
            dump("x/2du $rip", &mut parser).1,
            DumpFormat { count: 2, format: Format::Unsigned, unit: Unit::Byte }
        );
        assert_eq!(dump("x/hd 0", &mut parser).1, DumpFormat { count: 1, format: Format::Signed, unit: Unit::Half });
        assert_eq!(dump("x/oL 0", &mut parser).1, DumpFormat { count: 1, format: Format::Octal, unit: Unit::Giant });
        assert_eq!(dump("x/w 0", &mut parser).1.unit, Unit::Word);
        // A fresh parser starts from QEMU's defaults: hex words.
        assert_eq!(
            dump("x 0", &mut CommandParser::new()).1,
            DumpFormat { count: 1, format: Format::Hex, unit: Unit::Word }
        );
    }

    #[test]
    fn bad_formats_are_one_line_errors() {
        assert_eq!(error("x/4z 0"), "invalid char in format: 'z'");
        assert_eq!(error("x/4xg5 0"), "invalid char in format: '5'");
        assert_eq!(error("x/10i $rip"), "format 'i' (instructions) needs a disassembler, which minivirt does not have");
        assert_eq!(error("xp/99999999999 0"), "malformed number: '99999999999'");
        assert_eq!(error("xp/100000xg 0"), "xp: 800000 bytes is more than one dump shows (at most 65536)");
        assert_eq!(error("x/4xg"), "x: address expected (try 'help x')");
        // A failed parse does not change the remembered format.
        let mut parser = CommandParser::new();
        assert!(parser.parse("x/8cz 0").is_err());
        assert_eq!(dump("x 0", &mut parser).1.format, Format::Hex);
    }

    #[test]
    fn unknown_commands_and_malformed_numbers_are_one_line_errors() {
        assert_eq!(error("foo 1"), "unknown command: 'foo' (try 'help')");
        assert_eq!(error("help foo"), "unknown command: 'foo' (try 'help')");
        assert_eq!(error("gva2gpa 0x"), "malformed number: '0x'");
        assert_eq!(error("gva2gpa 12ab"), "malformed number: '12ab'");
        assert_eq!(error("gva2gpa 0x10000000000000000"), "malformed number: '0x10000000000000000'");
        assert_eq!(error("gva2gpa 09"), "malformed number: '09'");
        assert_eq!(error("gva2gpa $foo"), "unknown register: '$foo'");
        assert_eq!(error("gva2gpa 1 2"), "gva2gpa: extraneous characters at the end of line");
        assert_eq!(error("gva2gpa 1 +"), "gva2gpa: address expected (try 'help gva2gpa')");
        assert_eq!(error("translate"), "translate: address expected (try 'help translate')");
        assert_eq!(error("cpu"), "cpu: index expected (try 'help cpu')");
        assert_eq!(error("cpu 0x100000000"), "malformed number: '0x100000000'");
        assert_eq!(error("stop now"), "stop: extraneous characters at the end of line");
        for line in ["x/4xg 0x1000\u{0}", "gva2gpa \u{7f}", "\u{1b}[A"] {
            assert!(!error(line).contains('\n'), "{line:?}");
        }
    }

    #[test]
    fn help_lines_read_like_qemus() {
        assert_eq!(COMMANDS[4].to_string(), "x /fmt addr -- virtual memory dump starting at 'addr'");
        assert_eq!(COMMANDS[3].to_string(), "cont|c -- resume emulation");
        assert!(COMMANDS.iter().all(|c| CommandParser::new().parse(&format!("help {}", c.name())).is_ok()));
    }
}
