// mutant: Runs the guest again after hlt instead of ending the run.
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
            out.write_all(&data.to_ascii_uppercase()).map_err(HelloError::Output)?;
            Ok(ExitAction::Resume)
        }
        VcpuExit::Hlt => Ok(ExitAction::Resume),
        other => Err(HelloError::UnexpectedExit(format!("{other:?}"))),
    }
}
