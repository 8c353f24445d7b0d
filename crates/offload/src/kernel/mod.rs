//! The offload with the program built in: loading it (aya), attaching its
//! two hooks as bpf_links, the global counters and test runs. The channel
//! table is in `table`.

mod table;

use std::net::SocketAddr;
use std::path::Path;

use aya::maps::{Array, DevMapHash, HashMap, MapData, PerCpuArray};
use aya::programs::links::FdLink;
use aya::programs::tc::TcAttachOptions;
use aya::programs::{LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader, TestRun as _, TestRunOptions};

use crate::types::{
    Attachment, Cause, Config, Hook, HookStats, OffloadError, Stats, TestRun, Verdict, XdpPolicy,
};
use crate::wire::{CounterWords, Key40, PORT_WORDS, PeerRoute};

use table::Table;

/// The object build.rs compiled from `bpf/relay.bpf.c`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/relay.bpf.o"));

const XDP_PROGRAM: &str = "relay_xdp";
const TC_PROGRAM: &str = "relay_tc";
/// Entries of `enum stat` in the program, per hook.
const STAT_COUNT: u32 = 6;

/// The loaded program, its maps and its attachments. Dropping it detaches
/// both hooks; so does the end of the process (the links are not pinned).
pub struct Offload {
    /// First field, so it is dropped first: closing a link detaches.
    links: Vec<FdLink>,
    attachments: Vec<Attachment>,
    maps: Maps,
    table: Table,
    ebpf: Ebpf,
}

/// The program's maps (see `bpf/relay.bpf.c` for what each holds).
struct Maps {
    to_peer: HashMap<MapData, Key40, Key40>,
    to_client: HashMap<MapData, Key40, PeerRoute>,
    counters: Array<MapData, CounterWords>,
    grants: Array<MapData, u64>,
    ports: Array<MapData, u64>,
    xdp_egress: DevMapHash<MapData>,
    stats: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for Offload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offload")
            .field("attachments", &self.attachments)
            .field("channels", &self.table.len())
            .finish_non_exhaustive()
    }
}

fn cause(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
    Box::new(e)
}

fn load_error(e: impl std::error::Error + Send + Sync + 'static) -> OffloadError {
    OffloadError::Load(cause(e))
}

/// A map operation's error.
pub(crate) fn map_error<E: std::error::Error + Send + Sync + 'static>(
    map: &'static str,
    op: &'static str,
) -> impl FnOnce(E) -> OffloadError {
    move |e| OffloadError::Map {
        map,
        op,
        source: cause(e),
    }
}

fn take<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, OffloadError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| OffloadError::Load(format!("map {name} missing from the object").into()))?;
    M::try_from(map).map_err(load_error)
}

impl Offload {
    /// Loads the program and attaches it to `interfaces` for the TURN UDP
    /// `listen` addresses, with the default [`Config`].
    pub fn attach(interfaces: &[String], listen: &[SocketAddr]) -> Result<Self, OffloadError> {
        Self::attach_with(&Config::new(interfaces, listen))
    }

    /// Loads the program and attaches it as `config` says: per interface
    /// native XDP if the policy allows and the driver takes it, and TCX
    /// ingress. An interface must end up with at least one hook.
    pub fn attach_with(config: &Config) -> Result<Self, OffloadError> {
        if config.interfaces.is_empty() || config.listen.is_empty() {
            return Err(OffloadError::NothingToAttach);
        }
        let mut offload = Self::load(config)?;
        for name in &config.interfaces {
            offload.attach_interface(name, config.xdp)?;
        }
        Ok(offload)
    }

    /// Loads and verifies the program and creates its maps without
    /// attaching it anywhere: for [`Offload::test_run`], or to learn at
    /// start whether this kernel accepts it.
    pub fn load(config: &Config) -> Result<Self, OffloadError> {
        let capacity = config.max_channels.max(1);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("to_peer", capacity)
            .map_max_entries("to_client", capacity)
            .map_max_entries("counters", capacity)
            .map_max_entries("grants", capacity)
            .load(OBJECT)
            .map_err(load_error)?;
        for (name, hook) in [(XDP_PROGRAM, Hook::Xdp), (TC_PROGRAM, Hook::Tc)] {
            let program = ebpf.program_mut(name).ok_or_else(|| {
                OffloadError::Load(format!("program {name} missing from the object").into())
            })?;
            match hook {
                Hook::Xdp => <&mut Xdp>::try_from(program).and_then(|p| p.load()),
                Hook::Tc => <&mut SchedClassifier>::try_from(program).and_then(|p| p.load()),
            }
            .map_err(load_error)?;
        }
        let maps = Maps {
            to_peer: take(&mut ebpf, "to_peer")?,
            to_client: take(&mut ebpf, "to_client")?,
            counters: take(&mut ebpf, "counters")?,
            grants: take(&mut ebpf, "grants")?,
            ports: take(&mut ebpf, "ports")?,
            xdp_egress: take(&mut ebpf, "xdp_egress")?,
            stats: take(&mut ebpf, "stats")?,
        };
        let mut offload = Offload {
            links: Vec::new(),
            attachments: Vec::new(),
            maps,
            table: Table::new(capacity),
            ebpf,
        };
        for addr in &config.listen {
            offload.set_port(0, addr.port(), true)?;
        }
        Ok(offload)
    }

    /// What runs where.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Channels in the kernel's table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no channel is relayed in the kernel.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    fn attach_interface(&mut self, name: &str, policy: XdpPolicy) -> Result<(), OffloadError> {
        let ifindex = nix::net::if_::if_nametoindex(name)
            .map_err(|_| OffloadError::NoSuchInterface(name.to_owned()))?;
        let xdp = match policy {
            XdpPolicy::Never => false,
            XdpPolicy::Auto if !has_device(name) => false,
            XdpPolicy::Auto => self.attach_xdp(name, ifindex).is_ok(),
            XdpPolicy::Always => {
                self.attach_xdp(name, ifindex)
                    .map_err(|source| OffloadError::Attach {
                        interface: name.to_owned(),
                        hook: Hook::Xdp,
                        source,
                    })?;
                true
            }
        };
        let tc = match self.attach_tc(name) {
            Ok(()) => true,
            // Before Linux 6.6 (no TCX) an interface with native XDP still
            // relays what XDP can; without either it would relay nothing.
            Err(_) if xdp => false,
            Err(source) => {
                return Err(OffloadError::Attach {
                    interface: name.to_owned(),
                    hook: Hook::Tc,
                    source,
                });
            }
        };
        self.attachments.push(Attachment {
            interface: name.to_owned(),
            ifindex,
            xdp,
            tc,
        });
        Ok(())
    }

    /// Native XDP as a bpf_link (never aya's netlink fallback, which would
    /// outlive the process), then the interface becomes an XDP egress.
    fn attach_xdp(&mut self, name: &str, ifindex: u32) -> Result<(), Cause> {
        let program: &mut Xdp = self
            .ebpf
            .program_mut(XDP_PROGRAM)
            .ok_or("program missing")?
            .try_into()?;
        let id = program.attach(name, XdpMode::Driver)?;
        let link = FdLink::try_from(program.take_link(id)?)
            .map_err(|_| "this kernel attaches XDP only through netlink, not as a bpf_link")?;
        self.maps.xdp_egress.insert(ifindex, ifindex, None, 0)?;
        self.links.push(link);
        Ok(())
    }

    /// TCX ingress (a bpf_link, Linux 6.6): no qdisc or filter is left behind.
    fn attach_tc(&mut self, name: &str) -> Result<(), Cause> {
        let program: &mut SchedClassifier = self
            .ebpf
            .program_mut(TC_PROGRAM)
            .ok_or("program missing")?
            .try_into()?;
        let id = program.attach_with_options(
            name,
            TcAttachType::Ingress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        )?;
        let link = FdLink::try_from(program.take_link(id)?)?;
        self.links.push(link);
        Ok(())
    }

    /// Sets or clears `port` in the listen (`set` 0) or relay (`set` 1) set.
    fn set_port(&mut self, set: u32, port: u16, on: bool) -> Result<(), OffloadError> {
        let (index, word) = self.table.set_port_bit(set * PORT_WORDS, port, on);
        self.maps
            .ports
            .set(index, word, 0)
            .map_err(map_error("ports", "update"))
    }

    /// Outcome counts of both hooks since the program was loaded.
    pub fn stats(&self) -> Result<Stats, OffloadError> {
        let hook = |h: u32| -> Result<HookStats, OffloadError> {
            let mut v = [0u64; STAT_COUNT as usize];
            for (i, slot) in (0..STAT_COUNT).zip(v.iter_mut()) {
                let per_cpu = self
                    .maps
                    .stats
                    .get(&(h * STAT_COUNT + i), 0)
                    .map_err(map_error("stats", "lookup"))?;
                *slot = per_cpu.iter().fold(0u64, |a, b| a.wrapping_add(*b));
            }
            let [
                forwarded,
                no_entry,
                bad_length,
                over_budget,
                no_route,
                unsupported,
            ] = v;
            Ok(HookStats {
                forwarded,
                no_entry,
                bad_length,
                over_budget,
                no_route,
                unsupported,
            })
        };
        Ok(Stats {
            xdp: hook(0)?,
            tc: hook(1)?,
        })
    }

    /// Runs one Ethernet frame through a hook with BPF_PROG_TEST_RUN, as if
    /// it arrived on `ingress_ifindex` (0: loopback) of this network
    /// namespace; route lookups use this namespace's tables. Nothing is
    /// sent: XDP_TX and redirects are only reported.
    pub fn test_run(
        &self,
        hook: Hook,
        frame: &[u8],
        ingress_ifindex: u32,
    ) -> Result<TestRun, OffloadError> {
        let failed = |e: Cause| OffloadError::TestRun(hook, e);
        let len = u32::try_from(frame.len()).map_err(|e| failed(cause(e)))?;
        let mut out = vec![0u8; frame.len() + 256];
        let mut ctx = [0u8; 44];
        let result = match hook {
            Hook::Xdp => {
                // struct xdp_md: data, data_end, data_meta, ingress_ifindex.
                put_u32(&mut ctx, 4, len);
                put_u32(&mut ctx, 12, ingress_ifindex);
                let program: &Xdp = self
                    .program(XDP_PROGRAM, hook)?
                    .try_into()
                    .map_err(|e| failed(cause(e)))?;
                program.test_run(options(frame, &mut out, ingress_ifindex, ctx.get(..24)))
            }
            Hook::Tc => {
                // struct __sk_buff: ingress_ifindex at 36, ifindex at 40.
                put_u32(&mut ctx, 36, ingress_ifindex);
                put_u32(&mut ctx, 40, ingress_ifindex);
                let program: &SchedClassifier = self
                    .program(TC_PROGRAM, hook)?
                    .try_into()
                    .map_err(|e| failed(cause(e)))?;
                program.test_run(options(frame, &mut out, ingress_ifindex, Some(&ctx)))
            }
        }
        .map_err(|e| failed(cause(e)))?;
        out.truncate(usize::try_from(result.data_size_out).unwrap_or(usize::MAX));
        let r = result.return_value;
        let verdict = match (hook, r) {
            (Hook::Xdp, 0) => Verdict::Aborted,
            (Hook::Xdp, 1) | (Hook::Tc, 2) => Verdict::Drop,
            (Hook::Xdp, 2) | (Hook::Tc, 0) => Verdict::Pass,
            (Hook::Xdp, 3) => Verdict::Tx,
            (Hook::Xdp, 4) | (Hook::Tc, 7) => Verdict::Redirect,
            _ => Verdict::Other(r),
        };
        Ok(TestRun {
            verdict,
            frame: out,
        })
    }

    fn program(&self, name: &str, hook: Hook) -> Result<&aya::programs::Program, OffloadError> {
        self.ebpf
            .program(name)
            .ok_or_else(|| OffloadError::TestRun(hook, "program missing".into()))
    }
}

fn options<'a>(
    frame: &'a [u8],
    out: &'a mut [u8],
    ingress_ifindex: u32,
    ctx: Option<&'a [u8]>,
) -> TestRunOptions<'a> {
    TestRunOptions {
        data_in: Some(frame),
        data_out: Some(out),
        ctx_in: if ingress_ifindex == 0 { None } else { ctx },
        ..TestRunOptions::new()
    }
}

fn put_u32(buf: &mut [u8; 44], at: usize, v: u32) {
    for (o, b) in buf.iter_mut().skip(at).zip(v.to_ne_bytes()) {
        *o = b;
    }
}

/// True for an interface backed by a device (PCI, virtio, …) rather than a
/// virtual one (veth, bridge, tunnel): where native XDP can transmit.
fn has_device(name: &str) -> bool {
    Path::new("/sys/class/net")
        .join(name)
        .join("device")
        .exists()
}
