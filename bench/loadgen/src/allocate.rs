//! `allocate` and `hold` modes: TURN allocations (RFC 8656 §7) made through
//! the `turn::client` core, one source socket (one 5-tuple) per allocation.
//!
//! - `allocate`: C workers each loop Allocate (401 challenge, signed
//!   Allocate) then Refresh LIFETIME 0, until N allocations were tried or
//!   the time limit; the rate is successful allocations per second.
//! - `hold`: N allocations, made C at a time, then kept (the core refreshes
//!   them when due) until `--hold-secs`, SIGINT/SIGTERM or the time limit.
//!   When all are made, a `READY held=N failed=M secs=T` line is printed so
//!   `bench/run` knows when to read the server's memory; at the end each is
//!   deleted (bounded by a 15 s grace).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::driver::{PortCycle, STEP, Session, Stop};
use crate::{AllocateArgs, Credentials, HoldArgs};

/// How long deleting the held allocations may take at the end.
const RELEASE_GRACE: Duration = Duration::from_secs(15);

/// Counts of errors by message, for the summary on stderr.
#[derive(Default)]
struct Errors(Mutex<BTreeMap<String, u64>>);

impl Errors {
    fn add(&self, e: &anyhow::Error) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(format!("{e:#}")).or_default() += 1;
        }
    }

    fn report(&self, what: &str) {
        if let Ok(m) = self.0.lock() {
            for (e, n) in m.iter() {
                eprintln!("{what}: {n} × {e}");
            }
        }
    }
}

/// Allocate and delete `args.count` allocations, `args.concurrency` at a
/// time; returns the result line.
pub async fn run(
    server: SocketAddr,
    args: AllocateArgs,
    limit: Duration,
) -> anyhow::Result<String> {
    let start = Instant::now();
    let deadline = start + limit;
    let credentials = Arc::new(args.credentials);
    let ports = Arc::new(PortCycle::new(
        args.source_ports.low,
        args.source_ports.high,
    ));
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (credentials, ports, next, ok, errors) = (
            credentials.clone(),
            ports.clone(),
            next.clone(),
            ok.clone(),
            errors.clone(),
        );
        let count = args.count;
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count || Instant::now() >= deadline {
                    break;
                }
                match allocate_and_delete(server, &credentials, &ports, n, deadline).await {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.add(&e),
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let tried = next.load(Ordering::Relaxed).min(args.count);
    errors.report("allocate");
    eprintln!(
        "allocate: {ok} of {tried} allocated and deleted in {secs:.2} s ({:.0}/s)",
        ok as f64 / secs.max(1e-9)
    );
    Ok(format!(
        "mode=allocate ok={ok} failed={} secs={secs:.3} rate={:.1}",
        tried - ok.min(tried),
        ok as f64 / secs.max(1e-9)
    ))
}

async fn allocate_and_delete(
    server: SocketAddr,
    credentials: &Credentials,
    ports: &PortCycle,
    n: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut s = Session::connect(server, credentials, n, Some(ports)).await?;
    s.allocate().await?;
    s.release((Instant::now() + STEP).min(deadline)).await
}

/// Make `args.count` allocations and hold them; returns the result line.
pub async fn hold(server: SocketAddr, args: HoldArgs, limit: Duration) -> anyhow::Result<String> {
    let start = Instant::now();
    let deadline = start + limit;
    let credentials = Arc::new(args.credentials);
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let held = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let released = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let mut tasks = JoinSet::new();
    for n in 0..args.count {
        let (credentials, gate, mut stop) = (credentials.clone(), gate.clone(), stop_rx.clone());
        let (held, failed, lost, released, errors) = (
            held.clone(),
            failed.clone(),
            lost.clone(),
            released.clone(),
            errors.clone(),
        );
        tasks.spawn(async move {
            let made = async {
                let _permit = gate.acquire_owned().await?;
                let mut s = Session::connect(server, &credentials, n, None).await?;
                s.allocate().await?;
                anyhow::Ok(s)
            };
            let mut s = match made.await {
                Ok(s) => s,
                Err(e) => {
                    errors.add(&e);
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            held.fetch_add(1, Ordering::Relaxed);
            // Hold: the core refreshes when due, until told to stop.
            let far = deadline + RELEASE_GRACE;
            match s.run_until(far, Some(&mut stop), |_| None::<()>).await {
                Ok(Err(Stop::Signalled)) => {}
                Ok(Ok(())) => {}
                Err(e) => {
                    errors.add(&e.context("while held"));
                    lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            if s.release(Instant::now() + RELEASE_GRACE).await.is_ok() {
                released.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // Wait until every allocation is made or has failed.
    let mut signalled = false;
    while held.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < args.count
        && Instant::now() < deadline
    {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = term.recv() => { signalled = true; break; }
            _ = int.recv() => { signalled = true; break; }
        }
    }
    let made_secs = start.elapsed().as_secs_f64();
    let (h, f) = (held.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("READY held={h} failed={f} secs={made_secs:.3}");
    eprintln!("hold: {h} allocations held, {f} failed, in {made_secs:.2} s");
    if !signalled {
        let until = (Instant::now() + Duration::from_secs(args.hold_secs)).min(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    let _ = stop_tx.send(true);
    let end = Instant::now() + RELEASE_GRACE + Duration::from_secs(1);
    while !tasks.is_empty() {
        match tokio::time::timeout_at(end.into(), tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    tasks.abort_all();
    errors.report("hold");
    let (lost, released) = (
        lost.load(Ordering::Relaxed),
        released.load(Ordering::Relaxed),
    );
    Ok(format!(
        "mode=hold held={h} failed={f} secs={made_secs:.3} lost={lost} released={released}"
    ))
}
