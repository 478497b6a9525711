//! The I/O thread: queue notifications that KVM delivers on eventfds (ioeventfd), served off
//! the vCPU threads.
//!
//! With `KVM_IOEVENTFD`, the guest's write to a `QueueNotify` register never reaches user
//! space as an MMIO exit: KVM matches the address and value, signals an eventfd, and resumes
//! the guest at once. This thread waits on all those eventfds with epoll and runs the handler
//! of whichever fired, so the disk I/O overlaps with the guest running on.
//!
//! # Resources
//! - `KVM_IOEVENTFD` in the KVM API documentation; Firecracker's and Cloud Hypervisor's
//!   device event loops.

use std::io;
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// What to run when an eventfd fires.
pub type Handler = Box<dyn FnMut() + Send>;

/// The running thread; [`IoThread::stop`] ends it.
pub struct IoThread {
    stop: EventFd,
    thread: JoinHandle<()>,
}

impl IoThread {
    /// Starts a thread that runs `handler` each time its eventfd is signalled.
    pub fn start(sources: Vec<(EventFd, Handler)>) -> io::Result<IoThread> {
        let epoll = Epoll::new()?;
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let stop_token = sources.len() as u64;
        epoll.ctl(ControlOperation::Add, stop.as_raw_fd(), EpollEvent::new(EventSet::IN, stop_token))?;
        for (token, (eventfd, _)) in sources.iter().enumerate() {
            epoll.ctl(ControlOperation::Add, eventfd.as_raw_fd(), EpollEvent::new(EventSet::IN, token as u64))?;
        }
        let thread = stage03::threads::spawn("virtio i/o", move || {
            let mut sources = sources;
            let mut events = vec![EpollEvent::default(); sources.len() + 1];
            loop {
                let count = match epoll.wait(-1, &mut events) {
                    Ok(count) => count,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        eprintln!("[minivirt] virtio I/O thread stopped: epoll_wait failed: {e}");
                        return;
                    }
                };
                for event in &events[..count] {
                    let Some((eventfd, handler)) = sources.get_mut(event.data() as usize) else {
                        return; // the stop token
                    };
                    // Reading resets the counter: several notifications become one pass.
                    if eventfd.read().is_ok() {
                        handler();
                    }
                }
            }
        })?;
        Ok(IoThread { stop, thread })
    }

    /// Ends the thread and waits for it.
    pub fn stop(self) {
        if self.stop.write(1).is_ok() {
            let _ = self.thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn each_eventfd_runs_its_own_handler() {
        let counts = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        let eventfds = [EventFd::new(EFD_NONBLOCK).unwrap(), EventFd::new(EFD_NONBLOCK).unwrap()];
        let sources = counts
            .iter()
            .zip(&eventfds)
            .map(|(count, eventfd)| {
                let count = Arc::clone(count);
                let handler: Handler = Box::new(move || {
                    count.fetch_add(1, Ordering::SeqCst);
                });
                (eventfd.try_clone().unwrap(), handler)
            })
            .collect();
        let thread = IoThread::start(sources).unwrap();
        eventfds[1].write(1).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while counts[1].load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        thread.stop();
        assert_eq!(counts[1].load(Ordering::SeqCst), 1);
        assert_eq!(counts[0].load(Ordering::SeqCst), 0, "the other device was not notified");
    }
}
