// mutant: Records exits without the guest RIP (no KVM_GET_REGS), so no exit can be traced to guest code.
impl ExitHook for ExitRecorder {
    fn vcpu_started(&self, _vcpu: u8, _fd: &VcpuFd) {
        self.timeline.mark(BootEvent::FirstInstruction);
    }

    fn exit_handled(&self, exit: &ExitInfo, fd: &VcpuFd, in_vmm: Duration) {
        // For I/O exits the RIP is the `in`/`out` or the load/store itself (KVM completes it on
        // the next KVM_RUN); for an exit the host workarounds emulated, where the guest resumes.
        let _ = fd;
        let rip = None;
        let sample = ExitSample::from_exit(exit, rip, self.device(exit), in_vmm);
        self.stats.record(usize::from(exit.vcpu), &sample);
        if exit.kind == ExitKind::IoOut && exit.address == CONSOLE_PORT {
            self.timeline.mark(BootEvent::FirstConsoleByte);
        }
    }
}
