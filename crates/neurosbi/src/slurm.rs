//! sbatch scripts for running a fit file on a SLURM cluster (`neurosbi slurm FILE`): per
//! round an array job of shards, then a merge job (which also trains the next round's
//! proposal), chained with `--dependency=afterok`; the last merge trains and writes every
//! output, like `fit`. `submit.sh` submits the chain and prints the job ids.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Settings of the generated jobs.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// The `neurosbi` program the jobs run (absolute path).
    pub program: PathBuf,
    /// The fit file (absolute path).
    pub file: PathBuf,
    /// The output folder (absolute path).
    pub out: PathBuf,
    /// Working directory of the jobs.
    pub workdir: PathBuf,
    /// Simulations per round; one entry per round.
    pub rounds: Vec<usize>,
    /// Array tasks (shards) per round.
    pub array_size: u32,
    /// Most array tasks running at once (`%N`), if limited.
    pub max_running: Option<u32>,
    /// Partition of the simulation jobs.
    pub partition: Option<String>,
    /// Time limit of each simulation task (`HH:MM:SS` or any sbatch form).
    pub time: String,
    /// Cores per simulation task (also the program's `--threads`).
    pub cpus: u32,
    /// Memory per task (sbatch form, e.g. `4G`), if set.
    pub mem: Option<String>,
    /// Partition of the merge-and-train jobs (e.g. a GPU partition), if not `partition`.
    pub train_partition: Option<String>,
    /// Generic resources of the training job (e.g. `gpu:1`), if any.
    pub train_gres: Option<String>,
    /// Time limit of the merge-and-train jobs.
    pub train_time: String,
    /// Cores of the merge-and-train jobs.
    pub train_cpus: u32,
    /// Seed passed to every job, if it overrides the file's.
    pub seed: Option<u64>,
    /// Whether the final training may overwrite earlier outputs (`--force`).
    pub force: bool,
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn q(p: &Path) -> String {
    quote(&p.display().to_string())
}

impl SlurmOptions {
    fn check(&self) -> Result<()> {
        if self.array_size == 0 {
            return Err(Error::invalid("--array-size", "must be at least 1"));
        }
        if self.cpus == 0 || self.train_cpus == 0 {
            return Err(Error::invalid("--cpus", "must be at least 1"));
        }
        if self.rounds.is_empty() {
            return Err(Error::invalid("rounds", "the fit file has no rounds"));
        }
        for (what, v) in [("--time", &self.time), ("--train-time", &self.train_time)] {
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(Error::invalid(what, format!("{v:?} is not a time limit")));
            }
        }
        Ok(())
    }

    fn header(
        &self,
        name: &str,
        log: &str,
        partition: Option<&str>,
        cpus: u32,
        time: &str,
    ) -> String {
        let mut s = String::from("#!/bin/bash\n");
        s.push_str(&format!("#SBATCH --job-name={}\n", quote(name)));
        s.push_str(&format!("#SBATCH --chdir={}\n", q(&self.workdir)));
        s.push_str(&format!(
            "#SBATCH --output={}\n",
            q(&self.out.join("slurm").join("logs").join(log))
        ));
        s.push_str(&format!("#SBATCH --cpus-per-task={cpus}\n"));
        s.push_str(&format!("#SBATCH --time={}\n", quote(time)));
        s.push_str("#SBATCH --ntasks=1\n");
        if let Some(p) = partition {
            s.push_str(&format!("#SBATCH --partition={}\n", quote(p)));
        }
        if let Some(m) = &self.mem {
            s.push_str(&format!("#SBATCH --mem={}\n", quote(m)));
        }
        s
    }

    fn command(&self, sub: &str, extra: &str, threads: u32) -> String {
        let mut c = format!(
            "{} {sub} {} --out {} --threads {threads} --quiet",
            q(&self.program),
            q(&self.file),
            q(&self.out)
        );
        if let Some(seed) = self.seed {
            c.push_str(&format!(" --seed {seed}"));
        }
        c.push_str(extra);
        c
    }

    /// The scripts as (file name, text): `round{r}.sbatch`, `merge{r}.sbatch` (rounds
    /// before the last), `train.sbatch` and `submit.sh`.
    pub fn scripts(&self) -> Result<Vec<(String, String)>> {
        self.check()?;
        let stem = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "fit".into());
        let mut files = Vec::new();
        let last = self.rounds.len() - 1;
        let train_partition = self
            .train_partition
            .as_deref()
            .or(self.partition.as_deref());
        let mut submit = String::from(
            "#!/bin/bash\n# Submits the chain of jobs; prints `NAME JOBID` per job, the training job last.\n\
             set -euo pipefail\ncd \"$(dirname \"$0\")\"\n",
        );
        submit.push_str(&format!(
            "mkdir -p {}\n",
            q(&self.out.join("slurm").join("logs"))
        ));
        submit.push_str("dep=()\n");
        for (r, &n) in self.rounds.iter().enumerate() {
            let tasks = (self.array_size as usize).min(n.max(1)) as u32;
            let mut s = self.header(
                &format!("{stem}-r{r}"),
                &format!("round{r}_%A_%a.out"),
                self.partition.as_deref(),
                self.cpus,
                &self.time,
            );
            s.push_str(&format!(
                "#SBATCH --array=0-{}{}\n",
                tasks - 1,
                self.max_running
                    .map(|m| format!("%{m}"))
                    .unwrap_or_default()
            ));
            s.push_str(&format!(
                "# Round {r}: {n} simulations in {tasks} shards; each task finds its shard in\n\
                 # SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT.\nset -euo pipefail\nexec {}\n",
                self.command("simulate", &format!(" --round {r}"), self.cpus)
            ));
            files.push((format!("round{r}.sbatch"), s));
            submit.push_str(&format!(
                "j=$(sbatch --parsable \"${{dep[@]}}\" round{r}.sbatch); j=${{j%%;*}}; echo \"round{r} $j\"\n"
            ));
            let (name, body) = if r < last {
                (
                    format!("merge{r}"),
                    format!(
                        "# Merges round {r}'s shards and trains the proposal of round {}.\nset -euo pipefail\nexec {}\n",
                        r + 1,
                        self.command("merge", "", self.train_cpus)
                    ),
                )
            } else {
                (
                    "train".to_string(),
                    format!(
                        "# Merges the last round's shards, trains and writes every output.\nset -euo pipefail\n{}\nexec {}\n",
                        self.command("merge", "", self.train_cpus),
                        self.command(
                            "train",
                            if self.force { " --force" } else { "" },
                            self.train_cpus
                        )
                    ),
                )
            };
            let mut s = self.header(
                &format!("{stem}-{name}"),
                &format!("{name}_%j.out"),
                train_partition,
                self.train_cpus,
                &self.train_time,
            );
            if r == last
                && let Some(g) = &self.train_gres
            {
                s.push_str(&format!("#SBATCH --gres={}\n", quote(g)));
            }
            s.push_str(&body);
            files.push((format!("{name}.sbatch"), s));
            submit.push_str(&format!(
                "m=$(sbatch --parsable --dependency=afterok:$j {name}.sbatch); m=${{m%%;*}}; echo \"{name} $m\"\n\
                 dep=(--dependency=afterok:$m)\n"
            ));
        }
        files.push(("submit.sh".to_string(), submit));
        Ok(files)
    }

    /// Writes the scripts into `dir` (created; existing scripts need `force`); returns their
    /// paths.
    pub fn write(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>> {
        let scripts = self.scripts()?;
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut paths = Vec::new();
        for (name, _) in &scripts {
            let p = dir.join(name);
            if p.exists() && !force {
                return Err(Error::Exists { path: p });
            }
        }
        for (name, text) in scripts {
            let p = dir.join(&name);
            crate::summary::write_file(&p, text.as_bytes())?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(Error::io(&p))?;
            }
            paths.push(p);
        }
        Ok(paths)
    }
}
