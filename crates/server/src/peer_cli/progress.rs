//! Progress of one transfer: an indicatif bar with rate and ETA on a
//! terminal, a plain line every few seconds otherwise.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// One transfer's progress display.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    size: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// Starts showing `label` for `size` bytes.
    pub fn new(label: String, size: u64, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let b = ProgressBar::new(size);
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(label.clone());
            b
        });
        let now = Instant::now();
        Progress {
            bar,
            label,
            size,
            started: now,
            last_line: now,
        }
    }

    /// `done` bytes so far.
    pub fn set(&mut self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
        } else if self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            eprintln!("{}: {} of {} bytes", self.label, done, self.size);
        }
    }

    /// Ends the display with `outcome`; returns the rate in MiB/s.
    pub fn finish(&mut self, outcome: &str) -> f64 {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = self.size as f64 / secs / (1024.0 * 1024.0);
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!(
            "{}: {outcome}, {} bytes in {secs:.1} s ({rate:.1} MiB/s)",
            self.label, self.size
        );
        rate
    }
}
