//! The offline tools: `lookup`, `explain` and `diff` over the files, without a server.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{CliError, addresses_or_stdin};
use crate::node_state::NodeStates;
use crate::source::Errors;

pub(super) fn lookup(config: Option<PathBuf>, addresses: Vec<String>) -> Result<(), CliError> {
    let cfg = crate::load::config(config.as_deref())?;
    let data = crate::load::client_data(&cfg, None, true)?;
    let list = addresses_or_stdin(addresses);
    let mut bad = Vec::new();
    for a in list {
        match a.parse::<IpAddr>() {
            Ok(ip) => {
                outln!("{ip}");
                for line in data.lookup(ip).lines() {
                    outln!("  {line}");
                }
            }
            Err(_) => bad.push(format!("{a:?} is not an IP address")),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(CliError::Bad(bad.join("\n")))
    }
}

pub(super) fn explain(
    config: Option<PathBuf>,
    health: Option<PathBuf>,
    ipv6: bool,
    address: IpAddr,
    name: &str,
) -> Result<(), CliError> {
    let (_, snap) =
        crate::load::build_config(crate::load::config(config.as_deref())?, None, &[], true)?;
    if let Some(h) = health {
        NodeStates::load(Some(h))
            .map_err(CliError::StateFile)?
            .apply(&snap);
    }
    let Some(s) = crate::explain::service_named(&snap, name) else {
        return Err(CliError::Bad(format!(
            "{name} is not a service name of this configuration"
        )));
    };
    for line in crate::explain::explain(&snap, s, address, "given on the command line", ipv6) {
        outln!("{line}");
    }
    Ok(())
}

pub(super) fn diff(config: Option<PathBuf>, old: PathBuf, new: PathBuf) -> Result<(), CliError> {
    let load = |maps: PathBuf| -> Result<crate::snapshot::Snapshot, Errors> {
        let mut c = crate::load::config(config.as_deref())?;
        c.maps = vec![crate::config::DataSource::File(maps)];
        crate::load::build_config(c, None, &[], false).map(|(_, snap)| snap)
    };
    let (o, n) = (load(old)?, load(new)?);
    for line in crate::explain::diff(&o, &n) {
        outln!("{line}");
    }
    Ok(())
}
