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
}

fn main() -> ExitCode {
    stage01::default_sigpipe();
    let args: Args = stage01::parse_args();
    let mut message = args.message.into_bytes();
    message.push(b'\n');
    let result = stage01::open_kvm().and_then(|kvm| {
        let code = stage01::guest_code(&message)?;
        stage01::run_guest(&kvm, &code, &mut std::io::stdout().lock())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("stage01: {err}");
            ExitCode::FAILURE
        }
    }
}
