//! Every fuzz target on the stable toolchain: its seed corpus (`fuzz/corpus/<target>/`), then a
//! fixed number of inputs from a seeded xorshift generator, half of them mutated seeds, half
//! random bytes. Deterministic, so a failure reproduces; bounded, so `cargo test` runs it.
//!
//! The same harness is the long run where libFuzzer is not available:
//! - `FUZZ_ITERATIONS=N` runs N generated inputs per target instead of the default;
//! - `FUZZ_SECONDS=S` runs each target for S seconds instead (`fuzz/run-all.sh` uses it);
//! - `FUZZ_SEED=N` changes the generator's seed, to explore other inputs;
//! - `FUZZ_REPLAY=FILE` runs only that input (a crash file, or one from libFuzzer).
//!
//! A failing input is saved under `fuzz/artifacts/<target>/` and named in the failure message.
//! Each target prints one line: `<target>: N executions, C crashes, S s`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fuzz_targets::{Target, TARGETS};

/// Generated inputs per target in a plain `cargo test` (a debug build: a few seconds each).
const DEFAULT_ITERATIONS: u64 = 4000;

/// The generator: xorshift64*, seeded per target.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, name: &str) -> Rng {
        let mixed =
            name.bytes().fold(seed ^ 0x9e37_79b9_7f4a_7c15, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Rng(mixed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A variation of `seed`: a few byte changes, insertions, deletions or a splice with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut input = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 | 1 if at < input.len() => input[at] = rng.next() as u8,
            2 if at < input.len() => input[at] = [0, 1, 0x7f, 0x80, 0xff, 0x10][rng.below(6)],
            3 => {
                let len = 1 + rng.below(16);
                let extra = rng.bytes(len);
                input.splice(at..at, extra);
            }
            4 if at < input.len() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                input.drain(at..end);
            }
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                input.splice(at..at, other[from..end].iter().copied());
            }
            _ => {}
        }
    }
    input.truncate(max_len.max(seed.len()));
    input
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate is in the repository").to_path_buf()
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

/// The seed corpus of `target`, sorted by file name.
fn seeds(target: &Target) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("fuzz/corpus").join(target.name);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect(),
        Err(e) => panic!("{}: no seed corpus ({e})", dir.display()),
    };
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect()
}

/// Runs one input; on a panic, saves it and fails naming the file.
fn run_one(target: &Target, input: &[u8], label: &dyn Fn() -> String) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_ok() {
        return;
    }
    let dir = repo_root().join("fuzz/artifacts").join(target.name);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let path = dir.join(format!("crash-{hash:016x}"));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input));
    let saved = match saved {
        Ok(()) => format!("saved as {}", path.display()),
        Err(e) => format!("not saved ({e})"),
    };
    panic!(
        "{}: 1 crash, on {}; the input ({} bytes) is {saved}; replay it with FUZZ_REPLAY=<file> cargo test -p fuzz-targets --test bounded {}",
        target.name,
        label(),
        input.len(),
        target.name
    );
}

fn run(name: &str) {
    let target = TARGETS.iter().find(|t| t.name == name).expect("a target of that name");
    if let Ok(file) = std::env::var("FUZZ_REPLAY") {
        let input = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        run_one(target, &input, &|| file.clone());
        println!("{name}: {file} runs without a violation");
        return;
    }
    let start = Instant::now();
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "{name}: the seed corpus is empty");
    for (file, input) in &seeds {
        run_one(target, input, &|| format!("seed {file}"));
    }
    let deadline = env_number("FUZZ_SECONDS").map(|s| start + Duration::from_secs(s));
    let iterations =
        env_number("FUZZ_ITERATIONS").unwrap_or(if deadline.is_some() { u64::MAX } else { DEFAULT_ITERATIONS });
    let mut rng = Rng::new(env_number("FUZZ_SEED").unwrap_or(0x6d69_6e69_7669_7274), name);
    let mut executions = seeds.len() as u64;
    for i in 0..iterations {
        if deadline.is_some_and(|d| i % 64 == 0 && Instant::now() >= d) {
            break;
        }
        let input = if rng.next().is_multiple_of(2) {
            let seed = &seeds[rng.below(seeds.len())].1;
            let other = &seeds[rng.below(seeds.len())].1;
            mutate(&mut rng, seed, other, target.max_len)
        } else {
            let len = rng.below(target.max_len + 1);
            rng.bytes(len)
        };
        run_one(target, &input, &|| format!("generated input {i}"));
        executions += 1;
    }
    println!("{name}: {executions} executions, 0 crashes, {:.1} s", start.elapsed().as_secs_f64());
}

macro_rules! targets {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for target in TARGETS {
                assert!(tested.contains(&target.name), "target {} has no test here", target.name);
            }
        }
    };
}

targets!(serial virtio_mmio virtqueue pci edu kernel_loader qa_bank checkpoint_spec);
