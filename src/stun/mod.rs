//! The STUN message codec: RFC 8489 messages and attributes, the TURN
//! attributes of RFC 8656, RFC 5780's, and ChannelData framing.
//! Pure functions over byte slices: no I/O, no clock, no allocation.

pub mod attributes;
pub mod channel_data;
pub mod error;
pub mod integrity;
pub mod message;
pub mod reader;
pub mod types;
pub mod writer;

pub use attributes::*;
pub use channel_data::{demultiplex, ChannelData, ChannelNumber, ChannelRange, PacketKind};
pub use error::{DecodeError, EncodeError};
pub use integrity::IntegrityError;
pub use message::{Message, RawAttribute};
pub use types::*;
pub use writer::MessageWriter;
