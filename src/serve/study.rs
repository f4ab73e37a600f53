//! `tinct study`: the seed's human real-vs-fake test as a web page.
//!
//! The first folder holds real colour photos; every further folder holds the colourised
//! versions made by one method (the folder's name names the method). Images are matched
//! across folders by their path relative to the folder, without the extension
//! (`real/a/cat.jpg` and `gan/a/cat.png` are the same photo).
//!
//! * `sets` (the seed's test): `N` images (`--set-size`, 10) of different photos, one real
//!   and `N - 1` colourised by one method; the participant clicks the one they believe is
//!   real.
//! * `2afc`: the real and one colourised version of the same photo side by side in random
//!   order; the participant clicks the real one.
//!
//! Every image is decoded, scaled to fit `--display-size` and re-encoded as PNG by the
//! server, so file format, size and metadata give nothing away; image URLs name only the
//! trial and a position. Each answer is appended to the results CSV at once (one complete
//! line, flushed and fsynced). `tinct study --summary --results FILE` prints the fooling
//! rate of each method with its 95 % Wilson interval (see [`super::stats`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::{Args, ValueEnum};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::pool::{Pool, PoolError};
use super::stats::csv_field;

/// Columns of the results CSV.
pub const CSV_HEADER: &str =
    "timestamp,participant,mode,set_size,methods,real_image,shown,chosen_index,chosen,correct,response_ms";

/// Trials kept waiting for an answer; the oldest are forgotten past this.
const MAX_PENDING: usize = 10_000;

/// The kind of test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyMode {
    /// One real photo among N - 1 colourised ones; pick the real one.
    Sets,
    /// A real and a colourised version of the same photo; pick the real one.
    #[value(name = "2afc")]
    #[serde(rename = "2afc")]
    TwoAfc,
}

impl StudyMode {
    pub fn name(self) -> &'static str {
        match self {
            StudyMode::Sets => "sets",
            StudyMode::TwoAfc => "2afc",
        }
    }
}

/// Options of `tinct study`.
#[derive(Args, Debug, Clone)]
pub struct StudyArgs {
    /// The folder of real colour photos, then one folder of colourised images per method.
    pub dirs: Vec<PathBuf>,
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Results CSV, appended to (one line per answer).
    #[arg(long, default_value = "study-results.csv")]
    pub results: PathBuf,
    /// Images per set in sets mode (one real).
    #[arg(long, default_value_t = 10)]
    pub set_size: usize,
    #[arg(long, value_enum, default_value_t = StudyMode::Sets)]
    pub mode: StudyMode,
    /// Print the fooling rate per method from --results and exit.
    #[arg(long)]
    pub summary: bool,
    /// Longest side of the images shown, pixels.
    #[arg(long, default_value_t = 512)]
    pub display_size: u32,
    /// Seed of the trial sampling (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Runs `tinct study` (the server, or the summary with `--summary`).
pub fn run(a: &StudyArgs) -> Result<()> {
    if a.summary {
        if !a.dirs.is_empty() {
            bail!("--summary reads --results only; give no folders");
        }
        print!("{}", super::stats::summary_of_file(&a.results)?);
        return Ok(());
    }
    let study = Arc::new(Study::open(a)?);
    eprintln!(
        "study: mode {}, {} real photos, methods: {}; results -> {}",
        study.mode.name(),
        study.real.len(),
        study
            .methods
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        a.results.display()
    );
    super::serve_blocking(router(study), a.addr, "tinct study", || ())
}

/// One image folder: key (relative path without extension) -> file.
type Catalogue = BTreeMap<String, PathBuf>;

/// A colourisation method's folder.
pub struct MethodDir {
    pub name: String,
    pub images: Catalogue,
}

/// One image shown in a trial.
#[derive(Clone, Debug)]
struct Shown {
    /// `None` for the real photo, else the method.
    method: Option<String>,
    key: String,
    path: PathBuf,
}

impl Shown {
    fn label(&self) -> String {
        format!("{}:{}", self.method.as_deref().unwrap_or("real"), self.key)
    }
}

#[derive(Clone, Debug)]
struct Trial {
    participant: String,
    method: String,
    real_key: String,
    images: Vec<Shown>,
}

#[derive(Default)]
struct Pending {
    trials: HashMap<String, Trial>,
    order: VecDeque<String>,
}

/// A running study.
pub struct Study {
    pub mode: StudyMode,
    pub set_size: usize,
    real: Catalogue,
    methods: Vec<MethodDir>,
    results: Mutex<File>,
    pending: Mutex<Pending>,
    rng: Mutex<StdRng>,
    display_size: u32,
    pool: Pool,
    answers: AtomicU64,
}

fn catalogue(dir: &Path) -> Result<Catalogue> {
    let files = crate::data::find_images(dir)?;
    let mut out = Catalogue::new();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f).with_extension("");
        let key = rel.to_string_lossy().replace('\\', "/");
        if let Some(prev) = out.get(&key) {
            eprintln!(
                "warning: {} and {} have the same name; using the first",
                prev.display(),
                f.display()
            );
            continue;
        }
        out.insert(key, f);
    }
    Ok(out)
}

impl Study {
    /// Indexes the folders and opens the results file.
    pub fn open(a: &StudyArgs) -> Result<Study> {
        let [real_dir, fake_dirs @ ..] = a.dirs.as_slice() else {
            bail!("give the folder of real photos and at least one folder of colourised images");
        };
        if fake_dirs.is_empty() {
            bail!("give at least one folder of colourised images after the folder of real photos");
        }
        if a.mode == StudyMode::Sets && a.set_size < 2 {
            bail!("--set-size must be at least 2");
        }
        if !(16..=4096).contains(&a.display_size) {
            bail!("--display-size must be within 16..=4096");
        }
        let real = catalogue(real_dir)?;
        if real.is_empty() {
            bail!("{}: no images", real_dir.display());
        }
        let mut methods = Vec::new();
        for d in fake_dirs {
            let name = d
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| d.display().to_string());
            if methods.iter().any(|m: &MethodDir| m.name == name) {
                bail!("two method folders are named '{name}'; method names come from folder names");
            }
            let images = catalogue(d)?;
            let dir = MethodDir { name, images };
            match usable(a.mode, a.set_size, &real, &dir) {
                Ok(()) => methods.push(dir),
                Err(why) => eprintln!("warning: method '{}' ({}) left out: {why}", dir.name, d.display()),
            }
        }
        if methods.is_empty() {
            bail!(
                "no method folder can make a {} trial (see the warnings above)",
                a.mode.name()
            );
        }
        let results = open_results(&a.results)?;
        Ok(Study {
            mode: a.mode,
            set_size: if a.mode == StudyMode::TwoAfc { 2 } else { a.set_size },
            real,
            methods,
            results: Mutex::new(results),
            pending: Mutex::new(Pending::default()),
            rng: Mutex::new(match a.seed {
                Some(s) => StdRng::seed_from_u64(s),
                None => StdRng::from_os_rng(),
            }),
            display_size: a.display_size,
            pool: Pool::new(2, 64),
            answers: AtomicU64::new(0),
        })
    }

    /// The method names in the study.
    pub fn method_names(&self) -> Vec<String> {
        self.methods.iter().map(|m| m.name.clone()).collect()
    }

    /// Draws a new trial: one method at random, then its images.
    fn new_trial(&self, participant: &str) -> (String, Trial) {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let m = &self.methods[rng.random_range(0..self.methods.len())];
        let real_shown = |key: &str| Shown {
            method: None,
            key: key.to_string(),
            path: self.real.get(key).cloned().unwrap_or_default(),
        };
        let fake_shown = |key: &str| Shown {
            method: Some(m.name.clone()),
            key: key.to_string(),
            path: m.images.get(key).cloned().unwrap_or_default(),
        };
        let (real_key, mut images) = match self.mode {
            StudyMode::TwoAfc => {
                let common: Vec<&String> = self.real.keys().filter(|k| m.images.contains_key(*k)).collect();
                // `usable` guaranteed at least one.
                let key = common.choose(&mut *rng).map(|k| k.to_string()).unwrap_or_default();
                (key.clone(), vec![real_shown(&key), fake_shown(&key)])
            }
            StudyMode::Sets => {
                let reals: Vec<&String> = self
                    .real
                    .keys()
                    .filter(|r| fakes_besides(m, r) + 1 >= self.set_size)
                    .collect();
                let key = reals.choose(&mut *rng).map(|k| k.to_string()).unwrap_or_default();
                let others: Vec<&String> = m.images.keys().filter(|k| **k != key).collect();
                let mut images = vec![real_shown(&key)];
                images.extend(
                    others
                        .choose_multiple(&mut *rng, self.set_size - 1)
                        .map(|k| fake_shown(k)),
                );
                (key, images)
            }
        };
        images.shuffle(&mut *rng);
        let id = format!("{:032x}", rng.random::<u128>());
        (
            id,
            Trial {
                participant: participant.to_string(),
                method: m.name.clone(),
                real_key,
                images,
            },
        )
    }

    fn remember(&self, id: String, trial: Trial) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        while p.order.len() >= MAX_PENDING {
            if let Some(old) = p.order.pop_front() {
                p.trials.remove(&old);
            }
        }
        p.order.push_back(id.clone());
        p.trials.insert(id, trial);
    }

    fn image_path(&self, id: &str, index: usize) -> Option<PathBuf> {
        let p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.trials
            .get(id)
            .and_then(|t| t.images.get(index))
            .map(|s| s.path.clone())
    }

    /// Takes the trial out of the pending set when `choice` is valid for it.
    fn take(&self, id: &str, choice: usize) -> Result<Trial, ApiError> {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = p.trials.get(id) else {
            return Err(ApiError::not_found("unknown or already answered trial"));
        };
        if choice >= t.images.len() {
            return Err(ApiError::bad_request(format!(
                "choice {choice} is out of range (0..{})",
                t.images.len()
            )));
        }
        p.order.retain(|o| o != id);
        p.trials
            .remove(id)
            .ok_or_else(|| ApiError::not_found("unknown or already answered trial"))
    }

    /// The CSV line of an answer.
    fn csv_line(&self, t: &Trial, choice: usize, response_ms: Option<u64>) -> (String, bool) {
        let chosen = &t.images[choice];
        let correct = chosen.method.is_none();
        let shown: Vec<String> = t.images.iter().map(Shown::label).collect();
        let fields = [
            rfc3339_utc(SystemTime::now()),
            t.participant.clone(),
            self.mode.name().to_string(),
            t.images.len().to_string(),
            t.method.clone(),
            t.real_key.clone(),
            shown.join(";"),
            choice.to_string(),
            chosen.method.clone().unwrap_or_else(|| "real".into()),
            u8::from(correct).to_string(),
            response_ms.map(|v| v.to_string()).unwrap_or_default(),
        ];
        let line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",") + "\n";
        (line, correct)
    }

    /// Appends one complete line to the results file, flushed and fsynced.
    fn append(&self, line: &str) -> std::io::Result<()> {
        let mut f = self.results.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(line.as_bytes())?;
        f.flush()?;
        f.sync_data()
    }
}

/// How many of the method's images are of photos other than `real_key`.
fn fakes_besides(m: &MethodDir, real_key: &str) -> usize {
    m.images.len() - usize::from(m.images.contains_key(real_key))
}

/// Whether a method folder can make trials, or why not.
fn usable(mode: StudyMode, set_size: usize, real: &Catalogue, m: &MethodDir) -> Result<(), String> {
    match mode {
        StudyMode::TwoAfc if !real.keys().any(|k| m.images.contains_key(k)) => {
            Err("no image has the same name as a real photo".into())
        }
        StudyMode::Sets if !real.keys().any(|r| fakes_besides(m, r) + 1 >= set_size) => Err(format!(
            "a set of {set_size} needs {} colourised images of photos other than the real one; it has {}",
            set_size - 1,
            m.images.len()
        )),
        _ => Ok(()),
    }
}

/// Opens the results file for appending, writing the header into a new or empty file and
/// checking it in an existing one.
fn open_results(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .with_context(|| format!("{}: cannot open for appending", path.display()))?;
    let mut head = String::new();
    (&f).take(CSV_HEADER.len() as u64 + 1).read_to_string(&mut head).ok();
    if head.is_empty() {
        f.write_all(format!("{CSV_HEADER}\n").as_bytes())?;
        f.sync_data()?;
    } else if head.trim_end() != CSV_HEADER {
        bail!(
            "{}: exists and is not a tinct study results file (its first line differs)",
            path.display()
        );
    }
    Ok(f)
}

/// `2024-05-01T12:34:56.789Z` for a time.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The study page and its API.
pub fn router(study: Arc<Study>) -> Router {
    Router::new()
        .route("/", get(|| async { super::html(STUDY_HTML) }))
        .route(
            "/assets/study.js",
            get(|| async { super::asset("text/javascript; charset=utf-8", STUDY_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { super::asset("text/css; charset=utf-8", super::STYLE_CSS) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/study/info", get(info))
        .route("/api/study/trial", get(trial))
        .route("/api/study/image/{trial}/{index}", get(image))
        .route("/api/study/answer", post(answer))
        .fallback(super::error::not_found)
        .method_not_allowed_fallback(super::error::method_not_allowed)
        .with_state(study)
}

const STUDY_HTML: &str = include_str!("assets/study.html");
const STUDY_JS: &str = include_str!("assets/study.js");

async fn info(State(s): State<Arc<Study>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "mode": s.mode,
        "set_size": s.set_size,
        "methods": s.method_names(),
        "answers": s.answers.load(Ordering::Relaxed),
    }))
}

#[derive(Deserialize)]
struct TrialQuery {
    participant: Option<String>,
}

/// A participant id: 1 to 64 letters, digits, `-`, `_`, `.` or `@` ("anonymous" if absent).
fn participant_id(p: Option<&str>) -> Result<String, ApiError> {
    let p = p.map(str::trim).filter(|p| !p.is_empty()).unwrap_or("anonymous");
    if p.len() > 64 || !p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
        return Err(ApiError::bad_request(
            "participant: 1 to 64 letters, digits, '-', '_', '.' or '@'",
        ));
    }
    Ok(p.to_string())
}

/// `GET /api/study/trial?participant=ID`: a new trial.
async fn trial(
    State(s): State<Arc<Study>>,
    q: Result<Query<TrialQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let participant = participant_id(q.participant.as_deref())?;
    let (id, t) = s.new_trial(&participant);
    let images: Vec<String> = (0..t.images.len())
        .map(|i| format!("/api/study/image/{id}/{i}"))
        .collect();
    s.remember(id.clone(), t);
    Ok(Json(
        serde_json::json!({ "trial": id, "mode": s.mode, "set_size": images.len(), "images": images }),
    ))
}

/// `GET /api/study/image/{trial}/{index}`: a trial's image, scaled and re-encoded as PNG.
async fn image(
    State(s): State<Arc<Study>>,
    UrlPath((id, index)): UrlPath<(String, usize)>,
) -> Result<Response, ApiError> {
    let path = s
        .image_path(&id, index)
        .ok_or_else(|| ApiError::not_found("unknown trial or image"))?;
    let max = s.display_size;
    let bytes = s
        .pool
        .run(move || -> Result<Vec<u8>, ApiError> {
            let img = crate::imageio::open(&path).map_err(|e| ApiError::internal(format!("{e:#}")))?;
            let img = if img.width() > max || img.height() > max {
                img.resize(max, max, image::imageops::FilterType::Lanczos3)
            } else {
                img
            };
            let img = image::DynamicImage::ImageRgb8(img.to_rgb8());
            super::colorize::encode(&img, super::colorize::OutFormat::Png)
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await
        .map_err(|e| match e {
            PoolError::Busy { retry_after_s } => ApiError::unavailable("server busy", retry_after_s),
            PoolError::Panicked(m) => ApiError::internal(m),
        })??;
    let mut res = bytes.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The body of `POST /api/study/answer`.
#[derive(Deserialize)]
pub struct Answer {
    pub trial: String,
    /// Index of the image picked as real.
    pub choice: usize,
    /// Milliseconds from showing the trial to the click.
    pub response_ms: Option<u64>,
}

/// `POST /api/study/answer`: records an answer in the CSV.
async fn answer(
    State(s): State<Arc<Study>>,
    body: Result<Json<Answer>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(a) = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let t = s.take(&a.trial, a.choice)?;
    let (line, correct) = s.csv_line(&t, a.choice, a.response_ms);
    let writer = s.clone();
    tokio::task::spawn_blocking(move || writer.append(&line))
        .await
        .map_err(|e| ApiError::internal(format!("writing the answer failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("cannot append to the results file: {e}")))?;
    let answers = s.answers.fetch_add(1, Ordering::Relaxed) + 1;
    Ok(Json(
        serde_json::json!({ "recorded": true, "correct": correct, "answers": answers }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_millis(951_827_696_123); // leap day 2000
        assert_eq!(rfc3339_utc(t), "2000-02-29T12:34:56.123Z");
    }
}
