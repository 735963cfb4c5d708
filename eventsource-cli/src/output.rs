//! Where a command's results go: text for people, or one JSON object per line.

use std::io::Write;

use serde::Serialize;

use crate::error::CliError;

/// A command's standard output, in text or JSON lines.
pub(crate) struct Out<'a> {
    writer: &'a mut dyn Write,
    /// `--json`: one JSON object per line.
    pub(crate) json: bool,
}

impl<'a> Out<'a> {
    pub(crate) fn new(writer: &'a mut dyn Write, json: bool) -> Self {
        Out { writer, json }
    }

    /// A line of text.
    pub(crate) fn line(&mut self, text: impl AsRef<str>) -> Result<(), CliError> {
        writeln!(self.writer, "{}", text.as_ref()).map_err(CliError::io("writing the output"))
    }

    /// One JSON object, on one line.
    pub(crate) fn record(&mut self, value: &impl Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string(value).map_err(|e| CliError::Io {
            context: "writing the output".into(),
            source: std::io::Error::other(e),
        })?;
        self.line(text)
    }

    /// Text or JSON: `text()` in text mode, `value` in JSON mode.
    pub(crate) fn either(
        &mut self,
        value: &impl Serialize,
        text: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        if self.json {
            self.record(value)
        } else {
            self.line(text())
        }
    }

    /// Flushes (a follower's lines must show at once).
    pub(crate) fn flush(&mut self) -> Result<(), CliError> {
        self.writer
            .flush()
            .map_err(CliError::io("writing the output"))
    }
}

/// A progress bar on standard error, drawn only when it is a terminal.
pub(crate) fn progress_bar(length: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(length),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}
