//! ICE candidates as the browser app trickles them: the JSON of
//! `RTCIceCandidate.toJSON()` (`candidate`, `sdpMid`, `sdpMLineIndex`,
//! `usernameFragment`), whose `candidate` is an SDP `candidate` attribute
//! (RFC 8839 §5.1).
//!
//! Only UDP candidates with IP addresses are used: mDNS names (`.local`,
//! RFC 8839 §5.1 and draft-ietf-mmusic-mdns-ice-candidates) cannot be
//! resolved by a native peer, TCP candidates are not gathered here, and an
//! empty `candidate` only marks the end of a generation.

use serde::{Deserialize, Serialize};
use str0m::Candidate;
use str0m::net::Protocol;

/// The JSON form of one trickled candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateInit {
    /// `candidate:…` attribute text, or empty for end-of-candidates.
    #[serde(default)]
    pub candidate: String,
    /// The media section it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of that media section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u32>,
    /// The ICE ufrag of the generation it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Why a remote candidate is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skipped {
    /// An empty candidate: the end of a generation.
    #[error("end of candidates")]
    EndOfCandidates,
    /// An mDNS host name the peer cannot resolve.
    #[error("mDNS name")]
    Mdns,
    /// Not UDP.
    #[error("not UDP")]
    NotUdp,
    /// Not a valid candidate attribute.
    #[error("malformed candidate: {0}")]
    Malformed(String),
}

impl CandidateInit {
    /// The JSON for one of our candidates, in media section `mid`.
    pub fn local(c: &Candidate, mid: Option<&str>, ufrag: Option<&str>) -> Self {
        CandidateInit {
            candidate: c.to_sdp_string(),
            sdp_mid: mid.map(str::to_owned),
            sdp_m_line_index: Some(0),
            username_fragment: ufrag.map(str::to_owned),
        }
    }

    /// The candidate this names, if it is one a native peer can use.
    pub fn parse(&self) -> Result<Candidate, Skipped> {
        let text = self.candidate.trim();
        if text.is_empty() {
            return Err(Skipped::EndOfCandidates);
        }
        // `a=candidate:` from an SDP line, or the bare attribute.
        let text = text.strip_prefix("a=").unwrap_or(text);
        // The connection address is the fifth field (foundation, component,
        // transport, priority, address, port, "typ", type…).
        let mut fields = text.split_ascii_whitespace();
        let transport = fields.nth(2).unwrap_or_default();
        let address = fields.nth(1).unwrap_or_default();
        if address.ends_with(".local") {
            return Err(Skipped::Mdns);
        }
        if !transport.eq_ignore_ascii_case("udp") {
            return Err(Skipped::NotUdp);
        }
        let c = Candidate::from_sdp_string(text).map_err(|e| Skipped::Malformed(e.to_string()))?;
        if c.proto() != Protocol::Udp {
            return Err(Skipped::NotUdp);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::CandidateKind;

    fn init(candidate: &str) -> CandidateInit {
        CandidateInit {
            candidate: candidate.into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }
    }

    #[test]
    fn parses_what_chromium_and_firefox_send() {
        let chromium = init(
            "candidate:842163049 1 udp 1677729535 192.0.2.7 45678 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag Ab12 network-cost 999",
        );
        let c = chromium.parse().map_err(|e| e.to_string());
        let c = c.as_ref().map(|c| (c.kind(), c.addr().to_string()));
        assert_eq!(
            c,
            Ok((CandidateKind::ServerReflexive, "192.0.2.7:45678".into()))
        );
        let firefox = init("candidate:0 1 UDP 2122252543 192.0.2.9 51000 typ host");
        assert_eq!(firefox.parse().map(|c| c.kind()), Ok(CandidateKind::Host));
        let relay = init(
            "candidate:3 1 udp 41885439 127.0.0.1 50001 typ relay raddr 127.0.0.1 rport 40000 generation 0",
        );
        assert_eq!(relay.parse().map(|c| c.kind()), Ok(CandidateKind::Relayed));
        let v6 = init("candidate:1 1 udp 2122262783 fd00::2 40000 typ host generation 0");
        assert_eq!(
            v6.parse().map(|c| c.addr().to_string()),
            Ok("[fd00::2]:40000".into())
        );
    }

    #[test]
    fn skips_what_it_cannot_use() {
        assert_eq!(init("").parse(), Err(Skipped::EndOfCandidates));
        assert_eq!(
            init("candidate:1 1 udp 2122262783 4f6e8a1c-3b2d-4c1e-9f0a-1b2c3d4e5f60.local 40000 typ host")
                .parse(),
            Err(Skipped::Mdns)
        );
        assert_eq!(
            init("candidate:2 1 tcp 1518280447 192.0.2.7 9 typ host tcptype active").parse(),
            Err(Skipped::NotUdp)
        );
        for junk in [
            "candidate:",
            "x",
            "candidate:1 1 udp",
            "candidate:1 1 udp 1 999.1.1.1 1 typ host",
        ] {
            assert!(
                matches!(
                    init(junk).parse(),
                    Err(Skipped::Malformed(_) | Skipped::NotUdp)
                ),
                "{junk}"
            );
        }
    }

    #[test]
    fn our_candidates_round_trip_through_json() {
        let c = Candidate::host(
            "192.0.2.2:5000".parse().unwrap_or_else(|_| unreachable!()),
            "udp",
        )
        .map_err(|e| e.to_string());
        let Ok(c) = c else { panic!("{c:?}") };
        let json = serde_json::to_string(&CandidateInit::local(&c, Some("0"), Some("uf")))
            .unwrap_or_default();
        assert!(json.contains(r#""sdpMid":"0""#), "{json}");
        assert!(json.contains(r#""usernameFragment":"uf""#), "{json}");
        let back: CandidateInit = serde_json::from_str(&json).unwrap_or_else(|_| init(""));
        assert_eq!(back.parse().map(|b| b.addr()), Ok(c.addr()));
    }
}
