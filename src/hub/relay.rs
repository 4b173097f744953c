//! The relay: how a publish wakes the subscribers of a group one after
//! another instead of all at once.
//!
//! Waking thousands of threads at once makes them all runnable together:
//! they queue on the hub lock and take the CPU from the publisher. So a
//! publish hands a *baton* to a few waiters (one per CPU); a thread that has
//! the baton takes its events, passes the baton to the next waiter, and only
//! then writes. About one subscriber thread per CPU is runnable at a time.
//!
//! The relay names the waiter it wakes: each has a condvar of its own, and
//! the relay keeps the waiters in line. Nothing depends on which thread the
//! OS wakes first, or when.
//!
//! Rules (all under the hub lock):
//! 1. A thread that finds nothing new joins the line ([`Relay::wait`]) and
//!    waits on its own condvar.
//! 2. A publish makes every waiter in line *due* (it has something new), and
//!    when no baton is out, hands batons to the first `max_batons` of them
//!    ([`Relay::publish`]).
//! 3. A thread woken with the baton passes it on after taking its events
//!    ([`Relay::pass`]): to the first due waiter, or nobody when none is due.
//! 4. A thread woken without the baton (its timeout, or a spurious wake-up)
//!    leaves the line ([`Relay::leave`]), and looks for events itself.
//!
//! Invariant: `due <= line.len()`, and while a waiter is due, a baton is out
//! (`due > 0` implies `batons > 0`). So no due waiter is left waiting for its
//! timeout: the batons reach it.

use std::collections::VecDeque;

/// The waiters of one group, in the order they began waiting, and the batons.
#[derive(Debug)]
pub(crate) struct Relay<W> {
    /// Waiting threads, oldest first, none holding a baton.
    line: VecDeque<W>,
    /// The first `due` of `line` waited before the last publish.
    due: usize,
    /// Batons out: handed to a thread that has not passed it on yet.
    batons: usize,
    /// Batons a publish hands out at most.
    max_batons: usize,
}

impl<W: PartialEq> Relay<W> {
    pub(crate) fn new(max_batons: usize) -> Relay<W> {
        Relay {
            line: VecDeque::new(),
            due: 0,
            batons: 0,
            max_batons: max_batons.max(1),
        }
    }

    /// Rule 1: `waiter` found nothing new and waits.
    pub(crate) fn wait(&mut self, waiter: W) {
        self.line.push_back(waiter);
        self.check();
    }

    /// Rule 2: an event was published. Returns the waiters handed a baton,
    /// to wake.
    pub(crate) fn publish(&mut self) -> Vec<W> {
        self.due = self.line.len();
        let mut handed = Vec::new();
        if self.batons == 0 {
            while handed.len() < self.max_batons && self.due > 0 {
                if let Some(waiter) = self.line.pop_front() {
                    self.due -= 1;
                    self.batons += 1;
                    handed.push(waiter);
                }
            }
        }
        self.check();
        handed
    }

    /// Rule 3: the caller holds a baton and has taken its events. Returns the
    /// waiter it goes to, to wake, or `None` when nobody is due (the baton is
    /// dropped).
    pub(crate) fn pass(&mut self) -> Option<W> {
        debug_assert!(self.batons > 0, "a baton passed that was never handed out");
        let next = match self.due {
            0 => None,
            _ => self.line.pop_front(),
        };
        match next {
            Some(_) => self.due -= 1,
            None => self.batons -= 1,
        }
        self.check();
        next
    }

    /// Rule 4: `waiter` woke without the baton and leaves the line.
    pub(crate) fn leave(&mut self, waiter: &W) {
        if let Some(at) = self.line.iter().position(|queued| queued == waiter) {
            self.line.remove(at);
            if at < self.due {
                self.due -= 1;
            }
        }
        self.check();
    }

    /// Every waiter in line, for waking them all (shutdown).
    pub(crate) fn waiters(&self) -> impl Iterator<Item = &W> {
        self.line.iter()
    }

    /// Waiters in line, and how many of them are due.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.line.len(), self.due)
    }

    fn check(&self) {
        debug_assert!(self.due <= self.line.len(), "more due than waiting");
        debug_assert!(
            self.due == 0 || self.batons > 0,
            "a due waiter with no baton out"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Rng;

    /// A simulated subscriber thread.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Thread {
        /// Running: about to take its events (and pass the baton if it has one).
        Runnable { baton: bool },
        /// Blocked on its condvar.
        Waiting,
    }

    /// One subscriber thread's view: the events it has taken.
    struct World {
        relay: Relay<usize>,
        threads: Vec<Thread>,
        /// Handed the baton, their wake-up not delivered yet (the condvar
        /// notify happens after the lock is released, in any order).
        notified: Vec<usize>,
        /// Handed the baton (a flag the hub keeps beside each waiter).
        handed: Vec<bool>,
        seen: Vec<u64>,
        published: u64,
    }

    impl World {
        fn new(threads: usize, max_batons: usize) -> World {
            World {
                relay: Relay::new(max_batons),
                threads: vec![Thread::Runnable { baton: false }; threads],
                notified: Vec::new(),
                handed: vec![false; threads],
                seen: vec![0; threads],
                published: 0,
            }
        }

        fn hand(&mut self, waiters: Vec<usize>) {
            for waiter in waiters {
                self.handed[waiter] = true;
                self.notified.push(waiter);
            }
        }

        /// A thread runs: takes everything, passes its baton, writes, waits.
        fn run(&mut self, thread: usize) {
            let Thread::Runnable { baton } = self.threads[thread] else {
                return;
            };
            self.seen[thread] = self.published;
            if baton {
                let next = self.relay.pass();
                self.hand(next.into_iter().collect());
            }
            self.relay.wait(thread);
            self.threads[thread] = Thread::Waiting;
        }

        /// A waiting thread wakes: by its notify, its timeout, or spuriously.
        fn wake(&mut self, thread: usize) {
            if self.threads[thread] != Thread::Waiting {
                return;
            }
            let baton = std::mem::take(&mut self.handed[thread]);
            if !baton {
                self.relay.leave(&thread);
            }
            self.threads[thread] = Thread::Runnable { baton };
        }

        fn batons_out(&self) -> usize {
            let running = self
                .threads
                .iter()
                .filter(|thread| **thread == Thread::Runnable { baton: true })
                .count();
            running + self.handed.iter().filter(|&&handed| handed).count()
        }
    }

    /// Drives the relay under an adversarial scheduler: any runnable thread
    /// may run next, wake-ups are delivered in any order and late, threads
    /// time out and wake spuriously at any moment, and publishes land
    /// anywhere. Whenever nothing is left to run but timeouts (the system
    /// would sleep for a heartbeat), every waiter must have taken every
    /// event: none is left behind for longer than one publish.
    #[test]
    fn no_waiter_is_left_behind_under_any_wake_order() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut world = World::new(1 + rng.below(12), 1 + rng.below(3));
            for _ in 0..400 {
                match rng.below(10) {
                    0 | 1 => {
                        world.published += 1;
                        let handed = world.relay.publish();
                        world.hand(handed);
                    }
                    2..=4 if !world.notified.is_empty() => {
                        // Deliver any pending wake-up, not the oldest.
                        let at = rng.below(world.notified.len());
                        let thread = world.notified.swap_remove(at);
                        world.wake(thread);
                    }
                    5 => {
                        // A timeout or a spurious wake-up of any thread.
                        let thread = rng.below(world.threads.len());
                        world.wake(thread);
                    }
                    _ => {
                        let thread = rng.below(world.threads.len());
                        world.run(thread);
                    }
                }
                assert_eq!(world.relay.batons, world.batons_out(), "seed {seed}");
                assert!(world.relay.due <= world.relay.line.len());
            }
            // Quiesce without timeouts: deliver wake-ups (in any order) and
            // run threads until nothing is runnable and nothing is pending.
            loop {
                if let Some(thread) = (0..world.threads.len())
                    .find(|&thread| world.threads[thread] != Thread::Waiting)
                {
                    world.run(thread);
                } else if !world.notified.is_empty() {
                    let at = rng.below(world.notified.len());
                    let thread = world.notified.swap_remove(at);
                    world.wake(thread);
                } else {
                    break;
                }
            }
            assert_eq!(
                world.seen,
                vec![world.published; world.threads.len()],
                "seed {seed}: a waiter was left behind"
            );
            assert_eq!((world.relay.due, world.relay.batons), (0, 0), "seed {seed}");
        }
    }

    #[test]
    fn a_publish_hands_at_most_max_batons_and_passing_reaches_every_waiter() {
        let mut relay = Relay::new(2);
        for waiter in 0..5 {
            relay.wait(waiter);
        }
        assert_eq!(relay.publish(), [0, 1]);
        // A second publish while batons are out hands out none.
        relay.wait(5);
        assert_eq!(relay.publish(), Vec::<i32>::new());
        let mut woken = vec![];
        while let Some(next) = relay.pass() {
            woken.push(next);
        }
        assert_eq!(woken, [2, 3, 4, 5]);
        assert_eq!(relay.pass(), None);
        assert_eq!((relay.due, relay.batons), (0, 0));
    }

    #[test]
    fn a_waiter_that_leaves_is_no_longer_due() {
        let mut relay = Relay::new(1);
        relay.wait(1);
        relay.wait(2);
        relay.wait(3);
        assert_eq!(relay.publish(), [1]);
        relay.leave(&2);
        assert_eq!(relay.due, 1);
        assert_eq!(relay.pass(), Some(3));
        assert_eq!(relay.pass(), None);
        relay.leave(&9); // not in line: nothing happens
    }
}
