//! ChannelData framing (RFC 8656 §12.4, §12.5) and first-byte demultiplexing
//! (RFC 7983 §7).

use super::error::{DecodeError, EncodeError};
use super::reader::{padded_len, Reader};

/// The 4-byte ChannelData header (channel number, length).
pub const CHANNEL_DATA_HEADER_LEN: usize = 4;

/// A channel number (RFC 8656 §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelNumber(pub u16);

impl ChannelNumber {
    /// RFC 8656 §12: 0x4000 through 0x4FFF.
    pub const MIN: u16 = 0x4000;
    pub const MAX_RFC8656: u16 = 0x4FFF;
    /// RFC 5766 §11 allowed up to 0x7FFF; older clients (coturn 4.6's uclient) still use it.
    pub const MAX_RFC5766: u16 = 0x7FFF;

    pub fn is_valid(self, range: ChannelRange) -> bool {
        (Self::MIN..=range.max()).contains(&self.0)
    }
}

/// Which channel numbers are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelRange {
    /// RFC 8656: 0x4000–0x4FFF.
    Rfc8656,
    /// RFC 5766: 0x4000–0x7FFF (the default, for interoperability).
    #[default]
    Rfc5766,
}

impl ChannelRange {
    pub fn max(self) -> u16 {
        match self {
            ChannelRange::Rfc8656 => ChannelNumber::MAX_RFC8656,
            ChannelRange::Rfc5766 => ChannelNumber::MAX_RFC5766,
        }
    }
}

/// What the first byte of a datagram on a TURN port says it is (RFC 7983 §7,
/// widened for the RFC 5766 channel range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Stun,
    ChannelData,
    Other,
}

pub fn demultiplex(datagram: &[u8], range: ChannelRange) -> PacketKind {
    match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(&b) if (0x40..=(range.max() >> 8) as u8).contains(&b) => PacketKind::ChannelData,
        _ => PacketKind::Other,
    }
}

/// A parsed ChannelData message borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub channel: ChannelNumber,
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// RFC 8656 §12.5: over UDP the datagram may carry padding after the data,
    /// but must not be shorter than the length claims.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(datagram);
        let channel = ChannelNumber(r.u16("channel number")?);
        let len = usize::from(r.u16("channel data length")?);
        let data = r.take(len, "channel data")?;
        Ok(Self { channel, data })
    }

    /// Writes the header and payload into `out`; pads to 4 bytes when `stream`.
    pub fn encode(
        channel: ChannelNumber,
        data: &[u8],
        out: &mut [u8],
        stream: bool,
    ) -> Result<usize, EncodeError> {
        let len =
            u16::try_from(data.len()).map_err(|_| EncodeError::ValueTooLong("channel data"))?;
        let total = frame_len(data.len(), stream);
        let region = out.get_mut(..total).ok_or(EncodeError::BufferTooSmall)?;
        let (head, rest) = region.split_at_mut(CHANNEL_DATA_HEADER_LEN);
        head.copy_from_slice(&write_header(channel, len));
        let (payload, pad) = rest.split_at_mut(data.len());
        payload.copy_from_slice(data);
        pad.fill(0);
        Ok(total)
    }
}

/// The 4 header bytes, for writing in front of a payload already in place.
pub fn write_header(channel: ChannelNumber, len: u16) -> [u8; 4] {
    let c = channel.0.to_be_bytes();
    let l = len.to_be_bytes();
    [c[0], c[1], l[0], l[1]]
}

/// Bytes a ChannelData message with `data_len` payload occupies: over streams
/// padded to a multiple of 4 (RFC 8656 §12.5), over UDP not.
pub fn frame_len(data_len: usize, stream: bool) -> usize {
    let raw = CHANNEL_DATA_HEADER_LEN + data_len;
    if stream {
        padded_len(raw)
    } else {
        raw
    }
}

/// For stream transports: how many bytes the message at the start of `buf`
/// occupies, once its 4-byte header is available. STUN messages are 20 bytes
/// plus their length; ChannelData 4 plus its length, padded to 4.
pub fn stream_frame_len(buf: &[u8], range: ChannelRange) -> Option<Result<usize, DecodeError>> {
    let mut r = Reader::new(buf);
    let first = r.u16("frame header").ok()?;
    let len = usize::from(r.u16("frame length").ok()?);
    Some(match demultiplex(buf, range) {
        PacketKind::Stun => Ok(super::types::HEADER_LEN + len),
        PacketKind::ChannelData => Ok(frame_len(len, true)),
        PacketKind::Other => Err(DecodeError::InvalidValue(if first == 0 {
            "frame"
        } else {
            "frame type"
        })),
    })
}
