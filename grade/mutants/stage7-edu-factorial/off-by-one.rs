// mutant: Multiplies 1..n instead of 1..=n, so the card returns (n-1)!.
/// n! in 32-bit arithmetic, as QEMU's worker computes it (`ret *= val--`): results that
/// overflow wrap around. From 34! on the product holds 2^32 and is 0, and stays 0, so the
/// loop stops there instead of multiplying four billion times.
pub fn factorial(n: u32) -> u32 {
    let mut result = 1u32;
    for k in (1..n).rev() {
        result = result.wrapping_mul(k);
        if result == 0 {
            break;
        }
    }
    result
}

/// The vCPU side: store n and set the computing bit, unless a computation is running (then
/// QEMU ignores the write, and so do we); wake the worker.
fn start_factorial(shared: &Shared, n: u32) {
    let mut state = lock(&shared.state);
    if state.status & STATUS_COMPUTING != 0 {
        return;
    }
    state.factorial = n;
    state.status |= STATUS_COMPUTING;
    shared.wake.notify_all();
}

/// The worker thread: waits for work, computes without holding the lock (the guest may read
/// the registers meanwhile), publishes the result, clears the computing bit, and raises
/// [`FACTORIAL_IRQ`] if the guest asked for it.
fn factorial_worker(shared: Arc<Shared>) {
    let mut state = lock(&shared.state);
    loop {
        state = shared
            .wake
            .wait_while(state, |s| s.status & STATUS_COMPUTING == 0 && !s.stopping)
            .unwrap_or_else(|e| e.into_inner());
        if state.stopping {
            return;
        }
        let (n, delay) = (state.factorial, state.factorial_delay);
        drop(state);
        let result = factorial(n);
        state = lock(&shared.state);
        if !delay.is_zero() {
            // Sleep, but wake at once if the device is dropped meanwhile.
            state = match shared.wake.wait_timeout_while(state, delay, |s| !s.stopping) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if state.stopping {
            return;
        }
        state.factorial = result;
        state.status &= !STATUS_COMPUTING;
        if state.status & STATUS_IRQFACT != 0 {
            state.interrupts.raise(FACTORIAL_IRQ);
        }
    }
}
