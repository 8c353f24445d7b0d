//! The room mode rules: P2P for two, the SFU from three (auto), back to
//! P2P when two remain; what members and the SFU are told, in order.

use std::time::Instant;

use serde_json::json;

use super::super::{ConnId, Hub, HubConfig, Output};
use super::{SfuCommand, SfuPolicy};
use crate::error::ErrorCode;
use crate::protocol::{PeerId, RawData, RoomMode, ServerMessage};

fn hub(policy: SfuPolicy) -> Hub {
    Hub::new(HubConfig {
        room_size: 4,
        sfu: policy,
        sfu_room_size: 6,
        ..HubConfig::default()
    })
}

fn drain(hub: &mut Hub) -> Vec<Output> {
    std::iter::from_fn(|| hub.poll_output()).collect()
}

/// Connects `conn` and joins "r"; `sfu`: with the `sfu` feature.
fn join(hub: &mut Hub, conn: u64, sfu: bool, now: Instant) -> Vec<Output> {
    let conn = ConnId(conn);
    hub.handle_connect(conn, Default::default(), now);
    let mut m = json!({"type":"join","v":1,"room":"r","name":"N"});
    if sfu {
        m["features"] = json!(["sfu"]);
    }
    hub.handle_text(conn, &m.to_string(), now, 0);
    drain(hub)
}

fn peer(n: u64) -> PeerId {
    PeerId(format!("p{n}"))
}

fn mode(to: u64, mode: RoomMode) -> Output {
    Output::Send {
        to: ConnId(to),
        message: ServerMessage::Mode { mode },
    }
}

fn sfu_join(conn: u64) -> Output {
    Output::Sfu(SfuCommand::Join {
        conn: Some(ConnId(conn)),
        peer: peer(conn),
        room: "r".into(),
    })
}

fn sfu_leave(conn: u64) -> Output {
    Output::Sfu(SfuCommand::Leave { peer: peer(conn) })
}

/// The outputs about modes and the SFU only (not joined/peer-joined/left).
fn mode_outputs(outs: Vec<Output>) -> Vec<Output> {
    outs.into_iter()
        .filter(|o| {
            matches!(
                o,
                Output::Sfu(_)
                    | Output::Send {
                        message: ServerMessage::Mode { .. } | ServerMessage::Error { .. },
                        ..
                    }
            )
        })
        .collect()
}

fn codes(outs: &[Output]) -> Vec<ErrorCode> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send {
                message: ServerMessage::Error { code, .. },
                ..
            } => Some(*code),
            _ => None,
        })
        .collect()
}

#[test]
fn third_member_moves_the_room_to_the_sfu_and_two_bring_it_back() {
    let now = Instant::now();
    let mut hub = hub(SfuPolicy::Auto);
    // Conn n gets peer id pn: ids count from 1 in join order.
    assert_eq!(mode_outputs(join(&mut hub, 1, true, now)), vec![]);
    assert_eq!(mode_outputs(join(&mut hub, 2, true, now)), vec![]);
    assert_eq!(hub.stats().sfu_rooms, 0);
    // The third: every member is told, the newcomer after its `joined`.
    let outs = join(&mut hub, 3, true, now);
    let first = outs.iter().position(|o| {
        matches!(
            o,
            Output::Send {
                to: ConnId(3),
                message: ServerMessage::Joined { .. }
            }
        )
    });
    let told = outs.iter().position(|o| *o == mode(3, RoomMode::Sfu));
    assert!(first < told, "{outs:?}");
    assert_eq!(
        mode_outputs(outs),
        vec![
            mode(1, RoomMode::Sfu),
            sfu_join(1),
            mode(2, RoomMode::Sfu),
            sfu_join(2),
            mode(3, RoomMode::Sfu),
            sfu_join(3),
        ]
    );
    assert_eq!(hub.stats().sfu_rooms, 1);
    // A fourth joins the SFU room alone.
    assert_eq!(
        mode_outputs(join(&mut hub, 4, true, now)),
        vec![mode(4, RoomMode::Sfu), sfu_join(4)]
    );
    // Leaving: the leaver is out of the SFU; at three the room stays.
    hub.handle_disconnect(ConnId(4));
    assert_eq!(mode_outputs(drain(&mut hub)), vec![sfu_leave(4)]);
    // At two it goes back to P2P: the leaver first, then the others.
    hub.handle_text(ConnId(1), r#"{"type":"leave"}"#, now, 0);
    assert_eq!(
        mode_outputs(drain(&mut hub)),
        vec![
            sfu_leave(1),
            mode(2, RoomMode::P2p),
            sfu_leave(2),
            mode(3, RoomMode::P2p),
            sfu_leave(3),
        ]
    );
    assert_eq!(hub.stats().sfu_rooms, 0);
}

#[test]
fn sdp_and_views_pass_between_members_and_the_sfu_in_sfu_mode_only() {
    let now = Instant::now();
    let mut hub = hub(SfuPolicy::Auto);
    join(&mut hub, 1, true, now);
    join(&mut hub, 2, true, now);
    let offer = r#"{"type":"offer","sdp":"v=0\r\n"}"#;
    let sfu = format!(r#"{{"type":"sfu","data":{offer}}}"#);
    let view = r#"{"type":"view","peer":"p2","width":320}"#;
    // P2P: refused, and nothing reaches the SFU.
    hub.handle_text(ConnId(1), &sfu, now, 0);
    hub.handle_text(ConnId(1), view, now, 0);
    let outs = drain(&mut hub);
    assert_eq!(codes(&outs), vec![ErrorCode::NotSfu, ErrorCode::NotSfu]);
    assert!(!outs.iter().any(|o| matches!(o, Output::Sfu(_))));
    // From the SFU to a P2P member: dropped.
    hub.handle_sfu_signal(&peer(1), RawData::from_json(offer).unwrap());
    assert_eq!(drain(&mut hub), vec![]);

    join(&mut hub, 3, true, now);
    hub.handle_text(ConnId(1), &sfu, now, 0);
    hub.handle_text(ConnId(1), view, now, 0);
    assert_eq!(
        drain(&mut hub),
        vec![
            Output::Sfu(SfuCommand::Signal {
                peer: peer(1),
                data: RawData::from_json(offer).unwrap(),
            }),
            Output::Sfu(SfuCommand::View {
                peer: peer(1),
                of: peer(2),
                width: 320,
            }),
        ]
    );
    hub.handle_sfu_signal(&peer(2), RawData::from_json(offer).unwrap());
    assert_eq!(
        drain(&mut hub),
        vec![Output::Send {
            to: ConnId(2),
            message: ServerMessage::Sfu {
                data: RawData::from_json(offer).unwrap()
            }
        }]
    );
    // Unknown peer: dropped. Not joined: refused.
    hub.handle_sfu_signal(&peer(9), RawData::null());
    hub.handle_connect(ConnId(9), Default::default(), now);
    hub.handle_text(ConnId(9), &sfu, now, 0);
    assert_eq!(codes(&drain(&mut hub)), vec![ErrorCode::NotSfu]);
}

#[test]
fn a_member_without_the_feature_keeps_the_room_a_mesh() {
    let now = Instant::now();
    let mut hub = hub(SfuPolicy::Auto);
    join(&mut hub, 1, true, now);
    join(&mut hub, 2, false, now);
    assert_eq!(mode_outputs(join(&mut hub, 3, true, now)), vec![]);
    // The mesh's size limit (4) holds for it.
    join(&mut hub, 4, true, now);
    assert_eq!(
        codes(&join(&mut hub, 5, true, now)),
        vec![ErrorCode::RoomFull]
    );
    // Once the old client leaves, the room moves.
    hub.handle_disconnect(ConnId(2));
    let outs = mode_outputs(drain(&mut hub));
    assert_eq!(
        outs,
        vec![
            mode(1, RoomMode::Sfu),
            sfu_join(1),
            mode(3, RoomMode::Sfu),
            sfu_join(3),
            mode(4, RoomMode::Sfu),
            sfu_join(4),
        ]
    );
    // An old client joining an SFU room turns it back into a mesh.
    let outs = mode_outputs(join(&mut hub, 6, false, now));
    assert_eq!(
        outs,
        vec![
            mode(1, RoomMode::P2p),
            sfu_leave(1),
            mode(3, RoomMode::P2p),
            sfu_leave(3),
            mode(4, RoomMode::P2p),
            sfu_leave(4),
        ]
    );
}

#[test]
fn room_size_limits_follow_the_policy() {
    let now = Instant::now();
    // Rooms that may use the SFU take sfu_room_size (6), others room_size (4).
    let mut auto = hub(SfuPolicy::Auto);
    for conn in 1..=6 {
        assert_eq!(codes(&join(&mut auto, conn, true, now)), vec![], "{conn}");
    }
    assert_eq!(
        codes(&join(&mut auto, 7, true, now)),
        vec![ErrorCode::RoomFull]
    );
    // A client without the feature joins only a room of fewer than 4.
    assert_eq!(
        codes(&join(&mut auto, 8, false, now)),
        vec![ErrorCode::RoomFull]
    );

    let mut never = hub(SfuPolicy::Never);
    for conn in 1..=4 {
        assert_eq!(mode_outputs(join(&mut never, conn, true, now)), vec![]);
    }
    assert_eq!(
        codes(&join(&mut never, 5, true, now)),
        vec![ErrorCode::RoomFull]
    );
    assert_eq!(never.stats().sfu_rooms, 0);
}

#[test]
fn always_uses_the_sfu_from_the_first_member() {
    let now = Instant::now();
    let mut hub = hub(SfuPolicy::Always);
    assert_eq!(
        mode_outputs(join(&mut hub, 1, true, now)),
        vec![mode(1, RoomMode::Sfu), sfu_join(1)]
    );
    assert_eq!(
        mode_outputs(join(&mut hub, 2, true, now)),
        vec![mode(2, RoomMode::Sfu), sfu_join(2)]
    );
    hub.handle_disconnect(ConnId(1));
    assert_eq!(mode_outputs(drain(&mut hub)), vec![sfu_leave(1)]);
    // The last member leaving closes the room; nothing else to say.
    hub.handle_disconnect(ConnId(2));
    assert_eq!(mode_outputs(drain(&mut hub)), vec![sfu_leave(2)]);
    assert_eq!(hub.room_count(), 0);
}

#[test]
fn policy_modes() {
    use RoomMode::{P2p, Sfu};
    for (policy, members, capable, want) in [
        (SfuPolicy::Never, 10, true, P2p),
        (SfuPolicy::Auto, 2, true, P2p),
        (SfuPolicy::Auto, 3, true, Sfu),
        (SfuPolicy::Auto, 3, false, P2p),
        (SfuPolicy::Always, 1, true, Sfu),
        (SfuPolicy::Always, 0, true, P2p),
        (SfuPolicy::Always, 5, false, P2p),
    ] {
        assert_eq!(
            policy.mode(members, capable),
            want,
            "{policy:?} {members} {capable}"
        );
    }
}
