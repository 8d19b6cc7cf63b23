//! Merging shard files into the store: every check first, then the writes.

use super::file::read_shard;
use super::{Result, RunIdentity, ScaleError, ShardCounts, ShardHeader, ShardSpec, shards_dir};
use crate::fit::STORE_CHUNK_SIZE;
use neurosbi_infer::{Chunk, Store};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that stops a merge, all reported at once.
#[derive(Debug)]
pub struct MergeProblems(pub Vec<MergeProblem>);

impl fmt::Display for MergeProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cannot merge the shards ({} problem{}; nothing was written):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// One reason a set of shards cannot be merged.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MergeProblem {
    /// No shard files at all.
    #[error("no shard files (*.shard) in {0}")]
    NoShards(PathBuf),
    /// A `.part` file: the writer is still running or was killed mid-write.
    #[error(
        "{0}: incomplete shard (still being written, or its writer was killed); run that shard again"
    )]
    Incomplete(PathBuf),
    /// A shard file that cannot be read back whole.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong (truncated, checksum, format version, ...).
        reason: String,
    },
    /// A shard made by another run than the reference.
    #[error("{path}: from another run than {reference}: {what}")]
    ForeignRun {
        /// The shard.
        path: PathBuf,
        /// The file (or fit file) it was compared with.
        reference: String,
        /// What differs.
        what: String,
    },
    /// Indices no shard holds.
    #[error("round {round}: simulations {start}..{end} are missing{}", shard_hint(*.shard))]
    Missing {
        /// The round.
        round: u32,
        /// First missing index.
        start: u64,
        /// One past the last missing index.
        end: u64,
        /// The shard (index, count) that should hold them, when the split is known.
        shard: Option<(u32, u32)>,
    },
    /// Two shard files with the same range.
    #[error("round {round}: {a} and {b} both hold simulations {start}..{end} (duplicate shard)")]
    Duplicate {
        /// The round.
        round: u32,
        /// One file.
        a: PathBuf,
        /// The other.
        b: PathBuf,
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
    },
    /// Two shard files whose ranges overlap.
    #[error("round {round}: {a} and {b} overlap on simulations {start}..{end}")]
    Overlap {
        /// The round.
        round: u32,
        /// One file.
        a: PathBuf,
        /// The other.
        b: PathBuf,
        /// Overlap start.
        start: u64,
        /// Overlap end.
        end: u64,
    },
    /// A round merged before whose plan disagrees with the shards.
    #[error("{store}: {message}")]
    Store {
        /// The store folder.
        store: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn shard_hint(s: Option<(u32, u32)>) -> String {
    match s {
        Some((i, n)) => format!(" (shard {i} of {n}: `--shard {i} --num-shards {n}`)"),
        None => String::new(),
    }
}

/// Where the shards of an output folder are, given the output folder, its `simulations/`
/// folder or the shards folder itself. Returns (shards folder, output folder).
pub fn locate(dir: &Path) -> (PathBuf, PathBuf) {
    if dir.join("simulations").join("shards").is_dir() {
        (shards_dir(dir), dir.to_path_buf())
    } else if dir.join("shards").is_dir() && dir.file_name().is_some_and(|n| n == "simulations") {
        let out = dir.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir.join("shards"), out)
    } else if dir.file_name().is_some_and(|n| n == "shards") {
        let out = dir
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (dir.to_path_buf(), out)
    } else {
        (shards_dir(dir), dir.to_path_buf())
    }
}

/// Simulations per chunk of a merged round: a multiple of the shards' chunks (so each shard
/// chunk falls inside one), about 8 MiB per file and at most 100 000 simulations. Fewer,
/// larger files than a one-process run's 500-simulation chunks: every file is synced to disk
/// when written, and on cluster file systems that costs milliseconds per file. The data read
/// back is the same whatever the chunking.
pub fn merged_chunk_size(values_per_simulation: usize) -> u64 {
    let unit = STORE_CHUNK_SIZE as u64;
    let row = (values_per_simulation.max(1) * 8) as u64;
    let units = ((8u64 << 20) / (unit * row)).clamp(1, 100_000 / unit);
    units * unit
}

/// What a merge did for one round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedRound {
    /// The round.
    pub round: u32,
    /// Shard files merged.
    pub shards: usize,
    /// Valid simulations.
    pub valid: u64,
    /// Invalid simulations.
    pub invalid: u64,
    /// Whether the store held the round complete already (nothing was written).
    pub already: bool,
}

/// The shards of each round, as (file, header, counts).
type RoundShards = BTreeMap<u32, Vec<(PathBuf, ShardHeader, ShardCounts)>>;

/// The run every shard must belong to: (where it came from, its identity).
type Reference = Option<(String, RunIdentity)>;

/// Merges the shards under `dir` (see [`locate`]) into the store `train` reads
/// (`simulations/` of the output folder). Every shard must belong to the same run (to `expect`,
/// when given: the fit file's identity), and together they must cover each round exactly
/// once; otherwise nothing is written and every problem is named. Rounds the store holds
/// complete already are left as they are.
pub fn merge(dir: &Path, expect: Option<&RunIdentity>) -> Result<Vec<MergedRound>> {
    let (sdir, out) = locate(dir);
    let (files, mut problems) = list_shards(&sdir);

    // Pass 1: read every shard whole (nothing kept) and check who made it.
    let (mut rounds, reference) = read_shards(&files, expect, &mut problems)?;

    // Coverage of each round.
    for (&round, shards) in &mut rounds {
        shards.sort_by_key(|(p, h, _)| (h.start, h.end, p.clone()));
        check_round_headers(round, shards, &mut problems);
        check_round_coverage(round, shards, &mut problems);
    }

    // The store: rounds must come in order, and a round merged before must match.
    let store_dir = out.join("simulations");
    let store = check_store(&store_dir, &rounds, &reference, &mut problems)?;
    if !problems.is_empty() {
        return Err(ScaleError::Merge(MergeProblems(problems)));
    }

    // Pass 2: write.
    let (_, r) = reference.expect("at least one shard");
    write_rounds(&store_dir, store, &r, &rounds)
}

/// The shard files in `sdir` (sorted), and the problems found listing them (sorted).
fn list_shards(sdir: &Path) -> (Vec<PathBuf>, Vec<MergeProblem>) {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    match std::fs::read_dir(sdir) {
        Err(_) => problems.push(MergeProblem::NoShards(sdir.to_path_buf())),
        Ok(rd) => {
            for e in rd.filter_map(|e| e.ok()) {
                let p = e.path();
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                match name.as_deref() {
                    Some(n) if n.ends_with(".shard.part") => {
                        problems.push(MergeProblem::Incomplete(p))
                    }
                    Some(n) if n.ends_with(".shard") => files.push(p),
                    _ => {}
                }
            }
            if files.is_empty() && problems.is_empty() {
                problems.push(MergeProblem::NoShards(sdir.to_path_buf()));
            }
        }
    }
    files.sort();
    problems.sort_by_key(|p| p.to_string());
    (files, problems)
}

/// Reads every shard whole (nothing kept), checks that it belongs to the reference run (the
/// fit file's, else the first shard's) and groups the good ones by round.
fn read_shards(
    files: &[PathBuf],
    expect: Option<&RunIdentity>,
    problems: &mut Vec<MergeProblem>,
) -> Result<(RoundShards, Reference)> {
    let mut rounds = RoundShards::new();
    let mut reference: Reference = expect.map(|r| ("the fit file".to_string(), r.clone()));
    for f in files {
        match read_shard(f, &mut |_| Ok(()))? {
            Err(reason) => problems.push(MergeProblem::Corrupt {
                path: f.clone(),
                reason,
            }),
            Ok((h, c)) => {
                match &reference {
                    None => reference = Some((f.display().to_string(), h.run.clone())),
                    Some((name, r)) => {
                        if let Some(what) = h.run.differences(r) {
                            problems.push(MergeProblem::ForeignRun {
                                path: f.clone(),
                                reference: name.clone(),
                                what,
                            });
                            continue;
                        }
                    }
                }
                rounds.entry(h.round).or_default().push((f.clone(), h, c));
            }
        }
    }
    Ok((rounds, reference))
}

/// Checks that the (sorted) shards of a round agree with the first on the round's size, seed
/// and proposal.
fn check_round_headers(
    round: u32,
    shards: &[(PathBuf, ShardHeader, ShardCounts)],
    problems: &mut Vec<MergeProblem>,
) {
    let first = &shards[0].1;
    for (p, h, _) in shards.iter().skip(1) {
        if (h.round_size, h.round_seed) != (first.round_size, first.round_seed) {
            problems.push(MergeProblem::ForeignRun {
                path: p.clone(),
                reference: shards[0].0.display().to_string(),
                what: format!(
                    "round {round} of {} simulations (seed {}) vs {} (seed {})",
                    h.round_size, h.round_seed, first.round_size, first.round_seed
                ),
            });
        } else if h.source != first.source {
            problems.push(MergeProblem::ForeignRun {
                path: p.clone(),
                reference: shards[0].0.display().to_string(),
                what: format!("round {round} drawn from another proposal"),
            });
        }
    }
}

/// Checks that the (sorted) shards of a round cover its simulations exactly once: names the
/// gaps, duplicates and overlaps.
fn check_round_coverage(
    round: u32,
    shards: &[(PathBuf, ShardHeader, ShardCounts)],
    problems: &mut Vec<MergeProblem>,
) {
    let first = &shards[0].1;
    let n = first.round_size;
    let split = shards
        .iter()
        .all(|(_, h, _)| h.num_shards == first.num_shards)
        .then_some(first.num_shards);
    let missing = |start: u64, end: u64| {
        // Name the shard when the gap is exactly one shard of a common split.
        let shard = split.and_then(|k| {
            (0..k).find(|&i| {
                ShardSpec {
                    shard: i,
                    num_shards: k,
                }
                .range(n)
                    == (start, end)
            })
        });
        MergeProblem::Missing {
            round,
            start,
            end,
            shard: shard.zip(split),
        }
    };
    let mut covered = 0u64;
    let mut last: Option<&(PathBuf, ShardHeader, ShardCounts)> = None;
    for s in shards.iter() {
        let h = &s.1;
        if h.start == h.end {
            continue;
        }
        if let Some(prev) = last
            && h.start < covered
        {
            if (prev.1.start, prev.1.end) == (h.start, h.end) {
                problems.push(MergeProblem::Duplicate {
                    round,
                    a: prev.0.clone(),
                    b: s.0.clone(),
                    start: h.start,
                    end: h.end,
                });
            } else {
                problems.push(MergeProblem::Overlap {
                    round,
                    a: prev.0.clone(),
                    b: s.0.clone(),
                    start: h.start,
                    end: covered.min(h.end),
                });
            }
        } else if h.start > covered {
            problems.push(missing(covered, h.start));
        }
        if h.end > covered {
            covered = h.end;
            last = Some(s);
        }
    }
    if covered < n {
        problems.push(missing(covered, n));
    }
}

/// Opens the store in `store_dir` if there is one, and checks it against the reference run
/// and the shards' rounds: rounds must come in order, and a round merged before must match.
fn check_store(
    store_dir: &Path,
    rounds: &RoundShards,
    reference: &Reference,
    problems: &mut Vec<MergeProblem>,
) -> Result<Option<Store>> {
    let store = match store_dir.join("store.meta").exists() {
        true => Some(Store::open(store_dir)?),
        false => None,
    };
    let mut plan_rounds: Vec<(u64, u64)> = store
        .as_ref()
        .map(|s| s.rounds().iter().map(|p| (p.n, p.seed)).collect())
        .unwrap_or_default();
    if let (Some(s), Some((_, r))) = (&store, reference)
        && let Err(e) = s.require(r.dim_theta as usize, r.dim_x as usize, &r.fingerprint)
    {
        problems.push(MergeProblem::Store {
            store: store_dir.to_path_buf(),
            message: e.to_string(),
        });
    }
    for (&round, shards) in rounds {
        let h = &shards[0].1;
        match plan_rounds.get(round as usize) {
            Some(&(n, seed)) if (n, seed) != (h.round_size, h.round_seed) => {
                problems.push(MergeProblem::Store {
                    store: store_dir.to_path_buf(),
                    message: format!(
                        "its round {round} is {n} simulations with seed {seed}, the shards' is {} with seed {}; use a fresh output folder",
                        h.round_size, h.round_seed
                    ),
                })
            }
            Some(_) => {}
            None if round as usize == plan_rounds.len() => {
                plan_rounds.push((h.round_size, h.round_seed))
            }
            None => problems.push(MergeProblem::Store {
                store: store_dir.to_path_buf(),
                message: format!(
                    "round {round} cannot be merged before round {}",
                    plan_rounds.len()
                ),
            }),
        }
    }
    Ok(store)
}

/// Writes every round the store does not hold complete yet (creating the store if there is
/// none), and reports what was done for each round.
fn write_rounds(
    store_dir: &Path,
    store: Option<Store>,
    r: &RunIdentity,
    rounds: &RoundShards,
) -> Result<Vec<MergedRound>> {
    let mut store = match store {
        Some(s) => s,
        None => Store::create(
            store_dir,
            r.dim_theta as usize,
            r.dim_x as usize,
            r.fingerprint.clone(),
        )?,
    };
    let mut report = Vec::new();
    for (&round, shards) in rounds {
        let h = &shards[0].1;
        let ri = round as usize;
        if ri == store.rounds().len() {
            store.add_round(
                h.round_size,
                h.round_seed,
                merged_chunk_size(r.dim_theta as usize + r.dim_x as usize),
                &h.source,
            )?;
        }
        let valid = shards.iter().map(|s| s.2.valid).sum();
        let invalid = shards.iter().map(|s| s.2.invalid).sum();
        let already = store.is_round_complete(ri)?;
        if !already {
            write_round(&mut store, ri, shards)?;
        }
        report.push(MergedRound {
            round,
            shards: shards.len(),
            valid,
            invalid,
            already,
        });
    }
    Ok(report)
}

/// Copies the shards of round `ri` into the store, joining the shards' chunks into the
/// store's larger ones.
fn write_round(
    store: &mut Store,
    ri: usize,
    shards: &[(PathBuf, ShardHeader, ShardCounts)],
) -> Result<()> {
    let plan = store.rounds()[ri].clone();
    let mut pending: Option<Chunk> = None;
    for (path, _, _) in shards {
        let res = read_shard(path, &mut |c: Chunk| {
            pending = match pending.take() {
                None => Some(c),
                Some(mut p) if p.start / plan.chunk_size == c.start / plan.chunk_size => {
                    let shift = p.n;
                    p.invalid.extend(c.invalid.iter().map(|o| o + shift));
                    p.n += c.n;
                    if p.first_error.is_none() {
                        p.first_error = c.first_error;
                    }
                    p.theta.extend_from_slice(&c.theta);
                    p.x.extend_from_slice(&c.x);
                    p.invalid_theta.extend_from_slice(&c.invalid_theta);
                    p.reasons.merge(&c.reasons);
                    Some(p)
                }
                Some(p) => {
                    store.write_chunk(ri, p)?;
                    Some(c)
                }
            };
            Ok(())
        })?;
        if let Err(reason) = res {
            // Changed between the two passes.
            return Err(ScaleError::Merge(MergeProblems(vec![
                MergeProblem::Corrupt {
                    path: path.clone(),
                    reason,
                },
            ])));
        }
    }
    if let Some(p) = pending {
        store.write_chunk(ri, p)?;
    }
    Ok(())
}
