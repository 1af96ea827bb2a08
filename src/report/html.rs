//! Self-contained HTML pages: images are embedded as data URIs, styles inline, no scripts.

use std::fmt::Write as _;

use base64::Engine;

use super::compare::Row;
use super::metrics::per_class;
use super::run::RunReport;
use super::write::{config_json, features_line, pct, Thumb};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:72em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f0f0f0}td.l,th.l{text-align:left}.gallery{display:flex;flex-wrap:wrap;gap:.8em}\
.gallery figure{margin:0;width:140px;font-size:.8em}.gallery img{width:128px;border:1px solid #999}\
.bad{color:#a50f15}pre{background:#f6f6f6;padding:1em;overflow:auto}";

/// Bytes as a data URI, so pages need no other files.
pub(crate) fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A whole page with the shared style.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        escape(title)
    )
}

/// The report page of one run.
pub(crate) fn run_page(
    r: &RunReport,
    png: &[u8],
    curves: &[Vec<u8>],
    thumbs: &[Option<Thumb>],
) -> String {
    let s = &r.summary;
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>{} — {}</h1>",
        escape(&r.run),
        escape(&r.method.label())
    );
    let _ = writeln!(
        b,
        "<p><b>Test accuracy {}% ± {}</b> (mean ± sample std over {} split(s)); top-5 {}% ± {}; macro F1 {} ± {}.</p>",
        pct(s.accuracy.mean), pct(s.accuracy.std), s.splits, pct(s.top5_accuracy.mean),
        pct(s.top5_accuracy.std), pct(s.macro_f1.mean), pct(s.macro_f1.std)
    );
    let _ = writeln!(
        b,
        "<p>Features: {} (<code>{}</code>). Training: {}. Fit {:.2} s ± {:.2}, predict {:.3} s per split.</p>",
        escape(&features_line(r)), escape(&r.cache),
        escape(&r.method.training_line()),
        s.fit_seconds.mean, s.fit_seconds.std, s.predict_seconds.mean
    );
    let _ = writeln!(b, "<h2>Splits</h2><table><tr><th>split</th><th>{}</th><th>val acc %</th><th>train rows</th><th>test images</th><th>accuracy %</th><th>top-5 %</th><th>macro P %</th><th>macro R %</th><th>macro F1 %</th><th>fit s</th><th>predict s</th></tr>", r.method.chosen_title());
    for sp in &r.splits {
        let (f, m) = (&sp.fit, &sp.metrics);
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.3}</td></tr>",
            f.split, escape(&f.chosen), pct(f.val_accuracy), f.train_rows, sp.test_images, pct(m.accuracy),
            pct(m.top5_accuracy), pct(m.macro_precision), pct(m.macro_recall), pct(m.macro_f1),
            f.fit_seconds, f.predict_seconds
        );
    }
    let _ = writeln!(b, "</table><h2>Per class (test images of all splits)</h2><table><tr><th>#</th><th class=l>class</th><th>precision %</th><th>recall %</th><th>F1 %</th><th>test images</th></tr>");
    for (i, c) in per_class(&r.class_names, &r.confusion).iter().enumerate() {
        let _ =
            writeln!(
            b,
            "<tr><td>{i}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name), pct(c.precision), pct(c.recall), pct(c.f1), c.support
        );
    }
    let _ = writeln!(
        b,
        "</table><h2>Confusion matrix</h2><p>Rows: true class, columns: predicted, by the index (#) above; counts summed over splits.</p><img alt=\"confusion matrix\" src=\"{}\">",
        data_uri("image/png", png)
    );
    if !curves.is_empty() {
        let _ = writeln!(b, "<h2>Training curves</h2>");
        for png in curves {
            let _ = writeln!(
                b,
                "<img alt=\"training curves\" src=\"{}\">",
                data_uri("image/png", png)
            );
        }
    }
    let _ = writeln!(
        b,
        "<h2>Misclassified test images ({} in all)</h2><div class=gallery>",
        r.misclassified.len()
    );
    for (miss, thumb) in r.misclassified.iter().zip(thumbs) {
        let img = thumb.as_ref().map_or(String::new(), |t| {
            format!("<img alt=\"\" src=\"{}\">", data_uri("image/jpeg", &t.jpeg))
        });
        let _ = writeln!(
            b,
            "<figure>{img}<figcaption>{}<br>true: {}<br><span class=bad>predicted: {}</span><br>split {}</figcaption></figure>",
            escape(&miss.path), escape(&r.class_names[miss.label]),
            escape(&r.class_names[miss.predicted]), miss.split
        );
    }
    let _ = writeln!(
        b,
        "</div><h2>Configuration</h2><pre>{}</pre>",
        escape(&config_json(r))
    );
    page(&format!("{} — tlearn report", r.run), &b)
}

/// The comparison page of many runs.
pub(crate) fn compare_page(rows: &[Row]) -> String {
    let mut b = String::from("<h1>tlearn: comparison of runs</h1><p>Test accuracy: mean ± sample std over the splits of each run.</p><table><tr>");
    for h in Row::HEADERS {
        let _ = write!(b, "<th class=l>{h}</th>");
    }
    b.push_str("</tr>\n");
    for row in rows {
        b.push_str("<tr>");
        for (i, cell) in row.cells().iter().enumerate() {
            if i == 0 {
                let _ = write!(
                    b,
                    "<td class=l><a href=\"{0}/report.html\">{0}</a></td>",
                    escape(cell)
                );
            } else {
                let _ = write!(b, "<td class=l>{}</td>", escape(cell));
            }
        }
        b.push_str("</tr>\n");
    }
    b.push_str("</table>\n");
    page("tlearn: comparison of runs", &b)
}
