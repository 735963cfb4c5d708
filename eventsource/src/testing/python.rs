//! eventsource-py for interop tests: a Python that imports the real package
//! (`eventsource-py==0.5.0`, with `greenlet` and `aiosqlite`), installed with pip into a
//! virtualenv once, or named by `EVENTSOURCE_PY_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages installed into the virtualenv.
pub const PACKAGES: [&str; 3] = ["eventsource-py==0.5.0", "greenlet", "aiosqlite"];

/// The Python of `EVENTSOURCE_PY_PYTHON`, or of a virtualenv `eventsource-py-0.5.0` under
/// `venv_parent` (created and installed with pip when missing; a test passes
/// `env!("CARGO_TARGET_TMPDIR")`), or why there is none.
///
/// # Errors
/// Why no Python with eventsource-py could be found or installed.
pub fn find_eventsource_py(venv_parent: &Path) -> Result<PathBuf, String> {
    let works = |python: &Path| {
        Command::new(python)
            .args(["-c", "import eventsource, aiosqlite, greenlet"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Some(python) = std::env::var_os("EVENTSOURCE_PY_PYTHON") {
        let python = PathBuf::from(python);
        return if works(&python) {
            Ok(python)
        } else {
            Err(format!(
                "EVENTSOURCE_PY_PYTHON={} cannot import eventsource",
                python.display()
            ))
        };
    }
    let venv = venv_parent.join("eventsource-py-0.5.0");
    let python = venv.join("bin/python");
    if works(&python) {
        return Ok(python);
    }
    let run = |program: &Path, args: &[&str]| -> Result<(), String> {
        let output = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {}: {}",
                program.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            ))
        }
    };
    let venv_text = venv.to_string_lossy().into_owned();
    run(Path::new("python3"), &["-m", "venv", &venv_text])?;
    let mut install = vec![
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ];
    install.extend(PACKAGES);
    run(&python, &install)?;
    if works(&python) {
        Ok(python)
    } else {
        Err("eventsource-py installed but does not import".into())
    }
}

/// As [`find_eventsource_py`], for a test: `None` (saying so on standard error) where
/// there is none, which is a failure instead when `EVENTSOURCE_REQUIRE_PYTHON` is set
/// (as `.ci/run` sets it).
///
/// # Panics
/// Without a Python with eventsource-py when `EVENTSOURCE_REQUIRE_PYTHON` is set.
pub fn eventsource_py(venv_parent: &Path) -> Option<PathBuf> {
    match find_eventsource_py(venv_parent) {
        Ok(python) => Some(python),
        Err(why) if std::env::var_os("EVENTSOURCE_REQUIRE_PYTHON").is_some() => {
            panic!("eventsource-py is required (EVENTSOURCE_REQUIRE_PYTHON) but: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: this test needs eventsource-py: {why}");
            None
        }
    }
}
