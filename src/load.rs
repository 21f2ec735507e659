//! The one load pipeline: read the configuration, the client data and the map files from
//! storage (disk, or the embedded default) and compile them into a snapshot. The reload thread,
//! `serve`'s first load and the offline commands (`check`, `lookup`, `explain`, `diff`) all go
//! through here; the compiler itself reads nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::client::ClientData;
use crate::compile::{self, Inputs, MapText, SignatureCache};
use crate::config::{Config, DataSource};
use crate::live::FeedTable;
use crate::snapshot::Snapshot;
use crate::source::Errors;

/// Loads the configuration at `path`, or the embedded default.
pub fn config(path: Option<&Path>) -> Result<Config, Errors> {
    match path {
        Some(p) => Config::load(p),
        None => Config::embedded(),
    }
}

/// Loads the client data the configuration names, reusing the files of `previous` that did
/// not change on disk; the GeoIP coordinates are kept when `locations` is set (see
/// [`compile::wants_locations`]).
pub fn client_data(
    config: &Config,
    previous: Option<&ClientData>,
    locations: bool,
) -> Result<Arc<ClientData>, Errors> {
    Ok(Arc::new(ClientData::load_reusing(
        &config.geoip,
        &config.bgp,
        previous,
        locations,
    )?))
}

fn compile_maps(
    config: &Config,
    client: Arc<ClientData>,
    maps: &[MapText],
    live: &[FeedTable],
) -> Result<Snapshot, Errors> {
    compile::build(
        config,
        Inputs {
            client,
            maps,
            files: &|s: &DataSource| s.read(),
            live,
            signatures: None,
        },
    )
}

/// Loads everything named by `config_path` (or the embedded default) and builds a snapshot,
/// reusing the unchanged data files of `previous`.
pub fn load(
    config_path: Option<&Path>,
    previous: Option<&ClientData>,
) -> Result<(Config, Snapshot), Errors> {
    build_config(config(config_path)?, previous, &[], false)
}

/// Like [`load`], from a configuration already loaded, with the live feeds' tables; the GeoIP coordinates are kept
/// when a map ranks by distance or `keep_locations` is set (for tools that show them).
pub fn build_config(
    config: Config,
    previous: Option<&ClientData>,
    live: &[FeedTable],
    keep_locations: bool,
) -> Result<(Config, Snapshot), Errors> {
    let maps = read_maps(&config)?;
    let locations = keep_locations || compile::wants_locations(&maps);
    let client = client_data(&config, previous, locations)?;
    let snap = compile_maps(&config, client, &maps, live)?;
    Ok((config, snap))
}

/// Everything a build reads from storage, kept by the reload thread so that a build for a feed
/// change compiles the last good inputs again, with new live tables, without reading a file:
/// an operator's edit in progress cannot hold back (or break) the routing updates.
pub struct Sources {
    /// The configuration.
    pub config: Config,
    /// The client data.
    pub client: Arc<ClientData>,
    /// The map files.
    maps: Vec<MapText>,
    /// The files the maps refer to, as read by the first build from these sources.
    files: Mutex<HashMap<DataSource, Vec<u8>>>,
    /// The signatures of the last build from these sources, reused by the next while fresh.
    signatures: SignatureCache,
}

impl Sources {
    /// Reads the configuration at `config_path` (or the embedded default), its client data
    /// (reusing the unchanged files of `previous`) and its maps.
    pub fn read(
        config_path: Option<&Path>,
        previous: Option<&ClientData>,
    ) -> Result<Sources, Errors> {
        let config = config(config_path)?;
        let maps = read_maps(&config)?;
        let client = client_data(&config, previous, compile::wants_locations(&maps))?;
        Ok(Sources {
            config,
            client,
            maps,
            files: Mutex::new(HashMap::new()),
            signatures: SignatureCache::default(),
        })
    }

    /// Compiles these sources with the live feeds' tables. The files the maps refer to are read
    /// once and then reused.
    pub fn build(&self, live: &[FeedTable]) -> Result<Snapshot, Errors> {
        let read = |s: &DataSource| {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(bytes) = files.get(s) {
                return Ok(bytes.clone());
            }
            let bytes = s.read()?;
            files.insert(s.clone(), bytes.clone());
            Ok(bytes)
        };
        compile::build(
            &self.config,
            Inputs {
                client: self.client.clone(),
                maps: &self.maps,
                files: &read,
                live,
                signatures: Some(&self.signatures),
            },
        )
    }

    /// Takes over the signatures `previous` (the sources these replace) kept, for the first
    /// build from these: a reload of the files signs only what changed.
    pub fn keep_signatures(&mut self, previous: &Sources) {
        self.signatures = previous.signatures.copy();
    }

    /// Signatures made and reused by the last build from these sources.
    pub fn signatures_made(&self) -> (usize, usize) {
        self.signatures.last_build()
    }
}

/// Reads the map files named by the configuration (directories expanded to their `*.yaml`
/// and `*.yml` files, sorted).
pub fn read_maps(config: &Config) -> Result<Vec<MapText>, Errors> {
    let mut errors = Errors::default();
    let mut out = Vec::new();
    for m in &config.maps {
        match m {
            DataSource::File(p) if p.is_dir() => {
                let mut files: Vec<_> = match std::fs::read_dir(p) {
                    Ok(rd) => rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                        .collect(),
                    Err(e) => {
                        errors.file(
                            &p.display().to_string(),
                            format!("cannot read directory: {e}"),
                        );
                        continue;
                    }
                };
                files.sort();
                for f in files {
                    match std::fs::read_to_string(&f) {
                        Ok(text) => out.push(MapText {
                            source: DataSource::File(f),
                            text,
                        }),
                        Err(e) => {
                            errors.file(&f.display().to_string(), format!("cannot read: {e}"))
                        }
                    }
                }
            }
            DataSource::Embedded(dir) if dir.ends_with('/') => {
                for name in crate::embedded::list(dir) {
                    if name.ends_with(".yaml") || name.ends_with(".yml") {
                        let text = String::from_utf8_lossy(
                            crate::embedded::file(name).unwrap_or_default(),
                        )
                        .into_owned();
                        out.push(MapText {
                            source: DataSource::Embedded(name.to_string()),
                            text,
                        });
                    }
                }
            }
            other => match other
                .read()
                .map_err(|e| e.to_string())
                .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string()))
            {
                Ok(text) => out.push(MapText {
                    source: other.clone(),
                    text,
                }),
                Err(e) => errors.file(&other.display(), e),
            },
        }
    }
    errors.into_result(out)
}
