//! `stage01`: run a tiny real-mode guest that writes a message to port 0x3f8; print it upper-cased.

use clap::Parser;
use std::process::ExitCode;

/// Stage 1 of minivirt: the smallest KVM virtual machine monitor.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The text the guest writes to the serial port (a newline is added).
    #[arg(long, default_value = "Hello, World!")]
    message: String,
    /// The I/O port the guest writes to (decimal, or hex with 0x). Only 0x3f8 is emulated: an
    /// `out` to any other port is an unexpected exit.
    #[arg(long, value_name = "PORT", default_value = "0x3f8", value_parser = parse_port)]
    port: u16,
    /// When the guest halts, print how many exits reached the VMM (on stderr).
    #[arg(long)]
    count_exits: bool,
}

/// A port number: `0x2f8` or `760`.
fn parse_port(text: &str) -> Result<u16, std::num::ParseIntError> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16),
        None => text.parse(),
    }
}

fn main() -> ExitCode {
    stage01::default_sigpipe();
    let args: Args = stage01::parse_args();
    let mut message = args.message.into_bytes();
    message.push(b'\n');
    let result = stage01::open_kvm().and_then(|kvm| {
        let code = stage01::guest_code(&message, args.port)?;
        stage01::run_guest(&kvm, &code, &mut std::io::stdout().lock())
    });
    match result {
        Ok(exits) => {
            if args.count_exits {
                eprintln!("stage01: {exits} VM exits");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("stage01: {err}");
            ExitCode::FAILURE
        }
    }
}
