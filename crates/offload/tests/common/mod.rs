//! What the kernel tests share: when to skip, network namespaces the test
//! creates and deletes, and Ethernet/IP/UDP frames built and parsed with
//! their checksums computed from scratch.

#![allow(dead_code)]

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Why this test cannot run here, if it cannot.
pub fn skip() -> Option<&'static str> {
    if !offload::built() {
        return Some("built without the `kernel` feature");
    }
    if !nix::unistd::Uid::effective().is_root() {
        return Some("needs root (BPF programs, network namespaces)");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2's `ip`");
    }
    None
}

/// Prints the reason and returns true when the test must be skipped.
pub fn skipped(test: &str) -> bool {
    match skip() {
        Some(why) => {
            println!("skipping {test}: {why}");
            true
        }
        None => false,
    }
}

/// Runs a command, panicking with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace this test created; deleted on drop (also on panic).
pub struct Netns {
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("sbo-{}-{tag}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A namespace another process created; not deleted on drop.
    pub fn adopt(name: &str) -> std::mem::ManuallyDrop<Netns> {
        std::mem::ManuallyDrop::new(Netns {
            name: name.to_owned(),
        })
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// `ip netns exec NAME CMD ARGS`.
    pub fn exec(&self, cmd: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.name.as_str(), cmd];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Sets sysctls in the namespace (`key=value`).
    pub fn sysctl(&self, settings: &[&str]) {
        for s in settings {
            self.exec("sysctl", &["-qw", s]);
        }
    }

    /// Runs `f` on a thread inside the namespace; what it creates there
    /// (sockets, the offload) stays there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).expect("netns file");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    }

    /// The index of `interface` in this namespace.
    pub fn ifindex(&self, interface: &str) -> u32 {
        let name = interface.to_owned();
        self.run(move || nix::net::if_::if_nametoindex(name.as_str()).expect("ifindex"))
    }

    /// The MAC address of `interface`.
    pub fn mac(&self, interface: &str) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", interface])
            .output()
            .expect("ip link");
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text
            .split("link/ether ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("link/ether");
        let mut mac = [0u8; 6];
        for (m, h) in mac.iter_mut().zip(hex.split(':')) {
            *m = u8::from_str_radix(h, 16).expect("mac");
        }
        mac
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Ones' complement sum of big-endian 16-bit words.
fn sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn pseudo(src: IpAddr, dst: IpAddr, udp_len: usize) -> u32 {
    sum(&ip_bytes(src)) + sum(&ip_bytes(dst)) + 17 + udp_len as u32
}

/// The UDP checksum of `udp` (header with a zero checksum field, and data).
pub fn udp_checksum(src: IpAddr, dst: IpAddr, udp: &[u8]) -> u16 {
    let c = !fold(pseudo(src, dst, udp.len()) + sum(udp));
    if c == 0 { 0xffff } else { c }
}

/// How a test frame is built.
#[derive(Clone, Copy)]
pub struct Opts {
    pub ttl: u8,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    pub ip_id: u16,
    pub df: bool,
    /// IPv4 MF flag (a first fragment).
    pub more_fragments: bool,
    pub flow_label: u32,
    /// Write a zero UDP checksum.
    pub zero_checksum: bool,
    /// Write only the pseudo-header sum (CHECKSUM_PARTIAL, as a local
    /// sender leaves it for the device).
    pub partial_checksum: bool,
    /// IP protocol / next header (17 = UDP).
    pub protocol: u8,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            ttl: 64,
            tos: 0xb8,
            ip_id: 0x1234,
            df: true,
            more_fragments: false,
            flow_label: 0x5_4321,
            zero_checksum: false,
            partial_checksum: false,
            protocol: 17,
        }
    }
}

/// An Ethernet frame carrying one UDP datagram, checksums correct.
pub fn frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
    o: Opts,
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let check = if o.zero_checksum {
        0
    } else if o.partial_checksum {
        fold(pseudo(src.ip(), dst.ip(), udp_len))
    } else {
        udp_checksum(src.ip(), dst.ip(), &udp)
    };
    udp[6..8].copy_from_slice(&check.to_be_bytes());

    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, o.tos];
            ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            ip.extend_from_slice(&o.ip_id.to_be_bytes());
            let flags = (u16::from(o.df) << 14) | (u16::from(o.more_fragments) << 13);
            ip.extend_from_slice(&flags.to_be_bytes());
            ip.extend_from_slice(&[o.ttl, o.protocol, 0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let c = !fold(sum(&ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            let word = (6u32 << 28) | (u32::from(o.tos) << 20) | (o.flow_label & 0xf_ffff);
            f.extend_from_slice(&word.to_be_bytes());
            f.extend_from_slice(&(udp_len as u16).to_be_bytes());
            f.extend_from_slice(&[o.protocol, o.ttl]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    f.extend_from_slice(&udp);
    f
}

/// A frame taken apart, with its checksums verified from scratch.
#[derive(Debug)]
pub struct Parsed {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub ttl: u8,
    pub tos: u8,
    pub ip_id: u16,
    pub df: bool,
    pub flow_label: u32,
    /// The UDP checksum field.
    pub udp_check: u16,
    /// The UDP checksum verifies (or is 0 on IPv4).
    pub udp_ok: bool,
    /// The IPv4 header checksum verifies (true on IPv6).
    pub ip_ok: bool,
    /// The IP length fields cover exactly the frame after Ethernet.
    pub lengths_ok: bool,
    pub payload: Vec<u8>,
}

/// Parses an Ethernet/IP/UDP frame built like [`frame`].
pub fn parse(f: &[u8]) -> Parsed {
    let mac = |r: std::ops::Range<usize>| -> [u8; 6] { f[r].try_into().unwrap() };
    let (dst_mac, src_mac) = (mac(0..6), mac(6..12));
    let l3 = &f[14..];
    let (src_ip, dst_ip, ttl, tos, ip_id, df, flow_label, ip_ok, l4, total): (
        IpAddr,
        IpAddr,
        _,
        _,
        _,
        _,
        _,
        _,
        &[u8],
        usize,
    ) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => {
            let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
            let s: [u8; 4] = l3[12..16].try_into().unwrap();
            let d: [u8; 4] = l3[16..20].try_into().unwrap();
            (
                s.into(),
                d.into(),
                l3[8],
                l3[1],
                u16::from_be_bytes([l3[4], l3[5]]),
                l3[6] & 0x40 != 0,
                0,
                fold(sum(&l3[..20])) == 0xffff,
                &l3[20..],
                total,
            )
        }
        0x86dd => {
            let word = u32::from_be_bytes(l3[..4].try_into().unwrap());
            let s: [u8; 16] = l3[8..24].try_into().unwrap();
            let d: [u8; 16] = l3[24..40].try_into().unwrap();
            (
                s.into(),
                d.into(),
                l3[7],
                ((word >> 20) & 0xff) as u8,
                0,
                false,
                word & 0xf_ffff,
                true,
                &l3[40..],
                40 + usize::from(u16::from_be_bytes([l3[4], l3[5]])),
            )
        }
        t => panic!("ethertype {t:#06x}"),
    };
    let udp_len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
    let udp_check = u16::from_be_bytes([l4[6], l4[7]]);
    let udp = &l4[..udp_len.min(l4.len())];
    let udp_ok = (udp_check == 0 && src_ip.is_ipv4())
        || fold(pseudo(src_ip, dst_ip, udp.len()) + sum(udp)) == 0xffff;
    Parsed {
        dst_mac,
        src_mac,
        src: SocketAddr::new(src_ip, u16::from_be_bytes([l4[0], l4[1]])),
        dst: SocketAddr::new(dst_ip, u16::from_be_bytes([l4[2], l4[3]])),
        ttl,
        tos,
        ip_id,
        df,
        flow_label,
        udp_check,
        udp_ok,
        ip_ok,
        lengths_ok: total == l3.len() && l4.len() == udp_len,
        payload: udp[8..].to_vec(),
    }
}

/// A ChannelData message: header, data, then `pad` padding bytes.
pub fn channel_data(channel: u16, data: &[u8], pad: &[u8]) -> Vec<u8> {
    let mut m = channel.to_be_bytes().to_vec();
    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
    m.extend_from_slice(data);
    m.extend_from_slice(pad);
    m
}
