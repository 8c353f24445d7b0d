//! Relaying (RFC 8656 §11, §12): Send and Data indications, ChannelData in
//! both directions, and its padding on stream transports (§12.5).

use stun::{Attribute, AttributeType, Class, Message, Method};

use super::harness::*;
use crate::client::{ClientConfig, ClientError, ClientEvent, FrameBuffer};
use crate::{PEER_HEADROOM, Transport};

#[test]
fn send_indication_and_channel_data_to_peers() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let (p1, p2) = (addr("8.8.8.8:53"), addr("1.1.1.1:5353"));
    net.run(c, |cl, now| {
        cl.create_permission(now, &[p1.ip()]).unwrap();
    });
    let bytes = net.client(c).send_to(p1, b"hello").unwrap().to_vec();
    let m = Message::decode(&bytes).unwrap();
    assert_eq!((m.class(), m.method()), (Class::Indication, Method::SEND));
    assert_eq!(
        net.relay_from_client(net.ft(c), &bytes),
        Some(ToPeer {
            relay,
            peer: p1,
            payload: b"hello".to_vec()
        })
    );
    // No permission for p2 yet: dropped.
    assert_eq!(net.send(c, p2, b"nope"), None);
    let ev = net.run(c, |cl, now| {
        assert_eq!(cl.channel_bind(now, p2), Ok(0x4000));
    });
    assert_eq!(
        ev,
        [ClientEvent::ChannelBound {
            peer: p2,
            channel: 0x4000
        }]
    );
    let bytes = net.client(c).send_to(p2, b"on channel").unwrap().to_vec();
    assert_eq!(bytes, [&[0x40, 0x00, 0x00, 10][..], b"on channel"].concat());
    assert_eq!(
        net.relay_from_client(net.ft(c), &bytes),
        Some(ToPeer {
            relay,
            peer: p2,
            payload: b"on channel".to_vec()
        })
    );
    // Binding the same peer again refreshes the same channel.
    let ev = net.run(c, |cl, now| {
        assert_eq!(cl.channel_bind(now, p2), Ok(0x4000));
    });
    assert_eq!(ev.len(), 1);
    // The wrong client 5-tuple relays nothing.
    let other = Net::tuple(7, Transport::Udp, SERVER);
    assert_eq!(net.relay_from_client(other, &bytes), None);
}

#[test]
fn peer_data_reaches_the_client_as_data_indication_or_channel_data() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let relay = net.allocate(c);
    let (p1, p2) = (addr("8.8.8.8:53"), addr("1.1.1.1:5353"));
    net.run(c, |cl, now| {
        cl.create_permission(now, &[p1.ip()]).unwrap();
        cl.channel_bind(now, p2).unwrap();
    });
    // Without permission: dropped.
    assert_eq!(net.peer_sends(relay, addr("9.9.9.9:53"), b"x"), None);
    let di = net.peer_sends(relay, p1, b"indication").unwrap();
    let m = Message::decode(&di).unwrap();
    assert_eq!((m.class(), m.method()), (Class::Indication, Method::DATA));
    assert_eq!(
        m.attribute(AttributeType::XOR_PEER_ADDRESS),
        Some(Ok(Attribute::XorPeerAddress(p1)))
    );
    let cd = net.peer_sends(relay, p2, b"channel!!").unwrap();
    // UDP: no padding.
    assert_eq!(cd, [&[0x40, 0x00, 0x00, 9][..], b"channel!!"].concat());
    assert_eq!(
        net.received,
        [
            Received {
                client: c,
                peer: p1,
                channel: None,
                payload: b"indication".to_vec()
            },
            Received {
                client: c,
                peer: p2,
                channel: Some(0x4000),
                payload: b"channel!!".to_vec()
            },
        ]
    );
    // An unknown relay address relays nothing.
    assert_eq!(net.peer_sends(addr("192.0.2.1:1"), p1, b"x"), None);
}

#[test]
fn channel_data_is_padded_on_tcp() {
    let mut net = Net::new(config());
    let ft = Net::tuple(0, Transport::Tcp, SERVER);
    let c = net.add(
        ClientConfig::new(ft.server, "alice", "secret", Transport::Tcp),
        ft,
    );
    let relay = net.allocate(c);
    let peer = addr("8.8.8.8:53");
    net.run(c, |cl, now| {
        cl.channel_bind(now, peer).unwrap();
    });
    // Client to server: 4 + 5 bytes padded to 12.
    let bytes = net.client(c).send_to(peer, b"12345").unwrap().to_vec();
    assert_eq!(
        bytes,
        [0x40, 0x00, 0x00, 5, b'1', b'2', b'3', b'4', b'5', 0, 0, 0]
    );
    assert_eq!(
        net.relay_from_client(ft, &bytes).map(|p| p.payload),
        Some(b"12345".to_vec())
    );
    // Server to client: padded with zeros (the buffer held 0xEE there).
    let cd = net.peer_sends(relay, peer, b"abcde").unwrap();
    assert_eq!(
        cd,
        [0x40, 0x00, 0x00, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]
    );
    let mut frames = FrameBuffer::default();
    frames.push(&cd[..7]);
    assert_eq!(frames.next_frame(), Ok(None));
    frames.push(&cd[7..]);
    let frame = frames.next_frame().unwrap().unwrap().to_vec();
    let now = net.now;
    let got = net.client(c).handle_input(now, &frame).unwrap().unwrap();
    assert_eq!((got.peer, got.payload), (peer, &b"abcde"[..]));
    // Payload already a multiple of 4: no padding.
    let cd = net.peer_sends(relay, peer, b"abcd").unwrap();
    assert_eq!(cd.len(), PEER_HEADROOM + 4);
}

#[test]
fn client_refuses_to_send_or_bind_without_allocation() {
    let mut net = Net::new(config());
    let c = net.add_user("alice", "secret");
    let peer = addr("8.8.8.8:53");
    let now = net.now;
    let cl = net.client(c);
    assert_eq!(cl.send_to(peer, b"x"), Err(ClientError::NoAllocation));
    assert_eq!(cl.channel_bind(now, peer), Err(ClientError::NoAllocation));
    assert_eq!(
        cl.create_permission(now, &[peer.ip()]),
        Err(ClientError::NoAllocation)
    );
    assert!(cl.allocate(now).is_ok());
    assert_eq!(cl.allocate(now), Err(ClientError::AlreadyAllocated));
    // ChannelData on a channel the client never bound is refused.
    assert_eq!(
        cl.handle_input(now, &[0x40, 0x05, 0, 0]),
        Err(ClientError::UnknownChannel(0x4005))
    );
    assert_eq!(
        cl.handle_input(now, &[0xFF, 0, 0, 0]),
        Err(ClientError::NotTurn)
    );
}
