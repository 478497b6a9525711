// mutant: Does not mark the first guest instruction when a vCPU starts.
impl ExitHook for ExitRecorder {
    fn vcpu_started(&self, _vcpu: u8, _fd: &VcpuFd) {
    }

    fn exit_handled(&self, exit: &ExitInfo, fd: &VcpuFd, in_vmm: Duration) {
        // For I/O exits the RIP is the `in`/`out` or the load/store itself (KVM completes it on
        // the next KVM_RUN); for an exit the host workarounds emulated, where the guest resumes.
        let rip = fd.get_regs().ok().map(|regs| regs.rip);
        let sample = ExitSample::from_exit(exit, rip, self.device(exit), in_vmm);
        self.stats.record(usize::from(exit.vcpu), &sample);
        if exit.kind == ExitKind::IoOut && exit.address == CONSOLE_PORT {
            self.timeline.mark(BootEvent::FirstConsoleByte);
        }
    }
}
