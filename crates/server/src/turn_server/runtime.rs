//! One worker thread: a single-threaded tokio runtime that builds the
//! worker, starts its read loops (`transport/`), and runs its timer and
//! control loops. Above both the transports and the worker: the only
//! module that knows them all.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use turn::Server;

use super::handoff::HandedOff;
use super::kernel::{KernelOffload, WorkerKernel};
use super::socket::client_socket::ClientSocket;
use super::socket::relay_poll::RelayPoll;
use super::socket::relays::Relays;
use super::stats::StatsBoard;
use super::transport::accept::{self, StreamRules};
use super::transport::{SharedWorker, relay, udp};
use super::worker::{Control, Worker};
use crate::tls::Tls;

/// Everything one worker starts from.
pub(crate) struct Setup {
    /// Which worker (its slot on the stats board).
    pub(crate) index: usize,
    pub(crate) core: Server,
    /// Its `--turn-listen` sockets.
    pub(crate) udp: std::net::UdpSocket,
    pub(crate) tcp: std::net::TcpListener,
    /// Its `--turns-listen` socket and the TLS configuration, if on.
    pub(crate) tls: Option<(std::net::TcpListener, Arc<Tls>)>,
    /// TURN connections handed over from the shared HTTPS port.
    pub(crate) handoff: mpsc::Receiver<HandedOff>,
    /// Messages from the rest of the process (drain).
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    pub(crate) rules: StreamRules,
    pub(crate) board: Arc<StatsBoard>,
    /// The kernel fast path, when attached.
    pub(crate) kernel: Option<Arc<KernelOffload>>,
}

/// Runs a worker on the current thread until the process ends.
pub(crate) fn run(setup: Setup) -> anyhow::Result<()> {
    let Setup {
        index,
        core,
        udp,
        tcp,
        tls,
        handoff,
        control,
        rules,
        board,
        kernel,
    } = setup;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let socket = Rc::new(ClientSocket::new(udp)?);
        let tcp = tokio::net::TcpListener::from_std(tcp)?;
        let relay_poll = RelayPoll::new()?;
        let relays = Relays::new(relay_poll.get_ref())?;
        let kernel = kernel.map(WorkerKernel::new);
        let worker = Worker::new(core, relays, socket.clone(), board, index, kernel);
        let worker: SharedWorker = Rc::new(RefCell::new(worker));
        tokio::task::spawn_local(accept::tcp(worker.clone(), tcp, rules.clone()));
        if let Some((listener, tls)) = tls {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let task = accept::tls(worker.clone(), listener, tls, rules.clone());
            tokio::task::spawn_local(task);
        }
        tokio::task::spawn_local(accept::handed_over(worker.clone(), handoff, rules));
        tokio::task::spawn_local(timers(worker.clone()));
        tokio::task::spawn_local(controls(worker.clone(), control));
        tokio::task::spawn_local(relay::read(worker.clone(), relay_poll, socket.clone()));
        udp::read(worker, socket).await;
        Ok(())
    })
}

/// Fires the worker's timer: the core's expiry timers, and its stats
/// snapshot about once a second.
async fn timers(worker: SharedWorker) {
    let mut wake = worker.borrow_mut().timer(Instant::now());
    loop {
        tokio::time::sleep_until(wake.into()).await;
        wake = worker.borrow_mut().timer(Instant::now());
    }
}

/// Hands control messages to the worker.
async fn controls(worker: SharedWorker, mut messages: mpsc::UnboundedReceiver<Control>) {
    while let Some(message) = messages.recv().await {
        worker.borrow_mut().control(message);
    }
}
