//! A test hook standing in for a stuck disk: while the gate is closed,
//! [`Journal::append`](super::writer::Journal::append) waits before writing.
//! Outside tests the gate is always open and costs nothing.

/// A gate that is always open (outside tests).
#[cfg(not(test))]
#[derive(Debug)]
pub(crate) struct Gate;

#[cfg(not(test))]
impl Gate {
    /// An open gate.
    pub(crate) fn new() -> Gate {
        Gate
    }

    /// Returns at once.
    pub(crate) fn pass(&self) {}
}

#[cfg(test)]
pub(crate) use closable::Gate;

#[cfg(test)]
mod closable {
    use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
    use std::time::Duration;

    /// A gate that tests can close, making every `append` wait until it opens.
    #[derive(Debug, Default)]
    pub(crate) struct Gate {
        /// Guards whether the gate is closed and how many appends wait at it.
        state: Mutex<State>,
        /// Notified (all) when the gate opens and when an append starts waiting.
        changed: Condvar,
    }

    #[derive(Debug, Default)]
    struct State {
        closed: bool,
        waiting: usize,
    }

    impl Gate {
        /// An open gate.
        pub(crate) fn new() -> Gate {
            Gate::default()
        }

        /// Makes appends wait from now on (as if the disk were stuck).
        pub(crate) fn close(&self) {
            self.state().closed = true;
        }

        /// Lets waiting and later appends through.
        pub(crate) fn open(&self) {
            self.state().closed = false;
            self.changed.notify_all();
        }

        /// Waits at most `timeout` until `count` appends wait at the gate; says whether they do.
        pub(crate) fn wait_for_waiting(&self, count: usize, timeout: Duration) -> bool {
            let (state, _) = self
                .changed
                .wait_timeout_while(self.state(), timeout, |state| state.waiting < count)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting >= count
        }

        /// Returns when the gate is open.
        pub(crate) fn pass(&self) {
            let mut state = self.state();
            state.waiting += 1;
            self.changed.notify_all();
            let mut state = self
                .changed
                .wait_while(state, |state| state.closed)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }

        fn state(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    mod tests {
        use super::*;
        use std::sync::Arc;
        use std::sync::mpsc;
        use std::thread;

        #[test]
        fn a_closed_gate_holds_until_opened() {
            let gate = Arc::new(Gate::new());
            gate.pass(); // open: returns at once
            gate.close();
            let (done, finished) = mpsc::channel();
            let waiter = {
                let gate = Arc::clone(&gate);
                thread::spawn(move || {
                    gate.pass();
                    let _ = done.send(());
                })
            };
            assert!(
                gate.wait_for_waiting(1, Duration::from_secs(10)),
                "the thread reaches the gate"
            );
            assert!(finished.try_recv().is_err(), "a closed gate holds it");
            gate.open();
            assert!(
                finished.recv_timeout(Duration::from_secs(10)).is_ok(),
                "an open gate lets it through"
            );
            waiter.join().expect("the waiter ends");
            assert_eq!(gate.state().waiting, 0);
        }
    }
}
