//! Confinement of the extraction worker, applied by the worker itself once
//! it has read its input and before any parser sees a byte of it: with
//! Landlock it may then open no file at all (the database, the audit key
//! and the TLS key are out of reach, whatever a parser bug does) and make
//! or accept no TCP connection, and it cannot signal processes outside it.
//! rlimits (memory, CPU, file size, open files) and the parent's deadline
//! stay as they were; Landlock adds what rlimits cannot say.

use landlock::{
    ABI, Access, AccessFs, AccessNet, RestrictionStatus, Ruleset, RulesetAttr, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};

/// What the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Confinement {
    /// Every requested restriction.
    Full,
    /// Some (an older kernel): see `enclave doctor`.
    Partial,
    /// None (no Landlock): the rlimits alone.
    None,
}

/// The newest Landlock version this confinement asks for; on older kernels
/// the crate enforces what they support (best effort).
const WANTED: ABI = ABI::V6;

/// Deny this process every filesystem access, TCP bind and connect, and
/// signals or abstract sockets outside it, for good.
pub fn confine_self() -> Confinement {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(WANTED))
        .and_then(|r| r.handle_access(AccessNet::from_all(WANTED)))
        .and_then(|r| r.scope(Scope::AbstractUnixSocket | Scope::Signal))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self());
    match status {
        Ok(RestrictionStatus {
            ruleset: RulesetStatus::FullyEnforced,
            ..
        }) => Confinement::Full,
        Ok(RestrictionStatus {
            ruleset: RulesetStatus::PartiallyEnforced,
            ..
        }) => Confinement::Partial,
        _ => Confinement::None,
    }
}

/// What a confined process could still do, tried from inside: the probe
/// behind `enclave doctor`'s extractor check and its test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub confinement: Confinement,
    /// Opening the file named (the database, say) for reading: the error, if refused.
    pub open: Result<(), String>,
    /// Connecting to the address named: the error, if refused.
    pub connect: Result<(), String>,
}

/// Confine this process, then try to read `file` and connect to `address`.
pub fn probe(file: &std::path::Path, address: &str) -> Probe {
    let confinement = confine_self();
    let open = std::fs::File::open(file)
        .map(drop)
        .map_err(|e| e.to_string());
    let connect = std::net::TcpStream::connect(address)
        .map(drop)
        .map_err(|e| e.to_string());
    Probe {
        confinement,
        open,
        connect,
    }
}
