//! `mpirun -np K neurosbi simulate FILE` (cargo feature `mpi`): the ranks split a round's
//! store chunks round-robin, simulate them, and stream each finished chunk to rank 0 as one
//! message (never one giant message); rank 0 simulates its own share too and writes every
//! chunk into the store as it arrives. Chunks are seeded by their global indices, so the
//! store is bit-identical to a one-process `neurosbi simulate`.
//!
//! A rank that fails sends its error to rank 0, which names the rank and aborts the job; a
//! rank that dies outright is reported by the launcher (`mpirun` names its rank). Either way
//! the round is left incomplete in the store, never silently partial: running again (with
//! MPI or without) simulates only the missing chunks.

use crate::fit::STORE_CHUNK_SIZE;
use crate::scale::{Result, ScaleError, ShardJob};
use mpi::point_to_point::Status;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use neurosbi_infer::simulator::simulate_chunk;
use neurosbi_infer::{Chunk, Store};
use std::collections::HashMap;

const TAG_CHUNK: i32 = 1;
const TAG_DONE: i32 = 2;
const TAG_ERROR: i32 = 3;

/// Environment variable that makes the given rank die (SIGABRT) after its first chunk: fault
/// injection for tests of the failure path.
pub const KILL_RANK_VAR: &str = "NEUROSBI_MPI_KILL_RANK";

/// Whether this process was started by an MPI launcher (Open MPI's `mpirun`, MPICH/PMI, or
/// `srun --mpi=pmix`).
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Ranks of this job on this machine, as the launcher tells it (to share the cores).
pub fn local_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// What the MPI run did (reported by rank 0).
#[derive(Clone, Debug)]
pub struct MpiOutcome {
    /// Ranks in the job.
    pub ranks: usize,
    /// Chunks simulated per rank in this run.
    pub chunks_per_rank: Vec<u64>,
    /// Chunks found in the store already.
    pub chunks_resumed: u64,
    /// Valid and invalid simulations of the whole round.
    pub valid: u64,
    /// Invalid simulations of the whole round.
    pub invalid: u64,
}

fn rank_error(rank: i32, message: impl Into<String>) -> ScaleError {
    ScaleError::Rank {
        rank,
        message: message.into(),
    }
}

/// Runs round `round` of `job` across the ranks of `MPI_COMM_WORLD`; `Some` on rank 0,
/// `None` on the others. On any error rank 0 aborts the whole job after reporting it.
pub fn simulate(job: &ShardJob<'_>, round: usize) -> Result<Option<MpiOutcome>> {
    let universe = mpi::initialize().ok_or_else(|| rank_error(-1, "MPI was initialised twice"))?;
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let root = world.process_at_rank(0);
    let res = if rank == 0 {
        gather(job, round, &world)
    } else {
        match work(job, round, &world) {
            Ok(()) => Ok(None),
            Err(e) => {
                // Rank 0 names this rank and aborts every rank.
                root.send_with_tag(e.to_string().as_bytes(), TAG_ERROR);
                Err(rank_error(rank, e.to_string()))
            }
        }
    };
    if rank == 0
        && let Err(e) = &res
        && size > 1
    {
        eprintln!("error: {e}");
        world.abort(1);
    }
    res
}

/// The chunks still missing in the store, as rank 0 decides and broadcasts.
fn todo_chunks(world: &SimpleCommunicator, mine: Option<Vec<u64>>) -> Vec<u64> {
    let root = world.process_at_rank(0);
    let mut len = mine.as_ref().map_or(0, |v| v.len() as u64);
    root.broadcast_into(&mut len);
    let mut v = mine.unwrap_or_else(|| vec![0; len as usize]);
    if len > 0 {
        root.broadcast_into(&mut v[..]);
    }
    v
}

fn work(job: &ShardJob<'_>, round: usize, world: &SimpleCommunicator) -> Result<()> {
    let (rank, size) = (world.rank(), world.size());
    let todo = todo_chunks(world, None);
    let setup = job.setup(round)?;
    let source = setup.source()?;
    let kill = std::env::var(KILL_RANK_VAR)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        == Some(rank);
    let root = world.process_at_rank(0);
    let chunk = STORE_CHUNK_SIZE as u64;
    let mut sent = 0u64;
    for (j, &c) in todo.iter().enumerate() {
        if j % size as usize != rank as usize {
            continue;
        }
        let start = c * chunk;
        let len = chunk.min(setup.n - start) as usize;
        let ch = simulate_chunk(
            &setup.sim,
            source.as_ref(),
            setup.seed,
            start,
            len,
            job.cfg.inference.batch_size,
        )?;
        let bytes = postcard::to_stdvec(&ch)
            .map_err(|e| rank_error(rank, format!("encoding chunk {c}: {e}")))?;
        root.send_with_tag(&bytes[..], TAG_CHUNK);
        sent += 1;
        if kill {
            eprintln!("rank {rank}: dying on purpose ({KILL_RANK_VAR})");
            std::process::abort();
        }
    }
    root.send_with_tag(&sent.to_le_bytes()[..], TAG_DONE);
    Ok(())
}

fn gather(
    job: &ShardJob<'_>,
    round: usize,
    world: &SimpleCommunicator,
) -> Result<Option<MpiOutcome>> {
    let size = world.size() as usize;
    let setup = job.setup(round)?;
    let p = &job.cfg.problem;
    let store_dir = job.out.join("simulations");
    let mut store = Store::open_or_create(
        &store_dir,
        p.dim_theta(),
        p.dim_x(),
        job.run.fingerprint.clone(),
    )?;
    let ri = match store
        .rounds()
        .iter()
        .position(|pl| pl.n == setup.n && pl.seed == setup.seed)
    {
        Some(r) => r,
        None => {
            if store.rounds().len() != round {
                return Err(ScaleError::Round {
                    round,
                    message: format!(
                        "the store in {} holds {} rounds; simulate round {} first",
                        store_dir.display(),
                        store.rounds().len(),
                        store.rounds().len()
                    ),
                });
            }
            store.add_round(
                setup.n,
                setup.seed,
                STORE_CHUNK_SIZE as u64,
                &setup.source_digest(),
            )?
        }
    };
    let chunk = store.rounds()[ri].chunk_size;
    let n_chunks = setup.n.div_ceil(chunk);
    let todo: Vec<u64> = (0..n_chunks).filter(|&c| !store.has_chunk(ri, c)).collect();
    let resumed = n_chunks - todo.len() as u64;
    let todo = todo_chunks(world, Some(todo));
    let mut expected = vec![0u64; size];
    for j in 0..todo.len() {
        expected[j % size] += 1;
    }
    let mut st = Gathering {
        ri,
        chunk,
        owner: todo
            .iter()
            .enumerate()
            .map(|(j, &c)| (c, j % size))
            .collect(),
        expected,
        got: vec![0; size],
        done: (0..size).map(|r| r == 0).collect(),
    };
    let source = setup.source()?;
    for (j, &c) in todo.iter().enumerate() {
        if j % size != 0 {
            continue;
        }
        let start = c * chunk;
        let ch = simulate_chunk(
            &setup.sim,
            source.as_ref(),
            setup.seed,
            start,
            chunk.min(setup.n - start) as usize,
            job.cfg.inference.batch_size,
        )?;
        store.write_chunk(ri, ch)?;
        // Take what the other ranks have sent meanwhile, so they do not wait on rank 0.
        while let Some(status) = world.any_process().immediate_probe() {
            st.receive(world, status, &store)?;
        }
    }
    while !st.done.iter().all(|d| *d) {
        let status = world.any_process().probe();
        st.receive(world, status, &store)?;
    }
    if !store.is_round_complete(ri)? {
        return Err(rank_error(
            0,
            "the round is incomplete after every rank finished",
        ));
    }
    let set = store.load_round(ri)?;
    Ok(Some(MpiOutcome {
        ranks: size,
        chunks_per_rank: st.expected,
        chunks_resumed: resumed,
        valid: set.len() as u64,
        invalid: set.n_invalid,
    }))
}

/// Rank 0's bookkeeping of what the other ranks owe and have sent.
struct Gathering {
    ri: usize,
    chunk: u64,
    /// Chunk -> the rank that simulates it.
    owner: HashMap<u64, usize>,
    expected: Vec<u64>,
    got: Vec<u64>,
    done: Vec<bool>,
}

impl Gathering {
    /// Receives the message `status` announces and acts on it.
    fn receive(&mut self, world: &SimpleCommunicator, status: Status, store: &Store) -> Result<()> {
        let src = status.source_rank();
        let (bytes, _) = world
            .process_at_rank(src)
            .receive_vec_with_tag::<u8>(status.tag());
        let r = src as usize;
        match status.tag() {
            TAG_CHUNK => {
                let ch: Chunk = postcard::from_bytes(&bytes)
                    .map_err(|e| rank_error(src, format!("sent an undecodable chunk: {e}")))?;
                let c = ch.start / self.chunk;
                if self.owner.get(&c) != Some(&r) || !ch.start.is_multiple_of(self.chunk) {
                    return Err(rank_error(
                        src,
                        format!(
                            "sent chunk {c} (index {}), which is not its share",
                            ch.start
                        ),
                    ));
                }
                store.write_chunk(self.ri, ch)?;
                self.got[r] += 1;
            }
            TAG_DONE => {
                let n = bytes
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(u64::MAX, u64::from_le_bytes);
                if n != self.expected[r] || self.got[r] != self.expected[r] {
                    return Err(rank_error(
                        src,
                        format!(
                            "finished after sending {n} of its {} chunks (rank 0 received {})",
                            self.expected[r], self.got[r]
                        ),
                    ));
                }
                self.done[r] = true;
            }
            _ => {
                return Err(rank_error(
                    src,
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
        Ok(())
    }
}
