//! Every decoder of the STUN codec over arbitrary bytes: `Message::parse`,
//! every attribute, the integrity and fingerprint checks, ChannelData and the
//! stream framer. Nothing may panic, and what parses must be self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringturn::stun::channel_data::stream_frame_len;
use ringturn::stun::{
    demultiplex, Attribute, ChannelData, ChannelRange, Message, PacketKind, HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    for range in [ChannelRange::Rfc5766, ChannelRange::Rfc8656] {
        let kind = demultiplex(data, range);
        let framed = stream_frame_len(data, range);
        if data.len() >= 4 {
            assert!(framed.is_some());
        }
        if let (PacketKind::ChannelData, Ok(cd)) = (kind, ChannelData::parse(data)) {
            // RFC 8656 §12.5: the frame holds the header, the data and the padding.
            let n = framed
                .and_then(Result::ok)
                .expect("ChannelData has a frame length");
            assert!(n >= 4 + cd.data.len() && n.is_multiple_of(4));
        }
    }
    let _ = ChannelData::parse(data);

    let Ok(msg) = Message::parse(data) else {
        return;
    };
    // RFC 8489 §6.3: the length field covers exactly the attributes.
    assert_eq!(
        usize::from(u16::from_be_bytes([data[2], data[3]])) + HEADER_LEN,
        data.len()
    );
    // The parser takes any type with the top two bits clear, the demultiplexer
    // (RFC 7983 §7) only first bytes 0–3; where both say STUN they agree.
    if demultiplex(data, ChannelRange::Rfc5766) == PacketKind::Stun {
        assert_eq!(
            stream_frame_len(data, ChannelRange::Rfc5766),
            Some(Ok(data.len()))
        );
    }
    let tid = msg.transaction_id();
    let _ = (msg.method(), msg.class(), msg.cookie(), msg.is_classic());
    let mut covered = HEADER_LEN;
    for raw in msg.attributes() {
        covered += 4 + raw.value.len().div_ceil(4) * 4;
        if let Ok(attr) = Attribute::decode(raw.attr_type, raw.value, &tid) {
            match attr {
                Attribute::UnknownAttributes(list) => {
                    let _ = list.iter().count();
                }
                Attribute::PasswordAlgorithms(list) => {
                    let _ = list.iter().count();
                }
                _ => {}
            }
        }
    }
    assert_eq!(covered, data.len(), "attributes tile the message body");
    for a in msg.decoded_attributes() {
        let _ = a;
    }
    let _ = msg.unknown_comprehension_required(|t| t.is_known()).count();
    let _ = msg.verify_message_integrity(b"key");
    let _ = msg.verify_message_integrity_sha256(&[7u8; 32]);
    let _ = msg.verify_integrity(&[0u8; 16]);
    let _ = msg.verify_fingerprint();
    if !msg.has_fingerprint() {
        assert_eq!(msg.verify_fingerprint(), None);
    }
});
