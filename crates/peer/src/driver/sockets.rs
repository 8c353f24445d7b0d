//! The peer's sockets: one UDP socket per local address (so that every
//! datagram's destination is known without IP_PKTINFO), and a TCP stream
//! per TURN server over TCP, opened on the first write. Reader tasks hand
//! what arrives to the driver loop through one channel.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::Transmit;

/// A byte stream the signaling WebSocket runs on (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Something that arrived.
#[derive(Debug)]
pub enum NetIn {
    /// A datagram on host socket `local`.
    Udp {
        /// The host socket.
        local: SocketAddr,
        /// Its source.
        from: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Bytes from the stream to a TURN server.
    Stream {
        /// The server.
        server: SocketAddr,
        /// The bytes.
        data: Vec<u8>,
    },
    /// That stream ended.
    StreamClosed {
        /// The server.
        server: SocketAddr,
    },
}

pub(crate) struct Sockets {
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    streams: HashMap<SocketAddr, OwnedWriteHalf>,
    tx: mpsc::Sender<NetIn>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Sockets {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Sockets {
    /// Binds a UDP socket on every local address (loopback included;
    /// IPv6 link-local left out).
    pub(crate) async fn bind(tx: mpsc::Sender<NetIn>) -> std::io::Result<Self> {
        let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()?
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| match ip {
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
                IpAddr::V4(v4) => !v4.is_link_local(),
            })
            .collect();
        ips.sort();
        ips.dedup();
        let mut s = Sockets {
            udp: Vec::new(),
            streams: HashMap::new(),
            tx,
            tasks: Vec::new(),
        };
        for ip in ips {
            let Ok(sock) = UdpSocket::bind(SocketAddr::new(ip, 0)).await else {
                continue;
            };
            let local = sock.local_addr()?;
            let sock = Arc::new(sock);
            let reader = sock.clone();
            let tx = s.tx.clone();
            s.tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let Ok((n, from)) = reader.recv_from(&mut buf).await else {
                        continue;
                    };
                    let data = buf.get(..n).unwrap_or_default().to_vec();
                    if tx.send(NetIn::Udp { local, from, data }).await.is_err() {
                        return;
                    }
                }
            }));
            s.udp.push((local, sock));
        }
        if s.udp.is_empty() {
            return Err(std::io::Error::other(
                "no local address to bind a UDP socket on",
            ));
        }
        Ok(s)
    }

    /// The host sockets' addresses.
    pub(crate) fn hosts(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|(a, _)| *a).collect()
    }

    /// Sends one transmit; errors are logged (ICE and SCTP retransmit).
    pub(crate) async fn send(&mut self, t: Transmit, _now: Instant) {
        match t {
            Transmit::Udp { from, to, data } => {
                if let Some((_, sock)) = self.udp.iter().find(|(a, _)| *a == from) {
                    if let Err(e) = sock.send_to(&data, to).await {
                        tracing::debug!(%from, %to, "send: {e}");
                    }
                }
            }
            Transmit::Stream { server, data } => {
                if !self.streams.contains_key(&server) {
                    match tokio::net::TcpStream::connect(server).await {
                        Ok(tcp) => {
                            let _ = tcp.set_nodelay(true);
                            let (mut read, write) = tcp.into_split();
                            let tx = self.tx.clone();
                            self.tasks.push(tokio::spawn(async move {
                                let mut buf = vec![0u8; 65536];
                                loop {
                                    match read.read(&mut buf).await {
                                        Ok(0) | Err(_) => {
                                            let _ = tx.send(NetIn::StreamClosed { server }).await;
                                            return;
                                        }
                                        Ok(n) => {
                                            let data = buf.get(..n).unwrap_or_default().to_vec();
                                            if tx
                                                .send(NetIn::Stream { server, data })
                                                .await
                                                .is_err()
                                            {
                                                return;
                                            }
                                        }
                                    }
                                }
                            }));
                            self.streams.insert(server, write);
                        }
                        Err(e) => {
                            tracing::warn!(%server, "TURN over TCP: {e}");
                            let _ = self.tx.try_send(NetIn::StreamClosed { server });
                            return;
                        }
                    }
                }
                if let Some(w) = self.streams.get_mut(&server) {
                    if w.write_all(&data).await.is_err() {
                        self.streams.remove(&server);
                    }
                }
            }
        }
    }

    /// Drops the write half of a closed stream.
    pub(crate) fn forget_stream(&mut self, server: SocketAddr) {
        self.streams.remove(&server);
    }
}
