//! How a long operation (an extraction's rows, a search's fits, fine-tuning's epochs and steps,
//! auto's phases) tells its caller how far it is, and how the caller stops it: one
//! [`Observer`], one [`Stop`] token checked between units of work, one [`Interrupted`].

use std::sync::atomic::{AtomicBool, Ordering};

/// Hears a long operation's events, one at a time (any `FnMut(E)` is one). The library prints
/// nothing: the command line shows what it hears.
pub trait Observer<E> {
    /// `event` happened.
    fn observe(&mut self, event: E);
}

impl<E, F: FnMut(E)> Observer<E> for F {
    fn observe(&mut self, event: E) {
        self(event)
    }
}

/// A request to stop, raised by the caller (the command line on Ctrl-C) and checked by the
/// work between its units (a batch, a fit, a training step): the work then ends early, keeps
/// what it finished, and says [`Interrupted`].
#[derive(Debug, Default)]
pub struct Stop(AtomicBool);

impl Stop {
    /// A token nobody has raised yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks the work to stop; says whether it had been asked already.
    pub fn request(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    /// Whether the work was asked to stop.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Interrupted)` once the work was asked to stop.
    pub fn check(&self) -> Result<(), Interrupted> {
        match self.requested() {
            true => Err(Interrupted),
            false => Ok(()),
        }
    }
}

/// The work stopped on request before it finished: what it finished is kept (caches,
/// checkpoints), nothing half-made replaced a previous result, and the same call resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("stopped: run the same command again to resume")]
pub struct Interrupted;
