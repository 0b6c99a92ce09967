//! Rooms shared by several signaling nodes through Redis (`signaling-redis`,
//! issue 14). Each node keeps its own connections in its rooms state machine
//! (shared mode); Redis holds who is in each room, on which node, and carries
//! what members do to the other nodes:
//!
//! - `ringturn:room:{room}`, a hash: member id → node id. A join is admitted
//!   by a Lua script, so the room-of-two rule holds however the nodes race.
//!   The script numbers admissions (`ringturn:admissions`), and a join's
//!   announcement carries its number: a node hears of it after its own later
//!   member was already admitted, and must not tell that member `otherJoin`.
//! - `ringturn:node:{node}`, set every second with a 3-second expiry: a node
//!   killed outright stops refreshing it, and the first script that looks at
//!   one of its rooms afterwards (every node sweeps its rooms each second, and
//!   every admission sweeps the room it admits to) removes its members and
//!   publishes their `bye`: the others hear of a dead node within ≈ 4 s.
//! - the channel `ringturn:rooms`: joins, messages and leaves as JSON; every
//!   node hears all of them and hands those of other nodes to its rooms, which
//!   deliver them to the members they have there.
//!
//! Redis out of reach: a join is answered with an `unavailable` error, a
//! message that cannot be published with the same error to its sender, and a
//! log line says so; the connection (and any call it set up) goes on, and
//! the node reconnects by itself.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::events::{Admission, Payload, RemoteEvent, RoomName, SharedOp};
use super::hub::Hub;

const CHANNEL: &str = "ringturn:rooms";
/// How long a node counts as alive after its last heartbeat.
const NODE_TTL: Duration = Duration::from_secs(3);
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long one Redis command may take before the node counts Redis as out
/// of reach for it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Operations sent to Redis in one pipeline at most.
const MAX_PIPELINE: usize = 256;

/// Removes the members of nodes whose heartbeat expired from the room hash
/// `KEYS[1]` (room name `ARGV[1]`) and publishes a `left` for each.
macro_rules! sweep_lua {
    () => {
        r"
local m = redis.call('HGETALL', KEYS[1])
for i = 1, #m, 2 do
  if redis.call('EXISTS', 'ringturn:node:' .. m[i + 1]) == 0 then
    redis.call('HDEL', KEYS[1], m[i])
    redis.call('PUBLISH', 'ringturn:rooms',
      cjson.encode({t = 'left', room = ARGV[1], id = m[i], node = m[i + 1]}))
  end
end
"
    };
}

/// The sweep, then admits member `ARGV[2]` of node `ARGV[3]` to the room
/// unless it holds `ARGV[4]` members: the admission's number (from one
/// counter for all rooms, so later admissions get larger ones), or 0 when
/// full. One script, so the sweep, the count and the number are one atomic
/// step and one round trip.
const ADMIT: &str = concat!(
    sweep_lua!(),
    r"
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
return redis.call('INCR', 'ringturn:admissions')
"
);

fn room_key(room: &str) -> String {
    format!("ringturn:room:{room}")
}

/// What goes over the channel.
#[derive(Serialize, Deserialize)]
struct Wire {
    t: String,
    room: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Box<RawValue>>,
    /// A join's admission number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    node: String,
}

/// A node of the shared rooms: its id and its Redis client.
pub struct Cluster {
    node: String,
    client: redis::Client,
    room_size: usize,
    /// The scripts, hashed once (redis-rs sends EVALSHA, EVAL on a miss).
    sweep: redis::Script,
    admit: redis::Script,
}

impl Cluster {
    /// `url` is `redis://host:port[/db]`; nothing is connected yet.
    pub fn new(url: &str, room_size: usize) -> Result<Self, redis::RedisError> {
        Ok(Self {
            node: super::random_id(),
            client: redis::Client::open(url)?,
            room_size,
            sweep: redis::Script::new(sweep_lua!()),
            admit: redis::Script::new(ADMIT),
        })
    }

    /// Runs the node until the runtime stops: the shared store's operations
    /// from `ops`, the heartbeat and sweeps, and the channel's events.
    pub async fn run(self, hub: Arc<Hub>, ops: mpsc::UnboundedReceiver<SharedOp>) {
        let me = Arc::new(self);
        tokio::spawn(me.clone().listen(hub.clone()));
        tokio::spawn(me.clone().heartbeat(hub.clone()));
        me.operate(hub, ops).await;
    }

    async fn connect(&self) -> Option<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(1);
        match self.client.get_connection_manager_with_config(config).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "signaling: Redis is out of reach; joins are refused until it is back");
                None
            }
        }
    }

    fn wire(
        &self,
        t: &str,
        room: &RoomName,
        id: Option<&str>,
        data: Option<&Payload>,
        seq: Option<u64>,
    ) -> String {
        let w = Wire {
            t: t.to_owned(),
            room: room.to_string(),
            id: id.map(str::to_owned),
            data: data.map(|d| d.raw().to_owned()),
            seq,
            node: self.node.clone(),
        };
        serde_json::to_string(&w).unwrap_or_default()
    }

    /// Sweeps `room`, then admits `id` to it.
    async fn admit(&self, redis: &mut ConnectionManager, room: &str, id: &str) -> Admission {
        let admitted: redis::RedisResult<i64> = self
            .admit
            .key(room_key(room))
            .arg(room)
            .arg(id)
            .arg(&self.node)
            .arg(self.room_size)
            .invoke_async(redis)
            .await;
        match admitted {
            Ok(seq) if seq > 0 => Admission::Admitted(seq.unsigned_abs()),
            Ok(_) => Admission::Full,
            Err(e) => {
                tracing::warn!(error = %e, room, "signaling: a join could not be decided in Redis");
                Admission::Unavailable
            }
        }
    }

    /// Carries out the rooms' operations in their order: what is queued
    /// goes to Redis as one pipeline (joins, messages and leaves need no
    /// answer), an admission as its own round trip where it stands.
    async fn operate(&self, hub: Arc<Hub>, mut ops: mpsc::UnboundedReceiver<SharedOp>) {
        let mut redis: Option<ConnectionManager> = None;
        let mut batch: Vec<SharedOp> = Vec::new();
        while let Some(first) = ops.recv().await {
            batch.push(first);
            while batch.len() < MAX_PIPELINE {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            if redis.is_none() {
                redis = self.connect().await;
            }
            let Some(r) = redis.as_mut() else {
                for op in batch.drain(..) {
                    self.refuse(&hub, op);
                }
                continue;
            };
            let mut run: Vec<SharedOp> = Vec::new();
            for op in batch.drain(..) {
                if let SharedOp::Admit { conn, room, id } = op {
                    self.publish(r, &hub, &mut run).await;
                    let admission = self.admit(r, &room, &id).await;
                    hub.admission(conn, room, id, admission);
                } else {
                    run.push(op);
                }
            }
            self.publish(r, &hub, &mut run).await;
        }
    }

    /// Without Redis: a join or a message is answered `unavailable`.
    fn refuse(&self, hub: &Hub, op: SharedOp) {
        match op {
            SharedOp::Admit { conn, room, id } => {
                hub.admission(conn, room, id, Admission::Unavailable)
            }
            SharedOp::Message { conn, room, .. } => hub.unavailable(conn, &room),
            SharedOp::Joined { room, .. } | SharedOp::Left { room, .. } => {
                tracing::warn!(%room, "signaling: Redis is out of reach; the other nodes miss a join or leave");
            }
        }
    }

    /// Sends `run` (joins, messages, leaves) as one pipeline, in order.
    async fn publish(&self, r: &mut ConnectionManager, hub: &Hub, run: &mut Vec<SharedOp>) {
        if run.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for op in run.iter() {
            match op {
                SharedOp::Joined { room, id, seq } => {
                    pipe.cmd("PUBLISH")
                        .arg(CHANNEL)
                        .arg(self.wire("join", room, Some(id), None, Some(*seq)))
                        .ignore();
                }
                SharedOp::Message { room, data, .. } => {
                    pipe.cmd("PUBLISH")
                        .arg(CHANNEL)
                        .arg(self.wire("msg", room, None, Some(data), None))
                        .ignore();
                }
                SharedOp::Left { room, id } => {
                    pipe.cmd("HDEL").arg(room_key(room)).arg(&**id).ignore();
                    pipe.cmd("PUBLISH")
                        .arg(CHANNEL)
                        .arg(self.wire("left", room, Some(id), None, None))
                        .ignore();
                }
                SharedOp::Admit { .. } => {}
            }
        }
        let done: redis::RedisResult<()> = pipe.query_async(r).await;
        if let Err(e) = done {
            tracing::warn!(error = %e, events = run.len(), "signaling: room events did not reach Redis");
            for op in run.drain(..) {
                self.refuse(hub, op);
            }
        }
        run.clear();
    }

    /// Keeps this node's heartbeat alive and sweeps its rooms once a second.
    async fn heartbeat(self: Arc<Self>, hub: Arc<Hub>) {
        let mut redis: Option<ConnectionManager> = None;
        let key = format!("ringturn:node:{}", self.node);
        let ttl_ms = u64::try_from(NODE_TTL.as_millis()).unwrap_or(3000);
        loop {
            if redis.is_none() {
                redis = self.connect().await;
            }
            if let Some(r) = redis.as_mut() {
                let beat: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(r)
                    .await;
                if beat.is_ok() {
                    for room in hub.local_rooms() {
                        let _: redis::RedisResult<()> = self
                            .sweep
                            .key(room_key(&room))
                            .arg(&*room)
                            .invoke_async(r)
                            .await;
                    }
                }
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    }

    /// Hands other nodes' events to the rooms; resubscribes after a loss.
    async fn listen(self: Arc<Self>, hub: Arc<Hub>) {
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(CHANNEL).await.is_ok() {
                        let mut stream = pubsub.on_message();
                        while let Some(msg) = stream.next().await {
                            let Ok(text) = msg.get_payload::<String>() else {
                                continue;
                            };
                            if let Some(event) = self.remote_event(&text) {
                                hub.remote(event);
                            }
                        }
                    }
                    tracing::warn!("signaling: the Redis subscription ended; subscribing again");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "signaling: cannot subscribe to Redis yet");
                }
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    }

    /// An event of another node, or `None` (this node's own, or malformed).
    fn remote_event(&self, text: &str) -> Option<RemoteEvent> {
        let w: Wire = serde_json::from_str(text).ok()?;
        if w.node == self.node {
            return None;
        }
        let room: RoomName = Arc::from(w.room);
        match (w.t.as_str(), w.id, w.data) {
            ("join", Some(id), _) => Some(RemoteEvent::Joined {
                room,
                id: Arc::from(id),
                seq: w.seq?,
            }),
            ("left", Some(id), _) => Some(RemoteEvent::Left {
                room,
                id: Arc::from(id),
            }),
            ("msg", _, Some(data)) => Some(RemoteEvent::Message {
                room,
                data: Payload::from(data),
            }),
            _ => None,
        }
    }
}
