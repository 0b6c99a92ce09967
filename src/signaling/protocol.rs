//! The WebSocket wire format at `/ws`: one JSON object per text frame.
//!
//! Client → server:
//! `{"type":"join","room":"r1"}`, `{"type":"leave","room":"r1"}`,
//! `{"type":"message","room":"r1","data":{"type":"offer","sdp":"…"}}`.
//! Unknown fields are ignored; `data` is any JSON value except `null`.
//!
//! Server → client: `{"type":"joined","room":"r1","id":"…"}` (likewise
//! `otherJoin`, `full`, `leaved`, `bye`), `{"type":"message","room":"r1","data":…}`
//! with `data` byte for byte as sent, and
//! `{"type":"error","code":"not-in-room","message":"…","room":"r1"}` (`room`
//! only when the error concerns one).
//!
//! The Socket.IO transport uses the same names as events with positional
//! arguments (`joined(room, id)`, `message(room, data)`, `error({code,
//! message, room})`); see `socketio.rs`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::events::{ClientEvent, ErrorEvent, Payload, ProtocolError, ServerEvent};

/// Why a frame is not a [`ClientEvent`], and the room it named if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub error: ProtocolError,
    pub room: Option<String>,
}

impl From<ProtocolError> for Rejected {
    fn from(error: ProtocolError) -> Self {
        Self { error, room: None }
    }
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    room: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

fn string_field(raw: Option<&RawValue>, field: &str) -> Result<String, ProtocolError> {
    let raw = raw.ok_or_else(|| ProtocolError::InvalidMessage(format!("no \"{field}\" field")))?;
    serde_json::from_str::<String>(raw.get())
        .map_err(|_| ProtocolError::InvalidMessage(format!("\"{field}\" must be a string")))
}

/// Parses one text frame. `max_bytes` is checked first, before any parsing.
pub fn parse_text(text: &str, max_bytes: usize) -> Result<ClientEvent, Rejected> {
    if text.len() > max_bytes {
        return Err(ProtocolError::TooLarge {
            size: text.len(),
            limit: max_bytes,
        }
        .into());
    }
    let frame: Frame<'_> = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ProtocolError::InvalidMessage(
            "expected a JSON object with a string \"type\" (join, leave or message)".to_owned(),
        ),
        _ => ProtocolError::MalformedJson(e.to_string()),
    })?;
    let kind = string_field(frame.kind, "type")?;
    if !matches!(kind.as_str(), "join" | "leave" | "message") {
        return Err(ProtocolError::UnknownType(truncate(&kind, 64)).into());
    }
    let room = string_field(frame.room, "room")?;
    match kind.as_str() {
        "join" => Ok(ClientEvent::Join { room }),
        "leave" => Ok(ClientEvent::Leave { room }),
        _ => match frame.data {
            Some(data) if data.get() != "null" => Ok(ClientEvent::Message {
                room,
                data: Payload::from(data.to_owned()),
            }),
            _ => Err(Rejected {
                error: ProtocolError::InvalidMessage(
                    "a message needs \"data\" (any JSON value but null)".to_owned(),
                ),
                room: Some(room),
            }),
        },
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, for echoing
/// client-chosen text back in an error.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or_default())
}

/// The `error` event's body, on both transports.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
}

impl<'a> From<&'a ErrorEvent> for ErrorBody<'a> {
    fn from(e: &'a ErrorEvent) -> Self {
        Self {
            code: e.error.code(),
            message: e.error.to_string(),
            room: e.room.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct Out<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// One server event as a WebSocket text frame.
pub fn encode(event: &ServerEvent) -> String {
    let mut out = Out {
        kind: event.name(),
        room: None,
        id: None,
        data: None,
        code: None,
        message: None,
    };
    match event {
        ServerEvent::Joined { room, id }
        | ServerEvent::OtherJoin { room, id }
        | ServerEvent::Full { room, id }
        | ServerEvent::Leaved { room, id }
        | ServerEvent::Bye { room, id } => {
            out.room = Some(room);
            out.id = Some(id);
        }
        ServerEvent::Message { room, data } => {
            out.room = Some(room);
            out.data = Some(data.raw());
        }
        ServerEvent::Error(e) => {
            out.room = e.room.as_deref();
            out.code = Some(e.error.code());
            out.message = Some(e.error.to_string());
        }
    }
    // Strings and already-valid JSON only: serialization cannot fail.
    serde_json::to_string(&out).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn code(text: &str) -> &'static str {
        parse_text(text, 1000).unwrap_err().error.code()
    }

    #[test]
    fn parses_the_three_client_messages() {
        assert_eq!(
            parse_text(r#"{"type":"join","room":"r1"}"#, 1000),
            Ok(ClientEvent::Join { room: "r1".into() })
        );
        assert_eq!(
            parse_text(r#"{"room":"r\u00e9","type":"leave","extra":1}"#, 1000),
            Ok(ClientEvent::Leave { room: "ré".into() })
        );
        let m = parse_text(
            r#"{"type":"message","room":"r1","data":{"type":"candidate","label":0}}"#,
            1000,
        )
        .unwrap();
        let ClientEvent::Message { room, data } = m else {
            panic!()
        };
        assert_eq!(room, "r1");
        assert_eq!(data.get(), r#"{"type":"candidate","label":0}"#);
    }

    #[test]
    fn names_each_bad_input() {
        assert_eq!(code("{not json"), "malformed-json");
        assert_eq!(code(""), "malformed-json");
        assert_eq!(
            code(r#"{"type":"join","room":"r"} trailing"#),
            "malformed-json"
        );
        assert_eq!(code("[1,2]"), "invalid-message");
        assert_eq!(code("\"join\""), "invalid-message");
        assert_eq!(code(r#"{"room":"r"}"#), "invalid-message");
        assert_eq!(code(r#"{"type":7,"room":"r"}"#), "invalid-message");
        assert_eq!(code(r#"{"type":"dance","room":"r"}"#), "unknown-type");
        assert_eq!(code(r#"{"type":"join"}"#), "invalid-message");
        assert_eq!(code(r#"{"type":"join","room":5}"#), "invalid-message");
        assert_eq!(code(r#"{"type":"message","room":"r"}"#), "invalid-message");
        assert_eq!(
            code(r#"{"type":"message","room":"r","data":null}"#),
            "invalid-message"
        );
        let big = format!(
            r#"{{"type":"message","room":"r","data":"{}"}}"#,
            "x".repeat(1000)
        );
        assert_eq!(code(&big), "too-large");
    }

    #[test]
    fn a_message_without_data_still_names_its_room() {
        let r = parse_text(r#"{"type":"message","room":"r9"}"#, 100).unwrap_err();
        assert_eq!(r.room.as_deref(), Some("r9"));
    }

    #[test]
    fn unknown_types_are_echoed_truncated() {
        let long = format!(r#"{{"type":"{}"}}"#, "é".repeat(100));
        let ProtocolError::UnknownType(t) = parse_text(&long, 10_000).unwrap_err().error else {
            panic!()
        };
        assert!(t.len() <= 64 + "…".len(), "{t}");
    }

    #[test]
    fn encodes_events_with_data_verbatim() {
        let room: Arc<str> = Arc::from("r1");
        let id: Arc<str> = Arc::from("abc");
        assert_eq!(
            encode(&ServerEvent::OtherJoin {
                room: room.clone(),
                id
            }),
            r#"{"type":"otherJoin","room":"r1","id":"abc"}"#
        );
        let data = Payload::from_json(r#"{ "sdp" : "v=0" }"#).unwrap();
        assert_eq!(
            encode(&ServerEvent::Message {
                room: room.clone(),
                data
            }),
            r#"{"type":"message","room":"r1","data":{ "sdp" : "v=0" }}"#
        );
        let e = encode(&ServerEvent::Error(ErrorEvent {
            error: ProtocolError::NotInRoom,
            room: Some(room),
        }));
        assert_eq!(
            e,
            r#"{"type":"error","room":"r1","code":"not-in-room","message":"not in this room"}"#
        );
    }
}
