//! Scaling out: one round's simulations split into shards that run anywhere (SLURM array
//! tasks, MPI ranks, a shell loop over machines), merged back into the store `train` reads.
//!
//! Simulation `i` of a round draws its parameters and its noise from streams derived from
//! (seed, round, `i`) only, so any split gives bit-identical data. A shard holds the global
//! index range `start..end` of one round and says where it comes from: format version,
//! a hash of the fit file and of what it reads, the seed, the round, its range and counts.
//!
//! A shard file is `MAGIC`, the format version (u32 LE), then frames `[len u32][crc32 u32]
//! [postcard payload]`: one header, the chunks in index order, one footer with the counts.
//! It is written to `NAME.part` and renamed when complete, so a writer killed mid-way
//! leaves a `.part` file; a cut or damaged file fails its frame lengths or checksums.
//! [`merge`] reads every shard before it writes anything and names every problem.

use crate::config::FitConfig;
use crate::error::Error;
use crate::fit::{FitOptions, STORE_CHUNK_SIZE, inference_config};
use crate::problem::NeuronSimulator;
use neurosbi_infer::simulator::simulate_chunk;
use neurosbi_infer::{Chunk, FromPrior, FromRows, Method, Posterior, Progress, Store, ThetaSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Format version of shard files; bump on any change of their layout.
pub const SHARD_FORMAT_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"NSBSHARD";

/// Largest frame a reader accepts (a chunk of 500 simulations of 100 000 features is 400 MB);
/// a larger length means a damaged file, not a huge allocation.
const MAX_FRAME: u32 = 1 << 30;

/// Errors of sharding and merging.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The shard assignment (flags or scheduler variables) is wrong.
    #[error("shard assignment: {0}")]
    Assignment(String),
    /// The shards cannot be merged; nothing was written.
    #[error("{0}")]
    Merge(MergeProblems),
    /// A round that cannot be sharded as asked.
    #[error("round {round}: {message}")]
    Round {
        /// The round (0-based).
        round: usize,
        /// What is wrong.
        message: String,
    },
    /// From the rest of the facade (files, simulator, inference).
    #[error(transparent)]
    Facade(#[from] Error),
}

impl From<neurosbi_infer::InferError> for ScaleError {
    fn from(e: neurosbi_infer::InferError) -> Self {
        ScaleError::Facade(e.into())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ScaleError + '_ {
    move |e| ScaleError::Facade(Error::io(path)(e))
}

/// Result of this module.
pub type Result<T, E = ScaleError> = std::result::Result<T, E>;

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

/// Which part of a round one process simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    /// This shard, `0 <= shard < num_shards`.
    pub shard: u32,
    /// Number of shards of the round.
    pub num_shards: u32,
}

impl ShardSpec {
    /// Checks `shard < num_shards` and `num_shards > 0`.
    pub fn new(shard: u32, num_shards: u32) -> Result<Self> {
        if num_shards == 0 || shard >= num_shards {
            return Err(ScaleError::Assignment(format!(
                "shard {shard} of {num_shards}: need 0 <= shard < num_shards"
            )));
        }
        Ok(Self { shard, num_shards })
    }

    /// The shard from the command line or, when both flags are absent, from a SLURM array
    /// task (`SLURM_ARRAY_TASK_ID`, `_COUNT`, `_MIN`, `_STEP`, so `--array=1-8` and
    /// `--array=0-14:2` map onto shards 0..n too). `env` looks a variable up; `None` when
    /// neither flags nor an array task give a shard.
    pub fn resolve(
        shard: Option<u32>,
        num_shards: Option<u32>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>> {
        match (shard, num_shards) {
            (Some(i), Some(n)) => return Self::new(i, n).map(Some),
            (Some(_), None) | (None, Some(_)) => {
                return Err(ScaleError::Assignment(
                    "give both --shard and --num-shards (or neither, inside a SLURM array job)"
                        .into(),
                ));
            }
            (None, None) => {}
        }
        let Some(id) = env("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let num = |var: &str| -> Result<Option<u64>> {
            match env(var) {
                None => Ok(None),
                Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
                    ScaleError::Assignment(format!("{var}={v:?} is not a whole number"))
                }),
            }
        };
        let id = id.trim().parse::<u64>().map_err(|_| {
            ScaleError::Assignment(format!("SLURM_ARRAY_TASK_ID={id:?} is not a whole number"))
        })?;
        let count = num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            ScaleError::Assignment(
                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shard and --num-shards".into(),
            )
        })?;
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        if id < min || (id - min) % step != 0 || (id - min) / step >= count {
            return Err(ScaleError::Assignment(format!(
                "array task {id} (min {min}, step {step}, count {count}) does not map onto \
                 shards 0..{count}; submit a plain range such as --array=0-{}",
                count.saturating_sub(1)
            )));
        }
        let to_u32 = |v: u64| {
            u32::try_from(v).map_err(|_| ScaleError::Assignment(format!("{v} shards is too many")))
        };
        Self::new(to_u32((id - min) / step)?, to_u32(count)?).map(Some)
    }

    /// The global indices `start..end` of this shard in a round of `n` simulations: the
    /// balanced split (sizes differ by at most one).
    pub fn range(&self, n: u64) -> (u64, u64) {
        let at = |i: u32| (n as u128 * i as u128 / self.num_shards as u128) as u64;
        (at(self.shard), at(self.shard + 1))
    }
}

/// What identifies a run: shards of one run agree on all of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// SHA-256 (hex) of the fit file's text, the parameter and feature names, the grid and
    /// the observed features (so data files read by the fit file count too).
    pub model_hash: String,
    /// Master seed.
    pub seed: u64,
    /// Parameters per simulation.
    pub dim_theta: u32,
    /// Features per simulation.
    pub dim_x: u32,
}

impl RunIdentity {
    /// The identity of `cfg` (parsed from `text`) run with `seed`.
    pub fn new(cfg: &FitConfig, text: &str, seed: u64) -> Result<Self> {
        let p = &cfg.problem;
        let x_o = p.observed_features(&cfg.observation()?)?;
        let mut h = Sha256::new();
        h.update(b"neurosbi run v1\0");
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
        for name in p.parameter_names().iter().chain(&p.feature_names()) {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
        }
        h.update((p.n_steps as u64).to_le_bytes());
        h.update((p.n_traces as u64).to_le_bytes());
        h.update(p.dt.to_bits().to_le_bytes());
        for v in &x_o {
            h.update(v.to_bits().to_le_bytes());
        }
        let model_hash = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            model_hash,
            seed,
            dim_theta: p.dim_theta() as u32,
            dim_x: p.dim_x() as u32,
        })
    }

    fn differences(&self, other: &RunIdentity) -> Option<String> {
        let mut d = Vec::new();
        if self.model_hash != other.model_hash {
            d.push(format!(
                "fit-file hash {} vs {}",
                &self.model_hash[..12.min(self.model_hash.len())],
                &other.model_hash[..12.min(other.model_hash.len())]
            ));
        }
        if self.seed != other.seed {
            d.push(format!("seed {} vs {}", self.seed, other.seed));
        }
        if (self.dim_theta, self.dim_x) != (other.dim_theta, other.dim_x) {
            d.push(format!(
                "{} parameters and {} features vs {} and {}",
                self.dim_theta, self.dim_x, other.dim_theta, other.dim_x
            ));
        }
        (!d.is_empty()).then(|| d.join(", "))
    }
}

/// The self-description at the start of a shard file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHeader {
    /// The run it belongs to.
    pub run: RunIdentity,
    /// Round (0-based).
    pub round: u32,
    /// Simulations in the whole round.
    pub round_size: u64,
    /// Seed of the round (derived from the master seed as `fit` does).
    pub round_seed: u64,
    /// This shard.
    pub shard: u32,
    /// Shards of the round.
    pub num_shards: u32,
    /// First global index.
    pub start: u64,
    /// One past the last global index.
    pub end: u64,
}

/// The counts at the end of a shard file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCounts {
    /// Valid simulations.
    pub valid: u64,
    /// Invalid simulations (excluded, as in a one-process run).
    pub invalid: u64,
    /// Chunks in the file.
    pub chunks: u64,
}

#[derive(Serialize, Deserialize)]
enum Frame {
    Header(ShardHeader),
    Chunk(Chunk),
    Footer(ShardCounts),
}

/// The folder of a store's shards.
pub fn shards_dir(out: &Path) -> PathBuf {
    out.join("simulations").join("shards")
}

/// File name of a shard.
pub fn shard_file_name(round: u32, spec: ShardSpec) -> String {
    format!(
        "r{round:04}_s{:05}_of_{:05}.shard",
        spec.shard, spec.num_shards
    )
}

/// Folder of the proposal (the posterior after the earlier rounds) that round `round > 0`
/// draws its parameters from.
pub fn proposal_dir(out: &Path, round: usize) -> PathBuf {
    out.join("simulations")
        .join(format!("proposal_r{round:04}"))
}

/// The seed of round `round`, as `neurosbi_infer::infer` derives it.
pub fn round_seed(seed: u64, round: usize) -> u64 {
    neurosbi_infer::rng::derive_seed(seed, 1000 + round as u64)
}

/// Writes frames of a shard file, counting bytes.
struct FrameWriter<W: Write> {
    w: W,
    bytes: u64,
}

impl<W: Write> FrameWriter<W> {
    fn frame(&mut self, f: &Frame) -> std::io::Result<()> {
        let payload = postcard::to_stdvec(f).map_err(std::io::Error::other)?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_FRAME)
            .ok_or_else(|| std::io::Error::other("chunk too large for one frame"))?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(&crc32fast::hash(&payload).to_le_bytes())?;
        self.w.write_all(&payload)?;
        self.bytes += 8 + payload.len() as u64;
        Ok(())
    }
}

/// Streams a shard file frame by frame, checking lengths and checksums.
struct FrameReader<R: Read> {
    r: R,
}

enum Next {
    Frame(Frame),
    End,
}

impl<R: Read> FrameReader<R> {
    fn open(mut r: R) -> std::result::Result<Self, String> {
        let mut head = [0u8; 12];
        r.read_exact(&mut head)
            .map_err(|_| "not a shard file (shorter than its 12-byte preamble)".to_string())?;
        if &head[..8] != MAGIC {
            return Err("not a neurosbi shard file (wrong magic bytes)".into());
        }
        let v = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if v != SHARD_FORMAT_VERSION {
            return Err(format!(
                "shard format version {v}, this program reads version {SHARD_FORMAT_VERSION}"
            ));
        }
        Ok(Self { r })
    }

    fn next(&mut self) -> std::result::Result<Next, String> {
        let mut pre = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match self.r.read(&mut pre[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        if got == 0 {
            return Ok(Next::End);
        }
        if got < 8 {
            return Err("truncated (cut inside a frame header)".into());
        }
        let len = u32::from_le_bytes(pre[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(pre[4..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(format!("damaged (frame length {len})"));
        }
        let mut payload = vec![0u8; len as usize];
        self.r.read_exact(&mut payload).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "truncated (cut inside a frame; killed mid-write or copied partly?)".to_string()
            } else {
                e.to_string()
            }
        })?;
        if crc32fast::hash(&payload) != crc {
            return Err("damaged (checksum mismatch)".into());
        }
        postcard::from_bytes(&payload)
            .map(Next::Frame)
            .map_err(|e| format!("damaged (undecodable frame: {e})"))
    }
}

/// What a finished shard holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSummary {
    /// The shard file.
    pub path: PathBuf,
    /// Its header.
    pub header: ShardHeader,
    /// Its counts.
    pub counts: ShardCounts,
    /// Bytes of the file.
    pub bytes: u64,
    /// Whether it existed already (same run and range) and nothing was simulated.
    pub reused: bool,
}

/// Reads a whole shard file, checking its structure; calls `each` on every chunk in order.
fn read_shard(
    path: &Path,
    each: &mut dyn FnMut(Chunk) -> Result<()>,
) -> Result<std::result::Result<(ShardHeader, ShardCounts), String>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let mut r = match FrameReader::open(BufReader::with_capacity(1 << 20, f)) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let header = match r.next() {
        Ok(Next::Frame(Frame::Header(h))) => h,
        Ok(_) => return Ok(Err("damaged (no header frame)".into())),
        Err(e) => return Ok(Err(e)),
    };
    let (dt, dx) = (header.run.dim_theta as usize, header.run.dim_x as usize);
    let chunk_size = STORE_CHUNK_SIZE as u64;
    let mut next = header.start;
    let (mut valid, mut invalid, mut chunks) = (0u64, 0u64, 0u64);
    loop {
        match r.next() {
            Ok(Next::Frame(Frame::Chunk(c))) => {
                let n = c.n as u64;
                let nv = n as usize - c.invalid.len().min(n as usize);
                if c.start != next
                    || c.start + n > header.end
                    || n == 0
                    || c.start / chunk_size != (c.start + n - 1) / chunk_size
                    || c.theta.len() != nv * dt
                    || c.x.len() != nv * dx
                    || c.invalid.iter().any(|&o| o as u64 >= n)
                {
                    return Ok(Err(format!(
                        "damaged (chunk at index {} does not fit the header's range {}..{} and dimensions)",
                        c.start, header.start, header.end
                    )));
                }
                next += n;
                valid += nv as u64;
                invalid += c.invalid.len() as u64;
                chunks += 1;
                each(c)?;
            }
            Ok(Next::Frame(Frame::Footer(counts))) => {
                if next != header.end
                    || counts
                        != (ShardCounts {
                            valid,
                            invalid,
                            chunks,
                        })
                {
                    return Ok(Err(format!(
                        "damaged (footer says {} valid / {} invalid in {} chunks, the file holds {valid} / {invalid} in {chunks} up to index {next})",
                        counts.valid, counts.invalid, counts.chunks
                    )));
                }
                return match r.next() {
                    Ok(Next::End) => Ok(Ok((header, counts))),
                    _ => Ok(Err("damaged (data after the footer)".into())),
                };
            }
            Ok(Next::Frame(Frame::Header(_))) => {
                return Ok(Err("damaged (a second header)".into()));
            }
            Ok(Next::End) => {
                return Ok(Err(format!(
                    "truncated (ends after index {next} of {}..{}, without its footer)",
                    header.start, header.end
                )));
            }
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// Checks a shard file and returns its header and counts (the chunks are read, not kept).
pub fn inspect_shard(path: &Path) -> Result<(ShardHeader, ShardCounts)> {
    read_shard(path, &mut |_| Ok(()))?.map_err(|reason| {
        ScaleError::Merge(MergeProblems(vec![MergeProblem::Corrupt {
            path: path.to_path_buf(),
            reason,
        }]))
    })
}

/// A shard job: the fit file, its run identity and where things go.
pub struct ShardJob<'a> {
    /// The fit file.
    pub cfg: &'a FitConfig,
    /// Its identity (see [`RunIdentity::new`]).
    pub run: RunIdentity,
    /// The output folder (holds `simulations/`).
    pub out: PathBuf,
}

impl<'a> ShardJob<'a> {
    /// The job of `cfg` (parsed from `text`) under the command line's options.
    pub fn new(cfg: &'a FitConfig, text: &str, opts: &FitOptions) -> Result<Self> {
        let seed = opts.seed.unwrap_or(cfg.seed);
        Ok(Self {
            cfg,
            run: RunIdentity::new(cfg, text, seed)?,
            out: opts.out.clone().unwrap_or_else(|| cfg.out.clone()),
        })
    }

    fn round_size(&self, round: usize) -> Result<u64> {
        let rounds = &self.cfg.inference.rounds;
        rounds
            .get(round)
            .map(|&n| n as u64)
            .ok_or_else(|| ScaleError::Round {
                round,
                message: format!(
                    "the fit file has {} round{} (0..{})",
                    rounds.len(),
                    if rounds.len() == 1 { "" } else { "s" },
                    rounds.len()
                ),
            })
    }

    /// The parameters of every simulation of round `round > 0`: draws from the proposal
    /// saved by [`merge`] after round `round - 1`, exactly as a one-process fit draws them.
    fn proposal_rows(&self, round: usize, n: u64) -> Result<Vec<f64>> {
        if let Method::Tsnpe { .. } = self.cfg.inference.method {
            return Err(ScaleError::Round {
                round,
                message: "tsnpe rounds after the first cannot be sharded yet; run them with `neurosbi train`".into(),
            });
        }
        let dir = proposal_dir(&self.out, round);
        if !dir.exists() {
            return Err(ScaleError::Round {
                round,
                message: format!(
                    "no proposal at {}: merge round {} first (`neurosbi merge FILE` trains it)",
                    dir.display(),
                    round - 1
                ),
            });
        }
        let post = Posterior::load(&dir)?;
        let x_o = self
            .cfg
            .problem
            .observed_features(&self.cfg.observation()?)?;
        Ok(post
            .sample(n as usize, &x_o, round_seed(self.run.seed, round))?
            .theta)
    }

    /// Simulates shard `spec` of round `round` into `simulations/shards/`, streaming chunks
    /// to a `.part` file renamed when complete. An existing complete shard of the same run
    /// and range is kept (a re-queued task does nothing); another file in its place needs
    /// `force`.
    pub fn run(
        &self,
        round: usize,
        spec: ShardSpec,
        force: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ShardSummary> {
        let n = self.round_size(round)?;
        let (start, end) = spec.range(n);
        let header = ShardHeader {
            run: self.run.clone(),
            round: round as u32,
            round_size: n,
            round_seed: round_seed(self.run.seed, round),
            shard: spec.shard,
            num_shards: spec.num_shards,
            start,
            end,
        };
        let dir = shards_dir(&self.out);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(shard_file_name(round as u32, spec));
        if path.exists() {
            match read_shard(&path, &mut |_| Ok(()))? {
                Ok((h, counts)) if h == header => {
                    let bytes = std::fs::metadata(&path).map_err(io(&path))?.len();
                    return Ok(ShardSummary {
                        path,
                        header,
                        counts,
                        bytes,
                        reused: true,
                    });
                }
                _ if force => {}
                Ok(_) => {
                    return Err(Error::invalid(
                        path.display().to_string(),
                        "holds a shard of another run or range; pass --force to replace it",
                    )
                    .into());
                }
                Err(reason) => {
                    return Err(Error::invalid(
                        path.display().to_string(),
                        format!("exists and is unreadable ({reason}); pass --force to replace it"),
                    )
                    .into());
                }
            }
        }
        let p = &self.cfg.problem;
        let sim = NeuronSimulator::new(p.clone(), Some(self.cfg.observation()?))?;
        let prior = p.prior()?;
        let rows;
        let source: Box<dyn ThetaSource + '_> = if round == 0 {
            Box::new(FromPrior(&prior))
        } else {
            rows = self.proposal_rows(round, n)?;
            Box::new(FromRows::new(&rows, p.dim_theta())?)
        };
        let part = path.with_extension("shard.part");
        let file = std::fs::File::create(&part).map_err(io(&part))?;
        let mut w = FrameWriter {
            w: BufWriter::with_capacity(1 << 20, file),
            bytes: 12,
        };
        let werr = |e: std::io::Error| ScaleError::Facade(Error::io(&part)(e));
        w.w.write_all(MAGIC).map_err(werr)?;
        w.w.write_all(&SHARD_FORMAT_VERSION.to_le_bytes())
            .map_err(werr)?;
        w.frame(&Frame::Header(header.clone())).map_err(werr)?;
        let chunk_size = STORE_CHUNK_SIZE as u64;
        let (mut valid, mut invalid, mut chunks) = (0u64, 0u64, 0u64);
        let mut at = start;
        while at < end {
            // Chunks end on the store's chunk boundaries, so merging only concatenates.
            let stop = ((at / chunk_size + 1) * chunk_size).min(end);
            let c = simulate_chunk(
                &sim,
                source.as_ref(),
                header.round_seed,
                at,
                (stop - at) as usize,
                self.cfg.inference.batch_size,
            )?;
            invalid += c.invalid.len() as u64;
            valid += (stop - at) - c.invalid.len() as u64;
            chunks += 1;
            w.frame(&Frame::Chunk(c)).map_err(werr)?;
            at = stop;
            progress(Progress {
                done: at - start,
                total: end - start,
                invalid,
            });
        }
        let counts = ShardCounts {
            valid,
            invalid,
            chunks,
        };
        w.frame(&Frame::Footer(counts)).map_err(werr)?;
        let bytes = w.bytes;
        let file = w.w.into_inner().map_err(|e| werr(e.into_error()))?;
        file.sync_all().map_err(werr)?;
        drop(file);
        std::fs::rename(&part, &path).map_err(io(&path))?;
        Ok(ShardSummary {
            path,
            header,
            counts,
            bytes,
            reused: false,
        })
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

/// Merges the shards under `dir` (see [`locate`]) into the store `train` reads
/// (`simulations/` of the output folder). Every shard must belong to the same run (to `expect`,
/// when given: the fit file's identity), and together they must cover each round exactly
/// once; otherwise nothing is written and every problem is named. Rounds the store holds
/// complete already are left as they are.
pub fn merge(dir: &Path, expect: Option<&RunIdentity>) -> Result<Vec<MergedRound>> {
    let (sdir, out) = locate(dir);
    let mut problems = Vec::new();
    let mut files = Vec::new();
    match std::fs::read_dir(&sdir) {
        Err(_) => problems.push(MergeProblem::NoShards(sdir.clone())),
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
                problems.push(MergeProblem::NoShards(sdir.clone()));
            }
        }
    }
    files.sort();
    problems.sort_by_key(|p| p.to_string());

    // Pass 1: read every shard whole (nothing kept) and check who made it.
    let mut rounds: BTreeMap<u32, Vec<(PathBuf, ShardHeader, ShardCounts)>> = BTreeMap::new();
    let mut reference: Option<(String, RunIdentity)> =
        expect.map(|r| ("the fit file".to_string(), r.clone()));
    for f in &files {
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

    // Coverage of each round.
    for (&round, shards) in &mut rounds {
        shards.sort_by_key(|(p, h, _)| (h.start, h.end, p.clone()));
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
            }
        }
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

    // The store: rounds must come in order, and a round merged before must match.
    let store_dir = out.join("simulations");
    let store = Store::open(&store_dir).ok();
    let mut plan_rounds: Vec<(u64, u64)> = store
        .as_ref()
        .map(|s| s.rounds().iter().map(|p| (p.n, p.seed)).collect())
        .unwrap_or_default();
    if let (Some(s), Some((_, r))) = (&store, &reference)
        && (s.dim_theta(), s.dim_x()) != (r.dim_theta as usize, r.dim_x as usize)
    {
        problems.push(MergeProblem::Store {
            store: store_dir.clone(),
            message: format!(
                "holds simulations of {} parameters and {} features, the shards have {} and {}",
                s.dim_theta(),
                s.dim_x(),
                r.dim_theta,
                r.dim_x
            ),
        });
    }
    for (&round, shards) in &rounds {
        let h = &shards[0].1;
        match plan_rounds.get(round as usize) {
            Some(&(n, seed)) if (n, seed) != (h.round_size, h.round_seed) => {
                problems.push(MergeProblem::Store {
                    store: store_dir.clone(),
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
                store: store_dir.clone(),
                message: format!(
                    "round {round} cannot be merged before round {}",
                    plan_rounds.len()
                ),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(ScaleError::Merge(MergeProblems(problems)));
    }

    // Pass 2: write.
    let (_, r) = reference.expect("at least one shard");
    let mut store = match store {
        Some(s) => s,
        None => Store::create(&store_dir, r.dim_theta as usize, r.dim_x as usize)?,
    };
    let mut report = Vec::new();
    for (&round, shards) in &rounds {
        let h = &shards[0].1;
        let ri = round as usize;
        if ri == store.rounds().len() {
            store.add_round(h.round_size, h.round_seed, STORE_CHUNK_SIZE as u64)?;
        }
        let valid = shards.iter().map(|s| s.2.valid).sum();
        let invalid = shards.iter().map(|s| s.2.invalid).sum();
        if store.is_round_complete(ri)? {
            report.push(MergedRound {
                round,
                shards: shards.len(),
                valid,
                invalid,
                already: true,
            });
            continue;
        }
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
        report.push(MergedRound {
            round,
            shards: shards.len(),
            valid,
            invalid,
            already: false,
        });
    }
    Ok(report)
}

/// Trains the posterior after rounds `0..=round` from the merged store, exactly as a
/// one-process `fit` has it at that point, and saves it as the proposal of round
/// `round + 1` (see [`proposal_dir`]).
pub fn train_proposal(job: &ShardJob<'_>, round: usize) -> Result<PathBuf> {
    let cfg = job.cfg;
    let rounds = &cfg.inference.rounds;
    if round + 1 >= rounds.len() {
        return Err(ScaleError::Round {
            round,
            message: "is the last round; it needs no proposal (run `neurosbi train`)".into(),
        });
    }
    let p = &cfg.problem;
    let observed = cfg.observation()?;
    let x_o = p.observed_features(&observed)?;
    let sim = NeuronSimulator::new(p.clone(), Some(observed))?;
    let prior: Arc<dyn neurosbi_infer::Prior> = Arc::new(p.prior()?);
    let mut icfg = inference_config(cfg, job.run.seed);
    icfg.rounds.truncate(round + 1);
    let store_dir = job.out.join("simulations");
    let mut store = Store::open(&store_dir)?;
    for (r, &n) in rounds.iter().enumerate().take(round + 1) {
        let n = n as u64;
        let seed = round_seed(job.run.seed, r);
        let complete = store
            .rounds()
            .iter()
            .position(|pl| pl.n == n && pl.seed == seed)
            .map(|i| store.is_round_complete(i))
            .transpose()?
            .unwrap_or(false);
        if !complete {
            return Err(ScaleError::Round {
                round: r,
                message: format!(
                    "is not in {} complete; merge its shards first",
                    store_dir.display()
                ),
            });
        }
    }
    let (post, _) = neurosbi_infer::infer(
        &sim,
        prior,
        Some(&x_o),
        &icfg,
        Some(&mut store),
        &mut neurosbi_infer::Quiet,
        &mut neurosbi_flows::NoObserver,
    )?;
    let dir = proposal_dir(&job.out, round + 1);
    post.save(&dir)?;
    Ok(dir)
}
