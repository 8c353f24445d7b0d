//! The `switchboard` binary: configuration, socket drivers and the HTTP server.

mod config;

fn main() -> anyhow::Result<()> {
    let cfg = config::Config::load()?;
    println!("{cfg:?}");
    Ok(())
}
