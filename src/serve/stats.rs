//! Statistics of the real-vs-fake study: the Wilson score interval and the per-method
//! summary of a results CSV.
//!
//! # Fooling rate
//! A trial *fools* the participant when they pick a colourised image as the real one.
//!
//! * `2afc`: one real and one fake version of the same photo. The fooling rate is the
//!   fraction of trials in which the fake was picked; 50 % means the fakes cannot be told
//!   from the real photos, 0 % that they always can.
//! * `sets`: one real photo among `N - 1` fakes, all from one method (one method per set, so
//!   each trial measures one method). The fooling rate is the fraction of sets in which a
//!   fake was picked; with indistinguishable fakes it is `(N - 1) / N` (90 % for sets of
//!   10), which the summary prints as the chance level.
//!
//! Trials are independent Bernoulli trials in both modes, so the 95 % interval is the
//! Wilson score interval of the binomial proportion.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval `(low, high)` for `successes` out of `trials` at the normal
/// quantile `z`; `(0, 1)` when there are no trials.
pub fn wilson_interval(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// One row of the summary.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodSummary {
    pub mode: String,
    pub set_size: usize,
    pub method: String,
    pub trials: u64,
    /// Trials in which a fake was picked as real.
    pub fooled: u64,
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The fooling rate of fakes indistinguishable from real photos: `(N - 1) / N`.
    pub chance: f64,
}

/// Splits one CSV line into fields (RFC 4180 quoting).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Quotes a CSV field when it needs it.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Summarises results CSV text (the format [`super::study`] writes), one row per mode, set
/// size and method, in that order.
pub fn summarize(csv: &str) -> Result<Vec<MethodSummary>> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols = split_csv_line(header);
    let col = |name: &str| {
        cols.iter()
            .position(|c| c == name)
            .with_context(|| format!("results CSV has no column '{name}'"))
    };
    let (i_mode, i_size, i_methods, i_correct) = (col("mode")?, col("set_size")?, col("methods")?, col("correct")?);
    let mut groups: BTreeMap<(String, usize, String), (u64, u64)> = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let f = split_csv_line(line);
        let get = |i: usize| f.get(i).map(String::as_str).unwrap_or_default();
        let size: usize = get(i_size)
            .parse()
            .with_context(|| format!("results CSV line {}: bad set_size", n + 2))?;
        let correct = match get(i_correct) {
            "1" | "true" => true,
            "0" | "false" => false,
            other => bail!("results CSV line {}: bad correct value '{other}'", n + 2),
        };
        let e = groups
            .entry((get(i_mode).to_string(), size, get(i_methods).to_string()))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(!correct);
    }
    Ok(groups
        .into_iter()
        .map(|((mode, set_size, method), (trials, fooled))| {
            let (ci_low, ci_high) = wilson_interval(fooled, trials, Z95);
            MethodSummary {
                chance: if set_size > 0 {
                    (set_size - 1) as f64 / set_size as f64
                } else {
                    0.0
                },
                rate: fooled as f64 / trials as f64,
                mode,
                set_size,
                method,
                trials,
                fooled,
                ci_low,
                ci_high,
            }
        })
        .collect())
}

/// The summary as a text table.
pub fn format_summary(rows: &[MethodSummary]) -> String {
    let mut out = format!(
        "{:<6} {:>4} {:<24} {:>7} {:>7} {:>9} {:>17} {:>7}\n",
        "mode", "N", "method", "trials", "fooled", "fool-rate", "95% CI (Wilson)", "chance"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<6} {:>4} {:<24} {:>7} {:>7} {:>8.1}% {:>7.1}% - {:>5.1}% {:>6.1}%\n",
            r.mode,
            r.set_size,
            r.method,
            r.trials,
            r.fooled,
            100.0 * r.rate,
            100.0 * r.ci_low,
            100.0 * r.ci_high,
            100.0 * r.chance
        ));
    }
    if rows.is_empty() {
        out.push_str("(no answers yet)\n");
    }
    out
}

/// Reads a results file and formats its summary.
pub fn summary_of_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(format_summary(
        &summarize(&text).with_context(|| path.display().to_string())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_hand_computed_values() {
        // 5 of 10: p = 0.5, z^2/n = 0.384146, centre = 0.5,
        // half = 1.959964 / 1.384146 * sqrt(0.025 + 0.0096037) = 1.415999 * 0.186020 = 0.263407.
        let (lo, hi) = wilson_interval(5, 10, Z95);
        assert!((lo - 0.236_593).abs() < 1e-5, "{lo}");
        assert!((hi - 0.763_407).abs() < 1e-5, "{hi}");
        // 0 of 10: centre = half = 0.192073 / 1.384146 = 0.138767; [0, 0.277533].
        let (lo, hi) = wilson_interval(0, 10, Z95);
        assert!(lo.abs() < 1e-12);
        assert!((hi - 0.277_533).abs() < 1e-5, "{hi}");
        // 8 of 20: p = 0.4, z^2/n = 0.192073, centre = (0.4 + 0.0960365) / 1.192073 = 0.416113,
        // half = 1.959964 / 1.192073 * sqrt(0.012 + 0.0024009) = 1.644163 * 0.1200038 = 0.197306.
        let (lo, hi) = wilson_interval(8, 20, Z95);
        assert!((lo - 0.218_807).abs() < 1e-5, "{lo}");
        assert!((hi - 0.613_419).abs() < 1e-5, "{hi}");
        assert_eq!(wilson_interval(0, 0, Z95), (0.0, 1.0));
    }

    #[test]
    fn summary_groups_by_mode_and_method() {
        let csv = "timestamp,participant,mode,set_size,methods,real_image,shown,chosen_index,chosen,correct,response_ms\n\
            t,p,2afc,2,gan,a,\"real:a;gan:a\",0,real,1,100\n\
            t,p,2afc,2,gan,b,\"gan:b;real:b\",0,gan,0,100\n\
            t,p,2afc,2,gan,c,\"real:c;gan:c\",1,gan,0,100\n\
            t,p,2afc,2,gray,c,\"real:c;gray:c\",0,real,1,100\n\
            t,p,sets,10,gan,c,x,3,real,1,100\n";
        let rows = summarize(csv).unwrap();
        assert_eq!(rows.len(), 3);
        let gan = &rows[0];
        assert_eq!(
            (gan.mode.as_str(), gan.method.as_str(), gan.trials, gan.fooled),
            ("2afc", "gan", 3, 2)
        );
        assert!((gan.rate - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(gan.chance, 0.5);
        assert_eq!((rows[1].method.as_str(), rows[1].fooled), ("gray", 0));
        assert_eq!((rows[2].mode.as_str(), rows[2].chance), ("sets", 0.9));
        let table = format_summary(&rows);
        assert!(table.contains("66.7%"), "{table}");
    }

    #[test]
    fn csv_fields_round_trip() {
        let fields = ["plain", "with,comma", "with \"quotes\"", ""];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        assert_eq!(split_csv_line(&line.join(",")), fields);
    }
}
