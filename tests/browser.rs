//! The HTML reports in a real browser (Debian's `chromium`, headless): a run's report and the
//! index of runs load without errors, every image decodes, and the index sorts by a click on a
//! column's title. Fails, saying how to install it, where no Chromium is installed
//! (`scripts/setup-system.sh --test` installs it as root; `make test` runs it).

use crate::common;

use std::path::{Path, PathBuf};

use common::fixtures::{image_folder, serial};
use tlearn::classify::train::{Scored, SplitOutcome, TrainConfig, TrainOutcome};
use tlearn::classify::Kind;
use tlearn::report::{compare, write_run, RunReport};

/// The first Chromium on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Collects errors (uncaught exceptions, failed resources, console.error) from the first
/// moment, then once the page has loaded: counts images that did not decode, clicks the
/// sortable table's `column` title (if any), and writes all of it as JSON into `<pre id=result>`.
fn instrument(column: &str) -> String {
    format!(
        "<script>window.__errors=[];\
window.addEventListener('error',function(e){{__errors.push(String(e.message||(e.target&&(e.target.src||e.target.href))||e.type))}},true);\
var __ce=console.error;console.error=function(){{__errors.push(Array.from(arguments).join(' '));__ce.apply(console,arguments)}};\
window.addEventListener('load',function(){{setTimeout(function(){{\
var imgs=Array.from(document.images),bad=imgs.filter(function(i){{return !i.complete||i.naturalWidth===0}}).length,sorted=[];\
var t=document.querySelector('table.sortable');\
if(t){{var ths=Array.from(t.tHead.rows[0].cells),i=ths.findIndex(function(th){{return th.textContent==='{column}'}});\
if(i>=0){{ths[i].click();sorted=Array.from(t.tBodies[0].rows).map(function(r){{return r.cells[i].textContent}})}}}}\
var pre=document.createElement('pre');pre.id='result';\
pre.textContent=JSON.stringify({{errors:__errors,images:imgs.length,bad:bad,script:document.documentElement.dataset.sortable||'',sorted:sorted}});\
document.body.appendChild(pre)}},0)}});</script>"
    )
}

/// What the instrumented copy of `page` reported in Chromium.
fn open_in_browser(browser: &Path, page: &Path, column: &str, work: &Path) -> serde_json::Value {
    let html = std::fs::read_to_string(page).unwrap();
    let at = html.find("<head>").expect("a page has a head") + "<head>".len();
    let copy = page.with_file_name("instrumented.html");
    std::fs::write(
        &copy,
        format!("{}{}{}", &html[..at], instrument(column), &html[at..]),
    )
    .unwrap();
    let out = common::fixtures::command("timeout")
        .arg("120")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", copy.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"result\">").unwrap_or_else(|| {
        panic!(
            "no result in the DOM:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    }) + "<pre id=\"result\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap()
}

fn outcome(identity: tlearn::cache::Identity, right: usize) -> TrainOutcome {
    let test = (0..6)
        .map(|i| {
            let (label, predicted) = (i % 3, if i < right { i % 3 } else { (i + 1) % 3 });
            let mut scores = vec![0.1f32; 3];
            scores[predicted] = 0.5 + 0.05 * i as f32;
            Scored {
                path: format!("class_{label}/img_{i:02}.png"),
                label,
                predicted,
                scores,
            }
        })
        .collect();
    TrainOutcome {
        config: TrainConfig::new(Kind::Svm),
        cache: "tiny.h5".into(),
        identity,
        class_names: (0..3).map(|c| format!("class_{c}")).collect(),
        splits: vec![SplitOutcome {
            split: 0,
            c: 0.1,
            grid: vec![
                tlearn::classify::train::GridPoint {
                    c: 0.01,
                    val_accuracy: 0.5,
                    fit_seconds: 0.1,
                    converged: true,
                },
                tlearn::classify::train::GridPoint {
                    c: 0.1,
                    val_accuracy: 0.75,
                    fit_seconds: 0.1,
                    converged: true,
                },
            ],
            train_rows: 12,
            val_images: 6,
            fit_seconds: 0.1,
            predict_seconds: 0.01,
            test,
            val: Vec::new(),
        }],
    }
}

#[test]
fn reports_load_in_chromium_without_errors_and_the_index_sorts() {
    let Some(browser) = chromium() else {
        panic!("the browser test cannot run: no chromium on PATH. Install it with scripts/setup-system.sh --test as root (apt-get install chromium), or make test");
    };
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let images = image_folder(dir.path(), 3, 8);
    let identity = tiny_identity(dir.path());
    let reports = dir.path().join("reports");
    let root = Some(images.display().to_string());
    for (name, right) in [("good", 5), ("poor", 2), ("middling", 4), ("perfect", 6)] {
        let report = RunReport::new(
            name,
            &(&outcome(identity.clone(), right)).into(),
            root.clone(),
            None,
        );
        write_run(&report, &reports.join(name)).unwrap();
    }
    compare(&reports, &mut |_| {}).unwrap();

    let page = open_in_browser(&browser, &reports.join("poor/report.html"), "#", dir.path());
    assert_eq!(page["errors"], serde_json::json!([]), "{page}");
    assert_eq!(page["script"], "ready", "the page's script ran: {page}");
    assert_eq!(page["bad"], 0, "every image decodes: {page}");
    // Plots (confusion x2, PR curves, C grid) and the 4 misclassified images' thumbnails.
    assert_eq!(page["images"], 8, "{page}");

    // Best first as written; a click sorts ascending by value (as text, 100 would come first).
    let column = "test accuracy %";
    let index = open_in_browser(&browser, &reports.join("index.html"), column, dir.path());
    assert_eq!(index["errors"], serde_json::json!([]), "{index}");
    let sorted = [
        "33.33 ± 0.00",
        "66.67 ± 0.00",
        "83.33 ± 0.00",
        "100.00 ± 0.00",
    ];
    assert_eq!(index["sorted"], serde_json::json!(sorted), "{index}");
}

/// The identity of a real tiny cache.
fn tiny_identity(dir: &Path) -> tlearn::cache::Identity {
    let model = common::fixtures::tiny_backbone(dir);
    let data = dir.join("images");
    let out = dir.join("tiny.h5");
    let mut cfg = common::fixtures::config(&data, &model, &out);
    cfg.pooling = tlearn::backbone::Pooling::Avg;
    tlearn::extract::run(&cfg, &tlearn::progress::Stop::new()).unwrap();
    tlearn::classify::data::CacheData::load(&out)
        .unwrap()
        .identity
}
