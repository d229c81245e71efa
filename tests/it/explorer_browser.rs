//! The explorer in a real browser: headless Chromium, driven over WebDriver by chromedriver,
//! clicks known latent points of a comparison's explorer.html; the images the page decodes
//! must equal `latentlab decode` at the same points, and hovering a dot must show that test
//! image's digit. Needs the Debian packages chromium and chromium-driver (.ci/run installs
//! them); the screenshots land in target/tmp/explorer-*.png for a person to look at.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{latentlab, only_run, read_png, small_compare};

/// The largest difference allowed between the page's pixels and the Rust decoder's.
const TOLERANCE: f64 = 1e-4;

/// A chromedriver process and one browser session; both end when this is dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    fn start() -> Browser {
        let chromedriver = which("chromedriver").unwrap_or_else(|| {
            panic!(
                "chromedriver is not installed: the explorer test needs Chromium and its driver \
                 (Debian: apt-get install chromium chromium-driver, as .ci/run does)"
            )
        });
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free local port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        // One profile folder per browser: two tests of this process run side by side, and
        // Chromium refuses a profile another instance holds.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let nth = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let profile =
            std::env::temp_dir().join(format!("latentlab-chromium-{}-{nth}", std::process::id()));
        let mut options = json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        });
        if let Some(chromium) = which("chromium") {
            options["binary"] = json!(chromium);
        }
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}});
        let reply = browser.post("/session", caps);
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {reply}"))
            .to_string();
        browser
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut reply = ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(&body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let value: Value = reply.body_mut().read_json().expect("a JSON reply");
        assert!(
            reply.status().is_success(),
            "POST {path} failed: {}",
            value["value"]
        );
        value["value"].clone()
    }

    fn open(&self, file: &Path) {
        self.post("/url", json!({"url": format!("file://{}", file.display())}));
    }

    fn script(&self, source: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": source, "args": args}))
    }

    fn mouse(&self, actions: Value) {
        self.post(
            "/actions",
            json!({"actions": [{
                "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": actions,
            }]}),
        );
    }

    fn move_to(&self, (x, y): (i64, i64)) {
        self.mouse(
            json!([{"type": "pointerMove", "duration": 0, "origin": "viewport", "x": x, "y": y}]),
        );
    }

    fn click_at(&self, (x, y): (i64, i64)) {
        self.mouse(json!([
            {"type": "pointerMove", "duration": 0, "origin": "viewport", "x": x, "y": y},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerUp", "button": 0},
        ]));
    }

    fn screenshot(&self, path: &Path) {
        let mut reply = ureq::get(format!("{}/session/{}/screenshot", self.base, self.session))
            .call()
            .expect("a screenshot");
        let value: Value = reply.body_mut().read_json().expect("a JSON reply");
        let png = base64::engine::general_purpose::STANDARD
            .decode(value["value"].as_str().expect("base64 PNG"))
            .expect("valid base64");
        std::fs::write(path, png).expect("the screenshot is written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Viewport pixel of a latent point in the explorer's panel `panel`.
fn client_point(browser: &Browser, panel: usize, z: [f64; 2]) -> (i64, i64) {
    let p = browser.script(
        "return window.latentlab.clientPoint(arguments[0], arguments[1], arguments[2]);",
        json!([panel, z[0], z[1]]),
    );
    (
        p["x"].as_f64().expect("x").round() as i64,
        p["y"].as_f64().expect("y").round() as i64,
    )
}

/// `latentlab decode RUN --z ... --out F.csv`: one row of pixels per point.
fn rust_decode(run: &Path, points: &[[f64; 2]], out: &Path) -> Vec<Vec<f64>> {
    let mut cmd = latentlab();
    cmd.arg("decode").arg(run).arg("--out").arg(out);
    for p in points {
        cmd.arg("--z").arg(format!("{},{}", p[0], p[1]));
    }
    cmd.assert().success();
    let text = std::fs::read_to_string(out).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .skip(2)
                .map(|v| v.parse::<f64>().unwrap())
                .collect()
        })
        .collect()
}

fn as_pixels(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array of pixels")
        .iter()
        .map(|p| p.as_f64().expect("a number"))
        .collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn wait_for(browser: &Browser, condition: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while browser.script(condition, json!([])) != json!(true) {
        assert!(Instant::now() < deadline, "the page never met: {condition}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_explorer_decodes_in_the_browser_what_latentlab_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let (run, runs, cmp) = small_compare(dir.path(), 2000, 5, &[]);
    run.success();
    let (ae, vae) = (only_run(&runs, "ae-"), only_run(&runs, "vae-"));
    let explorer = cmp.join("explorer.html");
    assert!(ae.join("explorer.html").is_file() && vae.join("explorer.html").is_file());

    let browser = Browser::start();
    browser.open(&explorer);
    wait_for(
        &browser,
        "return !!window.latentlab && window.latentlab.atlasReady();",
    );
    assert_eq!(
        browser.script("return window.latentlab.models;", json!([])),
        json!(["ae", "vae"])
    );

    // Click known latent points in the AE's plane (panel 0) and in the VAE's (panel 1): the
    // page pins the point under the pixel and decodes it with both models. The points sit at
    // fixed places of each plane's box, whatever range one epoch of training gave the codes.
    let ranges = browser.script("return window.latentlab.ranges;", json!([]));
    let place = |panel: usize, f: [f64; 2]| -> [f64; 2] {
        let r = &ranges[panel];
        let at = |d: usize| {
            let (lo, hi) = (r["lo"][d].as_f64().unwrap(), r["hi"][d].as_f64().unwrap());
            lo + f[d] * (hi - lo)
        };
        [at(0), at(1)]
    };
    let targets = [
        (0, place(0, [0.5, 0.5])),
        (0, place(0, [0.2, 0.8])),
        (1, place(1, [0.3, 0.35])),
        (1, place(1, [0.75, 0.6])),
    ];
    let mut pinned = Vec::new();
    for (panel, z) in targets {
        let r = &ranges[panel];
        let pixel =
            [0, 1].map(|d| (r["hi"][d].as_f64().unwrap() - r["lo"][d].as_f64().unwrap()) / 400.0);
        browser.click_at(client_point(&browser, panel, z));
        let pin = browser.script("return window.latentlab.pinned();", json!([]));
        let at = [pin["z"][0].as_f64().unwrap(), pin["z"][1].as_f64().unwrap()];
        assert_eq!(pin["panel"], json!(panel));
        // The pinned point is the clicked pixel's: within a pixel or two of the target (the
        // plot area is about 450 pixels wide).
        for d in 0..2 {
            assert!(
                (at[d] - z[d]).abs() < 2.0 * pixel[d],
                "clicked {z:?} in panel {panel}, the page pinned {at:?}"
            );
        }
        pinned.push((
            at,
            as_pixels(&pin["decodes"][0]),
            as_pixels(&pin["decodes"][1]),
        ));
    }
    let points: Vec<[f64; 2]> = pinned.iter().map(|p| p.0).collect();
    let rust_ae = rust_decode(&ae, &points, &dir.path().join("ae.csv"));
    let rust_vae = rust_decode(&vae, &points, &dir.path().join("vae.csv"));
    for (k, (z, page_ae, page_vae)) in pinned.iter().enumerate() {
        assert_eq!(page_ae.len(), 784);
        let (dae, dvae) = (
            max_abs_diff(page_ae, &rust_ae[k]),
            max_abs_diff(page_vae, &rust_vae[k]),
        );
        eprintln!("z = {z:?}: page vs latentlab decode, max |diff| AE {dae:.2e}, VAE {dvae:.2e}");
        assert!(
            dae <= TOLERANCE && dvae <= TOLERANCE,
            "at {z:?}: AE {dae}, VAE {dvae}"
        );
        // A decoded image is an image, not a constant.
        let spread = page_ae.iter().cloned().fold(0.0, f64::max)
            - page_ae.iter().cloned().fold(1.0, f64::min);
        assert!(spread > 0.3, "the AE decode at {z:?} is nearly flat");
    }

    // Hovering the code of a test image shows that image and its label.
    let latents = std::fs::read_to_string(ae.join("latents.csv")).unwrap();
    let row: Vec<&str> = latents.lines().nth(1 + 17).unwrap().split(',').collect();
    let (index, label) = (row[0], row[1]);
    let code = [row[2].parse().unwrap(), row[3].parse().unwrap()];
    browser.move_to(client_point(&browser, 0, code));
    let caption = browser.script(
        "return document.querySelector('#panel-ae .hovered').parentNode.textContent;",
        json!([]),
    );
    let caption = caption.as_str().unwrap().to_string();
    // Another dot may sit on the same pixel; then it is that one, with its own label.
    assert!(caption.contains("test image #"), "hover caption: {caption}");
    if caption.contains(&format!("#{index},")) {
        assert!(caption.contains(&format!("digit {label}")), "{caption}");
    }

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let shot = shots.join("explorer-compare.png");
    browser.screenshot(&shot);
    let (w, h, pixels) = read_png(&shot);
    assert!(w >= 1000 && h >= 700, "screenshot {w}x{h}");
    let colours: std::collections::HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(colours.len() > 50, "the screenshot is nearly blank");

    // The single-run page works the same way.
    browser.open(&vae.join("explorer.html"));
    wait_for(
        &browser,
        "return !!window.latentlab && window.latentlab.atlasReady();",
    );
    let r = browser.script("return window.latentlab.ranges[0];", json!([]));
    let mid = [0, 1].map(|d| (r["lo"][d].as_f64().unwrap() + r["hi"][d].as_f64().unwrap()) / 2.0);
    browser.click_at(client_point(&browser, 0, mid));
    let pin = browser.script("return window.latentlab.pinned();", json!([]));
    let at = [pin["z"][0].as_f64().unwrap(), pin["z"][1].as_f64().unwrap()];
    let rust = rust_decode(&vae, &[at], &dir.path().join("vae1.csv"));
    assert!(max_abs_diff(&as_pixels(&pin["decodes"][0]), &rust[0]) <= TOLERANCE);
    browser.screenshot(&shots.join("explorer-vae.png"));
    eprintln!("screenshots: {}", shots.display());
}

/// The page decodes `--arch conv` models too: its transposed convolutions, written out in
/// JavaScript, give the pixels `latentlab decode` gives at a pinned point, for both models of
/// a conv comparison.
#[test]
fn the_explorer_decodes_conv_models_as_latentlab_does() {
    let dir = tempfile::tempdir().unwrap();
    let (run, runs, cmp) = small_compare(dir.path(), 600, 2, &["--arch", "conv"]);
    run.success();
    let (ae, vae) = (only_run(&runs, "ae-"), only_run(&runs, "vae-"));
    let browser = Browser::start();
    browser.open(&cmp.join("explorer.html"));
    wait_for(
        &browser,
        "return !!window.latentlab && window.latentlab.atlasReady();",
    );
    let r = browser.script("return window.latentlab.ranges[1];", json!([]));
    let at = [0, 1].map(|d| {
        let (lo, hi) = (r["lo"][d].as_f64().unwrap(), r["hi"][d].as_f64().unwrap());
        lo + 0.3 * (hi - lo)
    });
    browser.click_at(client_point(&browser, 1, at));
    let pin = browser.script("return window.latentlab.pinned();", json!([]));
    let z = [pin["z"][0].as_f64().unwrap(), pin["z"][1].as_f64().unwrap()];
    let rust_ae = rust_decode(&ae, &[z], &dir.path().join("ae.csv"));
    let rust_vae = rust_decode(&vae, &[z], &dir.path().join("vae.csv"));
    let (page_ae, page_vae) = (as_pixels(&pin["decodes"][0]), as_pixels(&pin["decodes"][1]));
    assert_eq!(page_ae.len(), 784);
    let (dae, dvae) = (
        max_abs_diff(&page_ae, &rust_ae[0]),
        max_abs_diff(&page_vae, &rust_vae[0]),
    );
    eprintln!("conv, z = {z:?}: page vs latentlab decode, max |diff| AE {dae:.2e}, VAE {dvae:.2e}");
    assert!(
        dae <= TOLERANCE && dvae <= TOLERANCE,
        "AE {dae}, VAE {dvae}"
    );
    let spread =
        page_vae.iter().cloned().fold(0.0, f64::max) - page_vae.iter().cloned().fold(1.0, f64::min);
    assert!(spread > 0.1, "the conv VAE decode at {z:?} is nearly flat");
}
