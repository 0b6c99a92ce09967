//! Kernel pipes for moving bytes between two TCP sockets with splice(2):
//! socket → pipe → socket, never through user space (RFC 6062 data
//! connections over plain TCP).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Bytes moved per splice call (the default pipe holds 64 KiB).
const CHUNK: usize = 64 * 1024;

pub struct KernelPipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe, spliced in and not yet out.
    held: usize,
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both fds are open for the duration of the call (owned by the
    // caller's sockets and this pipe); null offsets are required for sockets
    // and pipes; the flags ask for no blocking.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl KernelPipe {
    pub fn new() -> io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two fds into the live array; checked below.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and ours alone.
        #[allow(unsafe_code)]
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Self {
            read,
            write,
            held: 0,
        })
    }

    pub fn held(&self) -> usize {
        self.held
    }

    /// Moves what `socket` has (up to one chunk) into the pipe: `Ok(0)` is
    /// end of stream, `WouldBlock` means nothing to read now.
    pub fn fill_from(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        let n = splice(socket.as_raw_fd(), self.write.as_raw_fd(), CHUNK)?;
        self.held += n;
        Ok(n)
    }

    /// Moves what the pipe holds into `socket`, as much as it takes now.
    pub fn drain_into(&mut self, socket: &impl AsRawFd) -> io::Result<()> {
        while self.held > 0 {
            match splice(self.read.as_raw_fd(), socket.as_raw_fd(), self.held) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.held -= n.min(self.held),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (b, _) = l.accept().expect("accept");
        (a, b)
    }

    #[test]
    fn bytes_cross_from_one_socket_to_another_through_the_pipe() {
        let (mut sender, from) = pair();
        let (to, mut receiver) = pair();
        from.set_nonblocking(true).expect("nonblocking");
        to.set_nonblocking(true).expect("nonblocking");
        let mut pipe = KernelPipe::new().expect("pipe");
        assert_eq!(
            pipe.fill_from(&from).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "nothing sent yet"
        );
        let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        sender.write_all(&payload).expect("send");
        let mut got = Vec::new();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        while got.len() < payload.len() {
            match pipe.fill_from(&from) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            pipe.drain_into(&to).expect("drain");
            let mut buf = [0u8; 65536];
            if pipe.held() == 0 {
                let n = receiver.read(&mut buf).expect("read");
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert!(got == payload);
        drop(sender);
        // End of stream: splice reads nothing.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(pipe.fill_from(&from).expect("eof"), 0);
    }
}
