//! The shard file format: `MAGIC`, the format version (u32 LE), then frames `[len u32]
//! [crc32 u32][postcard payload]`: one header, the chunks in index order, one footer with the
//! counts. Written to `NAME.part` and renamed when complete.

use super::{
    MergeProblem, MergeProblems, Result, RunIdentity, SHARD_FORMAT_VERSION, ScaleError, io,
};
use crate::error::Error;
use crate::fit::STORE_CHUNK_SIZE;
use neurosbi_infer::simulator::simulate_chunk;
use neurosbi_infer::{Chunk, Progress, ThetaSource};
use serde::{Deserialize, Serialize};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"NSBSHARD";

/// Largest frame a reader accepts (a chunk of 500 simulations of 100 000 features is 400 MB);
/// a larger length means a damaged file, not a huge allocation.
const MAX_FRAME: u32 = 1 << 30;

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
    /// Digest of where the round's parameters come from (`"prior"` or the proposal's
    /// draws), as the store records it.
    pub source: String,
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

/// Reads a whole shard file, checking its structure; calls `each` on every chunk in order.
pub(super) fn read_shard(
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

/// Simulates the range of `header` with any simulator and parameter source and writes it as
/// the shard file `path` (streamed to `path.part`, renamed when complete); returns the
/// counts and the file's size. [`ShardJob::run`] calls this for a fit file; it is public for
/// other simulators and for measuring the format.
pub fn write_shard(
    path: &Path,
    header: &ShardHeader,
    sim: &dyn neurosbi_infer::Simulator,
    source: &dyn ThetaSource,
    batch_size: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<(ShardCounts, u64)> {
    let (start, end) = (header.start, header.end);
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
            sim,
            source,
            header.round_seed,
            at,
            (stop - at) as usize,
            batch_size,
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
    std::fs::rename(&part, path).map_err(io(path))?;
    Ok((counts, bytes))
}
