//! `report.md`'s words: a table of the numbers, then one sentence per observation, each chosen
//! by the numbers (a sentence whose condition the numbers do not meet is replaced by the one
//! they do).

use std::fmt::Write as _;

use super::Side;
use crate::config::TrainSettings;
use crate::plot::grid::GridRange;
use crate::report::summary::Summary;
use crate::run::MetricsRow;

/// The report's first sentence: what the two runs share, and each setting they differ in
/// (a comparison of two finished runs, `compare --ae --vae`, may pair any two).
pub fn setup_sentence(a: &TrainSettings, v: &TrainSettings) -> String {
    let images = |s: &TrainSettings| s.train_limit.map_or("all".to_string(), |n| n.to_string());
    let sizes = |s: &TrainSettings| {
        let m = &s.model;
        format!("{}-{}-{}-{}", m.input, m.hidden[0], m.hidden[1], m.latent)
    };
    let settings: [(&str, String, String); 6] = [
        ("epochs", a.epochs.to_string(), v.epochs.to_string()),
        ("training images", images(a), images(v)),
        ("seed", a.seed.to_string(), v.seed.to_string()),
        ("sizes", sizes(a), sizes(v)),
        (
            "batch size",
            a.batch_size.to_string(),
            v.batch_size.to_string(),
        ),
        ("learning rate", a.lr.to_string(), v.lr.to_string()),
    ];
    let (same, differ): (Vec<_>, Vec<_>) = settings.iter().partition(|(_, x, y)| x == y);
    let shared: Vec<String> = same
        .iter()
        .map(|(name, x, _)| match *name {
            "epochs" if x == "1" => "1 epoch".to_string(),
            "epochs" => format!("{x} epochs"),
            "training images" if x == "all" => "all training images".to_string(),
            "sizes" => format!("sizes {x}"),
            _ => format!("{name} {x}"),
        })
        .collect();
    let mut shared = shared;
    let binarize = |s: &TrainSettings| match s.binarize {
        crate::data::Binarize::None => "grey-level images",
        crate::data::Binarize::Static => "images binarised once (--binarize static)",
        crate::data::Binarize::Dynamic => {
            "images binarised afresh at every use (--binarize dynamic)"
        }
    };
    let mut differ = differ;
    let pixels = ("pixels", binarize(a).to_string(), binarize(v).to_string());
    if pixels.1 != pixels.2 {
        differ.push(&pixels);
    } else if a.binarize != crate::data::Binarize::None {
        shared.insert(0, pixels.1.clone());
    }
    shared.insert(0, "the same data set".to_string());
    let mut sentence = format!("Both models: {}", join_and(&shared));
    if differ.is_empty() {
        sentence.push('.');
    } else {
        let parts: Vec<String> = differ
            .iter()
            .map(|(name, x, y)| format!("{name} (AE {x}, VAE {y})"))
            .collect();
        sentence.push_str(&format!(
            ". They differ in {}, so not every difference below is the model's.",
            join_and(&parts)
        ));
    }
    sentence
}

/// "a", "a and b", "a, b and c".
fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn pair(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
    format!("({})", parts.join(", "))
}

/// The report: a table of the numbers, then the observations they support.
pub fn report_markdown(ae: &Side, vae: &Side) -> String {
    let a = &ae.summary;
    let mut s = String::new();
    let _ = writeln!(s, "# AE vs VAE on {}: what do you notice?\n", a.dataset);
    let _ = writeln!(
        s,
        "{} AE run `{}`, VAE run `{}`. All numbers are on the {} test images.\n",
        setup_sentence(&ae.settings, &vae.settings),
        ae.run_dir.display(),
        vae.run_dir.display(),
        ae.codes.mu.len() / 2
    );
    let _ = writeln!(
        s,
        "![latent codes](scatter_ae_vs_vae.png)\n\n![decoded grids](grids_ae_vs_vae.png)\n"
    );
    let _ = writeln!(s, "| | AE | VAE |\n| --- | --- | --- |");
    let rows = numbers_table(ae, vae);
    for (name, x, y) in rows {
        let _ = writeln!(s, "| {name} | {x} | {y} |");
    }
    let _ = writeln!(s, "\n## What the numbers show\n");
    for line in observations(ae, vae) {
        let _ = writeln!(s, "- {line}");
    }
    if let Some(section) = usage_by_epoch(&vae.settings, &vae.rows) {
        let _ = writeln!(s, "\n{section}");
    }
    let _ = writeln!(
        s,
        "\n## The KL term: exact form and the course's shortcut\n"
    );
    let _ = writeln!(s, "{}", kl_paragraph(vae));
    s
}

/// The report's table: one row per number, AE beside VAE ("-" where a model has none).
///
/// Kept whole: a table, a row per number.
fn numbers_table(ae: &Side, vae: &Side) -> Vec<(&'static str, String, String)> {
    let (a, v) = (&ae.summary, &vae.summary);
    vec![
        (
            "test reconstruction BCE (nats/image)",
            format!("{:.2}", a.test_recon),
            format!("{:.2}", v.test_recon),
        ),
        (
            "test KL (nats/image)",
            "-".into(),
            format!("{:.2}", v.test_kl),
        ),
        (
            "test loss (VAE: negative ELBO)",
            format!("{:.2}", a.test_loss),
            format!("{:.2}", v.test_loss),
        ),
        (
            "IWAE log-likelihood",
            "-".into(),
            v.iwae_log_likelihood.map_or("-".into(), |l| {
                format!("{l:.2} (K={})", v.iwae_samples.unwrap_or(0))
            }),
        ),
        (
            "5-NN digit accuracy",
            format!("{:.3}", a.knn5_accuracy),
            format!("{:.3}", v.knn5_accuracy),
        ),
        ("code mean", pair(&a.latent_mean), pair(&v.latent_mean)),
        ("code std", pair(&a.latent_std), pair(&v.latent_std)),
        (
            "empty cells (20x20, 1st-99th pct box)",
            pct(a.empty_cell_share),
            pct(v.empty_cell_share),
        ),
        (
            "grid step between neighbours (mean / max)",
            format!("{:.3} / {:.3}", ae.roughness.0, ae.roughness.1),
            format!("{:.3} / {:.3}", vae.roughness.0, vae.roughness.1),
        ),
        (
            "mean posterior sigma",
            "-".into(),
            v.posterior_sigma_mean.as_deref().map_or("-".into(), pair),
        ),
        (
            "KL per dimension (nats/image)",
            "-".into(),
            v.kl_per_dim.as_deref().map_or("-".into(), pair),
        ),
        (
            "active units (variance of mu > 0.01)",
            "-".into(),
            v.active_units
                .map_or("-".into(), |a| format!("{a} of {}", v.latent_std.len())),
        ),
        (
            "training images/s",
            format!("{:.0}", a.images_per_sec),
            format!("{:.0}", v.images_per_sec),
        ),
    ]
}

/// One sentence per observation, each chosen by the numbers.
pub fn observations(ae: &Side, vae: &Side) -> Vec<String> {
    let (a, v) = (&ae.summary, &vae.summary);
    let mut out = vec![
        spread_sentence(a, v),
        gaps_sentence(a, v),
        smoothness_sentence(ae, vae),
        classes_sentence(a, v),
        price_sentence(a, v),
    ];
    if let (Some(ll), Some(k)) = (v.iwae_log_likelihood, v.iwae_samples) {
        out.push(format!(
            "**Likelihood.** The VAE is a generative model: its importance-weighted bound with K={k} puts the test log-likelihood at {ll:.2} nats per image, {:.2} nats above the ELBO ({:.2}). The AE defines no likelihood to compare.",
            ll + v.test_loss,
            -v.test_loss
        ));
    }
    if let Some(line) = literature_sentence(&vae.settings, v, &vae.rows) {
        out.push(line);
    }
    if let Some(sig) = &v.posterior_sigma_mean {
        out.push(format!(
            "**Codes are clouds.** The VAE's mean posterior sigma is {}: each test image is encoded as a small Gaussian cloud, not a point, so its decoder is trained on the neighbourhood of every code.",
            pair(sig)
        ));
    }
    if let (Some(kl), Some(var)) = (&v.kl_per_dim, &v.mu_variance_per_dim) {
        out.push(latent_usage_sentence(kl, var));
    }
    out
}

/// A published test log-likelihood of a 2-D Gaussian VAE on dynamically binarised MNIST:
/// Davidson et al. (2018), "Hyperspherical Variational Auto-Encoders", UAI, Table 1, row
/// N-VAE d = 2 (mean of 10 runs; importance sampling with 500 samples; dense layers 784-256-128;
/// trained to early stopping). BENCHMARKS.md says where the figure was checked.
const PUBLISHED_2D_LOG_LIKELIHOOD: f64 = -135.73;
/// That model's hidden widths (encoder order).
const PUBLISHED_HIDDEN: [usize; 2] = [256, 128];

/// How far the VAE's likelihood is from the literature's, and why, when the run is comparable
/// to it: MNIST, binarised afresh at every use, a 2-D latent, every training image. The paper
/// used 500 samples; a run with K >= 500 has the tighter bound, so there a shortfall is not
/// the estimator's doing.
fn literature_sentence(s: &TrainSettings, v: &Summary, rows: &[MetricsRow]) -> Option<String> {
    let comparable = s.dataset == crate::data::DatasetName::Mnist
        && s.binarize == crate::data::Binarize::Dynamic
        && s.model.latent == 2
        && s.train_limit.is_none();
    if !comparable {
        return None;
    }
    let (Some(ll), Some(k)) = (v.iwae_log_likelihood, v.iwae_samples) else {
        return None;
    };
    let published = PUBLISHED_2D_LOG_LIKELIHOOD;
    let gap = published - ll;
    let standing = if gap > 0.0 {
        format!("{gap:.2} nats below it")
    } else {
        format!("{:.2} nats above it", -gap)
    };
    let m = &s.model;
    let arch = match m.arch {
        crate::model::Arch::Mlp => {
            format!("dense layers {}-{}-{}", m.input, m.hidden[0], m.hidden[1])
        }
        crate::model::Arch::Conv => format!(
            "two convolutions and dense layers {}-{}",
            m.hidden[0], m.hidden[1]
        ),
    };
    let [h1, h2] = PUBLISHED_HIDDEN;
    let width = if m.arch == crate::model::Arch::Mlp && m.hidden[0] >= h1 && m.hidden[1] >= h2 {
        " (at least as wide as theirs, so the architecture is not what holds this run back)"
    } else {
        ""
    };
    // Still improving at the end means more epochs would close part of the gap.
    let last_gain = match rows {
        [.., before, last] => Some(before.test_loss - last.test_loss),
        _ => None,
    };
    let epochs = match last_gain {
        Some(g) if g > 0.05 => format!(
            "; its test loss still fell by {g:.2} nats over its last epoch, so more epochs would close part of the gap"
        ),
        Some(g) if g >= 0.0 => {
            format!("; its test loss fell by only {g:.2} nats over its last epoch")
        }
        Some(g) => format!("; its test loss rose by {:.2} nats over its last epoch", -g),
        None => String::new(),
    };
    Some(format!(
        "**Against the literature.** Davidson et al. (2018, *Hyperspherical Variational Auto-Encoders*, Table 1) report {published:.2} nats \
         for a Gaussian VAE with a 2-D latent on dynamically binarised MNIST (dense layers 784-{h1}-{h2}, trained to early stopping, \
         500 importance samples). This VAE reaches {ll:.2} with K={k}, {standing}, after {} epoch{} with {arch}{width}{epochs}.",
        s.epochs,
        if s.epochs == 1 { "" } else { "s" },
    ))
}

/// Where the codes sit and how far they spread, against the prior.
fn spread_sentence(a: &Summary, v: &Summary) -> String {
    let spread = |s: &Summary| s.latent_std.iter().product::<f64>().sqrt();
    let ratio = spread(a) / spread(v).max(1e-12);
    let near_prior = v.latent_std.iter().all(|&s| (0.5..=1.5).contains(&s))
        && v.latent_mean.iter().all(|m| m.abs() < 0.3);
    let vae_shape = if near_prior {
        "close to the N(0, I) prior its KL term pulls them towards".to_string()
    } else {
        "not close to the N(0, I) prior (a std far from 1 or a mean far from 0)".to_string()
    };
    format!(
        "**Spread and centring.** The AE's codes have std {} around mean {}; the VAE's have std {} around {}, {vae_shape}. \
         The AE's cloud is {ratio:.1} times as wide (geometric mean of the std ratios): its loss has no term on where codes sit or how far they spread.",
        pair(&a.latent_std),
        pair(&a.latent_mean),
        pair(&v.latent_std),
        pair(&v.latent_mean),
    )
}

/// How much of each box the codes leave empty.
fn gaps_sentence(a: &Summary, v: &Summary) -> String {
    let gaps = if a.empty_cell_share > v.empty_cell_share + 0.02 {
        "the AE leaves more holes, and a point decoded in one lies far from every training code"
    } else if v.empty_cell_share > a.empty_cell_share + 0.02 {
        "here the VAE leaves more holes than the AE"
    } else {
        "both fill their boxes about equally"
    };
    format!(
        "**Gaps.** {} of the AE's and {} of the VAE's cells are empty in a 20x20 grid over each model's 1st-99th percentile box: {gaps}.",
        pct(a.empty_cell_share),
        pct(v.empty_cell_share)
    )
}

/// How gradually each decoded grid changes from cell to cell.
fn smoothness_sentence(ae: &Side, vae: &Side) -> String {
    let smoother = if ae.roughness.0 > 1.1 * vae.roughness.0 {
        "the VAE's grid morphs more gradually from digit to digit"
    } else if vae.roughness.0 > 1.1 * ae.roughness.0 {
        "the AE's grid morphs more gradually from digit to digit"
    } else {
        "both grids morph about equally gradually"
    };
    let jumps = if ae.roughness.1 > 1.2 * vae.roughness.1 {
        ", and the AE's largest jump between neighbours is the larger, a sign of a tear in its latent space"
    } else if vae.roughness.1 > 1.2 * ae.roughness.1 {
        ", and the VAE's largest jump between neighbours is the larger"
    } else {
        ""
    };
    format!(
        "**Smoothness of the decoded grid.** Neighbouring cells differ by {:.3} (AE) and {:.3} (VAE) in mean absolute pixel value: {smoother}{jumps}. \
         {}",
        ae.roughness.0,
        vae.roughness.0,
        span_note(ae.range)
    )
}

/// How well the codes separate the digits (a 5-NN vote).
fn classes_sentence(a: &Summary, v: &Summary) -> String {
    let knn = if (a.knn5_accuracy - v.knn5_accuracy).abs() < 0.01 {
        "both separate the digits about equally well".to_string()
    } else if a.knn5_accuracy > v.knn5_accuracy {
        format!(
            "the AE's codes separate the digits better, by {:.1} points",
            100.0 * (a.knn5_accuracy - v.knn5_accuracy)
        )
    } else {
        format!(
            "the VAE's codes separate the digits better, by {:.1} points",
            100.0 * (v.knn5_accuracy - a.knn5_accuracy)
        )
    };
    format!(
        "**Digit classes.** A 5-nearest-neighbour vote among the training codes labels {} (AE) and {} (VAE) of the test digits correctly: {knn}. Neither model saw a label.",
        pct(a.knn5_accuracy),
        pct(v.knn5_accuracy)
    )
}

/// What the VAE pays in reconstruction for its regular latent space.
fn price_sentence(a: &Summary, v: &Summary) -> String {
    let d = v.test_recon - a.test_recon;
    let price = if d > 0.0 {
        format!(
            "the VAE reconstructs worse, by {d:.2} nats per image ({:.2} vs {:.2})",
            v.test_recon, a.test_recon
        )
    } else {
        format!(
            "the VAE reconstructs no worse here ({:.2} vs {:.2} nats per image)",
            v.test_recon, a.test_recon
        )
    };
    format!(
        "**The price of regularity.** With noise on its codes and a KL term, {price}, and spends {:.2} nats per image on the KL, for a negative ELBO of {:.2}.",
        v.test_kl, v.test_loss
    )
}

/// How the VAE uses its latent dimensions: all active, some collapsed (named), or none.
pub fn latent_usage_sentence(kl_per_dim: &[f64], mu_variance: &[f64]) -> String {
    let dims = mu_variance.len();
    let collapsed: Vec<String> = mu_variance
        .iter()
        .enumerate()
        .filter(|(_, v)| **v <= crate::model::ACTIVE_VARIANCE)
        .map(|(i, _)| format!("z{}", i + 1))
        .collect();
    let active = dims - collapsed.len();
    let verdict = if collapsed.is_empty() {
        format!(
            "all {dims} dimensions are active (the variance of mu over the test images exceeds \
             0.01 in each): no posterior collapse"
        )
    } else if active == 0 {
        "no dimension is active: the posterior has collapsed to the prior and the decoder \
         ignores the code (a smaller --beta is the usual cure)"
            .to_string()
    } else {
        format!(
            "{active} of {dims} dimensions are active; {} collapsed to the prior (the variance \
             of mu stays under 0.01), so the code carries less than it could",
            join_and(&collapsed)
        )
    };
    format!(
        "**Latent usage.** The VAE's KL splits as {} nats per image over its dimensions, and {verdict}.",
        pair(kl_per_dim)
    )
}

/// The VAE's collapse diagnostics epoch by epoch, as metrics.csv has them, and what the KL
/// weight did meanwhile (`--kl-warmup`): the effect of a warm-up is read here. `None` for runs
/// made before metrics.csv had the diagnostics.
pub fn usage_by_epoch(settings: &TrainSettings, rows: &[MetricsRow]) -> Option<String> {
    let with_usage: Vec<(&MetricsRow, &crate::model::LatentUsage)> = rows
        .iter()
        .filter_map(|r| r.usage.as_ref().map(|u| (r, u)))
        .collect();
    let (first, last) = (with_usage.first()?, with_usage.last()?);
    let dims = last.1.kl_per_dim.len();
    let schedule = if settings.kl_warmup > 0 {
        format!(
            "Its KL weight rose linearly from 0 to beta = {} over the first {} epoch{} \
             (--kl-warmup {}), step by step; the test loss always weighs the KL by the full beta.",
            settings.beta,
            settings.kl_warmup,
            if settings.kl_warmup == 1 { "" } else { "s" },
            settings.kl_warmup
        )
    } else {
        format!(
            "Its KL weight was beta = {} from the first step (no --kl-warmup).",
            settings.beta
        )
    };
    let (from, to) = (first.1.active_units, last.1.active_units);
    let course = if from == to {
        format!(
            "stayed at {to} from epoch {} to epoch {}",
            first.0.epoch, last.0.epoch
        )
    } else {
        format!(
            "went from {from} after epoch {} to {to} after epoch {}",
            first.0.epoch, last.0.epoch
        )
    };
    let mut s = format!(
        "## How the VAE came to use its latent dimensions\n\n{schedule} Active units (of {dims}) \
         {course}.\n\n\
         | epoch | KL weight | test KL | KL per dimension | mean sigma per dimension | active units |\n\
         | --- | --- | --- | --- | --- | --- |\n"
    );
    for (row, usage) in &with_usage {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {} | {} | {} |",
            row.epoch,
            row.beta.map_or("-".into(), |b| format!("{b:.3}")),
            row.test_kl,
            pair(&usage.kl_per_dim),
            pair(&usage.sigma_mean_per_dim),
            usage.active_units
        );
    }
    Some(s)
}

/// What the grids' smoothness compares, by the box they span.
fn span_note(range: GridRange) -> String {
    if range.is_shared() {
        format!(
            "Both grids span {}, so this compares the two maps over the same part of the plane, used or not.",
            range.describe()
        )
    } else {
        format!(
            "Each grid spans its own model's {}, so this compares the two maps across their whole used range.",
            match range {
                GridRange::MinMax => "full range of test codes",
                _ => "1st-99th percentile box",
            }
        )
    }
}

/// The paragraph relating the spec's exact KL to the course's "sum -log sigma + sigma^2 + mu^2".
pub fn kl_paragraph(vae: &Side) -> String {
    let exact_half = 0.5 * (0.5 - 1.0 - 0.5f64.ln());
    let measured = match (vae.course_kl, vae.summary.test_kl) {
        (Some(course), kl) => format!(
            " On this VAE's test codes the exact KL is {kl:.2} nats per image, while the course's expression evaluates to {course:.2}: \
             its numbers are not KL values, and only its minimiser matters for training."
        ),
        _ => String::new(),
    };
    format!(
        "Per latent dimension the exact KL(N(mu, sigma^2) || N(0, 1)) is 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2) = \
         0.5 mu^2 + 0.5 sigma^2 - log sigma - 0.5, which latentlab minimises. The course writes \"something like \
         sum -log sigma + sigma^2 + mu^2\": it keeps -log sigma but drops the factor 1/2 on the squares and the constant -0.5. \
         The constant changes no gradient; the factor does. Setting the derivative to zero, the exact form gives -1/sigma + sigma = 0, \
         so sigma = 1 (the prior's width, where the KL is 0), while the course's form gives -1/sigma + 2 sigma = 0, so \
         sigma = 1/sqrt(2) = 0.707, where the exact KL is still {exact_half:.4} nats per dimension. The course's form also pulls mu \
         to 0 twice as hard. So it is the KL only up to these factors: 2 KL = mu^2 + sigma^2 - 1 - 2 log sigma.{measured}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;
    use crate::report::compare::grid_title;

    fn settings(kind: ModelKind) -> TrainSettings {
        TrainSettings::new(kind)
    }

    #[test]
    fn runs_trained_alike_are_said_to_share_everything() {
        let s = setup_sentence(&settings(ModelKind::Ae), &settings(ModelKind::Vae));
        assert_eq!(
            s,
            "Both models: the same data set, 10 epochs, all training images, seed 0, \
             sizes 784-512-256-2, batch size 128 and learning rate 0.001."
        );
    }

    #[test]
    fn every_setting_two_runs_differ_in_is_named_with_both_values() {
        let a = settings(ModelKind::Ae);
        let mut v = settings(ModelKind::Vae);
        v.seed = 7;
        v.epochs = 3;
        v.train_limit = Some(1000);
        let s = setup_sentence(&a, &v);
        assert!(s.starts_with("Both models: the same data set, sizes 784-512-256-2, batch size 128 and learning rate 0.001. "), "{s}");
        assert!(
            s.contains("They differ in epochs (AE 10, VAE 3), training images (AE all, VAE 1000) and seed (AE 0, VAE 7)"),
            "{s}"
        );
        assert!(!s.contains("seed 0,"), "{s}");

        v = settings(ModelKind::Vae);
        v.model.hidden = [256, 128];
        let s = setup_sentence(&a, &v);
        assert!(
            s.contains("They differ in sizes (AE 784-512-256-2, VAE 784-256-128-2),"),
            "{s}"
        );
        assert!(s.contains("seed 0"), "{s}");

        let mut a = settings(ModelKind::Ae);
        a.binarize = crate::data::Binarize::Dynamic;
        let mut v = settings(ModelKind::Vae);
        v.binarize = crate::data::Binarize::Dynamic;
        let s = setup_sentence(&a, &v);
        assert!(
            s.starts_with("Both models: the same data set, images binarised afresh at every use (--binarize dynamic), 10 epochs"),
            "{s}"
        );
        v.binarize = crate::data::Binarize::None;
        let s = setup_sentence(&a, &v);
        assert!(
            s.contains("pixels (AE images binarised afresh at every use (--binarize dynamic), VAE grey-level images)"),
            "{s}"
        );
    }

    #[test]
    fn the_usage_section_says_how_the_kl_weight_moved_and_what_it_did() {
        let usage = |active: usize| crate::model::LatentUsage {
            kl_per_dim: vec![2.0, 0.5 * active as f64],
            mu_variance_per_dim: vec![1.0, 0.5],
            sigma_mean_per_dim: vec![0.2, 0.9],
            active_units: active,
        };
        let row = |epoch: usize, beta: f64, active: usize| MetricsRow {
            epoch,
            seconds: 1.0,
            images_per_sec: 1.0,
            train_loss: 150.0,
            test_recon: 140.0,
            test_kl: 4.0,
            test_loss: 144.0,
            beta: Some(beta),
            usage: Some(usage(active)),
        };
        let mut s = settings(ModelKind::Vae);
        s.kl_warmup = 2;
        let rows = [row(1, 0.5, 1), row(2, 1.0, 2), row(3, 1.0, 2)];
        let text = usage_by_epoch(&s, &rows).unwrap();
        assert!(
            text.contains(
                "rose linearly from 0 to beta = 1 over the first 2 epochs (--kl-warmup 2)"
            ),
            "{text}"
        );
        assert!(
            text.contains("went from 1 after epoch 1 to 2 after epoch 3"),
            "{text}"
        );
        assert!(
            text.contains("| 1 | 0.500 | 4.00 | (2.00, 0.50) | (0.20, 0.90) | 1 |"),
            "{text}"
        );
        s.kl_warmup = 0;
        let plain = usage_by_epoch(&s, &rows).unwrap();
        assert!(
            plain.contains("beta = 1 from the first step (no --kl-warmup)"),
            "{plain}"
        );
        let old = MetricsRow {
            usage: None,
            ..row(1, 1.0, 2)
        };
        assert_eq!(
            usage_by_epoch(&s, &[old]),
            None,
            "runs without diagnostics get none"
        );
    }

    fn summary(std: [f64; 2], mean: [f64; 2], empty: f64, knn: f64, recon: f64) -> Summary {
        Summary {
            model: "ae".into(),
            dataset: "mnist".into(),
            device: "cpu".into(),
            backend: "flex".into(),
            adapter: "cpu".into(),
            epochs: 10,
            test_recon: recon,
            test_kl: 6.0,
            test_loss: recon + 6.0,
            knn5_accuracy: knn,
            latent_mean: mean.to_vec(),
            latent_std: std.to_vec(),
            empty_cell_share: empty,
            images_per_sec: 1.0,
            train_seconds: 1.0,
            posterior_sigma_mean: None,
            iwae_log_likelihood: None,
            iwae_samples: None,
            kl_per_dim: None,
            mu_variance_per_dim: None,
            active_units: None,
        }
    }

    /// Each observation says what its numbers support, and the opposite when they say the
    /// opposite: every branch, chosen by numbers on either side of its threshold.
    #[test]
    fn every_observation_follows_its_numbers() {
        let wide = summary([6.0, 4.0], [1.0, -2.0], 0.30, 0.90, 134.0);
        let prior = summary([1.0, 0.9], [0.05, -0.1], 0.10, 0.85, 144.0);
        let off = summary([3.0, 0.2], [1.0, 0.0], 0.10, 0.85, 144.0);

        let s = spread_sentence(&wide, &prior);
        assert!(
            s.contains("close to the N(0, I) prior") && s.contains("5.2 times as wide"),
            "{s}"
        );
        assert!(spread_sentence(&wide, &off).contains("not close to the N(0, I) prior"));

        assert!(gaps_sentence(&wide, &prior).contains("the AE leaves more holes"));
        assert!(gaps_sentence(&prior, &wide).contains("the VAE leaves more holes"));
        assert!(gaps_sentence(&prior, &off).contains("both fill their boxes about equally"));

        let c = classes_sentence(&wide, &prior);
        assert!(
            c.contains("the AE's codes separate the digits better, by 5.0 points"),
            "{c}"
        );
        assert!(classes_sentence(&prior, &wide).contains("the VAE's codes separate"));
        assert!(classes_sentence(&prior, &off).contains("about equally well"));

        let p = price_sentence(&wide, &prior);
        assert!(
            p.contains("the VAE reconstructs worse, by 10.00 nats per image"),
            "{p}"
        );
        assert!(price_sentence(&prior, &wide).contains("the VAE reconstructs no worse here"));
    }

    #[test]
    fn the_literature_figure_is_set_beside_comparable_runs_only() {
        let mut s = settings(ModelKind::Vae);
        s.binarize = crate::data::Binarize::Dynamic;
        let mut v = summary([1.0, 0.9], [0.0, 0.0], 0.1, 0.85, 138.0);
        v.iwae_log_likelihood = Some(-140.67);
        v.iwae_samples = Some(5000);
        let row = |epoch: usize, test_loss: f64| MetricsRow {
            epoch,
            seconds: 5.0,
            images_per_sec: 12_000.0,
            train_loss: test_loss,
            test_recon: test_loss - 7.0,
            test_kl: 7.0,
            test_loss,
            beta: Some(1.0),
            usage: None,
        };
        let rows = [row(9, 144.00), row(10, 143.62)];
        let line = literature_sentence(&s, &v, &rows).expect("a comparable run");
        assert!(line.contains("report -135.73 nats"), "{line}");
        assert!(
            line.contains("reaches -140.67 with K=5000, 4.94 nats below it, after 10 epochs with dense layers 784-512-256"),
            "{line}"
        );
        assert!(line.contains("at least as wide as theirs"), "{line}");
        assert!(
            line.contains("still fell by 0.38 nats over its last epoch"),
            "{line}"
        );

        // Converged and narrower: no claim about epochs or width.
        let mut narrow = s.clone();
        narrow.model.hidden = [64, 32];
        let flat = [row(9, 143.62), row(10, 143.61)];
        let line = literature_sentence(&narrow, &v, &flat).expect("still comparable");
        assert!(!line.contains("at least as wide"), "{line}");
        assert!(line.contains("fell by only 0.01 nats"), "{line}");
        let rising = [row(9, 143.61), row(10, 143.90)];
        let line = literature_sentence(&narrow, &v, &rising).expect("still comparable");
        assert!(line.contains("rose by 0.29 nats"), "{line}");

        v.iwae_log_likelihood = Some(-134.0);
        let line = literature_sentence(&s, &v, &rows).expect("comparable");
        assert!(line.contains("1.73 nats above it"), "{line}");

        // Grey levels, another latent size, a subset or another data set: not comparable.
        for change in [
            |s: &mut TrainSettings| s.binarize = crate::data::Binarize::None,
            |s: &mut TrainSettings| s.binarize = crate::data::Binarize::Static,
            |s: &mut TrainSettings| s.model.latent = 16,
            |s: &mut TrainSettings| s.train_limit = Some(1000),
            |s: &mut TrainSettings| s.dataset = crate::data::DatasetName::FashionMnist,
        ] {
            let mut other = s.clone();
            change(&mut other);
            assert_eq!(literature_sentence(&other, &v, &rows), None);
        }
        v.iwae_log_likelihood = None;
        assert_eq!(literature_sentence(&s, &v, &rows), None);
    }

    #[test]
    fn latent_usage_names_collapsed_dimensions() {
        let all = latent_usage_sentence(&[3.1, 3.0], &[1.2, 0.9]);
        assert!(
            all.contains("(3.10, 3.00) nats") && all.contains("all 2 dimensions are active"),
            "{all}"
        );
        let one = latent_usage_sentence(&[6.0, 0.0], &[1.5, 0.002]);
        assert!(
            one.contains("1 of 2 dimensions are active; z2 collapsed"),
            "{one}"
        );
        let none = latent_usage_sentence(&[0.0, 0.0], &[0.001, 0.0]);
        assert!(none.contains("no dimension is active"), "{none}");
        assert!(!none.contains("z1"), "{none}");
    }

    #[test]
    fn the_smoothness_note_follows_the_grid_range() {
        assert!(
            span_note(GridRange::Percentile).contains("its own model's 1st-99th percentile box")
        );
        assert!(span_note(GridRange::MinMax).contains("its own model's full range of test codes"));
        let explicit = span_note(GridRange::Explicit([-3.0, 3.0, -2.0, 2.0]));
        assert!(
            explicit.contains("Both grids span the chosen box z1 -3..3, z2 -2..2"),
            "{explicit}"
        );
        assert!(!explicit.contains("percentile"), "{explicit}");
        assert_eq!(
            grid_title("VAE", GridRange::Percentile),
            "VAE: decoded grid over its 1st-99th percentile box"
        );
        assert!(grid_title("AE", GridRange::MinMax).contains("full range"));
    }
}
