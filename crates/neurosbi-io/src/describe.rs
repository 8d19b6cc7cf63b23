//! A recording described in words, for `neurosbi inspect FILE.abf`.

use std::fmt::Write as _;

use crate::recording::Recording;

impl Recording {
    /// What a user needs to write a fit file: format, rate, duration, channels with units,
    /// sweeps, each command output's epoch table with the per-sweep steps, and tags.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}: {}", self.path.display(), self.format);
        let n = self.sweep_count();
        let first = self.sweeps.first().map_or(0, |x| x.1);
        let _ = writeln!(
            s,
            "sampling rate {} Hz (every {} ms); {n} sweep(s) of {} ms (sweep 0), {} s in all",
            self.sample_rate_hz,
            1e3 / self.sample_rate_hz,
            first as f64 * 1e3 / self.sample_rate_hz,
            self.duration_s()
        );
        let _ = writeln!(s, "recorded channels (`channel = NAME` or INDEX):");
        for (i, c) in self.channels.iter().enumerate() {
            let _ = writeln!(s, "  {i}  \"{}\"  {}", c.name, units(&c.units));
        }
        let _ = writeln!(
            s,
            "command outputs (`command = INDEX` for the epoch-table stimulus):"
        );
        for (d, c) in self.commands.iter().enumerate() {
            let holding = format!("holding {} {}", c.holding, c.units);
            let _ = writeln!(s, "  {d}  \"{}\"  {}  {holding}", c.name, units(&c.units));
            let Some(rows) = &c.epochs else { continue };
            let ms = |samples: i64| samples as f64 * 1e3 / self.sample_rate_hz;
            for (e, r) in rows.iter().enumerate() {
                let letter = (b'A' + (e % 26) as u8) as char;
                let _ = writeln!(
                    s,
                    "     epoch {letter}: {:<8} level {} {u} (+{} {u} per sweep), {} ms (+{} ms per sweep)",
                    r.kind.name(),
                    r.first_level,
                    r.delta_level,
                    ms(r.first_duration),
                    ms(r.delta_duration),
                    u = c.units
                );
            }
            if let Ok(epochs) = self.sweep_epochs(d, 0) {
                let spans: Vec<String> = epochs
                    .iter()
                    .map(|e| format!("{}-{} ms", ms(e.start as i64), ms(e.stop as i64)))
                    .collect();
                let _ = writeln!(s, "     sweep 0: {}", spans.join(", "));
            }
        }
        if !self.tags.is_empty() {
            let _ = writeln!(s, "tags:");
            for t in &self.tags {
                let _ = writeln!(s, "  {:.3} s  {}", t.time_s, t.comment);
            }
        }
        s
    }
}

fn units(u: &str) -> String {
    if u.is_empty() {
        "(no unit)".into()
    } else {
        format!("in {u}")
    }
}
