//! The rooms protocol, event by event, as the transports see it.

use super::*;

const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);
const C: ConnId = ConnId(3);

fn rooms(limits: Limits) -> Rooms {
    let mut r = Rooms::new(limits);
    for (conn, id) in [(A, "a"), (B, "b"), (C, "c")] {
        r.handle_connect(conn, Arc::from(id)).unwrap();
    }
    r
}

fn drain(r: &mut Rooms) -> Vec<(ConnId, ServerEvent)> {
    std::iter::from_fn(|| r.poll_output())
        .map(|o| (o.to, o.event))
        .collect()
}

fn name(s: &str) -> RoomName {
    Arc::from(s)
}

fn join(r: &mut Rooms, conn: ConnId, room: &str) -> Vec<(ConnId, ServerEvent)> {
    r.handle_event(
        conn,
        ClientEvent::Join {
            room: room.to_owned(),
        },
    );
    drain(r)
}

fn say(r: &mut Rooms, conn: ConnId, room: &str, json: &str) -> Vec<(ConnId, ServerEvent)> {
    r.handle_event(
        conn,
        ClientEvent::Message {
            room: room.to_owned(),
            data: Payload::from_json(json).unwrap(),
        },
    );
    drain(r)
}

fn error_code(out: &[(ConnId, ServerEvent)]) -> Vec<(ConnId, &'static str)> {
    out.iter()
        .map(|(to, e)| match e {
            ServerEvent::Error(e) => (*to, e.error.code()),
            other => panic!("expected an error, got {other:?}"),
        })
        .collect()
}

#[test]
fn first_join_gets_joined_with_its_own_id_and_nobody_else_hears() {
    let mut r = rooms(Limits::default());
    let out = join(&mut r, A, "r1");
    assert_eq!(
        out,
        vec![(
            A,
            ServerEvent::Joined {
                room: name("r1"),
                id: name("a")
            }
        )]
    );
    assert_eq!(r.members("r1"), vec![A]);
    assert_eq!(r.room_count(), 1);
}

#[test]
fn second_join_gets_joined_then_the_first_gets_other_join_with_the_joiner_id() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r1");
    let out = join(&mut r, B, "r1");
    assert_eq!(
        out,
        vec![
            (
                B,
                ServerEvent::Joined {
                    room: name("r1"),
                    id: name("b")
                }
            ),
            (
                A,
                ServerEvent::OtherJoin {
                    room: name("r1"),
                    id: name("b")
                }
            ),
        ]
    );
}

#[test]
fn third_join_gets_full_and_is_not_added() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r1");
    let _ = join(&mut r, B, "r1");
    let out = join(&mut r, C, "r1");
    assert_eq!(
        out,
        vec![(
            C,
            ServerEvent::Full {
                room: name("r1"),
                id: name("c")
            }
        )]
    );
    assert_eq!(r.members("r1"), vec![A, B]);
    // Not a member: its message is refused, nobody hears it.
    let out = say(&mut r, C, "r1", "{}");
    assert_eq!(error_code(&out), vec![(C, "not-in-room")]);
}

#[test]
fn messages_go_to_the_other_member_only_and_unchanged() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r1");
    let _ = join(&mut r, B, "r1");
    let _ = join(&mut r, C, "r2");
    let sdp = r#"{"type":"offer","sdp":"v=0\r\n…"}"#;
    let out = say(&mut r, A, "r1", sdp);
    assert_eq!(out.len(), 1);
    let (to, ServerEvent::Message { room, data }) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!((*to, &**room, data.get()), (B, "r1", sdp));
    let out = say(&mut r, B, "r1", "[1,2]");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, A);
}

#[test]
fn a_message_in_a_room_of_one_reaches_nobody() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r1");
    assert!(say(&mut r, A, "r1", "1").is_empty());
}

#[test]
fn leave_gets_leaved_and_the_other_gets_bye_then_the_room_can_refill() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r1");
    let _ = join(&mut r, B, "r1");
    r.handle_event(
        A,
        ClientEvent::Leave {
            room: "r1".to_owned(),
        },
    );
    assert_eq!(
        drain(&mut r),
        vec![
            (
                A,
                ServerEvent::Leaved {
                    room: name("r1"),
                    id: name("a")
                }
            ),
            (
                B,
                ServerEvent::Bye {
                    room: name("r1"),
                    id: name("a")
                }
            ),
        ]
    );
    assert_eq!(r.members("r1"), vec![B]);
    let out = join(&mut r, C, "r1");
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        out[1],
        (
            B,
            ServerEvent::OtherJoin {
                room: name("r1"),
                id: name("c")
            }
        )
    );
}

#[test]
fn the_last_one_leaving_removes_the_room() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r1");
    r.handle_event(
        A,
        ClientEvent::Leave {
            room: "r1".to_owned(),
        },
    );
    assert_eq!(drain(&mut r).len(), 1, "leaved only");
    assert_eq!(r.room_count(), 0);
}

#[test]
fn a_dropped_connection_counts_as_leave_the_other_gets_bye() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r1");
    let _ = join(&mut r, B, "r1");
    let _ = join(&mut r, A, "r2");
    r.handle_disconnect(A);
    assert_eq!(
        drain(&mut r),
        vec![(
            B,
            ServerEvent::Bye {
                room: name("r1"),
                id: name("a")
            }
        )]
    );
    assert_eq!(r.room_count(), 1, "r2 had only A");
    assert_eq!(r.connection_count(), 2);
    // Gone means gone: later events of that connection do nothing.
    let _ = join(&mut r, A, "r3");
    assert_eq!(r.room_count(), 1);
    r.handle_disconnect(A);
    assert!(drain(&mut r).is_empty());
}

#[test]
fn leave_and_message_outside_a_room_are_errors_naming_the_room() {
    let mut r = rooms(Limits::default());
    r.handle_event(
        A,
        ClientEvent::Leave {
            room: "nope".to_owned(),
        },
    );
    let out = drain(&mut r);
    assert_eq!(error_code(&out), vec![(A, "not-in-room")]);
    let ServerEvent::Error(e) = &out[0].1 else {
        unreachable!()
    };
    assert_eq!(e.room.as_deref(), Some("nope"));
    let out = say(&mut r, A, "nope", "{}");
    assert_eq!(error_code(&out), vec![(A, "not-in-room")]);
}

#[test]
fn joining_twice_is_an_error_and_changes_nothing() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r1");
    let out = join(&mut r, A, "r1");
    assert_eq!(error_code(&out), vec![(A, "already-in-room")]);
    assert_eq!(r.members("r1"), vec![A]);
}

#[test]
fn room_names_must_be_1_to_max_bytes() {
    let mut r = rooms(Limits {
        max_room_name_bytes: 8,
        ..Limits::default()
    });
    assert_eq!(error_code(&join(&mut r, A, "")), vec![(A, "invalid-room")]);
    assert_eq!(
        error_code(&join(&mut r, A, "123456789")),
        vec![(A, "invalid-room")]
    );
    assert_eq!(join(&mut r, A, "12345678").len(), 1);
    assert_eq!(r.room_count(), 1);
}

#[test]
fn rooms_per_connection_are_limited() {
    let mut r = rooms(Limits {
        max_rooms_per_connection: 2,
        ..Limits::default()
    });
    let _ = join(&mut r, A, "r1");
    let _ = join(&mut r, A, "r2");
    let out = join(&mut r, A, "r3");
    assert_eq!(error_code(&out), vec![(A, "too-many-rooms")]);
    assert_eq!(r.room_count(), 2);
    // Leaving one frees the slot.
    r.handle_event(
        A,
        ClientEvent::Leave {
            room: "r1".to_owned(),
        },
    );
    let _ = drain(&mut r);
    assert_eq!(join(&mut r, A, "r3").len(), 1);
}

#[test]
fn total_rooms_are_limited_but_existing_rooms_stay_joinable() {
    let mut r = rooms(Limits {
        max_rooms: 1,
        ..Limits::default()
    });
    let _ = join(&mut r, A, "r1");
    let out = join(&mut r, B, "r2");
    assert_eq!(error_code(&out), vec![(B, "rooms-exhausted")]);
    assert_eq!(join(&mut r, B, "r1").len(), 2, "joined + otherJoin");
}

#[test]
fn connections_are_limited() {
    let mut r = Rooms::new(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    r.handle_connect(A, name("a")).unwrap();
    r.handle_connect(B, name("b")).unwrap();
    assert_eq!(
        r.handle_connect(C, name("c")),
        Err(ProtocolError::ServerFull { max: 2 })
    );
    r.handle_disconnect(A);
    r.handle_connect(C, name("c")).unwrap();
    assert!(drain(&mut r).is_empty());
}

#[test]
fn room_size_is_configurable() {
    let mut r = rooms(Limits {
        room_size: 3,
        ..Limits::default()
    });
    let _ = join(&mut r, A, "r");
    let _ = join(&mut r, B, "r");
    let out = join(&mut r, C, "r");
    let other_joins: Vec<ConnId> = out
        .iter()
        .filter(|(_, e)| matches!(e, ServerEvent::OtherJoin { .. }))
        .map(|(to, _)| *to)
        .collect();
    assert_eq!(other_joins, vec![A, B]);
    let out = say(&mut r, B, "r", "0");
    let to: Vec<ConnId> = out.iter().map(|(to, _)| *to).collect();
    assert_eq!(to, vec![A, C]);
}

#[test]
fn oversized_data_is_refused() {
    let mut r = rooms(Limits {
        max_message_bytes: 10,
        ..Limits::default()
    });
    let _ = join(&mut r, A, "r");
    let _ = join(&mut r, B, "r");
    assert_eq!(
        error_code(&say(&mut r, A, "r", "\"0123456789\"")),
        vec![(A, "too-large")]
    );
    assert_eq!(say(&mut r, A, "r", "\"01234567\"").len(), 1);
}

#[test]
fn invalid_input_is_echoed_to_its_sender_only() {
    let mut r = rooms(Limits::default());
    let _ = join(&mut r, A, "r");
    let _ = join(&mut r, B, "r");
    r.handle_invalid(A, ProtocolError::UnknownType("dance".into()), None);
    r.handle_invalid(ConnId(99), ProtocolError::BinaryFrame, None);
    let out = drain(&mut r);
    assert_eq!(error_code(&out), vec![(A, "unknown-type")]);
}

#[test]
fn error_codes_are_distinct() {
    let all = [
        ProtocolError::MalformedJson(String::new()),
        ProtocolError::BinaryFrame,
        ProtocolError::InvalidMessage(String::new()),
        ProtocolError::UnknownType(String::new()),
        ProtocolError::InvalidRoom { max: 1 },
        ProtocolError::TooLarge { size: 2, limit: 1 },
        ProtocolError::NotInRoom,
        ProtocolError::AlreadyInRoom,
        ProtocolError::TooManyRooms { max: 1 },
        ProtocolError::RoomsExhausted { max: 1 },
        ProtocolError::ServerFull { max: 1 },
    ];
    let mut codes: Vec<&str> = all.iter().map(ProtocolError::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
}
