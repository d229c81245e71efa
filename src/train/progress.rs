//! Progress of a run: two indicatif bars on a terminal, one plain line per epoch otherwise
//! (so CI logs and redirected output stay readable).

use std::io::IsTerminal;
use std::sync::LazyLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Every bar of the process in one display: `compare` trains its two models at once on the
/// CPU, and two displays of their own would draw over each other.
static BARS: LazyLock<MultiProgress> =
    LazyLock::new(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));

pub enum Progress {
    Bars {
        label: String,
        epochs: ProgressBar,
        batches: ProgressBar,
    },
    Lines {
        label: String,
    },
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn for_stderr(label: &str, epochs: usize, first_epoch: usize) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines {
                label: label.to_string(),
            };
        }
        let multi = &*BARS;
        let epoch_style =
            ProgressStyle::with_template("{prefix} epoch {pos}/{len} [{bar:30}] {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let batch_style =
            ProgressStyle::with_template("  batch {pos}/{len} [{bar:30.cyan/blue}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let epochs_bar = multi.add(ProgressBar::new(epochs as u64).with_style(epoch_style));
        epochs_bar.set_prefix(label.to_string());
        epochs_bar.set_position(first_epoch.saturating_sub(1) as u64);
        let batches = multi.add(ProgressBar::new(0).with_style(batch_style));
        batches.enable_steady_tick(Duration::from_millis(250));
        Progress::Bars {
            label: label.to_string(),
            epochs: epochs_bar,
            batches,
        }
    }

    pub fn start_epoch(&self, steps: usize) {
        if let Progress::Bars { batches, .. } = self {
            batches.reset();
            batches.set_length(steps as u64);
        }
    }

    /// `loss`: the running mean training loss of this epoch.
    pub fn update(&self, step: usize, loss: f64, images_per_sec: f64) {
        if let Progress::Bars { batches, .. } = self {
            batches.set_position(step as u64);
            batches.set_message(format!("loss {loss:.2}  {images_per_sec:.0} img/s"));
        }
    }

    /// Ends an epoch with its one-line summary.
    pub fn finish_epoch(&self, epoch: usize, total: usize, line: &str) {
        match self {
            Progress::Bars { label, epochs, .. } => {
                epochs.set_position(epoch as u64);
                epochs.set_message(line.to_string());
                epochs.println(format!("{label} epoch {epoch}/{total}  {line}"));
            }
            Progress::Lines { label } => eprintln!("{label} epoch {epoch}/{total}  {line}"),
        }
    }

    pub fn finish(&self) {
        if let Progress::Bars {
            epochs, batches, ..
        } = self
        {
            batches.finish_and_clear();
            epochs.finish();
        }
    }

    /// Prints a line without breaking the bars.
    pub fn println(&self, line: &str) {
        match self {
            Progress::Bars { epochs, .. } => epochs.println(line),
            Progress::Lines { .. } => eprintln!("{line}"),
        }
    }
}
