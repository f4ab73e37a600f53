//! Splitting a batch across the tasks of an array job (Slurm, Kubernetes Indexed Jobs, AWS
//! Batch, Google Cloud Batch): each task colours only its shard of the inputs.
//!
//! An input belongs to shard `h mod N`, where `h` is the first 8 bytes (big-endian) of the
//! SHA-256 of its path relative to its folder, with `/` between components. The partition is
//! deterministic, covers every input exactly once, and is stable: adding files to an archive
//! places only the new files, and the old ones stay in the shard that already coloured them.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// `--shard`: a fixed `I/N` (0-based index), or `auto` to read the scheduler's variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed { index: u64, count: u64 },
    Auto,
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<ShardSpec, String> {
        if s == "auto" {
            return Ok(ShardSpec::Auto);
        }
        let usage = || format!("'{s}': give I/N (0 <= I < N, e.g. 0/4) or auto");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let (index, count) = (
            i.trim().parse::<u64>().map_err(|_| usage())?,
            n.trim().parse::<u64>().map_err(|_| usage())?,
        );
        if count == 0 || index >= count {
            return Err(format!(
                "'{s}': the index must be below the count (0-based: 0/{n} to {}/{n})",
                count.max(1) - 1
            ));
        }
        Ok(ShardSpec::Fixed { index, count })
    }
}

/// One task's share of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// 0-based.
    pub index: u64,
    pub count: u64,
    /// The scheduler variable the index was read from; `None` when given as `I/N`.
    pub from: Option<&'static str>,
}

/// The variables each scheduler sets for a task of an array job: (index, count), where the
/// count may be missing and then comes from `--shard-count`.
const SCHEDULERS: &[(&str, Option<&str>)] = &[
    ("SLURM_ARRAY_TASK_ID", Some("SLURM_ARRAY_TASK_COUNT")),
    ("JOB_COMPLETION_INDEX", None),
    ("AWS_BATCH_JOB_ARRAY_INDEX", Some("AWS_BATCH_JOB_ARRAY_SIZE")),
    ("BATCH_TASK_INDEX", Some("BATCH_TASK_COUNT")),
];

impl Shard {
    /// Resolves `--shard` (and `--shard-count`) with the environment `env`.
    pub fn resolve(spec: ShardSpec, count: Option<u64>, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard> {
        let (index_var, count_var) = match spec {
            ShardSpec::Fixed { index, count: n } => {
                if let Some(c) = count.filter(|&c| c != n) {
                    bail!("--shard {index}/{n} and --shard-count {c} disagree; give one of them");
                }
                return Ok(Shard {
                    index,
                    count: n,
                    from: None,
                });
            }
            ShardSpec::Auto => SCHEDULERS
                .iter()
                .find(|(i, _)| env(i).is_some())
                .copied()
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--shard auto: no array-job index in the environment (looked for {}); run it as a task of an array job or give --shard I/N",
                        SCHEDULERS.iter().map(|(i, _)| *i).collect::<Vec<_>>().join(", ")
                    )
                })?,
        };
        let number = |var: &str| -> Result<Option<u64>> {
            match env(var) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) => Ok(Some(n)),
                    Err(_) => bail!("--shard auto: {var}={v:?} is not a whole number"),
                },
            }
        };
        let mut index = number(index_var)?.expect("the index variable is set");
        if index_var == "SLURM_ARRAY_TASK_ID" {
            // Slurm numbers tasks as the array was written (--array=1-4, or 0-30:10).
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            if index < min || (index - min) % step != 0 {
                bail!(
                    "--shard auto: task {index} is not on the array's range (min {min}, step {step}); use a range such as --array=0-{}",
                    number("SLURM_ARRAY_TASK_COUNT")?.unwrap_or(1).max(1) - 1
                );
            }
            index = (index - min) / step;
        }
        let from_env = match count_var {
            Some(v) => number(v)?,
            None => None,
        };
        let n = match (from_env, count) {
            (Some(e), Some(c)) if e != c => bail!(
                "--shard auto: --shard-count {c} disagrees with {}={e}",
                count_var.unwrap_or_default()
            ),
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => bail!(
                "--shard auto: {index_var} gives the index but not the number of tasks; add --shard-count N (the job's completions or array size)"
            ),
        };
        if n == 0 || index >= n {
            bail!("--shard auto: index {index} (from {index_var}) is not below the task count {n}");
        }
        Ok(Shard {
            index,
            count: n,
            from: Some(index_var),
        })
    }

    /// Resolves `--shard` against this process's environment.
    pub fn from_env(spec: ShardSpec, count: Option<u64>) -> Result<Shard> {
        Shard::resolve(spec, count, &|v| std::env::var(v).ok())
    }

    /// Whether the input at `rel` (its path relative to its folder) is this shard's.
    pub fn contains(&self, rel: &Path) -> bool {
        shard_of(rel, self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {}/{}", self.index, self.count)?;
        if let Some(v) = self.from {
            write!(f, " (from {v})")?;
        }
        Ok(())
    }
}

/// The shard of `count` that the input at `rel` belongs to.
pub fn shard_of(rel: &Path, count: u64) -> u64 {
    let key = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let digest = Sha256::digest(key.as_bytes());
    let h = u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"));
    h % count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    /// The hash is SHA-256 of the '/'-joined relative path, first 8 bytes big-endian: checked
    /// against the digest of "a/b.png" computed by Python's hashlib
    /// (int(sha256(b"a/b.png").hexdigest()[:16], 16)).
    #[test]
    fn the_shard_is_the_sha256_of_the_relative_path() {
        let want: u64 = 0x88f7_ec79_82e1_b5db;
        for n in [1, 2, 3, 7, 1000] {
            assert_eq!(shard_of(Path::new("a/b.png"), n), want % n);
        }
    }

    /// Every input is in exactly one shard, the shards are roughly even, and adding files
    /// leaves the old ones where they were.
    #[test]
    fn shards_cover_every_input_once_and_are_stable() {
        let files: Vec<PathBuf> = (0..2000)
            .map(|i| PathBuf::from(format!("d{}/img{i}.jpg", i % 7)))
            .collect();
        let n = 4;
        let shards: Vec<Shard> = (0..n)
            .map(|index| Shard {
                index,
                count: n,
                from: None,
            })
            .collect();
        let mut sizes = vec![0; n as usize];
        for f in &files {
            let owners: Vec<u64> = shards.iter().filter(|s| s.contains(f)).map(|s| s.index).collect();
            assert_eq!(owners.len(), 1, "{} is in shards {owners:?}", f.display());
            sizes[owners[0] as usize] += 1;
        }
        // Binomial(2000, 1/4): sd 19; 100 is over 5 sd.
        assert!(sizes.iter().all(|&s| (400..=600).contains(&s)), "{sizes:?}");
        let before: Vec<u64> = files.iter().map(|f| shard_of(f, n)).collect();
        let more: Vec<PathBuf> = (2000..2500).map(|i| PathBuf::from(format!("new/img{i}.jpg"))).collect();
        let all: Vec<&PathBuf> = files.iter().chain(&more).collect();
        for (f, b) in all.iter().zip(&before) {
            assert_eq!(shard_of(f, n), *b, "{} moved", f.display());
        }
    }

    #[test]
    fn fixed_shards_parse_and_check_their_range() {
        assert_eq!("2/4".parse(), Ok(ShardSpec::Fixed { index: 2, count: 4 }));
        assert_eq!("auto".parse(), Ok(ShardSpec::Auto));
        for bad in ["4/4", "1/0", "1", "a/3", "-1/3", ""] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
        let s = Shard::resolve(ShardSpec::Fixed { index: 1, count: 3 }, None, &|_| None).unwrap();
        assert_eq!((s.index, s.count, s.from), (1, 3, None));
        assert!(Shard::resolve(ShardSpec::Fixed { index: 1, count: 3 }, Some(4), &|_| None).is_err());
    }

    /// Each scheduler's variables give the 0-based index and the count.
    #[test]
    fn auto_reads_each_schedulers_variables() {
        let auto = |vars: &[(&str, &str)], count| Shard::resolve(ShardSpec::Auto, count, &env_of(vars));
        let got = |vars: &[(&str, &str)], count| {
            let s = auto(vars, count).unwrap();
            (s.index, s.count, s.from.unwrap())
        };
        // Slurm: --array=1-4 numbers tasks from 1; --array=0-30:10 steps by 10.
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ];
        assert_eq!(got(&slurm, None), (2, 4, "SLURM_ARRAY_TASK_ID"));
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "20"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "10"),
        ];
        assert_eq!(got(&stepped, None), (2, 4, "SLURM_ARRAY_TASK_ID"));
        assert!(
            auto(
                &[
                    ("SLURM_ARRAY_TASK_ID", "5"),
                    ("SLURM_ARRAY_TASK_STEP", "10"),
                    ("SLURM_ARRAY_TASK_COUNT", "4")
                ],
                None
            )
            .is_err()
        );
        // Kubernetes gives no count: --shard-count is needed.
        assert_eq!(
            got(&[("JOB_COMPLETION_INDEX", "7")], Some(10)),
            (7, 10, "JOB_COMPLETION_INDEX")
        );
        let e = auto(&[("JOB_COMPLETION_INDEX", "7")], None).unwrap_err().to_string();
        assert!(e.contains("--shard-count"), "{e}");
        assert!(auto(&[("JOB_COMPLETION_INDEX", "10")], Some(10)).is_err());
        // AWS Batch, with or without the array size.
        let aws = [("AWS_BATCH_JOB_ARRAY_INDEX", "0"), ("AWS_BATCH_JOB_ARRAY_SIZE", "3")];
        assert_eq!(got(&aws, None), (0, 3, "AWS_BATCH_JOB_ARRAY_INDEX"));
        assert_eq!(got(&aws[..1], Some(5)), (0, 5, "AWS_BATCH_JOB_ARRAY_INDEX"));
        assert!(
            auto(&aws, Some(5)).is_err(),
            "a count that disagrees with the scheduler's"
        );
        // Google Cloud Batch.
        assert_eq!(
            got(&[("BATCH_TASK_INDEX", "1"), ("BATCH_TASK_COUNT", "2")], None),
            (1, 2, "BATCH_TASK_INDEX")
        );
        // Nothing set, or not a number.
        let e = auto(&[], Some(4)).unwrap_err().to_string();
        assert!(
            e.contains("SLURM_ARRAY_TASK_ID") && e.contains("BATCH_TASK_INDEX"),
            "{e}"
        );
        assert!(auto(&[("BATCH_TASK_INDEX", "x"), ("BATCH_TASK_COUNT", "2")], None).is_err());
    }
}
