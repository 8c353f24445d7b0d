//! `switchboard invite ROOM`: an invite link for a server that runs with
//! `--join-secret` — `BASE/r/ROOM#t=TOKEN`, the token (a JWT, HS256, see
//! `signal::token`) in the URL fragment, which browsers never send to the
//! server, so it stays out of access logs and proxies.

use anyhow::Context;

use crate::config::{Config, InviteArgs};

/// The invite link `args` asks for, valid from `now_unix` for `args.ttl`.
pub fn link(config: &Config, args: &InviteArgs, now_unix: u64) -> anyhow::Result<String> {
    let secret = config.join_secret.as_deref().context(
        "invite links are signed with the server's join secret: pass --join-secret \
         (or SWITCHBOARD_JOIN_SECRET, or join-secret in the --config file)",
    )?;
    let room = signal::check_room(&args.room)
        .map_err(|_| anyhow::anyhow!("room ids are 1-64 characters of A-Z a-z 0-9 - _"))?;
    if let Some(name) = &args.name {
        signal::check_name(name).map_err(|_| {
            anyhow::anyhow!("--name: 1-64 characters after trimming, no control characters")
        })?;
    }
    let claims = signal::token::Claims {
        room: room.clone(),
        exp: now_unix.saturating_add(args.ttl.as_secs()),
        name: args.name.as_ref().map(|n| n.trim().to_owned()),
        admin: args.admin,
    };
    let token = signal::token::mint(secret.as_bytes(), &claims);
    let base = match &args.url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => base_url(config),
    };
    Ok(format!("{base}/r/{room}#t={token}"))
}

/// Where the app is served, as far as the configuration tells: https when
/// a certificate is configured, the public host if set, else the listen
/// address (loopback for a wildcard one); the port unless it is the
/// scheme's default.
fn base_url(config: &Config) -> String {
    let tls = config.tls_cert.is_some() || config.tls_self_signed;
    let scheme = if tls { "https" } else { "http" };
    let port = config.http_listen.port();
    let default_port = if tls { 443 } else { 80 };
    let host = match &config.public_host {
        Some(h) => h.clone(),
        None => {
            let ip = config.http_listen.ip();
            if ip.is_unspecified() {
                "127.0.0.1".to_owned()
            } else if ip.is_ipv6() {
                format!("[{ip}]")
            } else {
                ip.to_string()
            }
        }
    };
    if port == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Command;

    fn invite(args: &[&str]) -> anyhow::Result<String> {
        let config = Config::load_from(args.iter().copied())?;
        let Some(Command::Invite(invite)) = &config.command else {
            anyhow::bail!("not an invite command");
        };
        link(&config, invite, 1_000)
    }

    #[test]
    fn link_has_the_room_and_the_token_in_the_fragment() -> anyhow::Result<()> {
        let l = invite(&[
            "switchboard",
            "--join-secret",
            "s3cret",
            "--public-host",
            "meet.example.org",
            "--http-listen",
            "0.0.0.0:443",
            "--tls-self-signed",
            "invite",
            "standup",
            "--ttl",
            "2h",
        ])?;
        let (base, token) = l.split_once("#t=").unwrap_or_default();
        assert_eq!(base, "https://meet.example.org/r/standup");
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        assert!(!l.contains("s3cret"));
        Ok(())
    }

    #[test]
    fn base_url_follows_the_listen_address_and_url_wins() -> anyhow::Result<()> {
        let plain = invite(&[
            "switchboard",
            "--join-secret",
            "s",
            "--http-listen",
            "127.0.0.1:8080",
            "invite",
            "r1",
        ])?;
        assert!(
            plain.starts_with("http://127.0.0.1:8080/r/r1#t="),
            "{plain}"
        );
        let given = invite(&[
            "switchboard",
            "--join-secret",
            "s",
            "invite",
            "r1",
            "--url",
            "https://x.example/",
        ])?;
        assert!(given.starts_with("https://x.example/r/r1#t="), "{given}");
        Ok(())
    }

    #[test]
    fn refuses_without_secret_and_bad_rooms() {
        let no_secret = invite(&["switchboard", "invite", "r1"]);
        let msg = no_secret.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("--join-secret"), "{msg}");
        assert!(invite(&["switchboard", "--join-secret", "s", "invite", "a/b"]).is_err());
    }
}
