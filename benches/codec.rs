//! Codec costs: decode, encode with integrity, integrity check, ChannelData.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringturn::stun::{
    ChannelData, ChannelNumber, Class, Lifetime, Message, MessageType, MessageWriter, Method,
    Nonce, Realm, RequestedTransport, Software, TransactionId, TransportProtocol, Username,
    XorMappedAddress,
};

fn allocate_request(key: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    let mut w = MessageWriter::new(
        &mut buf,
        MessageType::new(Method::ALLOCATE, Class::Request),
        TransactionId([7; 12]),
    )
    .unwrap();
    w.add(&RequestedTransport(TransportProtocol::UDP)).unwrap();
    w.add(&Lifetime(600)).unwrap();
    w.add(&Username("alice")).unwrap();
    w.add(&Realm("example.org")).unwrap();
    w.add(&Nonce("obMatJos2AAADAAAAAGlTYXcN7m0cVwG4bqXCHw8x2w"))
        .unwrap();
    w.add_message_integrity(key).unwrap();
    w.add_fingerprint().unwrap();
    let n = w.finish();
    buf.truncate(n);
    buf
}

fn codec(c: &mut Criterion) {
    let key = ringturn::auth::keys::md5_key("alice", "example.org", "secret");
    let req = allocate_request(&key);

    let mut g = c.benchmark_group("stun");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_allocate_request", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&req)).unwrap();
            black_box(m.get::<Username>());
            black_box(m.get::<RequestedTransport>());
        })
    });
    g.bench_function("verify_message_integrity", |b| {
        let m = Message::parse(&req).unwrap();
        b.iter(|| black_box(m.verify_message_integrity(black_box(&key))).unwrap())
    });
    g.bench_function("verify_fingerprint", |b| {
        let m = Message::parse(&req).unwrap();
        b.iter(|| assert_eq!(black_box(m.verify_fingerprint()), Some(true)))
    });
    g.bench_function("encode_success_with_integrity_and_fingerprint", |b| {
        let mut buf = [0u8; 256];
        let mapped = "192.0.2.1:40000".parse().unwrap();
        b.iter(|| {
            let mut w = MessageWriter::new(
                &mut buf,
                MessageType::new(Method::ALLOCATE, Class::SuccessResponse),
                TransactionId([7; 12]),
            )
            .unwrap();
            w.add(&XorMappedAddress(mapped)).unwrap();
            w.add(&Lifetime(600)).unwrap();
            w.add(&Software("ringturn")).unwrap();
            w.add_message_integrity(black_box(&key)).unwrap();
            w.add_fingerprint().unwrap();
            black_box(w.finish())
        })
    });
    let payload = [0x55u8; 100];
    let mut frame = [0u8; 104];
    ChannelData::encode(ChannelNumber(0x4001), &payload, &mut frame, false).unwrap();
    g.bench_function("channel_data_parse", |b| {
        b.iter(|| black_box(ChannelData::parse(black_box(&frame)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
