//! The RFC 5769 and RFC 8489 Appendix B.1 test vectors: decoding, integrity
//! and fingerprint verification, byte-for-byte re-encoding, and the negative
//! cases (every single-byte corruption is caught; the published, broken B.1 is
//! rejected).

// The shared vector file's header comment trips this pedantic doc lint.
#[allow(clippy::doc_lazy_continuation)]
mod vectors;

use std::net::{IpAddr, SocketAddr};

use md5::{Digest, Md5};
use sha2::Sha256;

use ringturn::stun::integrity::hmac_sha256;
use ringturn::stun::{
    Attribute, AttributeType, Class, DecodeError, IntegrityError, Message, MessageIntegrity,
    MessageIntegritySha256, MessageType, MessageWriter, Method, Nonce, PasswordAlgorithm,
    PasswordAlgorithmId, Realm, Software, TransactionId, Userhash, Username, XorMappedAddress,
};
use vectors::*;

const PRIORITY: AttributeType = AttributeType(0x0024);
const ICE_CONTROLLED: AttributeType = AttributeType(0x8029);

fn md5_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    Md5::digest(format!("{username}:{realm}:{password}").as_bytes()).into()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The attribute types in wire order.
fn attribute_types(msg: &Message<'_>) -> Vec<AttributeType> {
    msg.attributes().map(|a| a.attr_type).collect()
}

/// Every attribute decodes without error.
fn assert_all_attributes_decode(msg: &Message<'_>) {
    for (i, a) in msg.decoded_attributes().enumerate() {
        assert!(a.is_ok(), "attribute #{i} failed to decode: {a:?}");
    }
}

// ---------------------------------------------------------------- RFC 5769 §2.1

#[test]
fn rfc5769_2_1_sample_request_verifies_and_reencodes() {
    let msg = Message::parse(&RFC5769_2_1_REQUEST).unwrap();
    assert_eq!(
        msg.message_type(),
        MessageType::new(Method::BINDING, Class::Request)
    );
    assert_eq!(msg.method(), Method::BINDING);
    assert_eq!(msg.class(), Class::Request);
    assert_eq!(
        msg.transaction_id(),
        TransactionId(RFC5769_SHORT_TERM_TRANSACTION_ID)
    );
    assert!(!msg.is_classic());
    assert_eq!(msg.as_bytes(), &RFC5769_2_1_REQUEST[..]);
    assert_eq!(
        attribute_types(&msg),
        [
            AttributeType::SOFTWARE,
            PRIORITY,
            ICE_CONTROLLED,
            AttributeType::USERNAME,
            AttributeType::MESSAGE_INTEGRITY,
            AttributeType::FINGERPRINT,
        ]
    );
    assert_all_attributes_decode(&msg);

    assert_eq!(
        msg.get::<Software>(),
        Some(Ok(Software(RFC5769_2_1_SOFTWARE)))
    );
    assert_eq!(
        msg.get::<Username>(),
        Some(Ok(Username(RFC5769_2_1_USERNAME)))
    );
    assert_eq!(
        msg.raw_attribute(PRIORITY),
        Some(&RFC5769_2_1_PRIORITY.to_be_bytes()[..])
    );
    assert_eq!(
        msg.raw_attribute(ICE_CONTROLLED),
        Some(&RFC5769_2_1_ICE_CONTROLLED.to_be_bytes()[..])
    );
    assert_eq!(
        msg.get::<MessageIntegrity>(),
        Some(Ok(MessageIntegrity(RFC5769_2_1_HMAC_SHA1)))
    );
    assert_eq!(
        msg.get::<ringturn::stun::Fingerprint>(),
        Some(Ok(ringturn::stun::Fingerprint(RFC5769_2_1_FINGERPRINT)))
    );

    // Short-term credential: the key is the password itself.
    let key = RFC5769_2_1_PASSWORD.as_bytes();
    assert!(msg.has_message_integrity());
    assert!(!msg.has_message_integrity_sha256());
    assert!(msg.has_fingerprint());
    assert_eq!(msg.verify_message_integrity(key), Ok(()));
    assert_eq!(msg.verify_integrity(key), Ok(()));
    assert_eq!(
        msg.verify_message_integrity(b"VOkJxbRl1RmTxUk/WvJxBT"),
        Err(IntegrityError::Mismatch)
    );
    assert_eq!(
        msg.verify_message_integrity_sha256(key),
        Err(IntegrityError::Missing)
    );
    assert_eq!(msg.verify_fingerprint(), Some(true));

    // Re-encode: the vector pads USERNAME with spaces.
    let mut buf = [0u8; 256];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId(RFC5769_SHORT_TERM_TRANSACTION_ID),
    )
    .unwrap()
    .with_padding_byte(b' ');
    w.add(&Software(RFC5769_2_1_SOFTWARE)).unwrap();
    w.add(&Attribute::Unknown {
        attr_type: PRIORITY,
        value: &RFC5769_2_1_PRIORITY.to_be_bytes(),
    })
    .unwrap();
    w.add(&Attribute::Unknown {
        attr_type: ICE_CONTROLLED,
        value: &RFC5769_2_1_ICE_CONTROLLED.to_be_bytes(),
    })
    .unwrap();
    w.add(&Username(RFC5769_2_1_USERNAME)).unwrap();
    w.add_message_integrity(key).unwrap();
    w.add_fingerprint().unwrap();
    let n = w.finish();
    assert_eq!(&buf[..n], &RFC5769_2_1_REQUEST[..]);
}

#[test]
fn rfc5769_2_1_zero_padding_changes_integrity_but_still_verifies() {
    // RFC 8489 §14: padding may be any value, and integrity covers it. With the
    // default (zero) padding the bytes differ from the vector, but the message
    // is just as valid.
    let mut buf = [0u8; 256];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId(RFC5769_SHORT_TERM_TRANSACTION_ID),
    )
    .unwrap();
    w.add(&Software(RFC5769_2_1_SOFTWARE)).unwrap();
    w.add(&Username(RFC5769_2_1_USERNAME)).unwrap();
    w.add_message_integrity(RFC5769_2_1_PASSWORD.as_bytes())
        .unwrap();
    w.add_fingerprint().unwrap();
    let n = w.finish();
    let msg = Message::parse(&buf[..n]).unwrap();
    assert_eq!(
        msg.verify_message_integrity(RFC5769_2_1_PASSWORD.as_bytes()),
        Ok(())
    );
    assert_eq!(msg.verify_fingerprint(), Some(true));
    assert_eq!(
        msg.get::<Username>(),
        Some(Ok(Username(RFC5769_2_1_USERNAME)))
    );
}

// ---------------------------------------------------------------- RFC 5769 §2.2 / §2.3

fn check_sample_response(vector: &[u8], mapped: SocketAddr, hmac: [u8; 20], fingerprint: u32) {
    let msg = Message::parse(vector).unwrap();
    assert_eq!(
        msg.message_type(),
        MessageType::new(Method::BINDING, Class::SuccessResponse)
    );
    assert_eq!(
        msg.transaction_id(),
        TransactionId(RFC5769_SHORT_TERM_TRANSACTION_ID)
    );
    assert!(!msg.is_classic());
    assert_eq!(
        attribute_types(&msg),
        [
            AttributeType::SOFTWARE,
            AttributeType::XOR_MAPPED_ADDRESS,
            AttributeType::MESSAGE_INTEGRITY,
            AttributeType::FINGERPRINT,
        ]
    );
    assert_all_attributes_decode(&msg);
    assert_eq!(
        msg.get::<Software>(),
        Some(Ok(Software(RFC5769_RESPONSE_SOFTWARE)))
    );
    assert_eq!(
        msg.get::<XorMappedAddress>(),
        Some(Ok(XorMappedAddress(mapped)))
    );
    assert_eq!(
        msg.get::<MessageIntegrity>(),
        Some(Ok(MessageIntegrity(hmac)))
    );
    assert_eq!(
        msg.get::<ringturn::stun::Fingerprint>(),
        Some(Ok(ringturn::stun::Fingerprint(fingerprint)))
    );

    let key = RFC5769_SHORT_TERM_PASSWORD.as_bytes();
    assert_eq!(msg.verify_message_integrity(key), Ok(()));
    assert_eq!(
        msg.verify_message_integrity(b"wrong password"),
        Err(IntegrityError::Mismatch)
    );
    assert_eq!(msg.verify_fingerprint(), Some(true));

    // Re-encode: SOFTWARE is padded with one space in the vectors.
    let mut buf = [0u8; 256];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::SuccessResponse),
        TransactionId(RFC5769_SHORT_TERM_TRANSACTION_ID),
    )
    .unwrap()
    .with_padding_byte(b' ');
    w.add(&Software(RFC5769_RESPONSE_SOFTWARE)).unwrap();
    w.add(&XorMappedAddress(mapped)).unwrap();
    w.add_message_integrity(key).unwrap();
    w.add_fingerprint().unwrap();
    let n = w.finish();
    assert_eq!(&buf[..n], vector);
}

#[test]
fn rfc5769_2_2_sample_ipv4_response_verifies_and_reencodes() {
    check_sample_response(
        &RFC5769_2_2_IPV4_RESPONSE,
        SocketAddr::new(IpAddr::V4(RFC5769_2_2_MAPPED_IP), RFC5769_MAPPED_PORT),
        RFC5769_2_2_HMAC_SHA1,
        RFC5769_2_2_FINGERPRINT,
    );
    // The address as the RFC prints it.
    let expected: SocketAddr = "192.0.2.1:32853".parse().unwrap();
    let msg = Message::parse(&RFC5769_2_2_IPV4_RESPONSE).unwrap();
    assert_eq!(
        msg.get::<XorMappedAddress>(),
        Some(Ok(XorMappedAddress(expected)))
    );
}

#[test]
fn rfc5769_2_3_sample_ipv6_response_verifies_and_reencodes() {
    check_sample_response(
        &RFC5769_2_3_IPV6_RESPONSE,
        SocketAddr::new(IpAddr::V6(RFC5769_2_3_MAPPED_IP), RFC5769_MAPPED_PORT),
        RFC5769_2_3_HMAC_SHA1,
        RFC5769_2_3_FINGERPRINT,
    );
    let expected: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
        .parse()
        .unwrap();
    let msg = Message::parse(&RFC5769_2_3_IPV6_RESPONSE).unwrap();
    assert_eq!(
        msg.get::<XorMappedAddress>(),
        Some(Ok(XorMappedAddress(expected)))
    );
}

// ---------------------------------------------------------------- RFC 5769 §2.4

#[test]
fn rfc5769_2_4_long_term_request_verifies_and_reencodes() {
    let key = md5_key(
        RFC5769_2_4_USERNAME,
        RFC5769_2_4_REALM,
        RFC5769_2_4_PASSWORD,
    );
    assert_eq!(key, RFC5769_2_4_KEY_MD5);

    let msg = Message::parse(&RFC5769_2_4_LONG_TERM_REQUEST).unwrap();
    assert_eq!(
        msg.message_type(),
        MessageType::new(Method::BINDING, Class::Request)
    );
    assert_eq!(
        msg.transaction_id(),
        TransactionId(RFC5769_2_4_TRANSACTION_ID)
    );
    assert_eq!(
        attribute_types(&msg),
        [
            AttributeType::USERNAME,
            AttributeType::NONCE,
            AttributeType::REALM,
            AttributeType::MESSAGE_INTEGRITY,
        ]
    );
    assert_all_attributes_decode(&msg);
    assert_eq!(
        msg.get::<Username>(),
        Some(Ok(Username(RFC5769_2_4_USERNAME)))
    );
    assert_eq!(RFC5769_2_4_USERNAME.len(), 18);
    assert_eq!(msg.get::<Nonce>(), Some(Ok(Nonce(RFC5769_2_4_NONCE))));
    assert_eq!(msg.get::<Realm>(), Some(Ok(Realm(RFC5769_2_4_REALM))));
    assert_eq!(
        msg.get::<MessageIntegrity>(),
        Some(Ok(MessageIntegrity(RFC5769_2_4_HMAC_SHA1)))
    );
    assert!(!msg.has_fingerprint());
    assert_eq!(msg.verify_fingerprint(), None);

    assert_eq!(msg.verify_message_integrity(&key), Ok(()));
    assert_eq!(msg.verify_integrity(&key), Ok(()));
    // The password must be the SASLprep'd one; the raw form gives another key.
    let unprepped = md5_key(
        RFC5769_2_4_USERNAME,
        RFC5769_2_4_REALM,
        RFC5769_2_4_PASSWORD_BEFORE_SASLPREP,
    );
    assert_eq!(
        msg.verify_message_integrity(&unprepped),
        Err(IntegrityError::Mismatch)
    );
    // Short-term use of the password itself is wrong too.
    assert_eq!(
        msg.verify_message_integrity(RFC5769_2_4_PASSWORD.as_bytes()),
        Err(IntegrityError::Mismatch)
    );

    // Re-encode with the default zero padding.
    let mut buf = [0xAAu8; 256];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId(RFC5769_2_4_TRANSACTION_ID),
    )
    .unwrap();
    w.add(&Username(RFC5769_2_4_USERNAME)).unwrap();
    w.add(&Nonce(RFC5769_2_4_NONCE)).unwrap();
    w.add(&Realm(RFC5769_2_4_REALM)).unwrap();
    w.add_message_integrity(&key).unwrap();
    let n = w.finish();
    assert_eq!(&buf[..n], &RFC5769_2_4_LONG_TERM_REQUEST[..]);
}

// ---------------------------------------------------------------- RFC 8489 Appendix B.1

fn rfc8489_b_1_key() -> [u8; 32] {
    sha256(format!("{RFC8489_B_1_USERNAME}:{RFC8489_B_1_REALM}:{RFC8489_B_1_PASSWORD}").as_bytes())
}

#[test]
fn rfc8489_b_1_sha256_request_errata_6268_verifies_and_reencodes() {
    let key = rfc8489_b_1_key();
    assert_eq!(key, RFC8489_B_1_KEY_SHA256);
    let userhash = sha256(format!("{RFC8489_B_1_USERNAME}:{RFC8489_B_1_REALM}").as_bytes());
    assert_eq!(userhash, RFC8489_B_1_USERHASH);

    let msg = Message::parse(&RFC8489_B_1_REQUEST).unwrap();
    assert_eq!(
        msg.message_type(),
        MessageType::new(Method::BINDING, Class::Request)
    );
    assert_eq!(
        msg.transaction_id(),
        TransactionId(RFC8489_B_1_TRANSACTION_ID)
    );
    assert_eq!(
        attribute_types(&msg),
        [
            AttributeType::USERHASH,
            AttributeType::NONCE,
            AttributeType::REALM,
            AttributeType::PASSWORD_ALGORITHM,
            AttributeType::MESSAGE_INTEGRITY_SHA256,
        ]
    );
    assert_all_attributes_decode(&msg);
    assert_eq!(msg.get::<Userhash>(), Some(Ok(Userhash(userhash))));
    assert_eq!(msg.get::<Nonce>(), Some(Ok(Nonce(RFC8489_B_1_NONCE))));
    assert!(RFC8489_B_1_NONCE.starts_with("obMatJos2"));
    assert_eq!(msg.get::<Realm>(), Some(Ok(Realm(RFC8489_B_1_REALM))));
    let algorithm = msg.get::<PasswordAlgorithm>().unwrap().unwrap();
    assert_eq!(algorithm, PasswordAlgorithm::SHA256);
    assert_eq!(algorithm.algorithm, PasswordAlgorithmId::SHA256);
    assert!(algorithm.params.is_empty());
    assert_eq!(
        msg.raw_attribute(AttributeType::PASSWORD_ALGORITHM),
        Some(&RFC8489_B_1_PASSWORD_ALGORITHM[..])
    );
    assert_eq!(
        msg.get::<MessageIntegritySha256>(),
        Some(Ok(MessageIntegritySha256(&RFC8489_B_1_HMAC_SHA256)))
    );
    assert!(msg.get::<Username>().is_none());

    assert!(!msg.has_message_integrity());
    assert!(msg.has_message_integrity_sha256());
    assert!(!msg.has_fingerprint());
    assert_eq!(msg.verify_message_integrity_sha256(&key), Ok(()));
    assert_eq!(msg.verify_integrity(&key), Ok(()));
    assert_eq!(
        msg.verify_message_integrity(&key),
        Err(IntegrityError::Missing)
    );
    // The MD5 key (the default algorithm without PASSWORD-ALGORITHM) is wrong here.
    assert_eq!(
        msg.verify_message_integrity_sha256(&md5_key(
            RFC8489_B_1_USERNAME,
            RFC8489_B_1_REALM,
            RFC8489_B_1_PASSWORD
        )),
        Err(IntegrityError::Mismatch)
    );

    let mut buf = [0x55u8; 256];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId(RFC8489_B_1_TRANSACTION_ID),
    )
    .unwrap();
    w.add(&Userhash(userhash)).unwrap();
    w.add(&Nonce(RFC8489_B_1_NONCE)).unwrap();
    w.add(&Realm(RFC8489_B_1_REALM)).unwrap();
    w.add(&PasswordAlgorithm::SHA256).unwrap();
    w.add_message_integrity_sha256(&key).unwrap();
    let n = w.finish();
    assert_eq!(&buf[..n], &RFC8489_B_1_REQUEST[..]);
}

#[test]
fn rfc8489_b_1_published_vector_is_rejected() {
    let key = rfc8489_b_1_key();
    // As printed: the length field (0x9c) counts the header, so a strict
    // decoder rejects the datagram outright.
    assert_eq!(
        Message::parse(&RFC8489_B_1_REQUEST_PUBLISHED).unwrap_err(),
        DecodeError::LengthMismatch {
            header: 0x9c,
            datagram: RFC8489_B_1_REQUEST_PUBLISHED.len(),
        }
    );

    // With the length field repaired, it parses, but its HMAC does not verify
    // under RFC 8489 §14.6 with the right key.
    let mut fixed = RFC8489_B_1_REQUEST_PUBLISHED;
    fixed[2..4].copy_from_slice(&0x88u16.to_be_bytes());
    let msg = Message::parse(&fixed).unwrap();
    assert!(msg.has_message_integrity_sha256());
    assert_eq!(
        msg.get::<MessageIntegritySha256>(),
        Some(Ok(MessageIntegritySha256(
            &RFC8489_B_1_PUBLISHED_HMAC_SHA256
        )))
    );
    assert_eq!(
        msg.verify_message_integrity_sha256(&key),
        Err(IntegrityError::Mismatch)
    );
    assert_eq!(msg.verify_integrity(&key), Err(IntegrityError::Mismatch));
    // Nor under the MD5 key that its missing PASSWORD-ALGORITHM would imply.
    assert_eq!(
        msg.verify_message_integrity_sha256(&md5_key(
            RFC8489_B_1_USERNAME,
            RFC8489_B_1_REALM,
            RFC8489_B_1_PASSWORD
        )),
        Err(IntegrityError::Mismatch)
    );
    // The printed HMAC is reproduced only by repeating the mistake: the first
    // 120 bytes with the bogus length field 0x9c left in place.
    assert_eq!(
        hmac_sha256(&RFC8489_B_1_REQUEST_PUBLISHED[..120], 0x9c, &key),
        RFC8489_B_1_PUBLISHED_HMAC_SHA256
    );
    assert_ne!(
        hmac_sha256(&RFC8489_B_1_REQUEST_PUBLISHED[..120], 0x88, &key),
        RFC8489_B_1_PUBLISHED_HMAC_SHA256
    );
}

// ---------------------------------------------------------------- corruption

/// How a vector is authenticated: which checks the intact vector passes.
struct Expect {
    name: &'static str,
    bytes: &'static [u8],
    key: Vec<u8>,
    sha256: bool,
    fingerprint: bool,
}

fn vectors_with_keys() -> Vec<Expect> {
    let short_term = RFC5769_SHORT_TERM_PASSWORD.as_bytes().to_vec();
    vec![
        Expect {
            name: "RFC 5769 2.1",
            bytes: &RFC5769_2_1_REQUEST,
            key: short_term.clone(),
            sha256: false,
            fingerprint: true,
        },
        Expect {
            name: "RFC 5769 2.2",
            bytes: &RFC5769_2_2_IPV4_RESPONSE,
            key: short_term.clone(),
            sha256: false,
            fingerprint: true,
        },
        Expect {
            name: "RFC 5769 2.3",
            bytes: &RFC5769_2_3_IPV6_RESPONSE,
            key: short_term,
            sha256: false,
            fingerprint: true,
        },
        Expect {
            name: "RFC 5769 2.4",
            bytes: &RFC5769_2_4_LONG_TERM_REQUEST,
            key: RFC5769_2_4_KEY_MD5.to_vec(),
            sha256: false,
            fingerprint: false,
        },
        Expect {
            name: "RFC 8489 B.1 (errata 6268)",
            bytes: &RFC8489_B_1_REQUEST,
            key: RFC8489_B_1_KEY_SHA256.to_vec(),
            sha256: true,
            fingerprint: false,
        },
    ]
}

/// Whether `bytes` parses and passes every check the intact vector passes.
fn accepted(bytes: &[u8], v: &Expect) -> bool {
    let Ok(msg) = Message::parse(bytes) else {
        return false;
    };
    // Decoding and verifying a corrupted message must never panic, whatever it says.
    for a in msg.decoded_attributes() {
        let _ = a;
    }
    let integrity = if v.sha256 {
        msg.verify_message_integrity_sha256(&v.key)
    } else {
        msg.verify_message_integrity(&v.key)
    };
    let fingerprint_ok = !v.fingerprint || msg.verify_fingerprint() == Some(true);
    integrity.is_ok() && fingerprint_ok
}

#[test]
fn rfc5769_rfc8489_b_1_intact_vectors_are_accepted() {
    for v in vectors_with_keys() {
        assert!(accepted(v.bytes, &v), "{} rejected", v.name);
    }
}

#[test]
fn rfc5769_2_and_rfc8489_b_1_any_single_byte_corruption_is_detected() {
    for v in vectors_with_keys() {
        let mut copy = v.bytes.to_vec();
        for pos in 0..copy.len() {
            // Every other value of that byte (so every bit flip among them).
            let original = copy[pos];
            for value in 0..=255u8 {
                if value == original {
                    continue;
                }
                copy[pos] = value;
                assert!(
                    !accepted(&copy, &v),
                    "{}: byte {pos} = {value:#04x} (was {original:#04x}) went undetected",
                    v.name
                );
            }
            copy[pos] = original;
        }
        assert_eq!(copy, v.bytes);
    }
}

#[test]
fn rfc5769_rfc8489_b_1_truncated_or_extended_vectors_are_rejected() {
    for v in vectors_with_keys() {
        for len in 0..v.bytes.len() {
            assert!(
                !accepted(&v.bytes[..len], &v),
                "{}: truncation to {len} bytes accepted",
                v.name
            );
        }
        let mut longer = v.bytes.to_vec();
        for extra in 1..=8 {
            longer.push(0);
            assert!(
                Message::parse(&longer).is_err(),
                "{}: {extra} trailing bytes accepted",
                v.name
            );
        }
    }
}
