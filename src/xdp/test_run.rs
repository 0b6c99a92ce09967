//! `BPF_PROG_TEST_RUN`: the kernel runs the loaded program once (or
//! `repeat` times) on a frame we give it and hands back the verdict, the
//! frame as the program left it, and the mean run time. Unit tests and
//! per-packet timing of the fast path without any device.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `BPF_PROG_TEST_RUN` (also named `BPF_PROG_RUN`) in `enum bpf_cmd`.
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The `test` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct xdp_md`: the context an XDP program sees.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// What one test run gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// `XDP_ABORTED` 0, `XDP_DROP` 1, `XDP_PASS` 2, `XDP_TX` 3, `XDP_REDIRECT` 4.
    pub verdict: u32,
    /// The frame after the program (grown, shrunk or rewritten).
    pub frame: Vec<u8>,
    /// Mean nanoseconds per run, as the kernel measured it.
    pub duration_ns: u32,
}

pub const XDP_ABORTED: u32 = 0;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Runs program `prog` on `frame` as if it had arrived on interface
/// `ingress_ifindex` (0: the namespace's loopback), `repeat` times.
pub fn run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ingress_ifindex: u32,
    repeat: u32,
) -> io::Result<TestRun> {
    let size = u32::try_from(frame.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // Room for a frame that grows (a ChannelData header is 4 bytes; more is spare).
    let mut out = vec![0u8; frame.len() + 256];
    let mut ctx = XdpMd {
        data_end: size,
        ingress_ifindex,
        ..XdpMd::default()
    };
    let use_ctx = ingress_ifindex != 0;
    let mut attr = TestAttr {
        prog_fd: u32::try_from(prog.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput)?,
        data_size_in: size,
        data_size_out: u32::try_from(out.len()).map_err(|_| io::ErrorKind::InvalidInput)?,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: repeat.max(1),
        ..TestAttr::default()
    };
    if use_ctx {
        attr.ctx_size_in = std::mem::size_of::<XdpMd>() as u32;
        attr.ctx_in = std::ptr::addr_of_mut!(ctx) as u64;
    }
    // SAFETY: `attr` is a valid `bpf_attr` prefix for BPF_PROG_TEST_RUN (the
    // kernel reads `size_of::<TestAttr>()` bytes and treats the rest of the
    // union as zero); `data_in` points at `frame` (`size` bytes, read only),
    // `data_out` at `out` (`data_size_out` bytes, written at most), `ctx_in`
    // at `ctx`; all three outlive the call. The kernel writes `retval`,
    // `data_size_out` and `duration` back into `attr`.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<TestAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    out.truncate(
        usize::try_from(attr.data_size_out)
            .unwrap_or(0)
            .min(out.len()),
    );
    Ok(TestRun {
        verdict: attr.retval,
        frame: out,
        duration_ns: attr.duration,
    })
}
