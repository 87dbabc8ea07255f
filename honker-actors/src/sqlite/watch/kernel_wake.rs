//! Kernel file notifications for the [`Watcher`](super::Watcher): on Linux,
//! inotify on the database and its `-wal` tells the watcher thread that
//! something wrote to them, so it sleeps until then instead of polling.
//!
//! A notification is only a hint. A commit writes its frames to the WAL
//! (the event) and then publishes them in the shared-memory index, which
//! no event reports; the watcher confirms with `PRAGMA data_version` and
//! looks again shortly after an event that showed no change yet. A slow
//! poll remains as the safety net, and where notifications are not
//! available the watcher polls as before.

use std::path::Path;
use std::time::Duration;

/// Why [`KernelWake::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// One of the files was written (or replaced).
    Written,
    /// [`Stopper::stop`] was called.
    Stop,
    /// The timeout passed.
    Timeout,
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::sync::Arc;

    /// The watcher thread's side: inotify watches and the stop eventfd.
    pub(crate) struct KernelWake {
        inotify: OwnedFd,
        stop: Arc<OwnedFd>,
    }

    /// The owner's side: ends a [`KernelWake::wait`] at once.
    #[derive(Clone)]
    pub(crate) struct Stopper(Arc<OwnedFd>);

    fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    impl KernelWake {
        /// Watch `db` and `db-wal` for writes. Fails (and the watcher
        /// polls) when inotify is unavailable or neither file can be
        /// watched.
        pub(crate) fn new(db: &Path) -> io::Result<(KernelWake, Stopper)> {
            // SAFETY: plain syscalls; each result is checked and owned below.
            let inotify = unsafe {
                OwnedFd::from_raw_fd(check(libc::inotify_init1(
                    libc::IN_NONBLOCK | libc::IN_CLOEXEC,
                ))?)
            };
            let mut wal = db.as_os_str().to_owned();
            wal.push("-wal");
            let mut watched = 0;
            for file in [db.as_os_str(), wal.as_os_str()] {
                let c = CString::new(file.as_bytes())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let mask =
                    libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF;
                // SAFETY: `c` is a valid NUL-terminated path for the call.
                if unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), c.as_ptr(), mask) } >= 0 {
                    watched += 1;
                }
            }
            if watched == 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: eventfd returns a new descriptor or -1 (checked).
            let stop = unsafe {
                OwnedFd::from_raw_fd(check(libc::eventfd(
                    0,
                    libc::EFD_NONBLOCK | libc::EFD_CLOEXEC,
                ))?)
            };
            let stop = Arc::new(stop);
            Ok((
                KernelWake {
                    inotify,
                    stop: stop.clone(),
                },
                Stopper(stop),
            ))
        }

        /// Sleep until a watched file is written, the stopper fires, or
        /// `timeout` passes. Events already queued are consumed.
        pub(crate) fn wait(&self, timeout: Duration) -> io::Result<Woke> {
            let mut fds = [
                libc::pollfd {
                    fd: self.inotify.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
            let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
            // SAFETY: `fds` is a valid array of two pollfd for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(Woke::Timeout);
                }
                return Err(e);
            }
            if fds[1].revents != 0 {
                return Ok(Woke::Stop);
            }
            if fds[0].revents != 0 {
                self.drain();
                return Ok(Woke::Written);
            }
            Ok(Woke::Timeout)
        }

        fn drain(&self) {
            let mut buf = [0u8; 4096];
            loop {
                // SAFETY: reads into a buffer we own, of the length given.
                let n = unsafe {
                    libc::read(self.inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n <= 0 {
                    return;
                }
            }
        }
    }

    impl Stopper {
        /// Wake the watcher thread for good.
        pub(crate) fn stop(&self) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes we own to an eventfd (its required size).
            let _ = unsafe {
                libc::write(
                    self.0.as_raw_fd(),
                    std::ptr::from_ref(&one).cast(),
                    size_of::<u64>(),
                )
            };
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    /// No kernel notifications here: the watcher polls.
    pub(crate) struct KernelWake;

    /// Nothing to stop.
    #[derive(Clone)]
    pub(crate) struct Stopper;

    impl KernelWake {
        pub(crate) fn new(_db: &Path) -> std::io::Result<(KernelWake, Stopper)> {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "no kernel file notifications on this platform",
            ))
        }

        pub(crate) fn wait(&self, _timeout: Duration) -> std::io::Result<Woke> {
            Ok(Woke::Timeout)
        }
    }

    impl Stopper {
        pub(crate) fn stop(&self) {}
    }
}

pub(crate) use imp::{KernelWake, Stopper};

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_the_wal_wakes_and_a_stop_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let conn = honker_core::open(&path).unwrap();
        let (k, stop) = KernelWake::new(&path).unwrap();
        assert_eq!(k.wait(Duration::from_millis(5)).unwrap(), Woke::Timeout);
        honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
        assert_eq!(k.wait(Duration::from_secs(5)).unwrap(), Woke::Written);
        // Consumed: nothing more until the next write.
        assert_eq!(k.wait(Duration::from_millis(5)).unwrap(), Woke::Timeout);
        stop.stop();
        assert_eq!(k.wait(Duration::from_secs(5)).unwrap(), Woke::Stop);
    }

    #[test]
    fn a_path_that_cannot_be_watched_is_an_error() {
        assert!(KernelWake::new(Path::new("/no/such/dir/a.db")).is_err());
    }
}
