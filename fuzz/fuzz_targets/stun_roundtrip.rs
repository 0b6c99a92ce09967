//! Decode → encode → decode: a message that parses is re-encoded attribute by
//! attribute with `MessageWriter` (same type, cookie and transaction id); the
//! result must parse and decode to the same attributes, and encoding it again
//! must give the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringturn::stun::{Attribute, DecodeError, Message, MessageWriter};

fn decoded<'a>(msg: &Message<'a>) -> Vec<Result<Attribute<'a>, DecodeError>> {
    msg.decoded_attributes().collect()
}

/// Re-encodes `msg`; attributes that did not decode are copied as raw bytes.
fn reencode(msg: &Message<'_>, capacity: usize) -> Vec<u8> {
    let mut buf = vec![0u8; capacity];
    let mut w = MessageWriter::with_cookie(
        &mut buf,
        msg.message_type(),
        msg.cookie().0,
        msg.transaction_id(),
    )
    .expect("header fits");
    for (raw, attr) in msg.attributes().zip(msg.decoded_attributes()) {
        let attr = attr.unwrap_or(Attribute::Unknown {
            attr_type: raw.attr_type,
            value: raw.value,
        });
        w.add(&attr)
            .unwrap_or_else(|e| panic!("decoded {attr:?} but cannot encode it: {e:?}"));
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let first = decoded(&msg);
    let bytes = reencode(&msg, data.len() + 64);
    let again = Message::parse(&bytes)
        .unwrap_or_else(|e| panic!("re-encoded message does not parse: {e:?}\n{bytes:02x?}"));
    assert_eq!(again.message_type(), msg.message_type());
    assert_eq!(again.transaction_id(), msg.transaction_id());
    assert_eq!(again.cookie(), msg.cookie());
    assert_eq!(
        decoded(&again),
        first,
        "attributes changed in the round trip"
    );
    assert_eq!(
        reencode(&again, bytes.len() + 64),
        bytes,
        "encoding is not stable"
    );
});
