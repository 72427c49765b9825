//! The loop's one timer. A `tokio::time::sleep` of 10 s wakes the runtime three times
//! (its timer wheel reaches a far deadline level by level), and every new sleep wakes the
//! runtime once more to register; on Linux the loop waits on a `timerfd` instead, armed
//! for the next deadline, so an idle loop wakes exactly when something is due.

use std::time::Duration;

/// See the module documentation.
pub(super) struct Alarm {
    #[cfg(target_os = "linux")]
    fd: Option<linux::Fd>,
}

impl Alarm {
    pub(super) fn new() -> Alarm {
        Alarm {
            #[cfg(target_os = "linux")]
            fd: match linux::Fd::new() {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::debug!("no timerfd ({e}); the runtime's timers are used");
                    None
                }
            },
        }
    }

    /// Wait `after` (from now). Cancel-safe: dropping the future leaves nothing behind that
    /// the next call does not reset.
    pub(super) async fn sleep(&mut self, after: Duration) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &mut self.fd {
            match fd.sleep(after).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!("timerfd failed ({e}); the runtime's timers are used");
                    self.fd = None;
                }
            }
        }
        tokio::time::sleep(after).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::time::{Duration, Instant};

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    struct Raw(TimerFd);

    impl AsRawFd for Raw {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    pub(super) struct Fd {
        fd: AsyncFd<Raw>,
        /// The deadline it is armed for (not re-armed for the same one).
        armed: Option<Instant>,
    }

    impl Fd {
        pub(super) fn new() -> io::Result<Fd> {
            let t = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            // SAFETY: `Raw` owns the timer's descriptor for as long as the `AsyncFd` holds
            // it, and always answers that same descriptor.
            let fd = unsafe { AsyncFd::register_with_interest(Raw(t), Interest::READABLE) }?;
            Ok(Fd { fd, armed: None })
        }

        pub(super) async fn sleep(&mut self, after: Duration) -> io::Result<()> {
            let deadline = Instant::now() + after;
            // Within a millisecond of the armed deadline: keep it (no system call).
            let same = self.armed.is_some_and(|a| {
                a.max(deadline).duration_since(a.min(deadline)) < Duration::from_millis(1)
            });
            if !same {
                // A zero expiry would disarm it: at least a nanosecond.
                let after = after.max(Duration::from_nanos(1));
                self.fd.get_ref().0.set(
                    Expiration::OneShot(TimeSpec::from_duration(after)),
                    TimerSetTimeFlags::empty(),
                )?;
                self.armed = Some(deadline);
            }
            loop {
                let mut ready = self.fd.readable().await?;
                let mut buf = [0u8; 8];
                match ready.try_io(|fd| {
                    nix::unistd::read(fd.get_ref().0.as_fd(), &mut buf).map_err(io::Error::from)
                }) {
                    Ok(Ok(_)) => {
                        self.armed = None;
                        return Ok(());
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => continue,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn rt() -> tokio::runtime::Runtime {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("runtime: {e}"),
        }
    }

    #[test]
    fn it_waits_at_least_as_asked_and_survives_being_dropped_mid_wait() {
        rt().block_on(async {
            let mut a = Alarm::new();
            #[cfg(target_os = "linux")]
            assert!(a.fd.is_some(), "a timerfd on Linux");
            let t = Instant::now();
            a.sleep(Duration::from_millis(30)).await;
            assert!(t.elapsed() >= Duration::from_millis(30));
            // Dropped before it fires (another branch won), then asked for a later time.
            let t = Instant::now();
            tokio::select! {
                _ = a.sleep(Duration::from_secs(3600)) => panic!("fired early"),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            a.sleep(Duration::from_millis(40)).await;
            assert!(t.elapsed() >= Duration::from_millis(50));
            // Fired while nobody waited: the next wait for a new time is not cut short.
            tokio::select! {
                _ = a.sleep(Duration::from_millis(5)) => {}
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            std::thread::sleep(Duration::from_millis(20)); // let it expire unobserved
            let t = Instant::now();
            a.sleep(Duration::from_millis(60)).await;
            assert!(t.elapsed() >= Duration::from_millis(60));
            #[cfg(target_os = "linux")]
            assert!(a.fd.is_some(), "still on the timerfd");
        });
    }
}
