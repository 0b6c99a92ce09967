//! A small epoll set for stream sockets (TCP/TLS listeners and connections).
//!
//! A worker's datagram backend waits on this set's own fd (`Backend::watch`),
//! so one wait covers datagrams and streams; the stream side then collects
//! its ready sockets here without blocking.

use std::io;
use std::os::fd::RawFd;

use super::close_fd;

/// Readiness a socket is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    ReadWrite,
    Write,
    /// Registered, but only errors and hang-ups are reported (a paused source).
    Silent,
}

impl Interest {
    pub fn of(read: bool, write: bool) -> Self {
        match (read, write) {
            (true, true) => Interest::ReadWrite,
            (true, false) => Interest::Read,
            (false, true) => Interest::Write,
            (false, false) => Interest::Silent,
        }
    }

    fn events(self) -> u32 {
        let read = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        let write = libc::EPOLLOUT as u32;
        match self {
            Interest::Read => read,
            Interest::ReadWrite => read | write,
            Interest::Write => write,
            Interest::Silent => 0,
        }
    }
}

/// One ready socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// The peer hung up or the socket has an error.
    pub closed: bool,
}

pub struct Poller {
    epoll: RawFd,
    events: Vec<libc::epoll_event>,
}

// SAFETY: the epoll fd is owned by this value; the event buffer holds plain
// data. A poller is moved into its worker thread once.
#[allow(unsafe_code)]
unsafe impl Send for Poller {}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Poller {
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: plain syscall with constant flags; the result is checked.
        #[allow(unsafe_code)]
        let epoll = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Self {
            epoll,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
        })
    }

    /// The fd to wait on: readable while any watched socket is ready.
    pub fn fd(&self) -> RawFd {
        self.epoll
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest.events(),
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call;
        // the kernel copies it.
        #[allow(unsafe_code)]
        cvt(unsafe { libc::epoll_ctl(self.epoll, op, fd, &mut ev) }).map(|_| ())
    }

    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    pub fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Stops watching `fd` (call before closing it).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: removing an fd; a null event pointer is allowed for DEL.
        #[allow(unsafe_code)]
        cvt(unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) })
            .map(|_| ())
    }

    /// Waits up to `timeout_ms` (0: not at all) and returns how many events
    /// `self.events` now holds; an interrupted wait holds none.
    fn wait(&mut self, timeout_ms: libc::c_int) -> io::Result<usize> {
        // SAFETY: `events` is a live buffer of the length we pass.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::epoll_wait(
                self.epoll,
                self.events.as_mut_ptr(),
                libc::c_int::try_from(self.events.len()).unwrap_or(libc::c_int::MAX),
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }

    /// Waits up to `timeout_ms` and puts the ready sockets' tokens in `out`
    /// (the datagram backend's wait: it reads whatever is readable).
    pub fn wait_tokens(&mut self, timeout_ms: libc::c_int, out: &mut Vec<u64>) -> io::Result<()> {
        out.clear();
        let n = self.wait(timeout_ms)?;
        out.extend(self.events.iter().take(n).map(|e| e.u64));
        Ok(())
    }

    /// Collects what is ready now (never blocks) into `out`.
    pub fn ready_now(&mut self, out: &mut Vec<Readiness>) -> io::Result<()> {
        out.clear();
        let n = self.wait(0)?;
        let hup = (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32;
        out.extend(self.events.iter().take(n).map(|e| Readiness {
            token: e.u64,
            readable: e.events & libc::EPOLLIN as u32 != 0,
            writable: e.events & libc::EPOLLOUT as u32 != 0,
            closed: e.events & hup != 0,
        }));
        Ok(())
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        close_fd(self.epoll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn reports_a_readable_socket_and_its_token() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let mut poller = Poller::new(8).expect("poller");
        poller
            .add(server.as_raw_fd(), 42, Interest::Read)
            .expect("add");
        let mut ready = Vec::new();
        poller.ready_now(&mut ready).expect("poll");
        assert!(ready.is_empty(), "nothing sent yet: {ready:?}");
        client.write_all(b"x").expect("write");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while ready.is_empty() && std::time::Instant::now() < deadline {
            poller.ready_now(&mut ready).expect("poll");
        }
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].token, 42);
        assert!(ready[0].readable);
        poller.delete(server.as_raw_fd()).expect("delete");
        poller.ready_now(&mut ready).expect("poll");
        assert!(ready.is_empty());
    }
}
