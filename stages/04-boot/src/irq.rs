//! Interrupts from devices: an eventfd the device writes, registered with KVM as an irqfd.
//!
//! With the in-kernel irqchip (PIC + IO-APIC), a device model never calls into KVM to raise
//! an interrupt: it writes to an eventfd, and KVM injects the interrupt on the GSI that
//! eventfd was registered for. That keeps device models free of KVM (they only see
//! [`Trigger`]) and lets any thread raise an interrupt without a vCPU exit.
//!
//! # Resources
//! - `KVM_IRQFD`: <https://docs.kernel.org/virt/kvm/api.html>.

use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Something that raises an interrupt (an edge: one call, one interrupt).
pub trait Trigger: Send + Sync {
    /// Raises the interrupt.
    fn trigger(&self) -> std::io::Result<()>;
}

/// A [`Trigger`] backed by an eventfd registered as an irqfd.
pub struct EventFdTrigger(EventFd);

impl Trigger for EventFdTrigger {
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

impl From<EventFd> for EventFdTrigger {
    /// Wraps an eventfd that is (or, in tests, stands for) an irqfd.
    fn from(eventfd: EventFd) -> Self {
        EventFdTrigger(eventfd)
    }
}

/// Why an interrupt could not be wired.
#[derive(Debug, thiserror::Error)]
pub enum IrqError {
    /// The host refused an eventfd.
    #[error("cannot create an eventfd: {0}")]
    EventFd(#[source] std::io::Error),
    /// KVM refused the irqfd.
    #[error("KVM_IRQFD for GSI {gsi} failed: {source}")]
    Register {
        /// The interrupt line.
        gsi: u32,
        /// KVM's answer.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// Creates an eventfd and registers it as the irqfd for `gsi`.
pub fn register_irqfd(vm: &VmFd, gsi: u32) -> Result<EventFdTrigger, IrqError> {
    let fd = EventFd::new(EFD_NONBLOCK).map_err(IrqError::EventFd)?;
    vm.register_irqfd(&fd, gsi).map_err(|source| IrqError::Register { gsi, source })?;
    Ok(EventFdTrigger(fd))
}

/// A trigger that does nothing, for device tests.
#[derive(Default)]
pub struct NoTrigger;

impl Trigger for NoTrigger {
    fn trigger(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[doc(hidden)]
pub mod testing;
