//! Guest kernel symbols: which function holds a guest RIP, from the kernel's `System.map`.
//!
//! The VMM sees a guest instruction pointer as a number. The kernel build writes every symbol
//! with its address to `System.map`, one per line (`nm` output: address, type letter, name):
//!
//! ```text
//! ffffffff811a68ca T serial8250_tx_chars
//! ffffffff811a6a1e t serial8250_start_tx
//! ```
//!
//! Functions are the text symbols (`t`/`T`, local or global, and `w`/`W`, weak, which in a
//! kernel image are weak functions). The function that holds an address is the one with the
//! greatest start at or below it; the distance is the offset, printed as `name+0x2a` the way
//! the kernel's own backtraces print it. The lab kernel is built without KASLR, so its
//! addresses at run time are the ones in the file.
//!
//! # Resources
//! - `man nm` (the type letters); Linux `scripts/mksysmap`.
//! - The seed paper's method: exits attributed to guest functions by RIP.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The type letters kept: text (code) symbols, local or global, and weak symbols.
pub const TEXT_KINDS: [char; 4] = ['t', 'T', 'w', 'W'];

/// The lab guest's `System.map`, beside its kernel in `labs/guest/out/` (or in the folder
/// `MINIVIRT_GUEST_DIR` names).
pub fn default_path() -> PathBuf {
    stage04::guest::guest_dir().join("System.map")
}

/// One function symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// Its start address (a guest-virtual address of the kernel).
    pub address: u64,
    /// Its `nm` type letter, one of [`TEXT_KINDS`].
    pub kind: char,
    /// Its name.
    pub name: &'a str,
}

/// An address resolved to a function: `serial8250_tx_chars+0x2a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    /// The function.
    pub symbol: Symbol<'a>,
    /// How far into it the address is.
    pub offset: u64,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.offset == 0 {
            f.write_str(self.symbol.name)
        } else {
            write!(f, "{}+{:#x}", self.symbol.name, self.offset)
        }
    }
}

/// Errors from reading a symbol file.
#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    /// The file cannot be read.
    #[error("cannot read symbols from {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the read said.
        #[source]
        source: io::Error,
    },
    /// A line is not `ADDRESS TYPE NAME`.
    #[error("{origin} line {line}: {problem}: {text:?}")]
    Syntax {
        /// The file (or other source) the text came from.
        origin: String,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        problem: &'static str,
        /// The line.
        text: String,
    },
}

/// One symbol as the table stores it: 16 bytes, its name a range of the table's `names`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u64,
    name_start: u32,
    name_len: u16,
    kind: u8,
}

/// The function symbols of one kernel, sorted by address.
///
/// The VMM keeps it for the whole run, so it is stored compactly: all names in one string and
/// 16 bytes per symbol, about 0.5 MiB for the lab kernel's 16,000 functions (a `String` per
/// name took twice that, in 16,000 allocations).
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    entries: Vec<Entry>,
    names: String,
}

impl SymbolTable {
    /// Reads a `System.map` file (or `/proc/kallsyms` output).
    ///
    /// # Errors
    /// [`SymbolsError::Read`] when the file cannot be read, [`SymbolsError::Syntax`] for the
    /// first malformed line.
    pub fn load(path: &Path) -> Result<SymbolTable, SymbolsError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SymbolsError::Read { path: path.to_path_buf(), source })?;
        SymbolTable::parse(&text, &path.display().to_string())
    }

    /// Parses `System.map` text and keeps the function symbols. Blank lines are skipped; a
    /// fourth field is allowed if it is a `[module]` name, as in `/proc/kallsyms`.
    ///
    /// # Arguments
    /// * `text` - The file's contents.
    /// * `origin` - Where the text came from, for error messages.
    ///
    /// # Errors
    /// [`SymbolsError::Syntax`] naming the first malformed line.
    ///
    /// # Example
    /// ```
    /// use stage08::symbols::SymbolTable;
    ///
    /// let map = "ffffffff81000000 T startup_64\nffffffff81a00000 D jiffies\nffffffff811a68ca T serial8250_tx_chars\n";
    /// let symbols = SymbolTable::parse(map, "System.map").unwrap();
    /// assert_eq!(symbols.len(), 2, "data symbols are left out");
    /// assert_eq!(symbols.lookup(0xffffffff811a68f4).unwrap().to_string(), "serial8250_tx_chars+0x2a");
    /// ```
    pub fn parse(text: &str, origin: &str) -> Result<SymbolTable, SymbolsError> {
        let mut table = SymbolTable::default();
        for (index, line) in text.lines().enumerate() {
            let syntax = |problem| SymbolsError::Syntax {
                origin: origin.to_string(),
                line: index + 1,
                problem,
                text: line.to_string(),
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, kind, name) = match fields[..] {
                [] => continue,
                [address, kind, name] => (address, kind, name),
                [address, kind, name, module] if module.starts_with('[') && module.ends_with(']') => {
                    (address, kind, name)
                }
                _ => return Err(syntax("expected `ADDRESS TYPE NAME`")),
            };
            let address = u64::from_str_radix(address, 16).map_err(|_| syntax("the address is not a hex number"))?;
            let mut letters = kind.chars();
            let (Some(kind), None) = (letters.next(), letters.next()) else {
                return Err(syntax("the type is not a single letter"));
            };
            if !kind.is_ascii_alphabetic() && kind != '?' {
                return Err(syntax("the type is not a letter"));
            }
            if TEXT_KINDS.contains(&kind) {
                let name_start = u32::try_from(table.names.len()).map_err(|_| syntax("too many symbol names"))?;
                let name_len = u16::try_from(name.len()).map_err(|_| syntax("the name is too long"))?;
                table.names.push_str(name);
                table.entries.push(Entry { address, name_start, name_len, kind: u8::try_from(kind).unwrap_or(b'?') });
            }
        }
        // A stable sort: of several symbols at one address, the file's order is kept.
        table.entries.sort_by_key(|e| e.address);
        table.entries.shrink_to_fit();
        table.names.shrink_to_fit();
        Ok(table)
    }

    /// The symbol an entry stands for.
    fn symbol(&self, entry: &Entry) -> Symbol<'_> {
        let start = entry.name_start as usize;
        let name = self.names.get(start..start + usize::from(entry.name_len)).unwrap_or_default();
        Symbol { address: entry.address, kind: char::from(entry.kind), name }
    }

    /// The function that holds `address`: the symbol with the greatest start at or below it.
    /// Of several symbols at that start, the last listed (`System.map` lists section markers
    /// such as `_stext` before the function that starts there). `None` below the first symbol —
    /// user-space addresses, for a kernel map.
    pub fn lookup(&self, address: u64) -> Option<Location<'_>> {
        let index = self.entries.partition_point(|e| e.address <= address).checked_sub(1)?;
        let symbol = self.symbol(&self.entries[index]);
        Some(Location { symbol, offset: address - symbol.address })
    }

    /// The symbol named `name`, if it is a function.
    pub fn find(&self, name: &str) -> Option<Symbol<'_>> {
        self.entries.iter().map(|e| self.symbol(e)).find(|s| s.name == name)
    }

    /// How many function symbols there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as the lab kernel's System.map has them (6.1, tinyconfig), out of order on purpose.
    const MAP: &str = "\
0000000000000000 D __per_cpu_start
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000000 T startup_64
ffffffff811a6a1e t serial8250_start_tx
ffffffff811a68ca T serial8250_tx_chars
ffffffff8100096e W calibration_delay_done
ffffffff81a16000 B _end

ffffffff81947000 ? __nosave_begin
ffffffff818c3000 T _sinittext
";

    fn table() -> SymbolTable {
        SymbolTable::parse(MAP, "System.map").unwrap()
    }

    #[test]
    fn only_function_symbols_are_kept() {
        let table = table();
        assert_eq!(table.len(), 7);
        assert!(table.find("serial8250_start_tx").is_some_and(|s| s.kind == 't'));
        assert!(table.find("calibration_delay_done").is_some_and(|s| s.kind == 'W'));
        assert!(table.find("_end").is_none() && table.find("__per_cpu_start").is_none());
    }

    #[test]
    fn an_address_resolves_to_the_function_that_starts_at_or_below_it() {
        let table = table();
        let tx = table.lookup(0xffff_ffff_811a_68f4).unwrap();
        assert_eq!((tx.symbol.name, tx.offset), ("serial8250_tx_chars", 0x2a));
        assert_eq!(tx.to_string(), "serial8250_tx_chars+0x2a");
        assert_eq!(table.lookup(0xffff_ffff_811a_6a1e).unwrap().to_string(), "serial8250_start_tx");
        assert_eq!(table.lookup(0xffff_ffff_811a_6a1d).unwrap().symbol.name, "serial8250_tx_chars");
        assert_eq!(table.lookup(0xffff_ffff_8100_0010).unwrap().to_string(), "startup_64+0x10", "not _stext");
    }

    #[test]
    fn addresses_below_every_symbol_resolve_to_nothing() {
        let table = table();
        assert!(table.lookup(0x0040_1000).is_none(), "a user-space RIP");
        assert!(table.lookup(0xffff_ffff_80ff_ffff).is_none());
        assert!(SymbolTable::default().lookup(0xffff_ffff_8100_0000).is_none());
    }

    #[test]
    fn kallsyms_module_names_are_accepted() {
        let table = SymbolTable::parse("ffffffffc0001000 t edu_probe\t[edu]\n", "kallsyms").unwrap();
        assert_eq!(table.lookup(0xffff_ffff_c000_1004).unwrap().to_string(), "edu_probe+0x4");
    }

    #[test]
    fn garbage_lines_are_refused_with_their_line_number() {
        for (text, line, problem) in [
            ("ffffffff81000000 T startup_64\nnot a symbol line here\n", 2, "expected `ADDRESS TYPE NAME`"),
            ("ffffffff81000000 T\n", 1, "expected `ADDRESS TYPE NAME`"),
            ("\nxyz T f\n", 2, "the address is not a hex number"),
            ("1ffffffff81000000 T f\n", 1, "the address is not a hex number"),
            ("ffffffff81000000 TT f\n", 1, "the type is not a single letter"),
            ("ffffffff81000000 7 f\n", 1, "the type is not a letter"),
        ] {
            let err = SymbolTable::parse(text, "map").unwrap_err();
            let SymbolsError::Syntax { line: l, problem: p, .. } = &err else { panic!("{err:?}") };
            assert_eq!((*l, *p), (line, problem), "{text:?}");
            assert!(err.to_string().starts_with(&format!("map line {line}: ")), "{err}");
        }
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = SymbolTable::load(Path::new("/nonexistent/System.map")).unwrap_err();
        assert_eq!(err.to_string(), "cannot read symbols from /nonexistent/System.map");
        assert_eq!(default_path(), stage04::guest::guest_dir().join("System.map"), "beside the default kernel");
    }
}
