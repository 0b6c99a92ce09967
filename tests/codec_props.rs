//! Property and framing tests for the STUN codec and ChannelData framing:
//! attribute round trips through `MessageWriter` and `Message::parse`, integrity
//! and fingerprint with right and wrong keys, robustness against arbitrary and
//! mutated input, and the framing rules of RFC 8489 §6.3, §14 and RFC 8656 §12.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use ringturn::stun::channel_data::{frame_len, stream_frame_len, write_header};
use ringturn::stun::*;

// ====================================================================== helpers

const TID: TransactionId = TransactionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
const COOKIE: [u8; 4] = MAGIC_COOKIE.to_be_bytes();

/// Builds a message by hand: header with `type_`, `cookie`, `TID`, the length
/// field set to the body length, then each attribute padded with zeros.
fn raw_message(type_: u16, cookie: [u8; 4], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&type_.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&cookie);
    out.extend_from_slice(&TID.0);
    for (t, v) in attrs {
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&u16::try_from(v.len()).unwrap().to_be_bytes());
        out.extend_from_slice(v);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    let len = out.len() - HEADER_LEN;
    set_length(&mut out, len);
    out
}

fn set_length(msg: &mut [u8], len: usize) {
    msg[2..4].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
}

const BINDING_REQUEST: u16 = 0x0001;
const ALLOCATE_REQUEST: u16 = 0x0003;

/// A stable name per `Attribute` variant. The match is exhaustive on purpose:
/// a new variant fails to compile here until the strategies below cover it.
fn variant_name(a: &Attribute<'_>) -> &'static str {
    match a {
        Attribute::MappedAddress(_) => "MappedAddress",
        Attribute::XorMappedAddress(_) => "XorMappedAddress",
        Attribute::XorPeerAddress(_) => "XorPeerAddress",
        Attribute::XorRelayedAddress(_) => "XorRelayedAddress",
        Attribute::AlternateServer(_) => "AlternateServer",
        Attribute::ResponseOrigin(_) => "ResponseOrigin",
        Attribute::OtherAddress(_) => "OtherAddress",
        Attribute::Username(_) => "Username",
        Attribute::Realm(_) => "Realm",
        Attribute::Nonce(_) => "Nonce",
        Attribute::Software(_) => "Software",
        Attribute::AlternateDomain(_) => "AlternateDomain",
        Attribute::Data(_) => "Data",
        Attribute::Padding(_) => "Padding",
        Attribute::Userhash(_) => "Userhash",
        Attribute::ReservationToken(_) => "ReservationToken",
        Attribute::MessageIntegrity(_) => "MessageIntegrity",
        Attribute::MessageIntegritySha256(_) => "MessageIntegritySha256",
        Attribute::Fingerprint(_) => "Fingerprint",
        Attribute::Lifetime(_) => "Lifetime",
        Attribute::ConnectionId(_) => "ConnectionId",
        Attribute::ChannelNumber(_) => "ChannelNumber",
        Attribute::ResponsePort(_) => "ResponsePort",
        Attribute::RequestedTransport(_) => "RequestedTransport",
        Attribute::RequestedAddressFamily(_) => "RequestedAddressFamily",
        Attribute::AdditionalAddressFamily(_) => "AdditionalAddressFamily",
        Attribute::EvenPort(_) => "EvenPort",
        Attribute::DontFragment(_) => "DontFragment",
        Attribute::ChangeRequest(_) => "ChangeRequest",
        Attribute::ErrorCode(_) => "ErrorCode",
        Attribute::AddressErrorCode(_) => "AddressErrorCode",
        Attribute::Icmp(_) => "Icmp",
        Attribute::UnknownAttributes(_) => "UnknownAttributes",
        Attribute::PasswordAlgorithm(_) => "PasswordAlgorithm",
        Attribute::PasswordAlgorithms(_) => "PasswordAlgorithms",
        Attribute::Unknown { .. } => "Unknown",
    }
}

const VARIANT_COUNT: usize = 36;

// ====================================================================== owned attribute model

/// An owned description of one attribute; `attr()` borrows it as an `Attribute`.
#[derive(Debug, Clone)]
enum Spec {
    MappedAddress(SocketAddr),
    XorMappedAddress(SocketAddr),
    XorPeerAddress(SocketAddr),
    XorRelayedAddress(SocketAddr),
    AlternateServer(SocketAddr),
    ResponseOrigin(SocketAddr),
    OtherAddress(SocketAddr),
    Username(String),
    Realm(String),
    Nonce(String),
    Software(String),
    AlternateDomain(String),
    Data(Vec<u8>),
    Padding(Vec<u8>),
    Userhash([u8; 32]),
    ReservationToken([u8; 8]),
    MessageIntegrity([u8; 20]),
    MessageIntegritySha256(Vec<u8>),
    Fingerprint(u32),
    Lifetime(u32),
    ConnectionId(u32),
    ChannelNumber(u16),
    ResponsePort(u16),
    RequestedTransport(u8),
    RequestedAddressFamily(AddressFamily),
    AdditionalAddressFamily(AddressFamily),
    EvenPort(bool),
    DontFragment,
    ChangeRequest(bool, bool),
    ErrorCode(u16, String),
    AddressErrorCode(AddressFamily, u16, String),
    Icmp(u8, u8, u32),
    /// Wire form: a list of 16-bit types.
    UnknownAttributes(Vec<u8>),
    PasswordAlgorithm(u16, Vec<u8>),
    /// The list, and its wire form.
    PasswordAlgorithms(Vec<(u16, Vec<u8>)>, Vec<u8>),
    Unknown(u16, Vec<u8>),
}

impl Spec {
    fn attr(&self) -> Attribute<'_> {
        match self {
            Spec::MappedAddress(a) => Attribute::MappedAddress(MappedAddress(*a)),
            Spec::XorMappedAddress(a) => Attribute::XorMappedAddress(XorMappedAddress(*a)),
            Spec::XorPeerAddress(a) => Attribute::XorPeerAddress(XorPeerAddress(*a)),
            Spec::XorRelayedAddress(a) => Attribute::XorRelayedAddress(XorRelayedAddress(*a)),
            Spec::AlternateServer(a) => Attribute::AlternateServer(AlternateServer(*a)),
            Spec::ResponseOrigin(a) => Attribute::ResponseOrigin(ResponseOrigin(*a)),
            Spec::OtherAddress(a) => Attribute::OtherAddress(OtherAddress(*a)),
            Spec::Username(s) => Attribute::Username(Username(s)),
            Spec::Realm(s) => Attribute::Realm(Realm(s)),
            Spec::Nonce(s) => Attribute::Nonce(Nonce(s)),
            Spec::Software(s) => Attribute::Software(Software(s)),
            Spec::AlternateDomain(s) => Attribute::AlternateDomain(AlternateDomain(s)),
            Spec::Data(b) => Attribute::Data(Data(b)),
            Spec::Padding(b) => Attribute::Padding(Padding(b)),
            Spec::Userhash(h) => Attribute::Userhash(Userhash(*h)),
            Spec::ReservationToken(t) => Attribute::ReservationToken(ReservationToken(*t)),
            Spec::MessageIntegrity(m) => Attribute::MessageIntegrity(MessageIntegrity(*m)),
            Spec::MessageIntegritySha256(m) => {
                Attribute::MessageIntegritySha256(MessageIntegritySha256(m))
            }
            Spec::Fingerprint(f) => Attribute::Fingerprint(Fingerprint(*f)),
            Spec::Lifetime(v) => Attribute::Lifetime(Lifetime(*v)),
            Spec::ConnectionId(v) => Attribute::ConnectionId(ConnectionId(*v)),
            Spec::ChannelNumber(v) => Attribute::ChannelNumber(ChannelNumberAttr(*v)),
            Spec::ResponsePort(v) => Attribute::ResponsePort(ResponsePort(*v)),
            Spec::RequestedTransport(p) => {
                Attribute::RequestedTransport(RequestedTransport(TransportProtocol(*p)))
            }
            Spec::RequestedAddressFamily(f) => {
                Attribute::RequestedAddressFamily(RequestedAddressFamily(*f))
            }
            Spec::AdditionalAddressFamily(f) => {
                Attribute::AdditionalAddressFamily(AdditionalAddressFamily(*f))
            }
            Spec::EvenPort(r) => Attribute::EvenPort(EvenPort { reserve_next: *r }),
            Spec::DontFragment => Attribute::DontFragment(DontFragment),
            Spec::ChangeRequest(ip, port) => Attribute::ChangeRequest(ChangeRequest {
                change_ip: *ip,
                change_port: *port,
            }),
            Spec::ErrorCode(code, reason) => Attribute::ErrorCode(ErrorCodeAttr {
                code: ErrorCode(*code),
                reason,
            }),
            Spec::AddressErrorCode(family, code, reason) => {
                Attribute::AddressErrorCode(AddressErrorCode {
                    family: *family,
                    code: ErrorCode(*code),
                    reason,
                })
            }
            Spec::Icmp(t, c, d) => Attribute::Icmp(Icmp {
                icmp_type: *t,
                icmp_code: *c,
                error_data: *d,
            }),
            Spec::UnknownAttributes(wire) => {
                Attribute::UnknownAttributes(UnknownAttributes::decode(wire, &TID).unwrap())
            }
            Spec::PasswordAlgorithm(id, params) => {
                Attribute::PasswordAlgorithm(PasswordAlgorithm {
                    algorithm: PasswordAlgorithmId(*id),
                    params,
                })
            }
            Spec::PasswordAlgorithms(_, wire) => {
                Attribute::PasswordAlgorithms(PasswordAlgorithms::decode(wire, &TID).unwrap())
            }
            Spec::Unknown(t, v) => Attribute::Unknown {
                attr_type: AttributeType(*t),
                value: v,
            },
        }
    }
}

// ====================================================================== strategies

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

/// UTF-8 text of at most `max_bytes` bytes: short arbitrary Unicode, or ASCII
/// up to the limit (so the limit itself gets hit).
fn text(max_bytes: usize) -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::collection::vec(any::<char>(), 0..40).prop_map(move |chars| {
            let mut s = String::new();
            for c in chars {
                if s.len() + c.len_utf8() > max_bytes {
                    break;
                }
                s.push(c);
            }
            s
        }),
        1 => (0..=max_bytes, b'a'..=b'z').prop_map(|(n, c)| char::from(c).to_string().repeat(n)),
    ]
    .boxed()
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn family() -> impl Strategy<Value = AddressFamily> {
    prop_oneof![Just(AddressFamily::V4), Just(AddressFamily::V6)]
}

fn error_code() -> impl Strategy<Value = u16> {
    300u16..=699
}

fn unknown_type() -> impl Strategy<Value = u16> {
    any::<u16>().prop_filter("known attribute type", |t| !AttributeType(*t).is_known())
}

fn password_algorithms() -> impl Strategy<Value = Spec> {
    prop::collection::vec((any::<u16>(), bytes(9)), 0..4).prop_map(|list| {
        let mut wire = Vec::new();
        for (id, params) in &list {
            wire.extend_from_slice(&id.to_be_bytes());
            wire.extend_from_slice(&u16::try_from(params.len()).unwrap().to_be_bytes());
            wire.extend_from_slice(params);
            while wire.len() % 4 != 0 {
                wire.push(0);
            }
        }
        Spec::PasswordAlgorithms(list, wire)
    })
}

/// Every attribute that may appear anywhere in a message: all variants but
/// MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, whose place is fixed.
fn body_attribute() -> BoxedStrategy<Spec> {
    prop_oneof![
        socket_addr().prop_map(Spec::MappedAddress),
        socket_addr().prop_map(Spec::XorMappedAddress),
        socket_addr().prop_map(Spec::XorPeerAddress),
        socket_addr().prop_map(Spec::XorRelayedAddress),
        socket_addr().prop_map(Spec::AlternateServer),
        socket_addr().prop_map(Spec::ResponseOrigin),
        socket_addr().prop_map(Spec::OtherAddress),
        text(513).prop_map(Spec::Username),
        text(763).prop_map(Spec::Realm),
        text(763).prop_map(Spec::Nonce),
        text(763).prop_map(Spec::Software),
        text(255).prop_map(Spec::AlternateDomain),
        bytes(1200).prop_map(Spec::Data),
        bytes(64).prop_map(Spec::Padding),
        any::<[u8; 32]>().prop_map(Spec::Userhash),
        any::<[u8; 8]>().prop_map(Spec::ReservationToken),
        any::<u32>().prop_map(Spec::Lifetime),
        any::<u32>().prop_map(Spec::ConnectionId),
        any::<u16>().prop_map(Spec::ChannelNumber),
        any::<u16>().prop_map(Spec::ResponsePort),
        any::<u8>().prop_map(Spec::RequestedTransport),
        family().prop_map(Spec::RequestedAddressFamily),
        family().prop_map(Spec::AdditionalAddressFamily),
        any::<bool>().prop_map(Spec::EvenPort),
        Just(Spec::DontFragment),
        (any::<bool>(), any::<bool>()).prop_map(|(i, p)| Spec::ChangeRequest(i, p)),
        (error_code(), text(763)).prop_map(|(c, r)| Spec::ErrorCode(c, r)),
        (family(), error_code(), text(763)).prop_map(|(f, c, r)| Spec::AddressErrorCode(f, c, r)),
        (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(t, c, d)| Spec::Icmp(t, c, d)),
        prop::collection::vec(any::<u16>(), 0..8).prop_map(|types| Spec::UnknownAttributes(
            types.iter().flat_map(|t| t.to_be_bytes()).collect()
        )),
        (any::<u16>(), bytes(13)).prop_map(|(id, p)| Spec::PasswordAlgorithm(id, p)),
        password_algorithms(),
        (unknown_type(), bytes(40)).prop_map(|(t, v)| Spec::Unknown(t, v)),
    ]
    .boxed()
}

/// Raw MESSAGE-INTEGRITY / MESSAGE-INTEGRITY-SHA256 / FINGERPRINT attributes
/// (arbitrary values, not computed), in the only order a message allows.
fn trailer() -> impl Strategy<Value = Vec<Spec>> {
    (
        prop::option::of(any::<[u8; 20]>()),
        prop::option::of(
            (4usize..=8)
                .prop_flat_map(|words| prop::collection::vec(any::<u8>(), words * 4..=words * 4)),
        ),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(mi, mi256, fp)| {
            let mut out = Vec::new();
            out.extend(mi.map(Spec::MessageIntegrity));
            out.extend(mi256.map(Spec::MessageIntegritySha256));
            out.extend(fp.map(Spec::Fingerprint));
            out
        })
}

fn message_type() -> impl Strategy<Value = MessageType> {
    (
        0u16..=0x0FFF,
        prop_oneof![
            Just(Class::Request),
            Just(Class::Indication),
            Just(Class::SuccessResponse),
            Just(Class::ErrorResponse),
        ],
    )
        .prop_map(|(m, c)| MessageType::new(Method(m), c))
}

fn tid() -> impl Strategy<Value = TransactionId> {
    any::<[u8; 12]>().prop_map(TransactionId)
}

/// HMAC keys: a key and a different one. Flipping a byte keeps the two from
/// being equal up to trailing zeros (HMAC pads short keys with zeros, so
/// `k` and `k || 0` are the same HMAC key by construction).
fn key_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop::collection::vec(any::<u8>(), 1..80),
        any::<prop::sample::Index>(),
        1u8..,
    )
        .prop_map(|(key, idx, flip)| {
            let mut wrong = key.clone();
            wrong[idx.index(key.len())] ^= flip;
            (key, wrong)
        })
}

// ====================================================================== encoding helpers

fn encode(
    mt: MessageType,
    tid: TransactionId,
    padding: u8,
    specs: &[Spec],
) -> Result<Vec<u8>, EncodeError> {
    let mut buf = vec![0u8; 70_000];
    let mut w = MessageWriter::new(&mut buf, mt, tid)?.with_padding_byte(padding);
    for s in specs {
        w.add(&s.attr())?;
    }
    let n = w.finish();
    buf.truncate(n);
    Ok(buf)
}

#[derive(Debug, Clone, Copy)]
struct Protect {
    mi: bool,
    mi256: bool,
    fp: bool,
}

fn encode_protected(
    mt: MessageType,
    tid: TransactionId,
    specs: &[Spec],
    key: &[u8],
    p: Protect,
) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let mut w = MessageWriter::new(&mut buf, mt, tid).unwrap();
    for s in specs {
        w.add(&s.attr()).unwrap();
    }
    if p.mi {
        w.add_message_integrity(key).unwrap();
    }
    if p.mi256 {
        w.add_message_integrity_sha256(key).unwrap();
    }
    if p.fp {
        w.add_fingerprint().unwrap();
    }
    if p.mi || p.mi256 || p.fp {
        assert_eq!(
            w.add(&Software("late")),
            Err(EncodeError::AfterIntegrity),
            "attribute accepted after the integrity attributes"
        );
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

/// Decodes `A` and, when it decodes, checks it agrees with `Attribute::decode`.
fn get_all(msg: &Message<'_>) {
    fn one<'a, A>(msg: &Message<'a>)
    where
        A: DecodeAttribute<'a> + std::fmt::Debug,
    {
        let got = msg.get::<A>();
        assert_eq!(got.is_some(), msg.has(A::TYPE));
        let raw = msg.raw_attribute(A::TYPE);
        assert_eq!(got.is_some(), raw.is_some());
        if let (Some(got), Some(raw)) = (got, raw) {
            let via_sum = Attribute::decode(A::TYPE, raw, &msg.transaction_id());
            assert_eq!(got.is_ok(), via_sum.is_ok(), "{:?}", A::TYPE);
            if let Ok(a) = via_sum {
                assert_eq!(a.attr_type(), A::TYPE);
            }
        }
    }
    one::<MappedAddress>(msg);
    one::<XorMappedAddress>(msg);
    one::<XorPeerAddress>(msg);
    one::<XorRelayedAddress>(msg);
    one::<AlternateServer>(msg);
    one::<ResponseOrigin>(msg);
    one::<OtherAddress>(msg);
    one::<Username>(msg);
    one::<Realm>(msg);
    one::<Nonce>(msg);
    one::<Software>(msg);
    one::<AlternateDomain>(msg);
    one::<Data>(msg);
    one::<Padding>(msg);
    one::<Userhash>(msg);
    one::<ReservationToken>(msg);
    one::<MessageIntegrity>(msg);
    one::<MessageIntegritySha256>(msg);
    one::<Fingerprint>(msg);
    one::<Lifetime>(msg);
    one::<ConnectionId>(msg);
    one::<ChannelNumberAttr>(msg);
    one::<ResponsePort>(msg);
    one::<RequestedTransport>(msg);
    one::<RequestedAddressFamily>(msg);
    one::<AdditionalAddressFamily>(msg);
    one::<EvenPort>(msg);
    one::<DontFragment>(msg);
    one::<ChangeRequest>(msg);
    one::<ErrorCodeAttr>(msg);
    one::<AddressErrorCode>(msg);
    one::<Icmp>(msg);
    one::<UnknownAttributes>(msg);
    one::<PasswordAlgorithm>(msg);
    one::<PasswordAlgorithms>(msg);
    if let Some(Ok(list)) = msg.get::<UnknownAttributes>() {
        let _ = list.iter().count();
    }
    if let Some(Ok(list)) = msg.get::<PasswordAlgorithms>() {
        let _ = list.iter().count();
        let _ = list.contains(PasswordAlgorithmId::SHA256);
    }
}

/// Everything a server might do with a parsed message; must never panic.
/// Every attribute that decodes also re-encodes, and decodes again to the same value.
fn exercise(msg: &Message<'_>) {
    // RFC 8489 §6: the top two bits are zero. (RFC 7983's 0..=3 first-byte rule
    // holds only for methods up to 0x0FF.)
    assert!(matches!(msg.as_bytes().first(), Some(0..=0x3F)));
    if msg.method().0 <= 0x0FF {
        assert_eq!(
            demultiplex(msg.as_bytes(), ChannelRange::Rfc8656),
            PacketKind::Stun
        );
    }
    assert_eq!(msg.is_classic(), !msg.cookie().is_magic());
    let _ = (msg.method(), msg.class(), msg.message_type());
    let raw_count = msg.attributes().count();
    let mut decoded = 0;
    for result in msg.decoded_attributes() {
        decoded += 1;
        let Ok(a) = result else { continue };
        let mut buf = vec![0u8; 70_000];
        let mut w = MessageWriter::with_cookie(
            &mut buf,
            msg.message_type(),
            msg.cookie().0,
            msg.transaction_id(),
        )
        .unwrap();
        w.add(&a)
            .unwrap_or_else(|e| panic!("{a:?} decoded but does not re-encode: {e}"));
        let n = w.finish();
        let again = Message::parse(&buf[..n])
            .unwrap_or_else(|e| panic!("{a:?} re-encoded does not parse: {e}"));
        let b = again.decoded_attributes().next().unwrap().unwrap();
        assert_eq!(a, b);
    }
    assert_eq!(raw_count, decoded);
    for key in [&b""[..], b"key", &[0u8; 100]] {
        let _ = msg.verify_message_integrity(key);
        let _ = msg.verify_message_integrity_sha256(key);
        let _ = msg.verify_integrity(key);
    }
    assert_eq!(
        msg.verify_message_integrity(b"k").err() == Some(IntegrityError::Missing),
        !msg.has_message_integrity()
    );
    assert_eq!(
        msg.verify_message_integrity_sha256(b"k").err() == Some(IntegrityError::Missing),
        !msg.has_message_integrity_sha256()
    );
    assert_eq!(msg.verify_fingerprint().is_some(), msg.has_fingerprint());
    get_all(msg);
    for t in msg.unknown_comprehension_required(|t| t.is_known()) {
        assert!(t.is_comprehension_required() && !t.is_known());
    }
}

/// Feeds `bytes` to every decoder; none may panic.
fn decode_everything(bytes: &[u8]) {
    if let Ok(msg) = Message::parse(bytes) {
        exercise(&msg);
    }
    if let Ok(cd) = ChannelData::parse(bytes) {
        assert!(cd.data.len() + 4 <= bytes.len());
        assert_eq!(cd.data, &bytes[4..4 + cd.data.len()]);
        let declared = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        assert_eq!(cd.data.len(), declared);
    }
    for range in [ChannelRange::Rfc8656, ChannelRange::Rfc5766] {
        let kind = demultiplex(bytes, range);
        match stream_frame_len(bytes, range) {
            None => assert!(bytes.len() < 4),
            Some(Ok(n)) => {
                assert_ne!(kind, PacketKind::Other);
                assert!(n >= 4);
            }
            Some(Err(_)) => assert_eq!(kind, PacketKind::Other),
        }
    }
}

// ====================================================================== round trips

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// RFC 8489 §14: every attribute round-trips through the writer and parser,
    /// whatever the padding byte.
    #[test]
    fn rfc8489_14_attributes_round_trip(
        mt in message_type(),
        tid in tid(),
        padding in any::<u8>(),
        body in prop::collection::vec(body_attribute(), 0..12),
        trailer in trailer(),
    ) {
        let specs: Vec<Spec> = body.into_iter().chain(trailer).collect();
        let wire = encode(mt, tid, padding, &specs).unwrap();
        prop_assert_eq!(wire.len() % 4, 0);
        let msg = Message::parse(&wire).unwrap();
        prop_assert_eq!(msg.message_type(), mt);
        prop_assert_eq!(msg.transaction_id(), tid);
        prop_assert!(!msg.is_classic());
        let expected: Vec<Attribute<'_>> = specs.iter().map(Spec::attr).collect();
        let decoded: Vec<Attribute<'_>> =
            msg.decoded_attributes().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&decoded, &expected);
        let types: Vec<AttributeType> = msg.attributes().map(|a| a.attr_type).collect();
        let expected_types: Vec<AttributeType> = expected.iter().map(|a| a.attr_type()).collect();
        prop_assert_eq!(types, expected_types);
        prop_assert_eq!(
            msg.has_message_integrity(),
            specs.iter().any(|s| matches!(s, Spec::MessageIntegrity(_)))
        );
        prop_assert_eq!(
            msg.has_message_integrity_sha256(),
            specs.iter().any(|s| matches!(s, Spec::MessageIntegritySha256(_)))
        );
        prop_assert_eq!(
            msg.has_fingerprint(),
            specs.iter().any(|s| matches!(s, Spec::Fingerprint(_)))
        );
        // `get` returns the first attribute of a type (RFC 8489 §14: later
        // duplicates are ignored).
        let mut seen_types = BTreeSet::new();
        for s in &specs {
            if !seen_types.insert(s.attr().attr_type()) {
                continue;
            }
            if let Spec::PasswordAlgorithms(list, _) = s {
                let got = msg.get::<PasswordAlgorithms>().unwrap().unwrap();
                let got: Vec<(u16, Vec<u8>)> =
                    got.iter().map(|a| (a.algorithm.0, a.params.to_vec())).collect();
                prop_assert_eq!(&got, list);
                // The list writer produces the same bytes.
                let algs: Vec<PasswordAlgorithm<'_>> = list
                    .iter()
                    .map(|(id, p)| PasswordAlgorithm { algorithm: PasswordAlgorithmId(*id), params: p })
                    .collect();
                let mut a = [0u8; 512];
                let mut wa = MessageWriter::new(&mut a, mt, tid).unwrap();
                wa.add(&PasswordAlgorithmsList(&algs)).unwrap();
                let na = wa.finish();
                let mut b = [0u8; 512];
                let mut wb = MessageWriter::new(&mut b, mt, tid).unwrap();
                wb.add(&s.attr()).unwrap();
                let nb = wb.finish();
                prop_assert_eq!(&a[..na], &b[..nb]);
            }
            if let Spec::UnknownAttributes(wire_list) = s {
                let types: Vec<AttributeType> = wire_list
                    .chunks(2)
                    .map(|c| AttributeType(u16::from_be_bytes([c[0], c[1]])))
                    .collect();
                let got = msg.get::<UnknownAttributes>().unwrap().unwrap();
                let got: Vec<AttributeType> = got.iter().collect();
                prop_assert_eq!(&got, &types);
            }
        }
        exercise(&msg);
        // The padding byte only ever lands in padding.
        if padding != 0 {
            let zero = encode(mt, tid, 0, &specs).unwrap();
            prop_assert_eq!(zero.len(), wire.len());
            let zmsg = Message::parse(&zero).unwrap();
            let zdecoded: Vec<Attribute<'_>> =
                zmsg.decoded_attributes().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(zdecoded, decoded);
        }
    }

    /// RFC 8489 §14.5-14.7: integrity attributes computed by the writer verify
    /// with the key they were made with and fail with any other.
    #[test]
    fn rfc8489_14_5_to_14_7_integrity_verifies_only_with_the_right_key(
        mt in message_type(),
        tid in tid(),
        body in prop::collection::vec(body_attribute(), 0..8),
        (key, wrong) in key_pair(),
        mi in any::<bool>(),
        mi256 in any::<bool>(),
        fp in any::<bool>(),
    ) {
        let p = Protect { mi, mi256, fp };
        let wire = encode_protected(mt, tid, &body, &key, p);
        let msg = Message::parse(&wire).unwrap();
        prop_assert_eq!(msg.has_message_integrity(), mi);
        prop_assert_eq!(msg.has_message_integrity_sha256(), mi256);
        prop_assert_eq!(msg.has_fingerprint(), fp);
        if mi {
            prop_assert_eq!(msg.verify_message_integrity(&key), Ok(()));
            prop_assert_eq!(msg.verify_message_integrity(&wrong), Err(IntegrityError::Mismatch));
        } else {
            prop_assert_eq!(msg.verify_message_integrity(&key), Err(IntegrityError::Missing));
        }
        if mi256 {
            prop_assert_eq!(msg.verify_message_integrity_sha256(&key), Ok(()));
            prop_assert_eq!(
                msg.verify_message_integrity_sha256(&wrong),
                Err(IntegrityError::Mismatch)
            );
        } else {
            prop_assert_eq!(
                msg.verify_message_integrity_sha256(&key),
                Err(IntegrityError::Missing)
            );
        }
        if mi || mi256 {
            prop_assert_eq!(msg.verify_integrity(&key), Ok(()));
            prop_assert_eq!(msg.verify_integrity(&wrong), Err(IntegrityError::Mismatch));
        } else {
            prop_assert_eq!(msg.verify_integrity(&key), Err(IntegrityError::Missing));
        }
        prop_assert_eq!(msg.verify_fingerprint(), if fp { Some(true) } else { None });
        // The body decodes as written.
        let expected: Vec<Attribute<'_>> = body.iter().map(Spec::attr).collect();
        let decoded: Vec<Attribute<'_>> = msg
            .decoded_attributes()
            .take(body.len())
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(decoded, expected);
        prop_assert_eq!(msg.attributes().count(), body.len() + usize::from(mi) + usize::from(mi256) + usize::from(fp));
        exercise(&msg);
    }

    /// RFC 8489 §14.6: a MESSAGE-INTEGRITY-SHA256 truncated to 16..=28 bytes
    /// (a multiple of 4) still verifies.
    #[test]
    fn rfc8489_14_6_truncated_sha256_integrity_verifies(
        body in prop::collection::vec(body_attribute(), 0..4),
        (key, wrong) in key_pair(),
        words in 4usize..=8,
    ) {
        // The writer always emits the full 32 bytes; build the truncated form by
        // hand: HMAC over the prefix with the length field ending at the
        // truncated attribute, keeping the first `words * 4` bytes.
        let mut short = encode(MessageType::new(Method::ALLOCATE, Class::Request), TID, 0, &body).unwrap();
        let mac_len = words * 4;
        let length_field = u16::try_from(short.len() + 4 + mac_len - HEADER_LEN).unwrap();
        let mac = ringturn::stun::integrity::hmac_sha256(&short, length_field, &key);
        short.extend_from_slice(&AttributeType::MESSAGE_INTEGRITY_SHA256.0.to_be_bytes());
        short.extend_from_slice(&u16::try_from(mac_len).unwrap().to_be_bytes());
        short.extend_from_slice(&mac[..mac_len]);
        set_length(&mut short, usize::from(length_field));
        let msg = Message::parse(&short).unwrap();
        prop_assert_eq!(msg.verify_message_integrity_sha256(&key), Ok(()));
        prop_assert_eq!(msg.verify_message_integrity_sha256(&wrong), Err(IntegrityError::Mismatch));
        prop_assert_eq!(msg.get::<MessageIntegritySha256>(), Some(Ok(MessageIntegritySha256(&mac[..mac_len]))));
        // The same MAC is no good with the length field of the full-size attribute.
        if mac_len < 32 {
            let full_field = u16::try_from(short.len() - mac_len + 32 - HEADER_LEN).unwrap();
            let other = ringturn::stun::integrity::hmac_sha256(&short[..short.len() - 4 - mac_len], full_field, &key);
            prop_assert_ne!(&other[..mac_len], &mac[..mac_len]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Encoding into a buffer that is too small fails cleanly with
    /// `BufferTooSmall`, never panics, and leaves what was written so far a
    /// valid message.
    #[test]
    fn writer_into_short_buffer_fails_cleanly(
        body in prop::collection::vec(body_attribute(), 0..6),
        (key, _wrong) in key_pair(),
        mi in any::<bool>(),
        mi256 in any::<bool>(),
        fp in any::<bool>(),
        cap in any::<prop::sample::Index>(),
    ) {
        let mt = MessageType::new(Method::BINDING, Class::SuccessResponse);
        let full = encode_protected(mt, TID, &body, &key, Protect { mi, mi256, fp });
        let cap = cap.index(full.len() + 1);
        let mut buf = vec![0u8; cap];
        let Ok(mut w) = MessageWriter::new(&mut buf, mt, TID) else {
            prop_assert!(cap < HEADER_LEN);
            return Ok(());
        };
        let mut done = 0usize;
        let mut failed = None;
        for s in &body {
            match w.add(&s.attr()) {
                Ok(()) => done += 1,
                Err(e) => { failed = Some(e); break; }
            }
        }
        if failed.is_none() && mi {
            match w.add_message_integrity(&key) { Ok(()) => done += 1, Err(e) => failed = Some(e) }
        }
        if failed.is_none() && mi256 {
            match w.add_message_integrity_sha256(&key) { Ok(()) => done += 1, Err(e) => failed = Some(e) }
        }
        if failed.is_none() && fp {
            match w.add_fingerprint() { Ok(()) => done += 1, Err(e) => failed = Some(e) }
        }
        let n = w.finish();
        prop_assert!(n <= cap);
        if cap < full.len() {
            prop_assert_eq!(failed, Some(EncodeError::BufferTooSmall));
        } else {
            prop_assert_eq!(failed, None);
        }
        // What was written is the start of the full encoding, with its own length.
        let msg = Message::parse(&buf[..n]).unwrap();
        prop_assert_eq!(msg.attributes().count(), done);
        prop_assert_eq!(&buf[4..n], &full[4..n]);
    }
}

#[test]
fn rfc8489_5_message_length_is_16_bits() {
    let mt = MessageType::new(Method::SEND, Class::Indication);
    let mut buf = vec![0u8; 70_000];
    // 4 + 65528 = 65532, the largest aligned body.
    let data = vec![0x5Au8; 65_528];
    let mut w = MessageWriter::new(&mut buf, mt, TID).unwrap();
    w.add(&Data(&data)).unwrap();
    assert_eq!(w.add(&DontFragment), Err(EncodeError::BufferTooSmall));
    assert_eq!(w.add_fingerprint(), Err(EncodeError::BufferTooSmall));
    assert_eq!(
        w.add_message_integrity(b"k"),
        Err(EncodeError::BufferTooSmall)
    );
    let n = w.finish();
    assert_eq!(n, HEADER_LEN + 65_532);
    let msg = Message::parse(&buf[..n]).unwrap();
    assert_eq!(msg.get::<Data>(), Some(Ok(Data(&data))));
    assert_eq!(
        stream_frame_len(&buf[..n], ChannelRange::Rfc5766),
        Some(Ok(n))
    );
    // One more byte of value pads past 65535.
    let data = vec![0x5Au8; 65_529];
    let mut w = MessageWriter::new(&mut buf, mt, TID).unwrap();
    assert_eq!(w.add(&Data(&data)), Err(EncodeError::BufferTooSmall));
    assert_eq!(w.finish(), HEADER_LEN);
    // A value longer than 16 bits cannot be expressed at all.
    let data = vec![0u8; 65_536];
    let mut w = MessageWriter::new(&mut buf, mt, TID).unwrap();
    assert!(w.add(&Data(&data)).is_err());
    assert_eq!(&buf[2..4], &[0, 0]);
}

#[test]
fn rfc8489_14_8_error_code_outside_300_to_699_is_not_encoded() {
    let mt = MessageType::new(Method::BINDING, Class::ErrorResponse);
    for code in [0u16, 99, 299, 700, 1234] {
        let mut buf = [0u8; 64];
        let mut w = MessageWriter::new(&mut buf, mt, TID).unwrap();
        let res = w.add(&ErrorCodeAttr {
            code: ErrorCode(code),
            reason: "",
        });
        let n = w.finish();
        // Either the writer refuses it, or what it wrote decodes to the same code.
        if res.is_ok() {
            let msg = Message::parse(&buf[..n]).unwrap();
            assert_eq!(
                msg.get::<ErrorCodeAttr>().unwrap().map(|e| e.code),
                Ok(ErrorCode(code)),
                "ErrorCode({code}) was encoded but does not round-trip"
            );
        }
    }
}

// ====================================================================== robustness

/// Raw attribute types worth trying: every known one, a few unknown ones.
fn raw_type() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => prop::sample::select(AttributeType::KNOWN.iter().map(|t| t.0).collect::<Vec<_>>()),
        1 => any::<u16>(),
    ]
}

/// A datagram with valid STUN framing but arbitrary attribute contents.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    (
        0u16..0x4000,
        prop_oneof![Just(COOKIE), any::<[u8; 4]>()],
        prop::collection::vec((raw_type(), bytes(40), any::<u8>()), 0..10),
    )
        .prop_map(|(t, cookie, attrs)| {
            let mut out = Vec::new();
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&cookie);
            out.extend_from_slice(&TID.0);
            for (ty, value, pad) in attrs {
                out.extend_from_slice(&ty.to_be_bytes());
                out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
                out.extend_from_slice(&value);
                while out.len() % 4 != 0 {
                    out.push(pad);
                }
            }
            let len = out.len() - HEADER_LEN;
            set_length(&mut out, len);
            out
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(prop::sample::Index, u8),
    SetByte(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    /// Truncate to a multiple of 4 and fix the length field, so the parser
    /// gets past the header checks.
    TruncateFixLength(prop::sample::Index),
    Extend(Vec<u8>),
    /// Append whole words and fix the length field.
    ExtendFixLength(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => any::<prop::sample::Index>().prop_map(Mutation::TruncateFixLength),
        1 => bytes(16).prop_map(Mutation::Extend),
        1 => prop::collection::vec(any::<u8>(), 1..5)
            .prop_map(|w| w.repeat(4))
            .prop_map(Mutation::ExtendFixLength),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::FlipBit(i, bit) => {
            if !bytes.is_empty() {
                let i = i.index(bytes.len());
                bytes[i] ^= 1 << bit;
            }
        }
        Mutation::SetByte(i, v) => {
            if !bytes.is_empty() {
                let i = i.index(bytes.len());
                bytes[i] = *v;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
        Mutation::TruncateFixLength(i) => {
            if bytes.len() >= HEADER_LEN {
                let n = HEADER_LEN + (i.index(bytes.len() - HEADER_LEN + 1) & !3);
                bytes.truncate(n);
                let len = bytes.len() - HEADER_LEN;
                set_length(bytes, len);
            }
        }
        Mutation::Extend(extra) => bytes.extend_from_slice(extra),
        Mutation::ExtendFixLength(extra) => {
            bytes.extend_from_slice(extra);
            if bytes.len() >= HEADER_LEN {
                if let Ok(len) = u16::try_from(bytes.len() - HEADER_LEN) {
                    set_length(bytes, usize::from(len));
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(300)) {
        decode_everything(&data);
    }

    #[test]
    fn arbitrary_bytes_with_stun_first_byte_never_panic(
        first in 0u8..4,
        data in bytes(300),
    ) {
        let mut d = data;
        d.insert(0, first);
        decode_everything(&d);
    }

    #[test]
    fn rfc8489_6_3_framed_garbage_never_panics(data in framed_garbage()) {
        decode_everything(&data);
    }

    #[test]
    fn mutated_messages_never_panic(
        mt in message_type(),
        body in prop::collection::vec(body_attribute(), 0..6),
        trailer in trailer(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let specs: Vec<Spec> = body.into_iter().chain(trailer).collect();
        let mut wire = encode(mt, TID, 0, &specs).unwrap();
        for m in &mutations {
            apply(&mut wire, m);
            decode_everything(&wire);
        }
    }

    /// A single bit flip anywhere in a protected message is always caught by
    /// the protection it carries (RFC 8489 §14.5-14.7).
    #[test]
    fn rfc8489_14_single_bit_flips_are_detected(
        mt in message_type(),
        body in prop::collection::vec(body_attribute(), 0..6),
        (key, _wrong) in key_pair(),
        p in (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_filter("unprotected", |(a, b, c)| *a || *b || *c)
            .prop_map(|(mi, mi256, fp)| Protect { mi, mi256, fp }),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut wire = encode_protected(mt, TID, &body, &key, p);
        let i = pos.index(wire.len());
        wire[i] ^= 1 << bit;
        decode_everything(&wire);
        if let Ok(msg) = Message::parse(&wire) {
            let accepted = (!p.mi || msg.verify_message_integrity(&key).is_ok())
                && (!p.mi256 || msg.verify_message_integrity_sha256(&key).is_ok())
                && (!p.fp || msg.verify_fingerprint() == Some(true));
            prop_assert!(!accepted, "flip of bit {} in byte {} went undetected", bit, i);
        }
    }
}

// ====================================================================== strategy coverage

#[test]
fn strategies_cover_every_attribute_variant() {
    let mut runner = TestRunner::deterministic();
    let all = (prop::collection::vec(body_attribute(), 0..12), trailer());
    let mut seen = BTreeSet::new();
    for _ in 0..2000 {
        let (body, trailer) = all.new_tree(&mut runner).unwrap().current();
        for s in body.iter().chain(&trailer) {
            seen.insert(variant_name(&s.attr()));
        }
    }
    assert_eq!(seen.len(), VARIANT_COUNT, "seen only {seen:?}");
}

#[test]
fn rfc8489_18_3_every_known_type_decodes_to_its_own_variant() {
    // A value of the right shape for each type decodes to a typed variant,
    // never to Attribute::Unknown; an unknown type always does.
    for t in AttributeType::KNOWN {
        for value in [
            &[][..],
            &[0u8; 1][..],
            &[0, 1, 0, 80, 10, 0, 0, 1][..],
            &[0u8; 4][..],
            &[0u8; 8][..],
            &[0, 2, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
            &[0u8; 20][..],
            &[0u8; 32][..],
            &[0, 0, 4, 1][..],
            &[1, 0, 0, 0][..],
        ] {
            if let Ok(a) = Attribute::decode(*t, value, &TID) {
                assert!(
                    !matches!(a, Attribute::Unknown { .. }),
                    "{t:?} decoded as Unknown"
                );
                assert_eq!(a.attr_type(), *t);
            }
        }
        assert!(t.is_known());
        assert!(t.name().is_some());
    }
    for t in [0x0000u16, 0x0002, 0x0024, 0x7FFF, 0x8029, 0xC057, 0xFFFF] {
        let t = AttributeType(t);
        assert!(!t.is_known());
        assert_eq!(
            Attribute::decode(t, b"abc", &TID),
            Ok(Attribute::Unknown {
                attr_type: t,
                value: b"abc"
            })
        );
    }
}

// ====================================================================== framing (RFC 8489 §5, §6.3, §14)

fn valid_binding() -> Vec<u8> {
    raw_message(BINDING_REQUEST, COOKIE, &[(0x8022, b"abcd")])
}

#[test]
fn rfc8489_6_3_length_not_multiple_of_4_is_rejected() {
    for extra in 1..4 {
        let mut m = valid_binding();
        m.extend(std::iter::repeat_n(0, extra));
        let len = m.len() - HEADER_LEN;
        set_length(&mut m, len);
        assert_eq!(
            Message::parse(&m).unwrap_err(),
            DecodeError::UnalignedLength
        );
    }
    // An unaligned length field on an otherwise aligned datagram, too.
    let mut m = valid_binding();
    let len = m.len() - HEADER_LEN - 2;
    set_length(&mut m, len);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        DecodeError::UnalignedLength
    );
}

#[test]
fn rfc8489_6_3_header_length_must_equal_datagram_length_minus_20() {
    let good = valid_binding();
    assert!(Message::parse(&good).is_ok());
    // Length field too small.
    let mut m = good.clone();
    set_length(&mut m, 4);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        DecodeError::LengthMismatch {
            header: 4,
            datagram: good.len()
        }
    );
    // Length field too large.
    let mut m = good.clone();
    set_length(&mut m, 12);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        DecodeError::LengthMismatch {
            header: 12,
            datagram: good.len()
        }
    );
    // Trailing bytes after the message.
    let mut m = good.clone();
    m.extend_from_slice(&[0; 4]);
    assert!(matches!(
        Message::parse(&m).unwrap_err(),
        DecodeError::LengthMismatch { .. }
    ));
    // Truncated datagram.
    assert!(matches!(
        Message::parse(&good[..good.len() - 4]).unwrap_err(),
        DecodeError::LengthMismatch { .. }
    ));
    // Shorter than a header.
    for n in 0..HEADER_LEN {
        assert!(matches!(
            Message::parse(&good[..n]).unwrap_err(),
            DecodeError::Truncated(_) | DecodeError::NotStun
        ));
    }
    // A header alone is a valid (empty) message.
    let empty = raw_message(BINDING_REQUEST, COOKIE, &[]);
    assert_eq!(empty.len(), HEADER_LEN);
    let msg = Message::parse(&empty).unwrap();
    assert_eq!(msg.attributes().count(), 0);
}

#[test]
fn rfc8489_6_top_two_bits_must_be_zero() {
    for top in [0x40u8, 0x80, 0xC0] {
        let mut m = valid_binding();
        m[0] |= top;
        assert_eq!(Message::parse(&m).unwrap_err(), DecodeError::NotStun);
    }
}

#[test]
fn rfc8489_6_3_wrong_magic_cookie_rejected_for_non_binding() {
    let bogus = [0xDE, 0xAD, 0xBE, 0xEF];
    for t in [
        ALLOCATE_REQUEST,
        MessageType::new(Method::REFRESH, Class::Request).to_u16(),
        MessageType::new(Method::SEND, Class::Indication).to_u16(),
        MessageType::new(Method::ALLOCATE, Class::SuccessResponse).to_u16(),
        MessageType::new(Method(0x0FFF), Class::Request).to_u16(),
    ] {
        let m = raw_message(t, bogus, &[(0x8022, b"abcd")]);
        assert_eq!(
            Message::parse(&m).unwrap_err(),
            DecodeError::WrongMagicCookie,
            "{t:#06x}"
        );
        let m = raw_message(t, COOKIE, &[(0x8022, b"abcd")]);
        assert!(Message::parse(&m).is_ok());
    }
}

#[test]
fn rfc8489_appendix_a_rfc3489_binding_without_cookie_is_accepted_as_classic() {
    let cookie = [0xDE, 0xAD, 0xBE, 0xEF];
    for class in [
        Class::Request,
        Class::SuccessResponse,
        Class::ErrorResponse,
        Class::Indication,
    ] {
        let t = MessageType::new(Method::BINDING, class).to_u16();
        let mapped: SocketAddr = "198.51.100.7:3478".parse().unwrap();
        let value = [0, 1, 0x0D, 0x96, 198, 51, 100, 7];
        let m = raw_message(t, cookie, &[(0x0001, &value)]);
        let msg = Message::parse(&m).unwrap();
        assert!(msg.is_classic());
        assert!(!msg.cookie().is_magic());
        assert_eq!(msg.cookie().0, cookie);
        assert_eq!(msg.method(), Method::BINDING);
        assert_eq!(msg.class(), class);
        assert_eq!(msg.transaction_id(), TID);
        assert_eq!(msg.get::<MappedAddress>(), Some(Ok(MappedAddress(mapped))));
    }
    // A response echoing the client's 128-bit id via with_cookie.
    let mut buf = [0u8; 64];
    let mut w = MessageWriter::with_cookie(
        &mut buf,
        MessageType::new(Method::BINDING, Class::SuccessResponse),
        cookie,
        TID,
    )
    .unwrap();
    let mapped: SocketAddr = "198.51.100.7:3478".parse().unwrap();
    w.add(&MappedAddress(mapped)).unwrap();
    let n = w.finish();
    assert_eq!(&buf[4..8], &cookie);
    let msg = Message::parse(&buf[..n]).unwrap();
    assert!(msg.is_classic());
    assert_eq!(msg.cookie().0, cookie);
    assert_eq!(msg.get::<MappedAddress>(), Some(Ok(MappedAddress(mapped))));
    // With the magic cookie it is not classic.
    let modern = valid_binding();
    let msg = Message::parse(&modern).unwrap();
    assert!(!msg.is_classic());
    assert!(msg.cookie().is_magic());
}

#[test]
fn rfc8489_14_attribute_overrunning_the_message_is_rejected() {
    let good = raw_message(
        BINDING_REQUEST,
        COOKIE,
        &[(0x8022, b"abcd"), (0x0006, b"user")],
    );
    assert!(Message::parse(&good).is_ok());
    // Claim a longer value for the last attribute.
    for claimed in [5u16, 8, 100, 0xFFFF] {
        let mut m = good.clone();
        let at = m.len() - 8 + 2;
        m[at..at + 2].copy_from_slice(&claimed.to_be_bytes());
        assert_eq!(
            Message::parse(&m).unwrap_err(),
            DecodeError::AttributeOverrun,
            "claimed {claimed}"
        );
    }
    // Claim a longer value for the first attribute: it swallows the second
    // attribute and runs past the end. (Claiming exactly 12 would swallow the
    // second attribute whole and be well-framed.)
    let mut m = good.clone();
    m[22..24].copy_from_slice(&12u16.to_be_bytes());
    assert_eq!(Message::parse(&m).unwrap().attributes().count(), 1);
    m[22..24].copy_from_slice(&13u16.to_be_bytes());
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        DecodeError::AttributeOverrun
    );
    // An attribute without its padding (RFC 8489 §14: values are padded to 4
    // bytes): SOFTWARE "abcdef" followed directly by SOFTWARE "gh". The body
    // is 16 bytes, aligned, but the parser skips 8 for the first value and
    // reads "gh" as a huge length.
    let mut m = raw_message(BINDING_REQUEST, COOKIE, &[]);
    m.extend_from_slice(&[0x80, 0x22, 0, 6]);
    m.extend_from_slice(b"abcdef");
    m.extend_from_slice(&[0x80, 0x22, 0, 2]);
    m.extend_from_slice(b"gh");
    let len = m.len() - HEADER_LEN;
    set_length(&mut m, len);
    assert_eq!(len, 16);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        DecodeError::AttributeOverrun
    );
}

#[test]
fn rfc8489_14_7_fingerprint_must_be_last() {
    let fp = 0u32.to_be_bytes();
    let m = raw_message(BINDING_REQUEST, COOKIE, &[(0x8028, &fp), (0x8022, b"abcd")]);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        DecodeError::FingerprintNotLast
    );
    let m = raw_message(BINDING_REQUEST, COOKIE, &[(0x8028, &fp), (0x8028, &fp)]);
    assert_eq!(
        Message::parse(&m).unwrap_err(),
        DecodeError::FingerprintNotLast
    );
    // Wrong FINGERPRINT length.
    let m = raw_message(BINDING_REQUEST, COOKIE, &[(0x8028, &[0; 8])]);
    assert!(matches!(
        Message::parse(&m).unwrap_err(),
        DecodeError::InvalidValue(_)
    ));
    // Last is fine; the writer's FINGERPRINT verifies and mutating it does not.
    let mut buf = [0u8; 64];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TID,
    )
    .unwrap();
    w.add(&Software("abcd")).unwrap();
    w.add_fingerprint().unwrap();
    assert_eq!(w.add(&Software("late")), Err(EncodeError::AfterIntegrity));
    assert_eq!(
        w.add_message_integrity(b"key"),
        Err(EncodeError::AfterIntegrity)
    );
    assert_eq!(
        w.add_message_integrity_sha256(b"key"),
        Err(EncodeError::AfterIntegrity)
    );
    assert_eq!(w.add_fingerprint(), Err(EncodeError::AfterIntegrity));
    let n = w.finish();
    let msg = Message::parse(&buf[..n]).unwrap();
    assert_eq!(msg.verify_fingerprint(), Some(true));
    buf[n - 1] ^= 1;
    assert_eq!(
        Message::parse(&buf[..n]).unwrap().verify_fingerprint(),
        Some(false)
    );
}

#[test]
fn rfc8489_14_5_only_mi_sha256_and_fingerprint_may_follow_message_integrity() {
    let mi = [0u8; 20];
    let mi256 = [0u8; 32];
    let fp = [0u8; 4];
    // Allowed orders.
    for attrs in [
        vec![(0x0008u16, &mi[..])],
        vec![(0x0008, &mi[..]), (0x001C, &mi256[..])],
        vec![(0x0008, &mi[..]), (0x8028, &fp[..])],
        vec![(0x0008, &mi[..]), (0x001C, &mi256[..]), (0x8028, &fp[..])],
        vec![(0x001C, &mi256[..]), (0x8028, &fp[..])],
    ] {
        let m = raw_message(BINDING_REQUEST, COOKIE, &attrs);
        assert!(Message::parse(&m).is_ok(), "{attrs:?}");
    }
    // Anything else after MESSAGE-INTEGRITY, comprehension-required or not.
    for (t, v) in [
        (0x8022u16, &b"abcd"[..]),
        (0x0006, b"user"),
        (0x7FFF, b""),
        (0xFFFF, b"zz"),
        (0x0008, &mi[..]),
    ] {
        let m = raw_message(BINDING_REQUEST, COOKIE, &[(0x0008, &mi), (t, v)]);
        assert_eq!(
            Message::parse(&m).unwrap_err(),
            DecodeError::AttributeAfterIntegrity(t),
            "{t:#06x}"
        );
        // Also when MESSAGE-INTEGRITY-SHA256 sits in between.
        let m = raw_message(
            BINDING_REQUEST,
            COOKIE,
            &[(0x0008, &mi), (0x001C, &mi256), (t, v)],
        );
        assert_eq!(
            Message::parse(&m).unwrap_err(),
            DecodeError::AttributeAfterIntegrity(t)
        );
    }
    // RFC 8489 §14.6: only FINGERPRINT may follow MESSAGE-INTEGRITY-SHA256.
    for (t, v) in [
        (0x0008u16, &mi[..]),
        (0x8022, b"abcd"),
        (0x001C, &mi256[..]),
    ] {
        let m = raw_message(BINDING_REQUEST, COOKIE, &[(0x001C, &mi256), (t, v)]);
        assert_eq!(
            Message::parse(&m).unwrap_err(),
            DecodeError::AttributeAfterIntegrity(t),
            "{t:#06x}"
        );
    }
    // Wrong integrity lengths.
    for (t, len) in [
        (0x0008u16, 16usize),
        (0x0008, 32),
        (0x001C, 12),
        (0x001C, 20 + 2),
        (0x001C, 36),
    ] {
        let v = vec![0u8; len];
        let m = raw_message(BINDING_REQUEST, COOKIE, &[(t, &v)]);
        assert!(
            matches!(
                Message::parse(&m).unwrap_err(),
                DecodeError::InvalidValue(_)
            ),
            "{t:#06x} length {len}"
        );
    }
    // The writer enforces the same order.
    let mut buf = [0u8; 128];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::Request),
        TID,
    )
    .unwrap();
    w.add_message_integrity(b"k").unwrap();
    assert_eq!(w.add(&Software("x")), Err(EncodeError::AfterIntegrity));
    assert_eq!(
        w.add_message_integrity(b"k"),
        Err(EncodeError::AfterIntegrity)
    );
    w.add_message_integrity_sha256(b"k").unwrap();
    assert_eq!(
        w.add_message_integrity_sha256(b"k"),
        Err(EncodeError::AfterIntegrity)
    );
    assert_eq!(
        w.add_message_integrity(b"k"),
        Err(EncodeError::AfterIntegrity)
    );
    w.add_fingerprint().unwrap();
    let n = w.finish();
    let msg = Message::parse(&buf[..n]).unwrap();
    assert_eq!(msg.verify_message_integrity(b"k"), Ok(()));
    assert_eq!(msg.verify_message_integrity_sha256(b"k"), Ok(()));
    assert_eq!(msg.verify_fingerprint(), Some(true));
}

#[test]
fn rfc8489_6_3_1_unknown_comprehension_required_attributes_get_420() {
    let m = raw_message(
        BINDING_REQUEST,
        COOKIE,
        &[
            (0x0006, b"user"),       // USERNAME: known
            (0x7FFF, b"a"),          // unknown, comprehension-required
            (0x8029, &[0; 8]),       // ICE-CONTROLLED: unknown here, optional
            (0x0002, b""),           // RFC 3489 RESPONSE-ADDRESS: unknown, required
            (0x8000, &[2, 0, 0, 0]), // ADDITIONAL-ADDRESS-FAMILY: known
            (0xFFFF, b"b"),          // unknown, optional
            (0xC001, b""),           // unknown, optional
            (0x0024, &[0; 4]),       // PRIORITY: unknown here, required
            (0x7FFF, b"again"),      // duplicates are reported as they appear
        ],
    );
    let msg = Message::parse(&m).unwrap();
    let unknown: Vec<AttributeType> = msg
        .unknown_comprehension_required(|t| t.is_known())
        .collect();
    assert_eq!(
        unknown,
        [
            AttributeType(0x7FFF),
            AttributeType(0x0002),
            AttributeType(0x0024),
            AttributeType(0x7FFF)
        ]
    );
    // A server that understands PRIORITY does not report it.
    let unknown: Vec<AttributeType> = msg
        .unknown_comprehension_required(|t| t.is_known() || t == AttributeType(0x0024))
        .collect();
    assert_eq!(
        unknown,
        [
            AttributeType(0x7FFF),
            AttributeType(0x0002),
            AttributeType(0x7FFF)
        ]
    );
    // A server that understands nothing reports every attribute below 0x8000.
    let all: Vec<AttributeType> = msg.unknown_comprehension_required(|_| false).collect();
    assert!(all.iter().all(|t| t.0 < 0x8000));
    assert_eq!(all.len(), 5);
    // Nothing unknown and required: empty.
    let ok = raw_message(
        BINDING_REQUEST,
        COOKIE,
        &[(0x0006, b"user"), (0x8029, &[0; 8])],
    );
    assert_eq!(
        Message::parse(&ok)
            .unwrap()
            .unknown_comprehension_required(|t| t.is_known())
            .count(),
        0
    );

    // The 420 response carrying them round-trips.
    let types = [
        AttributeType(0x7FFF),
        AttributeType(0x0002),
        AttributeType(0x0024),
    ];
    let mut buf = [0u8; 128];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::BINDING, Class::ErrorResponse),
        TID,
    )
    .unwrap();
    w.add(&ErrorCodeAttr::new(ErrorCode::UNKNOWN_ATTRIBUTE))
        .unwrap();
    w.add(&UnknownAttributesList(&types)).unwrap();
    let n = w.finish();
    let resp = Message::parse(&buf[..n]).unwrap();
    let ec = resp.get::<ErrorCodeAttr>().unwrap().unwrap();
    assert_eq!(ec.code, ErrorCode::UNKNOWN_ATTRIBUTE);
    assert_eq!(ec.reason, "Unknown Attribute");
    let listed: Vec<AttributeType> = resp
        .get::<UnknownAttributes>()
        .unwrap()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(listed, types);
}

#[test]
fn rfc8489_14_text_and_reason_length_limits() {
    let tid = TID;
    let mut buf = vec![0u8; 4096];
    let mt = MessageType::new(Method::BINDING, Class::Request);
    // (limit in bytes, attribute built from a string of that many bytes)
    type Make = fn(&str) -> Attribute<'_>;
    let cases: [(usize, Make); 6] = [
        (513, |s| Attribute::Username(Username(s))),
        (763, |s| Attribute::Realm(Realm(s))),
        (763, |s| Attribute::Nonce(Nonce(s))),
        (763, |s| Attribute::Software(Software(s))),
        (255, |s| Attribute::AlternateDomain(AlternateDomain(s))),
        (763, |s| {
            Attribute::ErrorCode(ErrorCodeAttr {
                code: ErrorCode::BAD_REQUEST,
                reason: s,
            })
        }),
    ];
    for (limit, make) in cases {
        let at_limit = "a".repeat(limit);
        let over = "a".repeat(limit + 1);
        let mut w = MessageWriter::new(&mut buf, mt, tid).unwrap();
        assert_eq!(w.add(&make(&at_limit)), Ok(()), "limit {limit}");
        assert!(
            matches!(w.add(&make(&over)), Err(EncodeError::ValueTooLong(_))),
            "limit {limit} + 1"
        );
        let n = w.finish();
        let msg = Message::parse(&buf[..n]).unwrap();
        let decoded: Vec<_> = msg.decoded_attributes().collect();
        assert_eq!(decoded, [Ok(make(&at_limit))]);
    }
    // Decoding rejects over-long values too.
    let v = vec![b'a'; 514];
    assert!(matches!(
        Username::decode(&v, &tid),
        Err(DecodeError::TooLong(_))
    ));
    assert!(Username::decode(&v[..513], &tid).is_ok());
    assert!(matches!(
        Username::decode(&[0xFF, 0xFE], &tid),
        Err(DecodeError::NotUtf8(_))
    ));
    // ERROR-CODE classes outside 3..=6 and numbers over 99 are rejected.
    for value in [[0u8, 0, 2, 0], [0, 0, 7, 0], [0, 0, 4, 100]] {
        assert!(ErrorCodeAttr::decode(&value, &tid).is_err(), "{value:?}");
    }
    assert_eq!(
        ErrorCodeAttr::decode(&[0, 0, 4, 20], &tid).unwrap().code,
        ErrorCode::UNKNOWN_ATTRIBUTE
    );
    // Reserved bits above the 3-bit class are ignored.
    assert_eq!(
        ErrorCodeAttr::decode(&[0, 0, 0xFC, 1], &tid).unwrap().code,
        ErrorCode::UNAUTHORIZED
    );
}

// ====================================================================== ChannelData (RFC 8656 §12)

fn channel() -> impl Strategy<Value = ChannelNumber> {
    (ChannelNumber::MIN..=ChannelNumber::MAX_RFC5766).prop_map(ChannelNumber)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// RFC 8656 §12.4/§12.5: encode then parse gives back the channel and data,
    /// over UDP (no padding) and over streams (padded to 4 bytes).
    #[test]
    fn rfc8656_12_4_channel_data_round_trips(
        ch in channel(),
        data in bytes(600),
        stream in any::<bool>(),
    ) {
        let mut out = vec![0xEEu8; 700];
        let n = ChannelData::encode(ch, &data, &mut out, stream).unwrap();
        prop_assert_eq!(n, frame_len(data.len(), stream));
        prop_assert_eq!(n, if stream { (4 + data.len()).div_ceil(4) * 4 } else { 4 + data.len() });
        prop_assert_eq!(&out[..4], &write_header(ch, u16::try_from(data.len()).unwrap())[..]);
        prop_assert!(out[4 + data.len()..n].iter().all(|&b| b == 0), "padding is zeros");
        let cd = ChannelData::parse(&out[..n]).unwrap();
        prop_assert_eq!(cd.channel, ch);
        prop_assert_eq!(cd.data, &data[..]);
        // Trailing bytes past the declared length are ignored (UDP padding).
        let cd = ChannelData::parse(&out[..n + 3]).unwrap();
        prop_assert_eq!(cd.data, &data[..]);
        prop_assert!(ch.is_valid(ChannelRange::Rfc5766));
        prop_assert_eq!(ch.is_valid(ChannelRange::Rfc8656), ch.0 <= 0x4FFF);
        for range in [ChannelRange::Rfc8656, ChannelRange::Rfc5766] {
            let expected = if ch.is_valid(range) { PacketKind::ChannelData } else { PacketKind::Other };
            prop_assert_eq!(demultiplex(&out[..n], range), expected);
        }
        // RFC 8656 §12.5: a datagram shorter than the length claims is rejected.
        if !data.is_empty() {
            prop_assert!(matches!(
                ChannelData::parse(&out[..4 + data.len() - 1]),
                Err(DecodeError::Truncated(_))
            ));
        }
    }

    /// Over a stream, `stream_frame_len` splits a concatenation of STUN
    /// messages and padded ChannelData messages back into its frames.
    #[test]
    fn rfc8656_12_5_stream_framing_splits_concatenated_frames(
        frames in prop::collection::vec(
            prop_oneof![
                (channel(), bytes(100)).prop_map(|(c, d)| (Some(c), d)),
                prop::collection::vec(body_attribute(), 0..3).prop_map(|attrs| {
                    let wire = encode(MessageType::new(Method::SEND, Class::Indication), TID, 0, &attrs).unwrap();
                    (None, wire)
                }),
            ],
            0..8,
        ),
        chunk in 1usize..64,
    ) {
        let mut stream = Vec::new();
        for (ch, payload) in &frames {
            match ch {
                Some(ch) => {
                    let mut out = vec![0u8; payload.len() + 8];
                    let n = ChannelData::encode(*ch, payload, &mut out, true).unwrap();
                    prop_assert_eq!(n % 4, 0);
                    stream.extend_from_slice(&out[..n]);
                }
                None => stream.extend_from_slice(payload),
            }
        }
        // Split, feeding the buffer in chunks as a reader would.
        let mut received = Vec::new();
        let mut fed = 0;
        let mut parsed = Vec::new();
        loop {
            match stream_frame_len(&received, ChannelRange::Rfc5766) {
                Some(Ok(n)) if received.len() >= n => {
                    let frame: Vec<u8> = received.drain(..n).collect();
                    parsed.push(frame);
                    continue;
                }
                Some(Err(e)) => prop_assert!(false, "framing error {e}"),
                _ => {}
            }
            if fed == stream.len() {
                break;
            }
            let end = (fed + chunk).min(stream.len());
            received.extend_from_slice(&stream[fed..end]);
            fed = end;
        }
        prop_assert!(received.is_empty());
        prop_assert_eq!(parsed.len(), frames.len());
        for (frame, (ch, payload)) in parsed.iter().zip(&frames) {
            match ch {
                Some(ch) => {
                    let cd = ChannelData::parse(frame).unwrap();
                    prop_assert_eq!(cd.channel, *ch);
                    prop_assert_eq!(cd.data, &payload[..]);
                }
                None => {
                    prop_assert_eq!(frame, payload);
                    prop_assert!(Message::parse(frame).is_ok());
                }
            }
        }
    }

    #[test]
    fn channel_data_and_framing_never_panic_on_arbitrary_bytes(data in bytes(80)) {
        let _ = ChannelData::parse(&data);
        for range in [ChannelRange::Rfc8656, ChannelRange::Rfc5766] {
            let _ = demultiplex(&data, range);
            let _ = stream_frame_len(&data, range);
        }
        decode_everything(&data);
    }
}

#[test]
fn rfc8656_12_5_frame_len_pads_only_streams() {
    for (data_len, udp, stream) in [
        (0usize, 4usize, 4usize),
        (1, 5, 8),
        (2, 6, 8),
        (3, 7, 8),
        (4, 8, 8),
        (5, 9, 12),
        (65535, 65539, 65540),
    ] {
        assert_eq!(frame_len(data_len, false), udp);
        assert_eq!(frame_len(data_len, true), stream);
    }
}

#[test]
fn rfc8656_12_5_stream_frame_len() {
    // Fewer than 4 bytes: not enough to know.
    for n in 0..4 {
        assert_eq!(
            stream_frame_len(&[0x40, 0x00, 0x00, 0x05][..n], ChannelRange::Rfc5766),
            None
        );
    }
    // ChannelData: 4 + length, padded to 4.
    for (len, expect) in [(0u16, 4usize), (1, 8), (4, 8), (5, 12), (0xFFFF, 0x10004)] {
        let l = len.to_be_bytes();
        assert_eq!(
            stream_frame_len(&[0x40, 0x01, l[0], l[1]], ChannelRange::Rfc8656),
            Some(Ok(expect))
        );
    }
    // A 0x5xxx..0x7xxx channel is ChannelData only in the RFC 5766 range.
    assert_eq!(
        stream_frame_len(&[0x7F, 0xFF, 0, 3], ChannelRange::Rfc5766),
        Some(Ok(8))
    );
    assert!(matches!(
        stream_frame_len(&[0x7F, 0xFF, 0, 3], ChannelRange::Rfc8656),
        Some(Err(_))
    ));
    // STUN: 20 + length (not padded further; the length is already a multiple of 4).
    assert_eq!(
        stream_frame_len(&[0x00, 0x01, 0x00, 0x58], ChannelRange::Rfc5766),
        Some(Ok(20 + 0x58))
    );
    assert_eq!(
        stream_frame_len(&[0x01, 0x01, 0x00, 0x00], ChannelRange::Rfc8656),
        Some(Ok(20))
    );
    // Anything else is a framing error.
    for first in [0x04u8, 0x14, 0x3F, 0x80, 0xFF] {
        assert!(matches!(
            stream_frame_len(&[first, 0, 0, 4], ChannelRange::Rfc5766),
            Some(Err(_))
        ));
    }
}

#[test]
fn rfc8656_12_5_udp_datagram_shorter_than_length_is_rejected() {
    let mut out = [0u8; 16];
    let n = ChannelData::encode(ChannelNumber(0x4001), b"hello", &mut out, false).unwrap();
    assert_eq!(n, 9);
    for cut in 0..n {
        assert!(
            matches!(
                ChannelData::parse(&out[..cut]),
                Err(DecodeError::Truncated(_))
            ),
            "{cut} bytes"
        );
    }
    let cd = ChannelData::parse(&out[..n]).unwrap();
    assert_eq!(cd.channel, ChannelNumber(0x4001));
    assert_eq!(cd.data, b"hello");
    // Padding after the data (as over streams) is accepted and not returned.
    let cd = ChannelData::parse(&out[..12]).unwrap();
    assert_eq!(cd.data, b"hello");
    // An empty payload is fine.
    let cd = ChannelData::parse(&[0x40, 0x00, 0x00, 0x00]).unwrap();
    assert!(cd.data.is_empty());
    // Buffer too small to encode into.
    assert_eq!(
        ChannelData::encode(ChannelNumber(0x4001), b"hello", &mut out[..8], false),
        Err(EncodeError::BufferTooSmall)
    );
    assert_eq!(
        ChannelData::encode(ChannelNumber(0x4001), b"hello", &mut out[..9], true),
        Err(EncodeError::BufferTooSmall)
    );
    let big = vec![0u8; 65536];
    let mut huge = vec![0u8; 70_000];
    assert!(matches!(
        ChannelData::encode(ChannelNumber(0x4001), &big, &mut huge, false),
        Err(EncodeError::ValueTooLong(_))
    ));
}

#[test]
fn rfc7983_7_demultiplex_by_first_byte() {
    for b in 0u8..=255 {
        let datagram = [b, 0, 0, 0];
        let strict = demultiplex(&datagram, ChannelRange::Rfc8656);
        let wide = demultiplex(&datagram, ChannelRange::Rfc5766);
        match b {
            0..=3 => {
                assert_eq!(strict, PacketKind::Stun, "{b:#04x}");
                assert_eq!(wide, PacketKind::Stun, "{b:#04x}");
            }
            0x40..=0x4F => {
                assert_eq!(strict, PacketKind::ChannelData, "{b:#04x}");
                assert_eq!(wide, PacketKind::ChannelData, "{b:#04x}");
            }
            0x50..=0x7F => {
                assert_eq!(strict, PacketKind::Other, "{b:#04x}");
                assert_eq!(wide, PacketKind::ChannelData, "{b:#04x}");
            }
            _ => {
                assert_eq!(strict, PacketKind::Other, "{b:#04x}");
                assert_eq!(wide, PacketKind::Other, "{b:#04x}");
            }
        }
        // Only the first byte matters.
        assert_eq!(demultiplex(&[b], ChannelRange::Rfc8656), strict);
        assert_eq!(demultiplex(&[b], ChannelRange::Rfc5766), wide);
    }
    assert_eq!(demultiplex(&[], ChannelRange::Rfc5766), PacketKind::Other);
    assert_eq!(demultiplex(&[], ChannelRange::Rfc8656), PacketKind::Other);
    assert_eq!(ChannelRange::default(), ChannelRange::Rfc5766);
    assert!(!ChannelNumber(0x3FFF).is_valid(ChannelRange::Rfc5766));
    assert!(ChannelNumber(0x4000).is_valid(ChannelRange::Rfc8656));
    assert!(ChannelNumber(0x4FFF).is_valid(ChannelRange::Rfc8656));
    assert!(!ChannelNumber(0x5000).is_valid(ChannelRange::Rfc8656));
    assert!(ChannelNumber(0x7FFF).is_valid(ChannelRange::Rfc5766));
    assert!(!ChannelNumber(0x8000).is_valid(ChannelRange::Rfc5766));
}
