//! The offload in a build without the `kernel` feature: the same API, and
//! every way to get one answers [`OffloadError::NotBuilt`], so the server
//! can log once and stay in userspace.

use std::convert::Infallible;
use std::net::SocketAddr;

use crate::types::{
    Attachment, Channel, ChannelKey, Config, Counters, Hook, OffloadError, Stats, TestRun,
};

/// The kernel relay; never constructed in this build.
#[derive(Debug)]
pub struct Offload {
    never: Infallible,
}

impl Offload {
    /// [`OffloadError::NotBuilt`].
    pub fn attach(_interfaces: &[String], _listen: &[SocketAddr]) -> Result<Self, OffloadError> {
        Err(OffloadError::NotBuilt)
    }

    /// [`OffloadError::NotBuilt`].
    pub fn attach_with(_config: &Config) -> Result<Self, OffloadError> {
        Err(OffloadError::NotBuilt)
    }

    /// [`OffloadError::NotBuilt`].
    pub fn load(_config: &Config) -> Result<Self, OffloadError> {
        Err(OffloadError::NotBuilt)
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn attachments(&self) -> &[Attachment] {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn len(&self) -> usize {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn is_empty(&self) -> bool {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn insert(&mut self, _ch: &Channel, _budget_bytes: u64) -> Result<(), OffloadError> {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn remove(&mut self, _key: &ChannelKey) -> Result<Option<Counters>, OffloadError> {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn counters(&self, _key: &ChannelKey) -> Result<Option<Counters>, OffloadError> {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn add_budget(&mut self, _key: &ChannelKey, _bytes: u64) -> Result<(), OffloadError> {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn set_budget(&mut self, _key: &ChannelKey, _bytes: u64) -> Result<(), OffloadError> {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn stats(&self) -> Result<Stats, OffloadError> {
        match self.never {}
    }

    /// Unreachable: there is no `Offload` in this build.
    pub fn test_run(
        &self,
        _hook: Hook,
        _frame: &[u8],
        _ingress_ifindex: u32,
    ) -> Result<TestRun, OffloadError> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constructor_says_not_built() {
        let listen: SocketAddr = "0.0.0.0:3478".parse().unwrap();
        let ifs = ["eth0".to_owned()];
        assert!(matches!(
            Offload::attach(&ifs, &[listen]),
            Err(OffloadError::NotBuilt)
        ));
        let config = Config::new(&ifs, &[listen]);
        assert!(matches!(
            Offload::attach_with(&config),
            Err(OffloadError::NotBuilt)
        ));
        assert!(matches!(
            Offload::load(&config),
            Err(OffloadError::NotBuilt)
        ));
        assert!(!crate::built());
    }
}
