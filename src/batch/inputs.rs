//! What a batch colours: files, folders and glob patterns expanded into inputs, each with
//! the path its output keeps below the output folder.

use std::path::{Path, PathBuf};

/// The kind of file a folder scan collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Images,
    Videos,
}

/// Extensions of the video files a folder scan collects (any format ffmpeg reads can still be
/// named directly).
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "mts", "wmv", "flv", "ogv", "3gp",
];

/// Whether `path` has a video extension.
pub fn is_video_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

impl Kind {
    fn scan(self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        match self {
            Kind::Images => crate::data::find_images(dir),
            Kind::Videos => crate::data::find_files(dir, is_video_path),
        }
    }

    /// `images` or `videos`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Images => "images",
            Kind::Videos => "videos",
        }
    }
}

/// Where the output for `input` goes.
pub fn output_path(input: &Path, rel: Option<&Path>, out_dir: &Path, format: Option<&str>) -> PathBuf {
    let rel = rel
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(input.file_name().unwrap_or_default()));
    let mut p = out_dir.join(rel);
    if let Some(ext) = format {
        p.set_extension(ext);
    }
    p
}

/// One input of a colourise batch: the file and its path relative to the output folder.
#[derive(Clone, Debug)]
pub struct Input {
    pub path: PathBuf,
    pub rel: PathBuf,
}

/// `p` made absolute with symbolic links resolved, as far as it exists (a file that does not
/// exist yet keeps its name under its resolved folder; an empty path is the current folder),
/// so two spellings of one file compare equal.
pub fn resolved(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() { Path::new(".") } else { p };
    p.canonicalize().unwrap_or_else(|_| resolved_target(p))
}

/// Where writing to `p` lands: its folder resolved, its own name kept (writing replaces a
/// link at `p`, it does not write through it).
pub(crate) fn resolved_target(p: &Path) -> PathBuf {
    match (p.parent(), p.file_name()) {
        (Some(dir), Some(name)) => resolved(dir).join(name),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    }
}

/// The folder a glob pattern's matches are named relative to: its leading components
/// without wildcards (`photos/*/a.jpg` -> `photos`).
fn glob_base(pattern: &str) -> PathBuf {
    Path::new(pattern)
        .components()
        .skip_while(|c| matches!(c, std::path::Component::CurDir))
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect()
}

/// Expands files, folders (recursively, collecting files of `kind`) and glob patterns into
/// inputs, each file once.
/// When `skip` (the output folder) lies strictly inside a scanned folder (or a pattern's fixed
/// part), the images under it are left out, so that colouring `.` twice does not colour the
/// first run's output. Returns the inputs and the arguments that matched nothing.
pub fn expand_inputs(args: &[String], skip: Option<&Path>, kind: Kind) -> (Vec<Input>, Vec<String>) {
    let skip = skip.map(resolved);
    // The output folder to leave out of a scan of `base`, if it lies inside it.
    let inner = |base: &Path| {
        let base = resolved(base);
        skip.clone().filter(|s| s != &base && s.starts_with(&base))
    };
    let outside = |f: &Path, inner: &Option<PathBuf>| inner.as_ref().is_none_or(|s| !resolved(f).starts_with(s));
    let relative = |f: &Path, base: &Path| {
        f.strip_prefix(base)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| f.to_path_buf())
    };
    let mut inputs = Vec::new();
    let mut missing = Vec::new();
    for arg in args {
        let p = PathBuf::from(arg);
        if p.is_dir() {
            match kind.scan(&p) {
                Ok(files) if !files.is_empty() => {
                    let inner = inner(&p);
                    inputs.extend(files.into_iter().filter(|f| outside(f, &inner)).map(|f| Input {
                        rel: relative(&f, &p),
                        path: f,
                    }))
                }
                Ok(_) => missing.push(format!("{arg}: no {} in folder", kind.plural())),
                Err(e) => missing.push(format!("{e:#}")),
            }
        } else if p.exists() {
            inputs.push(Input {
                rel: PathBuf::from(p.file_name().unwrap_or_default()),
                path: p,
            });
        } else if arg.contains(['*', '?', '[']) {
            let matches: Vec<PathBuf> = glob::glob(arg)
                .map(|g| g.flatten().filter(|f| f.is_file()).collect())
                .unwrap_or_default();
            if matches.is_empty() {
                missing.push(format!("{arg}: no file matches"));
            }
            let base = glob_base(arg);
            let inner = inner(&base);
            inputs.extend(matches.into_iter().filter(|f| outside(f, &inner)).map(|f| Input {
                rel: relative(&f, &base),
                path: f,
            }));
        } else {
            missing.push(format!("{arg}: no such file or folder"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    inputs.retain(|i| seen.insert(resolved(&i.path)));
    (inputs, missing)
}
