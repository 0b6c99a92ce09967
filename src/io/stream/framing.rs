//! Cutting a connection's bytes into frames (RFC 8656 §12.4): STUN messages
//! and ChannelData, each self-delimiting by its length, ChannelData padded to
//! 4 bytes. Whole frames are handed straight out of the read buffer; only a
//! frame split across reads is kept in the connection's own buffer.

use crate::stun::channel_data::stream_frame_len;
use crate::stun::ChannelRange;
use crate::turn::ClientTuple;

use super::conn::{Conn, Phase};
use super::CloseReason;

/// Where a frame came from and what it is.
pub(super) type FrameHandler<'a> = dyn FnMut(ClientTuple, &[u8]) + 'a;

/// Hands every complete frame in `data` (after any partial frame kept from
/// the last read) to `on_frame`; keeps an incomplete tail. Returns the count.
pub(super) fn deliver(
    conn: &mut Conn,
    data: &[u8],
    range: ChannelRange,
    on_frame: &mut FrameHandler<'_>,
) -> Result<u64, CloseReason> {
    // The first message on a TURN connection is a STUN request: anything else
    // (an HTTP request, a stray TLS ClientHello on the TCP port) is cut off
    // at once instead of waiting out the deadline for a 64 KiB "frame".
    if conn.phase == Phase::FirstMessage {
        let first = conn.partial.first().or(data.first());
        if first.is_some_and(|b| *b > 3) {
            return Err(CloseReason::Malformed);
        }
    }
    let frames = if conn.partial.is_empty() {
        let (frames, used) = split_frames(data, range, conn.tuple, on_frame)?;
        conn.partial
            .extend_from_slice(data.get(used..).unwrap_or(&[]));
        frames
    } else {
        let mut partial = std::mem::take(&mut conn.partial);
        partial.extend_from_slice(data);
        let result = split_frames(&partial, range, conn.tuple, on_frame);
        if let Ok((_, used)) = result {
            partial.drain(..used);
        }
        conn.partial = partial;
        result?.0
    };
    if frames > 0 && conn.phase == Phase::FirstMessage {
        conn.phase = Phase::Open;
    }
    Ok(frames)
}

/// Calls `on_frame` for each complete frame at the front of `data`; returns
/// how many and the bytes they used.
fn split_frames(
    data: &[u8],
    range: ChannelRange,
    tuple: ClientTuple,
    on_frame: &mut FrameHandler<'_>,
) -> Result<(u64, usize), CloseReason> {
    let mut used = 0;
    let mut frames = 0;
    while let Some(rest) = data.get(used..) {
        let Some(len) = stream_frame_len(rest, range) else {
            break;
        };
        let len = len.map_err(|_| CloseReason::Malformed)?;
        let Some(frame) = rest.get(..len) else {
            break;
        };
        on_frame(tuple, frame);
        used += len;
        frames += 1;
    }
    Ok((frames, used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    use crate::io::poller::Interest;
    use crate::turn::ClientTransport;

    fn tuple() -> ClientTuple {
        ClientTuple {
            client: "127.0.0.1:5000".parse().expect("addr"),
            server: "127.0.0.1:3478".parse().expect("addr"),
            transport: ClientTransport::Stream(7),
        }
    }

    fn binding_request() -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        m.extend_from_slice(&[7; 12]);
        m
    }

    fn collect(data: &[&[u8]]) -> Result<Vec<Vec<u8>>, CloseReason> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let now = Instant::now();
        let mut conn = Conn {
            socket: client,
            tuple: tuple(),
            tls: None,
            partial: Vec::new(),
            out: Vec::new(),
            out_sent: 0,
            phase: Phase::FirstMessage,
            accepted: now,
            last_rx: now,
            interest: Interest::Read,
            queued_for_flush: false,
            pipe: None,
        };
        let mut frames = Vec::new();
        for chunk in data {
            deliver(&mut conn, chunk, ChannelRange::Rfc5766, &mut |t, f| {
                assert_eq!(t, tuple());
                frames.push(f.to_vec());
            })?;
        }
        Ok(frames)
    }

    #[test]
    fn rfc8656_12_4_frames_split_across_reads_are_joined() {
        let m = binding_request();
        let frames = collect(&[&m[..3], &m[3..15], &m[15..]]).expect("frames");
        assert_eq!(frames, vec![m]);
    }

    #[test]
    fn rfc8656_12_5_channel_data_over_streams_is_padded_to_four() {
        // 5 bytes of data: the frame is 4 + 5 + 3 padding bytes.
        let frame = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0];
        let m = binding_request();
        let mut both = m.clone();
        both.extend_from_slice(&frame);
        let frames = collect(&[&both[..30], &both[30..]]).expect("frames");
        assert_eq!(frames, vec![m, frame.to_vec()]);
    }

    #[test]
    fn several_frames_in_one_read_each_arrive() {
        let m = binding_request();
        let mut three = m.clone();
        three.extend_from_slice(&m);
        three.extend_from_slice(&m);
        assert_eq!(collect(&[&three]).expect("frames").len(), 3);
    }

    #[test]
    fn a_first_message_that_is_not_stun_closes_the_connection() {
        assert_eq!(
            collect(&[b"GET / HTTP/1.1\r\n\r\n"]),
            Err(CloseReason::Malformed)
        );
        // A TLS ClientHello on the plain TCP port.
        assert_eq!(
            collect(&[&[0x16, 0x03, 0x01, 0x00, 0xa5]]),
            Err(CloseReason::Malformed)
        );
    }

    #[test]
    fn bytes_that_are_neither_stun_nor_channel_data_close_the_connection() {
        let mut stream = binding_request();
        stream.extend_from_slice(&[0xff; 8]);
        assert_eq!(collect(&[&stream]), Err(CloseReason::Malformed));
    }

    fn arbitrary_frame() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            // A STUN message with a body of whole 4-byte words.
            (0u16..64, any::<[u8; 12]>()).prop_map(|(words, tid)| {
                let len = words * 4;
                let mut m = vec![0x00, 0x01];
                m.extend_from_slice(&len.to_be_bytes());
                m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
                m.extend_from_slice(&tid);
                m.resize(20 + usize::from(len), 0xAB);
                m
            }),
            // ChannelData of any length, padded to 4 as over a stream.
            (
                0x4000u16..0x4FFF,
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(channel, data)| {
                    let mut m = channel.to_be_bytes().to_vec();
                    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    m.extend_from_slice(&data);
                    while m.len() % 4 != 0 {
                        m.push(0);
                    }
                    m
                }),
        ]
    }

    proptest::proptest! {
        /// RFC 8656 §12.4: however TCP cuts the byte stream into reads, the
        /// same frames come out, in order, each whole.
        #[test]
        fn rfc8656_12_4_any_split_of_the_stream_gives_the_same_frames(
            mut frames in proptest::collection::vec(arbitrary_frame(), 1..12),
            cuts in proptest::collection::vec(0usize..4000, 0..20),
        ) {
            // The first message on a connection is STUN.
            frames.insert(0, binding_request());
            let stream: Vec<u8> = frames.concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % stream.len()).collect();
            cuts.push(0);
            cuts.push(stream.len());
            cuts.sort_unstable();
            cuts.dedup();
            let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let got = collect(&chunks).expect("valid frames");
            proptest::prop_assert_eq!(got, frames);
        }
    }
}
