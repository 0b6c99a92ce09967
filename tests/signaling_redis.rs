//! Signaling rooms shared by two nodes on one Redis (issue 14), with a real
//! Redis: Debian's `redis-server`, started by the test on loopback with its
//! own port and directory and stopped by its process group. WebSocket clients
//! on different nodes meet in one room of two; a third on either node gets
//! `full`; a node killed with SIGKILL frees its members' seats (the member
//! left gets `bye`); Redis stopping makes joins fail with an `unavailable`
//! error and they work again once it is back.

#[path = "signaling/support.rs"]
mod support;

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{require_tool, GroupGuard};
use ringturn::signaling::{self, Limits, SignalingConfig, SignalingServer};
use serde_json::json;
use support::WsClient;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A redis-server of the test's own, removed with its directory on drop.
struct Redis {
    guard: Option<GroupGuard>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Self {
        require_tool("redis-server");
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("ringturn-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis directory");
        let mut r = Self {
            guard: None,
            port,
            dir,
        };
        r.run();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn run(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir);
        self.guard = Some(GroupGuard::spawn(cmd));
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer PING within 10 s");
    }

    fn stop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            let _ = g.kill_and_reap();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// Redis's raw reply to an inline command.
fn redis_reply(port: u16, command: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = vec![0u8; 4096];
    if s.write_all(format!("{command}\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A signaling node in this process, on the shared Redis.
fn node(redis: &Redis) -> SignalingServer {
    signaling::spawn(SignalingConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        limits: Limits::default(),
        ice: support::ice("127.0.0.1:3478".parse().unwrap()),
        redis: Some(redis.url()),
    })
    .expect("a signaling node starts")
}

#[tokio::test]
async fn a_room_of_two_spans_two_nodes_and_a_third_on_either_gets_full() {
    let redis = Redis::start();
    let (n1, n2) = (node(&redis), node(&redis));
    let mut a = WsClient::connect(n1.local_addr()).await;
    let mut b = WsClient::connect(n2.local_addr()).await;

    a.join("r").await;
    let a_id = a.expect("joined").await["id"].clone();
    b.join("r").await;
    let b_id = b.expect("joined").await["id"].clone();
    let other = a.expect("otherJoin").await;
    assert_eq!(other["id"], b_id, "A hears B's id from the other node");

    // offer / answer / candidate, end to end, to the other member only.
    let offer = json!({"type": "offer", "sdp": "v=0 one"});
    b.message("r", offer.clone()).await;
    assert_eq!(a.expect("message").await["data"], offer);
    let answer = json!({"type": "answer", "sdp": "v=0 two"});
    a.message("r", answer.clone()).await;
    assert_eq!(b.expect("message").await["data"], answer);
    a.silent_for(Duration::from_millis(300)).await;
    b.silent_for(Duration::from_millis(300)).await;

    // The room is full for everyone, decided in Redis.
    let mut c = WsClient::connect(n1.local_addr()).await;
    let mut d = WsClient::connect(n2.local_addr()).await;
    c.join("r").await;
    c.expect("full").await;
    d.join("r").await;
    d.expect("full").await;

    // B leaves: A hears bye, and D can take the seat.
    b.leave("r").await;
    b.expect("leaved").await;
    assert_eq!(a.expect("bye").await["id"], b_id);
    d.join("r").await;
    let d_id = d.expect("joined").await["id"].clone();
    assert_eq!(a.expect("otherJoin").await["id"], d_id);
    d.message("r", json!("hello")).await;
    assert_eq!(a.expect("message").await["data"], json!("hello"));
    assert_ne!(a_id, d_id);
}

#[tokio::test]
async fn a_node_killed_with_sigkill_frees_its_members_seats() {
    require_tool("redis-server");
    let redis = Redis::start();
    let n1 = node(&redis);
    // Node 2 is a ringturn process, so it can die without cleaning up.
    let http = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringturn"));
    cmd.args([
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        "--min-port=47000",
        "--max-port=47099",
        "--user=alice:secret",
        "--realm=example.org",
        "--signaling-listening-ip=127.0.0.1",
    ])
    .arg(format!("--listening-port={}", free_port()))
    .arg(format!("--signaling-listening-port={http}"))
    .arg(format!("--signaling-redis={}", redis.url()));
    let mut n2 = GroupGuard::spawn(cmd);
    let n2_addr: SocketAddr = ([127, 0, 0, 1], http).into();
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(n2_addr).is_err() {
        assert!(Instant::now() < until, "node 2 did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut a = WsClient::connect(n1.local_addr()).await;
    let mut b = WsClient::connect(n2_addr).await;
    a.join("r").await;
    a.expect("joined").await;
    b.join("r").await;
    let b_id = b.expect("joined").await["id"].clone();
    assert_eq!(a.expect("otherJoin").await["id"], b_id);

    let killed = Instant::now();
    n2.kill_and_reap().expect("SIGKILL node 2");
    // `expect` waits up to 10 s; the heartbeat expires after 3 s and the
    // sweep runs every second.
    assert_eq!(
        a.expect("bye").await["id"],
        b_id,
        "A hears B's node is gone"
    );
    eprintln!("bye {:?} after the SIGKILL", killed.elapsed());

    // A fresh member can take the seat.
    let mut c = WsClient::connect(n1.local_addr()).await;
    c.join("r").await;
    c.expect("joined").await;
    a.expect("otherJoin").await;
}

#[tokio::test]
async fn joins_fail_with_an_error_while_redis_is_down_and_work_when_it_is_back() {
    let mut redis = Redis::start();
    let n1 = node(&redis);
    let mut a = WsClient::connect(n1.local_addr()).await;
    a.join("r").await;
    a.expect("joined").await;

    redis.stop();
    let mut b = WsClient::connect(n1.local_addr()).await;
    b.join("s").await;
    b.expect_error("unavailable").await;
    // A message that cannot reach the other nodes is not lost silently.
    a.message("r", json!("anyone?")).await;
    a.expect_error("unavailable").await;

    redis.run();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        b.join("s").await;
        let v = b.recv().await;
        if v["type"] == "joined" {
            break;
        }
        assert_eq!(v["code"], "unavailable", "{v}");
        assert!(Instant::now() < until, "joins did not recover with Redis");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// 1,000 WebSocket clients in 500 rooms, each room split over the two
/// nodes (even clients on node 1, odd on node 2): every message reaches
/// exactly its room's other member, in order, once; leaving empties both
/// nodes and Redis.
#[tokio::test]
async fn ws_1000_clients_in_500_rooms_across_two_nodes_deliver_every_message_once() {
    use futures_util::future::join_all;
    const CLIENTS: usize = 1000;
    const ROOMS: usize = CLIENTS / 2;
    const MESSAGES: u64 = 10;
    let redis = Redis::start();
    let limits = Limits {
        max_connections: CLIENTS,
        max_rooms: ROOMS + 10,
        ..Limits::default()
    };
    let spawn = || {
        signaling::spawn(SignalingConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            limits,
            ice: support::ice("127.0.0.1:3478".parse().unwrap()),
            redis: Some(redis.url()),
        })
        .unwrap()
    };
    let nodes = [spawn(), spawn()];
    let room = |i: usize| format!("room-{}", i / 2);
    let started = Instant::now();
    let run = async {
        let mut clients: Vec<WsClient> = Vec::with_capacity(CLIENTS);
        for batch in 0..CLIENTS / 50 {
            clients.extend(
                join_all(
                    (0..50).map(|k| WsClient::connect(nodes[(batch * 50 + k) % 2].local_addr())),
                )
                .await,
            );
        }
        for n in &nodes {
            support::wait_connections(n, CLIENTS / 2).await;
        }
        // Even clients (node 1) open the rooms, then odd ones (node 2) join.
        join_all(clients.iter_mut().enumerate().step_by(2).map(|(i, c)| {
            let name = room(i);
            async move {
                c.join(&name).await;
                assert_eq!(c.expect("joined").await["room"], name.as_str());
            }
        }))
        .await;
        join_all(clients.iter_mut().enumerate().map(|(i, c)| {
            let name = room(i);
            async move {
                if i % 2 == 1 {
                    c.join(&name).await;
                    assert_eq!(c.expect("joined").await["room"], name.as_str());
                } else {
                    let v = c.expect("otherJoin").await;
                    assert_eq!(
                        v["room"],
                        name.as_str(),
                        "client {i} heard of a joiner elsewhere"
                    );
                }
            }
        }))
        .await;
        let received: Vec<u64> = join_all(clients.iter_mut().enumerate().map(|(i, c)| {
            let name = room(i);
            async move {
                for seq in 0..MESSAGES {
                    c.message(&name, json!({"from": i, "seq": seq})).await;
                }
                for seq in 0..MESSAGES {
                    let v = c.expect("message").await;
                    assert_eq!(v["room"], name.as_str(), "client {i}: {v}");
                    assert_eq!(
                        v["data"]["from"],
                        i ^ 1,
                        "client {i} got another's message: {v}"
                    );
                    assert_eq!(v["data"]["seq"], seq, "client {i}: out of order: {v}");
                }
                c.silent_for(Duration::from_millis(300)).await;
                MESSAGES
            }
        }))
        .await;
        assert_eq!(received.iter().sum::<u64>(), CLIENTS as u64 * MESSAGES);
        drop(clients);
        let deadline = Instant::now() + Duration::from_secs(20);
        while nodes.iter().any(|n| n.counts() != (0, 0)) {
            assert!(Instant::now() < deadline, "left behind on a node");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // …and in Redis (a hash goes when its last member does).
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_reply(redis.port, "KEYS ringturn:room:*") != "*0\r\n" {
            assert!(Instant::now() < deadline, "rooms left in Redis");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("not done within 120 s"));
    eprintln!(
        "{CLIENTS} clients over 2 nodes, {ROOMS} rooms, {} messages delivered in {:.1?}",
        CLIENTS as u64 * MESSAGES,
        started.elapsed()
    );
}

/// The Socket.IO protocol checks of `signaling_socketio.rs`, driven by the
/// real socket.io-client (npm), with the clients spread over two nodes: A on
/// node 1; B, C and the `/ws` client on node 2.
#[test]
fn socketio_clients_on_two_nodes_pass_the_protocol_checks() {
    let dir = support::node_modules();
    let redis = Redis::start();
    let (n1, n2) = (node(&redis), node(&redis));
    for (client, transports) in [("v4", "default"), ("v2", "websocket")] {
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("socketio_client.mjs"))
            .args(["--client", client, "--transports", transports])
            .args(["--suites", "protocol,shared-with-ws"])
            .arg("--url")
            .arg(format!("http://{}", n1.local_addr()))
            .arg("--peer-url")
            .arg(format!("http://{}", n2.local_addr()));
        let run = support::run_bounded(cmd, Duration::from_secs(60));
        let (_, checks) = support::socketio_passed(&run, &format!("{client} over two nodes"));
        let checks: Vec<&str> = checks.iter().map(String::as_str).collect();
        for must in [
            "second join -> joined to it, otherJoin(room, id) + otherjoin to the first",
            "message(room, data) -> message(room, data) to the other member only",
            "third join -> full(room, id), the members hear nothing",
            "leave -> leaved(room, id) to it, bye(room, id) to the other",
            "events of one socket are handled in order",
            "a dropped connection counts as leave: the other gets bye",
            "a Socket.IO client and a /ws client share a room",
        ] {
            assert!(checks.contains(&must), "missing check {must:?}: {checks:?}");
        }
    }
}

/// Not a check: the measurement behind BENCHMARKS.md's "signaling across
/// nodes" (run with `cargo test --release --test signaling_redis -- --ignored
/// --nocapture`). A message's round trip (A → B → A) one at a time, and the
/// messages per second 100 rooms deliver when everyone sends at once, for
/// one node without Redis and for two nodes sharing rooms on Redis with each
/// room split over them.
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn measure_signaling_round_trip_and_throughput_with_and_without_redis() {
    use futures_util::future::join_all;
    async fn pair(x: SocketAddr, y: SocketAddr, name: &str) -> (WsClient, WsClient) {
        let (mut a, mut b) = (WsClient::connect(x).await, WsClient::connect(y).await);
        a.join(name).await;
        a.expect("joined").await;
        b.join(name).await;
        b.expect("joined").await;
        a.expect("otherJoin").await;
        (a, b)
    }
    async fn measure(x: SocketAddr, y: SocketAddr, label: &str) {
        let (mut a, mut b) = pair(x, y, "rtt").await;
        let mut rtts: Vec<Duration> = Vec::new();
        for i in 0..2000 {
            let t = Instant::now();
            a.message("rtt", json!(i)).await;
            b.expect("message").await;
            b.message("rtt", json!(i)).await;
            a.expect("message").await;
            rtts.push(t.elapsed());
        }
        rtts.sort();
        let p = |q: f64| rtts[((rtts.len() as f64 - 1.0) * q) as usize];
        let mut pairs = Vec::new();
        for k in 0..100 {
            pairs.push(pair(x, y, &format!("tp-{k}")).await);
        }
        const EACH: usize = 200;
        let t = Instant::now();
        join_all(pairs.iter_mut().enumerate().map(|(k, (a, b))| async move {
            let room = format!("tp-{k}");
            for i in 0..EACH {
                a.message(&room, json!(i)).await;
            }
            for _ in 0..EACH {
                b.expect("message").await;
            }
        }))
        .await;
        let rate = (100 * EACH) as f64 / t.elapsed().as_secs_f64();
        eprintln!(
            "{label}: round trip p50 {:?} p99 {:?} max {:?}; {rate:.0} messages/s delivered by 100 rooms",
            p(0.5),
            p(0.99),
            rtts[rtts.len() - 1]
        );
    }
    let one = support::server(Limits::default());
    measure(one.local_addr(), one.local_addr(), "one node, no Redis").await;
    let redis = Redis::start();
    let (n1, n2) = (node(&redis), node(&redis));
    measure(n1.local_addr(), n2.local_addr(), "two nodes on Redis").await;
    let one_again = support::server(Limits::default());
    measure(
        one_again.local_addr(),
        one_again.local_addr(),
        "one node, no Redis (again)",
    )
    .await;
}
