//! UDP socket setup: SO_REUSEPORT listeners (one per worker; the kernel
//! hashes each client's 4-tuple to one of them), relay sockets, big buffers.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

#[derive(Debug, Clone, Copy, Default)]
pub struct BufferSizes {
    pub rcvbuf: Option<usize>,
    pub sndbuf: Option<usize>,
}

fn set_buffers(socket: &Socket, sizes: BufferSizes) {
    // SO_RCVBUFFORCE/SO_SNDBUFFORCE pass the rmem_max cap when we have
    // CAP_NET_ADMIN; otherwise the plain option gets what the kernel allows.
    if let Some(n) = sizes.rcvbuf {
        if force_buffer(socket, libc::SO_RCVBUFFORCE, n).is_err() {
            let _ = socket.set_recv_buffer_size(n);
        }
    }
    if let Some(n) = sizes.sndbuf {
        if force_buffer(socket, libc::SO_SNDBUFFORCE, n).is_err() {
            let _ = socket.set_send_buffer_size(n);
        }
    }
}

fn force_buffer(socket: &Socket, option: libc::c_int, size: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt with a pointer to a live c_int and its exact size.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn udp_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

/// A listening socket shared by every worker through SO_REUSEPORT.
pub fn bind_listener(addr: SocketAddr, sizes: BufferSizes) -> io::Result<UdpSocket> {
    let socket = udp_socket(addr)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    set_buffers(&socket, sizes);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A worker's TCP (or TLS) listener: SO_REUSEPORT, so every worker accepts
/// on the same port and the kernel spreads connections across them.
/// Non-blocking; `backlog` bounds connections waiting to be accepted.
pub fn bind_stream_listener(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// A relay socket on one allocation's address (exclusive: no SO_REUSEPORT).
pub fn bind_relay(addr: SocketAddr, sizes: BufferSizes) -> io::Result<UdpSocket> {
    let socket = udp_socket(addr)?;
    set_buffers(&socket, sizes);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_share_a_port_relays_do_not() {
        let a = bind_listener("127.0.0.1:0".parse().unwrap(), BufferSizes::default()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_listener(
            addr,
            BufferSizes {
                rcvbuf: Some(1 << 20),
                sndbuf: Some(1 << 20),
            },
        )
        .unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        let r = bind_relay("127.0.0.1:0".parse().unwrap(), BufferSizes::default()).unwrap();
        assert!(bind_relay(r.local_addr().unwrap(), BufferSizes::default()).is_err());
    }
}
