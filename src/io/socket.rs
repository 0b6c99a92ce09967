//! UDP socket setup: SO_REUSEPORT listeners (one per worker; the kernel
//! hashes each client's 4-tuple to one of them), relay sockets, big buffers.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;

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

/// A classic BPF program for SO_ATTACH_REUSEPORT_CBPF: the index of the
/// socket (in bind order, i.e. the worker) pinned to the CPU that is
/// processing the packet, so a datagram stays on the core whose NIC queue
/// received it; CPUs outside `cpus` fall back to `cpu % workers`.
pub fn cpu_steering_program(cpus: &[usize]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const RET_A: u16 = (libc::BPF_RET | libc::BPF_A) as u16;
    const MOD_K: u16 = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // A = the current CPU (an ancillary load).
    let mut prog = vec![op(
        LD_W_ABS,
        0,
        0,
        (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32,
    )];
    for (index, cpu) in cpus.iter().enumerate() {
        // if A == cpu { return index } (else skip the return).
        prog.push(op(JEQ_K, 0, 1, *cpu as u32));
        prog.push(op(RET_K, 0, 0, index as u32));
    }
    prog.push(op(MOD_K, 0, 0, cpus.len().max(1) as u32));
    prog.push(op(RET_A, 0, 0, 0));
    prog
}

/// Attaches `cpu_steering_program` to the SO_REUSEPORT group `fd` belongs to.
pub fn steer_reuseport_by_cpu(fd: RawFd, cpus: &[usize]) -> io::Result<()> {
    let mut prog = cpu_steering_program(cpus);
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len())
            .map_err(|_| io::Error::other("too many workers to steer"))?,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies
    // the program; the option value size is that of sock_fprog.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
    fn cpu_steering_program_maps_each_pinned_cpu_to_its_worker() {
        let prog = cpu_steering_program(&[8, 9, 12]);
        // load cpu, 3 × (compare, return), modulo, return A.
        assert_eq!(prog.len(), 1 + 2 * 3 + 2);
        let returns: Vec<u32> = prog
            .iter()
            .skip(2)
            .step_by(2)
            .take(3)
            .map(|i| i.k)
            .collect();
        assert_eq!(returns, vec![0, 1, 2]);
        let compared: Vec<u32> = prog
            .iter()
            .skip(1)
            .step_by(2)
            .take(3)
            .map(|i| i.k)
            .collect();
        assert_eq!(compared, vec![8, 9, 12]);
        assert_eq!(prog[prog.len() - 2].k, 3, "other CPUs: cpu % workers");
    }

    #[test]
    fn the_kernel_accepts_the_steering_program() {
        let a = bind_listener("127.0.0.1:0".parse().unwrap(), BufferSizes::default()).unwrap();
        let addr = a.local_addr().unwrap();
        let _b = bind_listener(addr, BufferSizes::default()).unwrap();
        use std::os::fd::AsRawFd;
        steer_reuseport_by_cpu(a.as_raw_fd(), &[0, 1]).expect("SO_ATTACH_REUSEPORT_CBPF");
    }

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
