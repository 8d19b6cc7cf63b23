//! A resumable simulation store on disk.
//!
//! Layout of a store directory: `store.meta` (dimensions, the [`Fingerprint`] of the problem
//! and the plan of each round, with a digest of where its parameters came from) and one file
//! per finished chunk, `r{round}_c{chunk}.chunk`, which holds its own round and index. Both are
//! postcard, start with the format version, end with a SHA-256 of everything before it (so a
//! flipped byte, a cut file or a chunk copied under another name is an error naming the file),
//! and are written to a temporary file then renamed, so a crash leaves either the old file or
//! the new one. An interrupted round resumes by simulating only the missing chunks; since
//! every draw is seeded by (seed, index), the result is bit-identical to an uninterrupted run.
//! Per simulation the store keeps only the raw f64 payload (plus a few bytes per chunk).

use crate::error::{InferError, Result, invalid_arg, io_err};
use crate::provenance::{Fingerprint, frame, unframe};
use crate::simulator::{
    Chunk, Progress, RunObserver, SimulationSet, Simulator, ThetaSource, check_dims, simulate_chunk,
};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Format version of store files; bump on any change of their layout.
pub const STORE_FORMAT_VERSION: u32 = 2;

const META_FILE: &str = "store.meta";

/// The plan of one round of simulations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundPlan {
    /// Simulations planned.
    pub n: u64,
    /// Seed of the round.
    pub seed: u64,
    /// Simulations per chunk.
    pub chunk_size: u64,
    /// Digest of where the round's parameters come from (`"prior"`, or the proposal's draws),
    /// so a resumed round never mixes draws of two proposals.
    pub source: String,
}

impl RoundPlan {
    fn num_chunks(&self) -> u64 {
        self.n.div_ceil(self.chunk_size)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    version: u32,
    dim_theta: u64,
    dim_x: u64,
    fingerprint: Fingerprint,
    rounds: Vec<RoundPlan>,
}

#[derive(Serialize, Deserialize)]
struct ChunkFile {
    version: u32,
    /// Digest of the store's fingerprint: a chunk of another problem's store is refused.
    problem: String,
    round: u32,
    index: u64,
    chunk: Chunk,
}

/// Outcome of running (or resuming) a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundReport {
    /// Chunks simulated by this call.
    pub chunks_run: u64,
    /// Chunks already on disk before this call.
    pub chunks_resumed: u64,
    /// Whether every chunk of the round is now on disk.
    pub complete: bool,
}

/// A directory of simulation chunks, organised in rounds.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    meta: Meta,
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes `v` as a checksummed postcard file (see the module doc), atomically.
pub(crate) fn write_versioned<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    write_atomic(path, &frame(encode(v)?))
}

/// Largest store file read (a chunk of 10^6 simulations of 100 values is 800 MB).
const MAX_FILE_BYTES: u64 = 4 << 30;

/// Reads a file written by [`write_versioned`] whose first field is a u32 format version:
/// checks the version, then the checksum, then decodes.
pub(crate) fn read_versioned<T: for<'de> Deserialize<'de>>(
    path: &Path,
    expected: u32,
) -> Result<T> {
    let bytes = read_bounded(path, MAX_FILE_BYTES)?;
    let (found, _) = postcard::take_from_bytes::<u32>(&bytes).map_err(|e| InferError::Corrupt {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if found != expected {
        return Err(InferError::FormatVersion {
            path: path.into(),
            found,
            expected,
        });
    }
    postcard::from_bytes(unframe(path, &bytes)?).map_err(|e| InferError::Corrupt {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Reads a regular file of at most `limit` bytes (a FIFO or `/dev/zero` in its place is an
/// error, not a hang or an exhausted memory; a file that grows while read is cut off).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let corrupt = |reason: String| InferError::Corrupt {
        path: path.into(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(corrupt("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(io_err(path))?;
    if bytes.len() as u64 > limit {
        return Err(corrupt(format!(
            "more than the {limit} bytes this reader accepts"
        )));
    }
    Ok(bytes)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| invalid_arg("store encoding", e.to_string()))
}

impl Store {
    /// Creates a new empty store in `dir` (created if missing; must not already hold a store)
    /// for the problem identified by `fingerprint`.
    pub fn create(
        dir: impl AsRef<Path>,
        dim_theta: usize,
        dim_x: usize,
        fingerprint: Fingerprint,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if dim_theta == 0 || dim_x == 0 {
            return Err(invalid_arg(
                "store dimensions",
                "dim_theta and dim_x must be > 0",
            ));
        }
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let meta_path = dir.join(META_FILE);
        if meta_path.exists() {
            return Err(invalid_arg(
                "store directory",
                format!("{} already holds a store; use Store::open", dir.display()),
            ));
        }
        let s = Self {
            dir,
            meta: Meta {
                version: STORE_FORMAT_VERSION,
                dim_theta: dim_theta as u64,
                dim_x: dim_x as u64,
                fingerprint,
                rounds: Vec::new(),
            },
        };
        s.write_meta()?;
        Ok(s)
    }

    /// Opens an existing store, checking its format version.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let meta: Meta = read_versioned(&dir.join(META_FILE), STORE_FORMAT_VERSION)?;
        Ok(Self { dir, meta })
    }

    /// Opens the store in `dir` if it holds one, else creates it; either way it must be for
    /// `fingerprint` and these dimensions, else [`InferError::StoreMismatch`] names what changed.
    pub fn open_or_create(
        dir: impl AsRef<Path>,
        dim_theta: usize,
        dim_x: usize,
        fingerprint: Fingerprint,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.join(META_FILE).exists() {
            return Self::create(dir, dim_theta, dim_x, fingerprint);
        }
        let s = Self::open(dir)?;
        s.require(dim_theta, dim_x, &fingerprint)?;
        Ok(s)
    }

    /// Errors unless the store is for `fingerprint` and these dimensions.
    pub fn require(&self, dim_theta: usize, dim_x: usize, fingerprint: &Fingerprint) -> Result<()> {
        let mut changes = self.meta.fingerprint.changes(fingerprint);
        if changes.is_empty() && (self.dim_theta(), self.dim_x()) != (dim_theta, dim_x) {
            changes.push(format!(
                "the dimensions ({} parameters and {} features, now {dim_theta} and {dim_x})",
                self.dim_theta(),
                self.dim_x()
            ));
        }
        if changes.is_empty() {
            return Ok(());
        }
        Err(InferError::StoreMismatch {
            path: self.dir.clone(),
            changes,
        })
    }

    /// What determined the store's simulations.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.meta.fingerprint
    }

    fn write_meta(&self) -> Result<()> {
        write_versioned(&self.dir.join(META_FILE), &self.meta)
    }

    fn chunk_path(&self, round: usize, chunk: u64) -> PathBuf {
        self.dir.join(format!("r{round:04}_c{chunk:08}.chunk"))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Parameter dimension.
    pub fn dim_theta(&self) -> usize {
        self.meta.dim_theta as usize
    }
    /// Output dimension.
    pub fn dim_x(&self) -> usize {
        self.meta.dim_x as usize
    }
    /// Plans of all rounds.
    pub fn rounds(&self) -> &[RoundPlan] {
        &self.meta.rounds
    }

    /// Adds a round of `n` simulations whose parameters come from `source` (a digest, see
    /// [`RoundPlan::source`]); run it with [`Store::run_round`]. Returns its number.
    pub fn add_round(&mut self, n: u64, seed: u64, chunk_size: u64, source: &str) -> Result<usize> {
        if n == 0 || chunk_size == 0 {
            return Err(invalid_arg("round", "n and chunk_size must be > 0"));
        }
        self.meta.rounds.push(RoundPlan {
            n,
            seed,
            chunk_size,
            source: source.to_string(),
        });
        self.write_meta()?;
        Ok(self.meta.rounds.len() - 1)
    }

    fn plan(&self, round: usize) -> Result<&RoundPlan> {
        self.meta.rounds.get(round).ok_or_else(|| {
            invalid_arg(
                "round",
                format!(
                    "round {round} does not exist (store has {})",
                    self.meta.rounds.len()
                ),
            )
        })
    }

    /// Whether chunk `c` of `round` is on disk.
    pub fn has_chunk(&self, round: usize, c: u64) -> bool {
        self.chunk_path(round, c).exists()
    }

    /// Whether every chunk of `round` is on disk.
    pub fn is_round_complete(&self, round: usize) -> Result<bool> {
        Ok(self.missing_chunks(round)?.is_empty())
    }

    /// Runs the missing chunks of `round` in order, writing each as it finishes. The observer
    /// may stop the run after any chunk; calling again resumes. `source` must be the same as in
    /// the interrupted call (e.g. the same prior) for the result to match an uninterrupted run.
    pub fn run_round(
        &self,
        round: usize,
        sim: &dyn Simulator,
        source: &dyn ThetaSource,
        batch_size: usize,
        observer: &mut dyn RunObserver,
    ) -> Result<RoundReport> {
        check_dims(sim, source)?;
        for (what, expected, got) in [
            ("dim_theta", self.dim_theta(), sim.dim_theta()),
            ("dim_x", self.dim_x(), sim.dim_x()),
        ] {
            if expected != got {
                return Err(InferError::DimMismatch {
                    what: format!("simulator {what} vs store {}", self.dir.display()),
                    expected,
                    got,
                });
            }
        }
        let plan = self.plan(round)?.clone();
        let mut report = RoundReport {
            chunks_run: 0,
            chunks_resumed: 0,
            complete: false,
        };
        let mut done = 0u64;
        let mut invalid = 0u64;
        for c in 0..plan.num_chunks() {
            let start = c * plan.chunk_size;
            let len = plan.chunk_size.min(plan.n - start);
            let path = self.chunk_path(round, c);
            if path.exists() {
                report.chunks_resumed += 1;
                done += len;
                continue;
            }
            let chunk = simulate_chunk(sim, source, plan.seed, start, len as usize, batch_size)?;
            invalid += chunk.invalid.len() as u64;
            let file = ChunkFile {
                version: STORE_FORMAT_VERSION,
                problem: self.meta.fingerprint.digest(),
                round: round as u32,
                index: c,
                chunk,
            };
            write_versioned(&path, &file)?;
            report.chunks_run += 1;
            done += len;
            if observer
                .on_chunk(Progress {
                    done,
                    total: plan.n,
                    invalid,
                })
                .is_break()
            {
                break;
            }
        }
        report.complete = self.is_round_complete(round)?;
        Ok(report)
    }

    /// Writes one chunk of `round` from simulations made elsewhere (e.g. merged from shards run
    /// on other machines). The chunk must be exactly the plan's chunk `c`: it starts at
    /// `c * chunk_size` and spans `chunk_size` simulations (fewer for the last one), with
    /// payloads that match the store's dimensions. Written atomically, like the chunks of
    /// [`Store::run_round`], so a round assembled this way reads back the same as one run here.
    pub fn write_chunk(&self, round: usize, chunk: Chunk) -> Result<()> {
        let plan = self.plan(round)?;
        let c = chunk.start / plan.chunk_size;
        let len = plan.chunk_size.min(plan.n.saturating_sub(chunk.start));
        if !chunk.start.is_multiple_of(plan.chunk_size)
            || c >= plan.num_chunks()
            || chunk.n as u64 != len
        {
            return Err(invalid_arg(
                "store chunk",
                format!(
                    "chunk of {} simulations from index {} does not match round {round}'s plan \
                     ({} simulations in chunks of {})",
                    chunk.n, chunk.start, plan.n, plan.chunk_size
                ),
            ));
        }
        let valid = chunk.n as usize - chunk.invalid.len();
        if chunk.theta.len() != valid * self.dim_theta()
            || chunk.x.len() != valid * self.dim_x()
            || chunk.invalid_theta.len() != chunk.invalid.len() * self.dim_theta()
        {
            return Err(invalid_arg(
                "store chunk",
                format!(
                    "chunk from index {} has {} valid and {} invalid rows but {} theta, {} x and \
                     {} invalid-theta values (dimensions {} and {})",
                    chunk.start,
                    valid,
                    chunk.invalid.len(),
                    chunk.theta.len(),
                    chunk.x.len(),
                    chunk.invalid_theta.len(),
                    self.dim_theta(),
                    self.dim_x()
                ),
            ));
        }
        let file = ChunkFile {
            version: STORE_FORMAT_VERSION,
            problem: self.meta.fingerprint.digest(),
            round: round as u32,
            index: c,
            chunk,
        };
        write_versioned(&self.chunk_path(round, c), &file)
    }

    fn read_chunk(&self, round: usize, c: u64) -> Result<Option<Chunk>> {
        let path = self.chunk_path(round, c);
        if !path.exists() {
            return Ok(None);
        }
        let f: ChunkFile = read_versioned(&path, STORE_FORMAT_VERSION)?;
        if f.problem != self.meta.fingerprint.digest() {
            return Err(InferError::Corrupt {
                path,
                reason: format!(
                    "holds simulations of another problem than {} describes (a file copied from another store?)",
                    self.dir.join(META_FILE).display()
                ),
            });
        }
        if (f.round as usize, f.index) != (round, c) {
            return Err(InferError::Corrupt {
                path,
                reason: format!(
                    "holds chunk {} of round {}, not chunk {c} of round {round} (a file copied or renamed by hand?)",
                    f.index, f.round
                ),
            });
        }
        let (dt, dx) = (self.dim_theta(), self.dim_x());
        let plan = self.plan(round)?;
        let valid = (f.chunk.n as usize).checked_sub(f.chunk.invalid.len());
        if f.chunk.start != c * plan.chunk_size
            || f.chunk.n as u64 != plan.chunk_size.min(plan.n - f.chunk.start.min(plan.n))
            || valid.is_none_or(|v| f.chunk.theta.len() != v * dt || f.chunk.x.len() != v * dx)
            || f.chunk.invalid_theta.len() != f.chunk.invalid.len() * dt
        {
            return Err(InferError::Corrupt {
                path,
                reason: "chunk header and payload disagree with the round's plan".into(),
            });
        }
        Ok(Some(f.chunk))
    }

    /// Loads the valid simulations of one round (chunks present on disk, in index order).
    pub fn load_round(&self, round: usize) -> Result<SimulationSet> {
        let plan = self.plan(round)?;
        let mut set = SimulationSet {
            dim_theta: self.dim_theta(),
            dim_x: self.dim_x(),
            ..Default::default()
        };
        for c in 0..plan.num_chunks() {
            if let Some(chunk) = self.read_chunk(round, c)? {
                set.push_chunk(&chunk);
            }
        }
        Ok(set)
    }

    /// Loads the valid simulations of all rounds.
    pub fn load(&self) -> Result<SimulationSet> {
        let mut set = SimulationSet {
            dim_theta: self.dim_theta(),
            dim_x: self.dim_x(),
            ..Default::default()
        };
        for r in 0..self.meta.rounds.len() {
            set.append(self.load_round(r)?);
        }
        Ok(set)
    }

    /// Appends every round of `other` (same dimensions) to this store as new rounds.
    pub fn merge_from(&mut self, other: &Store) -> Result<()> {
        other.require(self.dim_theta(), self.dim_x(), self.fingerprint())?;
        for (r, plan) in other.meta.rounds.iter().enumerate() {
            let new_round = self.meta.rounds.len();
            for c in 0..plan.num_chunks() {
                if let Some(chunk) = other.read_chunk(r, c)? {
                    let file = ChunkFile {
                        version: STORE_FORMAT_VERSION,
                        problem: self.meta.fingerprint.digest(),
                        round: new_round as u32,
                        index: c,
                        chunk,
                    };
                    write_versioned(&self.chunk_path(new_round, c), &file)?;
                }
            }
            self.meta.rounds.push(plan.clone());
            self.write_meta()?;
        }
        Ok(())
    }

    /// The chunk files of `round` that are not on disk.
    pub fn missing_chunks(&self, round: usize) -> Result<Vec<PathBuf>> {
        let p = self.plan(round)?;
        Ok((0..p.num_chunks())
            .map(|c| self.chunk_path(round, c))
            .filter(|path| !path.exists())
            .collect())
    }

    /// Writes all valid theta and x as two `.npy` files (float64, C order); every round must
    /// be complete, so an export never silently lacks simulations.
    pub fn export_npy(&self, theta_path: &Path, x_path: &Path) -> Result<()> {
        for r in 0..self.meta.rounds.len() {
            if let Some(path) = self.missing_chunks(r)?.into_iter().next() {
                return Err(InferError::Corrupt {
                    path,
                    reason: format!(
                        "is missing, so round {r} is incomplete (an interrupted run, or a deleted file): run `neurosbi fit` again to simulate it"
                    ),
                });
            }
        }
        let s = self.load()?;
        write_npy(theta_path, &s.theta, s.len(), s.dim_theta)?;
        write_npy(x_path, &s.x, s.len(), s.dim_x)
    }
}

/// Writes a row-major `rows x cols` f64 matrix as a NumPy `.npy` file (format 1.0).
///
/// Written by hand: the header is one short ASCII dict, and the crates that do this pull in
/// ndarray, which nothing else here needs.
pub fn write_npy(path: &Path, data: &[f64], rows: usize, cols: usize) -> Result<()> {
    if data.len() != rows * cols {
        return Err(InferError::RaggedBuffer {
            what: format!("npy data for {}", path.display()),
            len: data.len(),
            width: cols,
        });
    }
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + dict + padding + '\n' is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let pad = unpadded.next_multiple_of(64) - unpadded;
    let mut bytes = Vec::with_capacity(unpadded + pad + data.len() * 8);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend(std::iter::repeat_n(b' ', pad));
    bytes.push(b'\n');
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    write_atomic(path, &bytes)
}

/// Stops a run once `limit` chunks have finished (useful to bound a run's length, and to test
/// resumption).
pub struct StopAfterChunks {
    /// Chunks left before stopping.
    pub remaining: usize,
}

impl RunObserver for StopAfterChunks {
    fn on_chunk(&mut self, _: Progress) -> ControlFlow<()> {
        self.remaining = self.remaining.saturating_sub(1);
        if self.remaining == 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prior::{IndependentPrior, Marginal};
    use crate::rng::SimRng;
    use crate::simulator::{FromPrior, Quiet, SimulationError};
    use rand::RngExt;

    /// x = theta + uniform noise; NaN (invalid) when theta > 0.8.
    struct Noisy;
    impl Simulator for Noisy {
        fn dim_theta(&self) -> usize {
            1
        }
        fn dim_x(&self) -> usize {
            2
        }
        fn simulate(
            &self,
            theta: &[f64],
            rngs: &mut [SimRng],
            x: &mut [f64],
        ) -> std::result::Result<(), SimulationError> {
            for ((t, rng), xr) in theta.iter().zip(rngs).zip(x.chunks_mut(2)) {
                xr[0] = if *t > 0.8 {
                    f64::NAN
                } else {
                    t + rng.random::<f64>()
                };
                xr[1] = rng.random();
            }
            Ok(())
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("neurosbi-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_round_assembled_from_chunks_reads_back_like_a_run_round() {
        let prior = IndependentPrior::new(vec![Marginal::Uniform {
            low: 0.0,
            high: 1.0,
        }])
        .unwrap();
        let run = Store::create(tmp("run"), 1, 2, Fingerprint::new()).unwrap();
        let mut run = run;
        let r = run.add_round(1234, 5, 100, "prior").unwrap();
        run.run_round(r, &Noisy, &FromPrior(&prior), 7, &mut Quiet)
            .unwrap();
        let want = run.load_round(r).unwrap();
        assert!(want.n_invalid > 0, "the test needs invalid rows");

        // The same simulations in 300-row chunks written into a store planned with them.
        let mut built = Store::create(tmp("built"), 1, 2, Fingerprint::new()).unwrap();
        let r = built.add_round(1234, 5, 300, "prior").unwrap();
        let mut start = 0u64;
        while start < 1234 {
            let n = 300.min(1234 - start) as usize;
            let c = simulate_chunk(&Noisy, &FromPrior(&prior), 5, start, n, 50).unwrap();
            built.write_chunk(r, c).unwrap();
            start += n as u64;
        }
        assert!(built.is_round_complete(r).unwrap());
        assert!(built.has_chunk(r, 4) && !built.has_chunk(r, 5));
        assert_eq!(
            Store::open(built.dir()).unwrap().load_round(r).unwrap(),
            want
        );

        // Chunks that do not match the plan are refused, naming the index.
        let c = simulate_chunk(&Noisy, &FromPrior(&prior), 5, 100, 300, 50).unwrap();
        let e = built.write_chunk(r, c).unwrap_err().to_string();
        assert!(e.contains("from index 100"), "{e}");
        let mut c = simulate_chunk(&Noisy, &FromPrior(&prior), 5, 0, 300, 50).unwrap();
        c.x.pop();
        assert!(built.write_chunk(r, c).is_err());
        assert!(
            built
                .write_chunk(
                    7,
                    simulate_chunk(&Noisy, &FromPrior(&prior), 5, 0, 300, 50).unwrap()
                )
                .is_err()
        );
    }
}
