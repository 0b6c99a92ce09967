//! Shared mode (issue 14): the room-of-two rule and the other nodes'
//! members come from the store the nodes share.

use super::*;

const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);

fn shared() -> Rooms {
    let mut r = Rooms::new_shared(Limits::default());
    for (conn, id) in [(A, "a"), (B, "b")] {
        r.handle_connect(conn, Arc::from(id)).unwrap();
    }
    r
}

fn drain(r: &mut Rooms) -> Vec<(ConnId, ServerEvent)> {
    std::iter::from_fn(|| r.poll_output())
        .map(|o| (o.to, o.event))
        .collect()
}

fn ops(r: &mut Rooms) -> Vec<SharedOp> {
    std::iter::from_fn(|| r.poll_shared()).collect()
}

fn room(s: &str) -> RoomName {
    Arc::from(s)
}

fn id(s: &str) -> PeerId {
    Arc::from(s)
}

fn join(r: &mut Rooms, conn: ConnId, name: &str) {
    r.handle_event(
        conn,
        ClientEvent::Join {
            room: name.to_owned(),
        },
    );
}

/// A joins "r" and the store admits it.
fn admitted(r: &mut Rooms) {
    join(r, A, "r");
    let _ = ops(r);
    r.handle_admission(A, room("r"), id("a"), Admission::Admitted(5));
    let _ = drain(r);
    let _ = ops(r);
}

#[test]
fn a_join_is_asked_of_the_store_and_answered_joined_when_admitted() {
    let mut r = shared();
    join(&mut r, A, "r");
    assert!(drain(&mut r).is_empty(), "nothing until the store answers");
    assert_eq!(
        ops(&mut r),
        vec![SharedOp::Admit {
            conn: A,
            room: room("r"),
            id: id("a")
        }]
    );
    r.handle_admission(A, room("r"), id("a"), Admission::Admitted(5));
    assert_eq!(
        drain(&mut r),
        vec![(
            A,
            ServerEvent::Joined {
                room: room("r"),
                id: id("a")
            }
        )]
    );
    assert_eq!(
        ops(&mut r),
        vec![SharedOp::Joined {
            room: room("r"),
            id: id("a"),
            seq: 5
        }],
        "the other nodes' members get otherJoin"
    );
}

#[test]
fn full_over_all_nodes_answers_full_and_unavailable_answers_an_error() {
    let mut r = shared();
    join(&mut r, A, "r");
    let _ = ops(&mut r);
    r.handle_admission(A, room("r"), id("a"), Admission::Full);
    assert_eq!(
        drain(&mut r),
        vec![(
            A,
            ServerEvent::Full {
                room: room("r"),
                id: id("a")
            }
        )]
    );
    join(&mut r, B, "s");
    let _ = ops(&mut r);
    r.handle_admission(B, room("s"), id("b"), Admission::Unavailable);
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [(B, ServerEvent::Error(e))] if e.error.code() == "unavailable"),
        "{out:?}"
    );
    assert_eq!(r.room_count(), 0, "neither joined");
}

#[test]
fn a_second_join_while_asking_waits_and_is_refused_once_in_and_a_gone_joiner_gives_its_seat_back() {
    let mut r = shared();
    join(&mut r, A, "r");
    join(&mut r, A, "r");
    assert!(drain(&mut r).is_empty());
    assert_eq!(ops(&mut r).len(), 1, "asked once");
    r.handle_admission(A, room("r"), id("a"), Admission::Admitted(5));
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [(A, ServerEvent::Joined { .. }), (A, ServerEvent::Error(e))] if e.error == ProtocolError::AlreadyInRoom),
        "{out:?}"
    );
    let _ = ops(&mut r);

    join(&mut r, B, "s");
    let _ = ops(&mut r);
    r.handle_disconnect(B);
    r.handle_admission(B, room("s"), id("b"), Admission::Admitted(5));
    assert!(drain(&mut r).is_empty());
    assert_eq!(
        ops(&mut r),
        vec![SharedOp::Left {
            room: room("s"),
            id: id("b")
        }]
    );
}

#[test]
fn other_nodes_members_are_heard_by_this_nodes_members_only() {
    let mut r = shared();
    admitted(&mut r);
    r.handle_remote(RemoteEvent::Joined {
        room: room("r"),
        id: id("x"),
        seq: 6,
    });
    r.handle_remote(RemoteEvent::Message {
        room: room("r"),
        data: Payload::from_json(r#"{"type":"offer"}"#).unwrap(),
    });
    r.handle_remote(RemoteEvent::Left {
        room: room("r"),
        id: id("x"),
    });
    r.handle_remote(RemoteEvent::Joined {
        room: room("elsewhere"),
        id: id("y"),
        seq: 7,
    });
    let out = drain(&mut r);
    let names: Vec<(ConnId, &str)> = out.iter().map(|(to, e)| (*to, e.name())).collect();
    assert_eq!(names, vec![(A, "otherJoin"), (A, "message"), (A, "bye")]);
    assert!(ops(&mut r).is_empty(), "remote events are not echoed back");
}

#[test]
fn messages_and_leaving_are_told_to_the_store() {
    let mut r = shared();
    admitted(&mut r);
    r.handle_event(
        A,
        ClientEvent::Message {
            room: "r".to_owned(),
            data: Payload::from_json("1").unwrap(),
        },
    );
    r.handle_event(
        A,
        ClientEvent::Leave {
            room: "r".to_owned(),
        },
    );
    let got = ops(&mut r);
    assert!(
        matches!(
            &got[..],
            [SharedOp::Message { conn: A, .. }, SharedOp::Left { .. }]
        ),
        "{got:?}"
    );
    // A refused message (not in the room) tells the store nothing.
    r.handle_event(
        B,
        ClientEvent::Message {
            room: "r".to_owned(),
            data: Payload::from_json("1").unwrap(),
        },
    );
    assert!(ops(&mut r).is_empty());
}

#[test]
fn events_sent_while_a_join_is_asked_are_handled_after_it_in_order() {
    let mut r = shared();
    join(&mut r, A, "r");
    r.handle_event(
        A,
        ClientEvent::Message {
            room: "r".to_owned(),
            data: Payload::from_json("1").unwrap(),
        },
    );
    join(&mut r, A, "s");
    assert!(drain(&mut r).is_empty(), "nothing is refused while asking");
    assert_eq!(ops(&mut r).len(), 1, "one question at a time");
    r.handle_admission(A, room("r"), id("a"), Admission::Admitted(5));
    assert_eq!(drain(&mut r).len(), 1, "joined r");
    let got = ops(&mut r);
    assert!(
        matches!(
            &got[..],
            [SharedOp::Joined { .. }, SharedOp::Message { .. }, SharedOp::Admit { room, .. }]
                if &**room == "s"
        ),
        "then the message, then the second join: {got:?}"
    );
}

#[test]
fn a_join_admitted_before_this_member_is_not_news_to_it() {
    // X on another node was admitted (4) before A (5), but its node's
    // announcement reaches here after A's `joined`: A was told nothing of X
    // by `joined`'s protocol and must not get `otherJoin` (it would start a
    // second offer); a member admitted earlier than X still hears of it.
    let mut r = shared();
    admitted(&mut r);
    r.handle_remote(RemoteEvent::Joined {
        room: room("r"),
        id: id("x"),
        seq: 4,
    });
    assert!(drain(&mut r).is_empty(), "A came after X");
    r.handle_remote(RemoteEvent::Joined {
        room: room("r"),
        id: id("y"),
        seq: 9,
    });
    let out = drain(&mut r);
    assert!(
        matches!(&out[..], [(A, ServerEvent::OtherJoin { id, .. })] if &**id == "y"),
        "{out:?}"
    );
}
