// mutant: Upper-cases each byte as a Unicode character, which re-encodes bytes of 0x80 and above (the two bytes of a UTF-8 "é") as different UTF-8.
/// Handles one exit of the guest: the "emulate" half of trap-and-emulate.
///
/// - `KVM_EXIT_IO`, an `out` to [`SERIAL_PORT`]: our serial port prints what it receives with
///   ASCII letters upper-cased (every other byte unchanged), and the guest runs on.
/// - `KVM_EXIT_HLT`: the guest has finished; the run ends.
/// - Anything else, an `out` to any other port included: this VMM emulates nothing more, so it
///   is [`HelloError::UnexpectedExit`].
pub fn handle_exit(exit: VcpuExit<'_>, out: &mut impl Write) -> Result<ExitAction, HelloError> {
    match exit {
        VcpuExit::IoOut(SERIAL_PORT, data) => {
            let text: String = data.iter().flat_map(|&b| char::from(b).to_uppercase()).collect();
            out.write_all(text.as_bytes()).map_err(HelloError::Output)?;
            Ok(ExitAction::Resume)
        }
        VcpuExit::Hlt => Ok(ExitAction::Stop),
        other => Err(HelloError::UnexpectedExit(format!("{other:?}"))),
    }
}
