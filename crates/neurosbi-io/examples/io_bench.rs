//! The reading benchmark of `cargo xtask bench io` (issue 21): how fast neurosbi-io reads a
//! large recording and how much memory it needs, one measurement per process so that the
//! peak resident memory (`VmHWM`) is that of one read.
//!
//! ```text
//! io_bench make-abf SAMPLE.abf OUT.abf MB   # a valid ABF2 of about MB megabytes of samples
//! io_bench read FILE                        # one JSON line: seconds, MB/s, peak memory
//! ```
//!
//! `make-abf` repeats the sweeps of an episodic ABF2 file (the 16 sweeps of
//! `17o05028_ic_steps.abf`) until the samples fill `MB` megabytes: the header and every section
//! before the samples are copied, the sweep count, the data section's size and the synch
//! array (one entry per sweep, placed after the samples) are rewritten; pyabf and neo read
//! the result as a file of `16 x copies` sweeps.
//!
//! `read` opens the file with `neurosbi_io::open` and converts every sweep of every channel to
//! f64 in its units (the work a fit does), summing them so that nothing is optimised away.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("make-abf") if args.len() == 4 => make_abf(
            Path::new(&args[1]),
            Path::new(&args[2]),
            args[3].parse().unwrap_or(100.0),
        ),
        Some("read") if args.len() == 2 => read(Path::new(&args[1])),
        _ => Err("usage: io_bench make-abf SAMPLE.abf OUT.abf MB | io_bench read FILE".into()),
    };
    if let Err(e) = r {
        eprintln!("io_bench: {e}");
        std::process::exit(1);
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// ABF2 section table entries: (offset of the entry in the header).
const DATA_ENTRY: usize = 76 + 16 * 10;
const SYNCH_ENTRY: usize = 76 + 16 * 15;
const BLOCK: usize = 512;

fn make_abf(sample: &Path, out: &Path, mb: f64) -> Result<(), String> {
    let src = std::fs::read(sample).map_err(|e| format!("{}: {e}", sample.display()))?;
    if src.get(..4) != Some(b"ABF2") {
        return Err(format!("{}: not an ABF2 file", sample.display()));
    }
    let sweeps = u32_at(&src, 12) as usize;
    let data_at = u32_at(&src, DATA_ENTRY) as usize * BLOCK;
    let item = u32_at(&src, DATA_ENTRY + 4) as usize;
    let n = i64_at(&src, DATA_ENTRY + 8) as usize;
    let synch_at = u32_at(&src, SYNCH_ENTRY) as usize * BLOCK;
    let synch_n = i64_at(&src, SYNCH_ENTRY + 8) as usize;
    if synch_at < data_at + n * item || synch_n != sweeps || sweeps < 2 {
        return Err(format!(
            "{}: expected an episodic file with its synch array after the samples",
            sample.display()
        ));
    }
    let data = &src[data_at..data_at + n * item];
    let synch: Vec<(i32, i32)> = (0..synch_n)
        .map(|k| {
            let p = synch_at + 8 * k;
            (
                i32::from_le_bytes(src[p..p + 4].try_into().unwrap()),
                i32::from_le_bytes(src[p + 4..p + 8].try_into().unwrap()),
            )
        })
        .collect();
    let step = synch[1].0 - synch[0].0;
    let copies = ((mb * 1e6) / data.len() as f64).ceil().max(1.0) as usize;
    let total_sweeps = sweeps * copies;
    let data_bytes = data.len() * copies;
    let synch_block = (data_at + data_bytes).div_ceil(BLOCK);
    let mut header = src[..data_at].to_vec();
    header[12..16].copy_from_slice(&(total_sweeps as u32).to_le_bytes());
    header[DATA_ENTRY + 8..DATA_ENTRY + 16].copy_from_slice(&((n * copies) as i64).to_le_bytes());
    header[SYNCH_ENTRY..SYNCH_ENTRY + 4].copy_from_slice(&(synch_block as u32).to_le_bytes());
    header[SYNCH_ENTRY + 8..SYNCH_ENTRY + 16].copy_from_slice(&(total_sweeps as i64).to_le_bytes());
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?,
    );
    let w = |f: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| {
        f.write_all(b)
            .map_err(|e| format!("{}: {e}", out.display()))
    };
    w(&mut f, &header)?;
    for _ in 0..copies {
        w(&mut f, data)?;
    }
    w(
        &mut f,
        &vec![0u8; synch_block * BLOCK - data_at - data_bytes],
    )?;
    for k in 0..total_sweeps {
        let start = synch[0].0 + step * k as i32;
        w(&mut f, &start.to_le_bytes())?;
        w(&mut f, &synch[k % sweeps].1.to_le_bytes())?;
    }
    f.flush().map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "io_bench: wrote {} ({total_sweeps} sweeps, {:.1} MB of samples)",
        out.display(),
        data_bytes as f64 / 1e6
    );
    Ok(())
}

/// `VmRSS` and `VmHWM` of this process, bytes.
fn memory() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

fn read(path: &Path) -> Result<(), String> {
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let (base, _) = memory();
    let t = Instant::now();
    let rec = neurosbi_io::open(path).map_err(|e| e.to_string())?;
    let opened = t.elapsed().as_secs_f64();
    let (_, open_peak) = memory();
    let mut sum = 0.0;
    let mut samples = 0usize;
    let mut stored = 0usize;
    for c in 0..rec.channels.len() {
        for s in 0..rec.sweep_count() {
            stored += match rec.raw_sweep(c, s).map_err(|e| e.to_string())? {
                neurosbi_io::RawSweep::I16(v) => 2 * v.len(),
                neurosbi_io::RawSweep::F32(v) => 4 * v.len(),
                neurosbi_io::RawSweep::F64(v) => 8 * v.len(),
            };
            let v = rec.sweep(c, s).map_err(|e| e.to_string())?;
            samples += v.len();
            sum += v.iter().sum::<f64>();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let (_, peak) = memory();
    println!(
        "{{\"reader\":\"neurosbi-io\",\"file\":{:?},\"file_mb\":{:.3},\"sweeps\":{},\"channels\":{},\"samples\":{samples},\"seconds\":{secs:.4},\"open_seconds\":{opened:.4},\"mb_per_s\":{:.1},\"peak_extra_mb\":{:.1},\"open_peak_extra_mb\":{:.1},\"stored_mb\":{:.1},\"checksum\":{sum:e}}}",
        path.display().to_string(),
        file_bytes as f64 / 1e6,
        rec.sweep_count(),
        rec.channels.len(),
        file_bytes as f64 / 1e6 / secs,
        peak.saturating_sub(base) as f64 / 1e6,
        open_peak.saturating_sub(base) as f64 / 1e6,
        stored as f64 / 1e6,
    );
    Ok(())
}
