//! Batches of files: which inputs a run colours (folders, globs, a shard of an array job),
//! where each output goes, and the run itself, with decoding, colouring and encoding
//! overlapped so that both cores stay busy. Outputs are written atomically, so a file present
//! is a file complete: `--skip-existing` makes a retried task finish only what is left.

pub mod inputs;
pub mod shard;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use image::DynamicImage;
use serde::Serialize;

pub use inputs::{Input, Kind, expand_inputs, output_path, resolved};
pub use shard::{Shard, ShardSpec};

/// The reason given for inputs left undone by Ctrl-C or SIGTERM.
pub const INTERRUPTED: &str = "interrupted before it was coloured";

/// Options of a colourise batch.
#[derive(Clone, Debug, Default)]
pub struct BatchOptions {
    pub out_dir: PathBuf,
    /// Output extension overriding the input's.
    pub format: Option<String>,
    /// A single explicit output file (only with one input).
    pub out_file: Option<PathBuf>,
    /// Leave inputs whose output already exists alone.
    pub skip_existing: bool,
    /// Set by Ctrl-C / SIGTERM: the image in hand is finished, the rest are left undone.
    pub stop: Option<Arc<AtomicBool>>,
}

impl BatchOptions {
    fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// What became of one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Coloured into this output.
    Done(PathBuf),
    /// Its output already existed (`--skip-existing`).
    Skipped(PathBuf),
    /// One line naming the file and the problem.
    Failed(String),
}

/// Outcome of one file.
#[derive(Clone, Debug)]
pub struct FileResult {
    pub input: PathBuf,
    pub outcome: Outcome,
}

impl FileResult {
    fn failed(input: &Path, e: impl std::fmt::Display) -> FileResult {
        FileResult {
            input: input.to_path_buf(),
            outcome: Outcome::Failed(e.to_string()),
        }
    }
}

/// Keeps the inputs of `shard` (all of them without one).
pub fn select(inputs: Vec<Input>, shard: Option<&Shard>) -> Vec<Input> {
    match shard {
        Some(s) => inputs.into_iter().filter(|i| s.contains(&i.rel)).collect(),
        None => inputs,
    }
}

/// Decides, in input order and before any work, what becomes of each input whose output is
/// `outputs[i]`: `Ok(output)` to do, or the outcome already known. An output that would
/// replace an input or another input's output is refused, naming both; `check` refuses
/// outputs for reasons of its own (an unknown format); with `skip_existing` an output already
/// there is skipped. Claimed outputs stay claimed, so the first input keeps its name.
pub fn plan_outputs(
    inputs: &[Input],
    outputs: Vec<PathBuf>,
    skip_existing: bool,
    check: &dyn Fn(&Path) -> Result<()>,
) -> Vec<Result<PathBuf, FileResult>> {
    let sources: std::collections::HashSet<PathBuf> = inputs.iter().map(|i| resolved(&i.path)).collect();
    let mut claimed: std::collections::HashMap<PathBuf, PathBuf> = std::collections::HashMap::new();
    inputs
        .iter()
        .zip(outputs)
        .map(|(input, out)| {
            let target = inputs::resolved_target(&out);
            let checked = (|| -> Result<()> {
                if sources.contains(&target) {
                    bail!(
                        "{}: its output {} would overwrite an input; choose another -o",
                        input.path.display(),
                        out.display()
                    );
                }
                if let Some(first) = claimed.get(&target) {
                    bail!(
                        "{}: its output {} is also the output of {}; colour one of them into another folder",
                        input.path.display(),
                        out.display(),
                        first.display()
                    );
                }
                check(&out)
            })();
            if let Err(e) = checked {
                return Err(FileResult::failed(&input.path, format!("{e:#}")));
            }
            claimed.insert(target, input.path.clone());
            if skip_existing && out.is_file() {
                return Err(FileResult {
                    input: input.path.clone(),
                    outcome: Outcome::Skipped(out),
                });
            }
            Ok(out)
        })
        .collect()
}

/// Runs `work(input, output)` on each input in turn, one whole file at a time (videos), with
/// the outputs planned first as [`plan_outputs`] does and their folders made. A failure fails
/// that input alone; after `stop` is set the rest are reported as [`INTERRUPTED`], as is the
/// input in hand when its work fails because of the stop. `on_done` sees each outcome as it
/// happens; the outcomes are returned in input order.
pub fn run_each(
    inputs: &[Input],
    outputs: Vec<PathBuf>,
    skip_existing: bool,
    stop: &AtomicBool,
    work: &mut dyn FnMut(&Input, &Path) -> Result<()>,
    on_done: &dyn Fn(&FileResult),
) -> Vec<FileResult> {
    let planned = plan_outputs(inputs, outputs, skip_existing, &|_| Ok(()));
    let mut results = Vec::with_capacity(inputs.len());
    for (input, plan) in inputs.iter().zip(planned) {
        let stopped = || stop.load(Ordering::SeqCst);
        let interrupted = || Outcome::Failed(format!("{}: {INTERRUPTED}", input.path.display()));
        let outcome = match plan {
            Err(known) => known.outcome,
            Ok(_) if stopped() => interrupted(),
            Ok(out) => match out.parent().map(std::fs::create_dir_all).transpose() {
                Err(e) => Outcome::Failed(format!(
                    "{}: cannot create its output folder: {e}",
                    input.path.display()
                )),
                Ok(_) => match work(input, &out) {
                    Ok(()) => Outcome::Done(out),
                    Err(_) if stopped() => interrupted(),
                    Err(e) => Outcome::Failed(format!("{}: {e:#}", input.path.display())),
                },
            },
        };
        let r = FileResult {
            input: input.path.clone(),
            outcome,
        };
        on_done(&r);
        results.push(r);
    }
    results
}

/// Colourises every input with `f`, continuing past failures, and returns each input's
/// outcome in input order. `on_done` sees each outcome as it happens.
///
/// Outputs are planned first ([`plan_outputs`]). One thread decodes ahead and
/// one encodes behind while this thread colours, each with a queue of two images, so memory
/// stays bounded. After a stop, the image being coloured and those being written are
/// finished; the rest are reported as [`INTERRUPTED`].
pub fn run_batch(
    inputs: &[Input],
    opts: &BatchOptions,
    f: &dyn Fn(&DynamicImage) -> Result<DynamicImage>,
    on_done: &dyn Fn(&FileResult),
) -> Vec<FileResult> {
    let mut results: Vec<Option<FileResult>> = vec![None; inputs.len()];
    let mut record = |i: usize, r: FileResult| {
        on_done(&r);
        results[i] = Some(r);
    };
    let outputs: Vec<PathBuf> = inputs
        .iter()
        .map(|input| {
            opts.out_file
                .clone()
                .unwrap_or_else(|| output_path(&input.path, Some(&input.rel), &opts.out_dir, opts.format.as_deref()))
        })
        .collect();
    let mut jobs = Vec::new();
    let planned = plan_outputs(inputs, outputs, opts.skip_existing, &|out| {
        crate::imageio::format_for(out).map(|_| ())
    });
    for (i, p) in planned.into_iter().enumerate() {
        match p {
            Ok(out) => jobs.push((i, out)),
            Err(r) => record(i, r),
        }
    }
    std::thread::scope(|s| {
        let (decoded_tx, decoded) = sync_channel(2);
        let (encode_tx, to_encode) = sync_channel::<(usize, PathBuf, DynamicImage)>(2);
        let (written_tx, written) = channel();
        s.spawn(move || {
            for (i, out) in jobs {
                let img = if opts.stopped() {
                    Err(anyhow!("{}: {INTERRUPTED}", inputs[i].path.display()))
                } else {
                    crate::imageio::open(&inputs[i].path)
                };
                if decoded_tx.send((i, out, img)).is_err() {
                    break;
                }
            }
        });
        let written_by_encoder = written_tx.clone();
        s.spawn(move || {
            for (i, out, img) in to_encode {
                let outcome = match crate::imageio::save(&img, &out) {
                    Ok(()) => Outcome::Done(out),
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                };
                let r = FileResult {
                    input: inputs[i].path.clone(),
                    outcome,
                };
                let _ = written_by_encoder.send((i, r));
            }
        });
        for (i, out, img) in decoded {
            let path = &inputs[i].path;
            let coloured = img.and_then(|img| {
                if opts.stopped() {
                    bail!("{}: {INTERRUPTED}", path.display());
                }
                f(&img).map_err(|e| anyhow!("{}: {e:#}", path.display()))
            });
            match coloured {
                Ok(c) => {
                    let _ = encode_tx.send((i, out, c));
                }
                Err(e) => {
                    let _ = written_tx.send((i, FileResult::failed(path, format!("{e:#}"))));
                }
            }
            while let Ok((i, r)) = written.try_recv() {
                record(i, r);
            }
        }
        drop(encode_tx);
        drop(written_tx);
        for (i, r) in written {
            record(i, r);
        }
    });
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| FileResult::failed(&inputs[i].path, INTERRUPTED)))
        .collect()
}

/// One coloured file in a [`Report`].
#[derive(Clone, Debug, Serialize)]
pub struct Written {
    pub input: PathBuf,
    pub output: PathBuf,
}

/// One skipped file in a [`Report`].
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub input: PathBuf,
    pub output: PathBuf,
    pub reason: &'static str,
}

/// One failed input in a [`Report`].
#[derive(Clone, Debug, Serialize)]
pub struct Failed {
    pub input: PathBuf,
    pub error: String,
}

/// `--report FILE`: what one run (one shard) did, as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `colorize` or `video`.
    pub command: &'static str,
    pub shard: Option<Shard>,
    /// Inputs found before sharding.
    pub inputs_total: usize,
    /// Inputs of this shard.
    pub inputs: usize,
    pub done: Vec<Written>,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failed>,
    /// Stopped by Ctrl-C or SIGTERM before the end.
    pub interrupted: bool,
    pub seconds: f64,
    /// Files coloured per second of this run.
    pub files_per_second: f64,
}

impl Report {
    /// The report of a run that started at `started`. `missing` are arguments that matched
    /// nothing (reported as failures of every shard).
    pub fn new(
        command: &'static str,
        shard: Option<Shard>,
        inputs_total: usize,
        results: &[FileResult],
        missing: &[String],
        interrupted: bool,
        started: Instant,
    ) -> Report {
        let mut r = Report {
            command,
            shard,
            inputs_total,
            inputs: results.len(),
            done: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
            interrupted,
            seconds: started.elapsed().as_secs_f64(),
            files_per_second: 0.0,
        };
        for f in results {
            match &f.outcome {
                Outcome::Done(o) => r.done.push(Written {
                    input: f.input.clone(),
                    output: o.clone(),
                }),
                Outcome::Skipped(o) => r.skipped.push(Skipped {
                    input: f.input.clone(),
                    output: o.clone(),
                    reason: "output exists",
                }),
                Outcome::Failed(e) => r.failed.push(Failed {
                    input: f.input.clone(),
                    error: e.clone(),
                }),
            }
        }
        r.failed.extend(missing.iter().map(|m| Failed {
            input: PathBuf::from(m.split(": ").next().unwrap_or(m)),
            error: m.clone(),
        }));
        r.files_per_second = r.done.len() as f64 / r.seconds.max(1e-9);
        r
    }

    /// Writes the report atomically as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        crate::imageio::write_bytes_atomic(path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs_in(dir: &Path, n: usize) -> Vec<Input> {
        (0..n)
            .map(|i| {
                let rel = PathBuf::from(format!("img{i}.png"));
                let path = dir.join(&rel);
                image::RgbImage::from_pixel(4 + i as u32, 3, image::Rgb([i as u8 * 20, 50, 90]))
                    .save(&path)
                    .unwrap();
                Input { path, rel }
            })
            .collect()
    }

    /// Results come back in input order, whatever order the stages finish in; a failing
    /// input fails alone; a second run with skip-existing skips what the first wrote.
    #[test]
    fn a_batch_keeps_input_order_and_skips_what_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let mut inputs = inputs_in(tmp.path(), 6);
        std::fs::write(tmp.path().join("bad.png"), b"not a png").unwrap();
        inputs.insert(
            2,
            Input {
                path: tmp.path().join("bad.png"),
                rel: "bad.png".into(),
            },
        );
        let out = tmp.path().join("out");
        let mut opts = BatchOptions {
            out_dir: out.clone(),
            ..BatchOptions::default()
        };
        let invert = |img: &DynamicImage| Ok(DynamicImage::ImageLuma8(img.to_luma8()));
        let seen = std::sync::Mutex::new(0);
        let results = run_batch(&inputs, &opts, &invert, &|_| *seen.lock().unwrap() += 1);
        assert_eq!(*seen.lock().unwrap(), 7);
        for (r, i) in results.iter().zip(&inputs) {
            assert_eq!(r.input, i.path);
        }
        assert!(matches!(&results[2].outcome, Outcome::Failed(e) if e.contains("bad.png")));
        for (k, r) in results.iter().enumerate().filter(|(k, _)| *k != 2) {
            let Outcome::Done(o) = &r.outcome else {
                panic!("{k}: {:?}", r.outcome)
            };
            assert_eq!(
                image::open(o).unwrap().width(),
                image::open(&inputs[k].path).unwrap().width()
            );
        }
        opts.skip_existing = true;
        std::fs::remove_file(out.join("img4.png")).unwrap();
        let again = run_batch(&inputs, &opts, &invert, &|_| {});
        let kinds: Vec<char> = again
            .iter()
            .map(|r| match r.outcome {
                Outcome::Done(_) => 'd',
                Outcome::Skipped(_) => 's',
                Outcome::Failed(_) => 'f',
            })
            .collect();
        assert_eq!(kinds, ['s', 's', 'f', 's', 's', 'd', 's']);
        let report = Report::new(
            "colorize",
            None,
            7,
            &again,
            &["x*.png: no file matches".into()],
            false,
            Instant::now(),
        );
        assert_eq!(
            (
                report.inputs,
                report.done.len(),
                report.skipped.len(),
                report.failed.len()
            ),
            (7, 1, 5, 2)
        );
        assert_eq!(report.failed[1].input, PathBuf::from("x*.png"));
    }

    /// A stop before the run leaves every input undone and reported as interrupted; nothing
    /// is written.
    #[test]
    fn a_stopped_batch_reports_the_rest_as_interrupted() {
        let tmp = tempfile::tempdir().unwrap();
        let inputs = inputs_in(tmp.path(), 3);
        let opts = BatchOptions {
            out_dir: tmp.path().join("out"),
            stop: Some(Arc::new(AtomicBool::new(true))),
            ..BatchOptions::default()
        };
        let results = run_batch(&inputs, &opts, &|i| Ok(i.clone()), &|_| {});
        assert!(
            results
                .iter()
                .all(|r| matches!(&r.outcome, Outcome::Failed(e) if e.ends_with(INTERRUPTED)))
        );
        assert!(!tmp.path().join("out").exists());
    }
}
