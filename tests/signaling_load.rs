//! 1,000 concurrent WebSocket connections in 500 rooms of two on loopback:
//! every message reaches exactly its room's other member, in order, once.
//! Bounded in time (a correctness test under load, not a benchmark).

mod common;
#[path = "signaling/support.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use ringturn::signaling::Limits;
use serde_json::json;
use support::WsClient;

const CLIENTS: usize = 1000;
const ROOMS: usize = CLIENTS / 2;
const MESSAGES: u64 = 20;
const LIMIT: Duration = Duration::from_secs(90);

/// Client `i`'s room and partner.
fn room(i: usize) -> String {
    format!("room-{}", i / 2)
}

fn partner(i: usize) -> usize {
    i ^ 1
}

#[tokio::test]
async fn ws_1000_connections_in_500_rooms_deliver_every_message_exactly_to_the_right_peer() {
    let srv = support::server(Limits {
        max_connections: CLIENTS + 10,
        max_rooms: ROOMS + 10,
        ..Limits::default()
    });
    let addr = srv.local_addr();
    let started = Instant::now();
    let run = async {
        // Connect in batches: the listen backlog is finite.
        let mut clients: Vec<WsClient> = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS / 50 {
            clients.extend(join_all((0..50).map(|_| WsClient::connect(addr))).await);
        }
        support::wait_connections(&srv, CLIENTS).await;

        // Even clients open the rooms, then odd ones join them.
        let ids: Vec<String> = join_all(clients.iter_mut().enumerate().step_by(2).map(
            |(i, c)| async move {
                c.join(&room(i)).await;
                let v = c.expect("joined").await;
                assert_eq!(v["room"], room(i));
                v["id"].as_str().unwrap().to_owned()
            },
        ))
        .await;
        assert_eq!(srv.counts().1, ROOMS);
        join_all(clients.iter_mut().enumerate().map(|(i, c)| async move {
            if i % 2 == 1 {
                c.join(&room(i)).await;
                let v = c.expect("joined").await;
                assert_eq!(v["room"], room(i));
            } else {
                let v = c.expect("otherJoin").await;
                assert_eq!(v["room"], room(i), "client {i} heard of a joiner elsewhere");
            }
        }))
        .await;
        assert_eq!(srv.counts(), (CLIENTS, ROOMS));
        assert_eq!(ids.len(), ROOMS);

        // Everyone talks at once; everyone hears exactly its partner, in order.
        let received: Vec<u64> =
            join_all(clients.iter_mut().enumerate().map(|(i, c)| async move {
                for seq in 0..MESSAGES {
                    c.message(
                        &room(i),
                        json!({"from": i, "seq": seq, "pad": "x".repeat(64)}),
                    )
                    .await;
                }
                for seq in 0..MESSAGES {
                    let v = c.expect("message").await;
                    assert_eq!(v["room"], room(i), "client {i}: {v}");
                    assert_eq!(
                        v["data"]["from"],
                        partner(i),
                        "client {i} got another's message: {v}"
                    );
                    assert_eq!(v["data"]["seq"], seq, "client {i}: out of order: {v}");
                }
                c.silent_for(Duration::from_millis(300)).await;
                MESSAGES
            }))
            .await;
        let total: u64 = received.iter().sum();
        assert_eq!(total, CLIENTS as u64 * MESSAGES);

        // Everyone leaves; the rooms are gone.
        drop(clients);
        let deadline = Instant::now() + Duration::from_secs(20);
        while srv.counts() != (0, 0) {
            assert!(Instant::now() < deadline, "left behind: {:?}", srv.counts());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("not done within {LIMIT:?}"));
    eprintln!(
        "{CLIENTS} clients, {ROOMS} rooms, {} messages delivered in {:.1?}",
        CLIENTS as u64 * MESSAGES,
        started.elapsed()
    );
}
