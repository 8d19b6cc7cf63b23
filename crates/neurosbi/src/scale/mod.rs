//! Scaling out: one round's simulations split into shards that run anywhere (SLURM array
//! tasks, MPI ranks, a shell loop over machines), merged back into the store `train` reads.
//!
//! Simulation `i` of a round draws its parameters and its noise from streams derived from
//! (seed, round, `i`) only, so any split gives bit-identical data. A shard holds the global
//! index range `start..end` of one round and says where it comes from: format version,
//! the fingerprint of what determines the simulations, the seed, the round, its range and
//! counts.
//!
//! A shard file is `MAGIC`, the format version (u32 LE), then frames `[len u32][crc32 u32]
//! [postcard payload]`: one header, the chunks in index order, one footer with the counts.
//! It is written to `NAME.part` and renamed when complete, so a writer killed mid-way
//! leaves a `.part` file; a cut or damaged file fails its frame lengths or checksums.
//! [`merge`] reads every shard before it writes anything and names every problem.

mod file;
mod merge;

use file::read_shard;
pub use file::{ShardCounts, ShardHeader, inspect_shard, write_shard};
pub use merge::{MergeProblem, MergeProblems, MergedRound, locate, merge, merged_chunk_size};

use crate::config::FitConfig;
use crate::error::Error;
use crate::fit::{FitOptions, inference_config};
use crate::problem::NeuronSimulator;
use neurosbi_infer::{
    Fingerprint, FromPrior, FromRows, Posterior, Prior, Progress, Store, ThetaSource,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Format version of shard files; bump on any change of their layout.
pub const SHARD_FORMAT_VERSION: u32 = 2;

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
    /// An MPI rank failed (`-1`: MPI itself).
    #[error("MPI rank {rank}: {message}")]
    Rank {
        /// The rank.
        rank: i32,
        /// What went wrong there.
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
    /// What determined the simulations (see [`crate::problem::Problem::fingerprint`]): the
    /// model, values, stimuli, time grid, priors, features and seed, part by part; the
    /// store the shards are merged into carries the same.
    pub fingerprint: Fingerprint,
    /// Master seed.
    pub seed: u64,
    /// Parameters per simulation.
    pub dim_theta: u32,
    /// Features per simulation.
    pub dim_x: u32,
}

impl RunIdentity {
    /// The identity of `cfg` run with `seed`.
    pub fn new(cfg: &FitConfig, seed: u64) -> Result<Self> {
        let p = &cfg.problem;
        Ok(Self {
            fingerprint: p.fingerprint(&cfg.observation()?, seed),
            seed,
            dim_theta: p.dim_theta() as u32,
            dim_x: p.dim_x() as u32,
        })
    }

    fn differences(&self, other: &RunIdentity) -> Option<String> {
        let mut d: Vec<String> = self
            .fingerprint
            .changes(&other.fingerprint)
            .into_iter()
            .filter(|c| c != "seed")
            .collect();
        if !d.is_empty() {
            d = vec![format!("{} differ", d.join(", "))];
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

/// What simulating one round needs: the simulator, where parameters come from, the round's
/// size and seed.
pub struct RoundSetup {
    /// The simulator of the fit file.
    pub sim: NeuronSimulator,
    prior: neurosbi_infer::IndependentPrior,
    /// Parameters of every simulation of the round (rounds after the first), else `None`.
    rows: Option<Vec<f64>>,
    /// Simulations in the round.
    pub n: u64,
    /// Seed of the round.
    pub seed: u64,
}

impl RoundSetup {
    /// Digest of where the parameters come from, as `neurosbi_infer::infer` records it.
    pub fn source_digest(&self) -> String {
        self.rows
            .as_deref()
            .map_or_else(|| "prior".into(), neurosbi_infer::provenance::sha256_f64)
    }

    /// Where the parameters of simulation `i` come from: the prior (first round) or the
    /// proposal's draws.
    pub fn source(&self) -> Result<Box<dyn ThetaSource + '_>> {
        Ok(match &self.rows {
            None => Box::new(FromPrior(&self.prior)),
            Some(rows) => Box::new(FromRows::new(rows, self.prior.dim())?),
        })
    }
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
    /// The job of `cfg` under the command line's options.
    pub fn new(cfg: &'a FitConfig, opts: &FitOptions) -> Result<Self> {
        let seed = opts.seed.unwrap_or(cfg.seed);
        Ok(Self {
            cfg,
            run: RunIdentity::new(cfg, seed)?,
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

    /// The simulator and parameter source of round `round` (see [`RoundSetup`]).
    pub fn setup(&self, round: usize) -> Result<RoundSetup> {
        let n = self.round_size(round)?;
        let p = &self.cfg.problem;
        Ok(RoundSetup {
            sim: NeuronSimulator::new(p.clone(), Some(self.cfg.observation()?))?,
            prior: p.prior()?,
            rows: if round == 0 {
                None
            } else {
                Some(self.proposal_rows(round, n)?)
            },
            n,
            seed: round_seed(self.run.seed, round),
        })
    }

    /// The parameters of every simulation of round `round > 0`: draws from the method's
    /// proposal (the posterior, its truncated prior for TSNPE, its Gaussian for SNPE-A) on
    /// the posterior saved by [`merge`] after round `round - 1`, exactly as a one-process fit
    /// draws them.
    fn proposal_rows(&self, round: usize, n: u64) -> Result<Vec<f64>> {
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
        let p = &self.cfg.problem;
        let x_o = p.observed_features(&self.cfg.observation()?)?;
        Ok(neurosbi_infer::round_proposal_rows(
            &post,
            &x_o,
            &p.prior()?,
            self.cfg.inference.method,
            (n as usize, round, self.run.seed),
        )?)
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
        let setup = self.setup(round)?;
        let header = ShardHeader {
            run: self.run.clone(),
            round: round as u32,
            round_size: n,
            round_seed: round_seed(self.run.seed, round),
            source: setup.source_digest(),
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
        let source = setup.source()?;
        let (counts, bytes) = write_shard(
            &path,
            &header,
            &setup.sim,
            source.as_ref(),
            self.cfg.inference.batch_size,
            progress,
        )?;
        Ok(ShardSummary {
            path,
            header,
            counts,
            bytes,
            reused: false,
        })
    }
}

/// How many of the fit file's rounds, from the first, the store holds complete.
pub fn complete_rounds(job: &ShardJob<'_>) -> Result<usize> {
    let Ok(store) = Store::open(job.out.join("simulations")) else {
        return Ok(0);
    };
    let mut k = 0;
    for (r, &n) in job.cfg.inference.rounds.iter().enumerate() {
        let seed = round_seed(job.run.seed, r);
        let found = store
            .rounds()
            .iter()
            .position(|pl| pl.n == n as u64 && pl.seed == seed);
        match found {
            Some(i) if store.is_round_complete(i)? => k += 1,
            _ => break,
        }
    }
    Ok(k)
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
    let prior: Arc<dyn Prior> = Arc::new(p.prior()?);
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
