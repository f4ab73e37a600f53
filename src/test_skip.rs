//! How a test that cannot run says so; compiled into the unit tests (`crate::test_skip`) and
//! into the integration tests (`tests/common`), not into the library.

/// Records that `test` cannot run for want of `resource` (`ffmpeg` or `shared`): a failure when
/// `TINCT_TEST_REQUIRE` names the resource (CI installs ffmpeg, so its tests must run there),
/// otherwise a `SKIPPED` line on stderr and in the file `TINCT_SKIP_LOG` names, which CI prints.
pub fn skip(test: &str, resource: &str, why: &str) {
    let required = std::env::var("TINCT_TEST_REQUIRE").unwrap_or_default();
    if required.split(',').any(|r| r.trim() == resource) {
        panic!("{test}: {why}, and TINCT_TEST_REQUIRE requires {resource}");
    }
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("TINCT_SKIP_LOG") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log);
        if let Ok(mut f) = file {
            let _ = writeln!(f, "{line}");
        }
    }
}
