//! How long the worker runtime keeps the messages it works on hidden from other receivers, and how
//! often it extends that while the work goes on: the queue's visibility timeout, but never so short that
//! the extensions come faster than [`MIN_HEARTBEAT`].

use std::time::Duration;

/// The shortest time between two extensions of a batch's visibility. A queue's visibility timeout may be
/// shorter, down to 0 (which the Consumer's admission refuses, but a Queue may change later): extending
/// every half of it would call the queue every second or faster, and extending by 0 would release the
/// messages in progress instead.
pub const MIN_HEARTBEAT: Duration = Duration::from_secs(5);

/// How long the runtime keeps the messages it works on hidden, and how often it extends that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    /// How long a receive and each extension hide the messages.
    pub hold: Duration,
    /// How often the extension comes: half of `hold`, so it comes before `hold` runs out.
    pub every: Duration,
}

impl Hold {
    /// The hold of a queue with this visibility timeout: the timeout itself, but at least twice
    /// [`MIN_HEARTBEAT`] (the receive asks for that much, whatever the queue's setting).
    pub fn of(visibility_timeout: Duration) -> Self {
        let hold = visibility_timeout.max(MIN_HEARTBEAT * 2);
        Self {
            hold,
            every: hold / 2,
        }
    }

    /// The hold in whole seconds, as the queue takes it.
    pub fn seconds(&self) -> i32 {
        i32::try_from(self.hold.as_secs()).unwrap_or(43_200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_is_the_visibility_timeout_but_never_extended_faster_than_the_minimum() {
        let secs = Duration::from_secs;
        assert_eq!(
            Hold::of(secs(30)),
            Hold {
                hold: secs(30),
                every: secs(15)
            }
        );
        for short in [0, 1, 4, 9] {
            let hold = Hold::of(secs(short));
            assert_eq!(hold.every, MIN_HEARTBEAT, "visibility {short} s");
            assert_eq!(hold.seconds(), 10, "received and extended for 10 s, not {short}");
        }
        assert_eq!(Hold::of(secs(43_200)).seconds(), 43_200);
    }
}
