//! Self-contained HTML pages: images are embedded as data URIs, styles and the one small
//! script (sorting a table by a click on its header) inline; no other files, no network.

use base64::Engine;

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:72em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f0f0f0}td.l,th.l{text-align:left}td:not(.l){white-space:nowrap}.gallery{display:flex;flex-wrap:wrap;gap:.8em}\
.gallery figure{margin:0;width:140px;font-size:.8em}.gallery img{width:128px;border:1px solid #999}\
table.sortable th{cursor:pointer}table.sortable th:after{content:' \\2195';color:#999}\
.warn{background:#fff4e5;border-left:4px solid #e08a00;padding:.5em 1em;margin:1em 0}\
.warn ul{margin:.3em 0}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}";

/// Sorts `table.sortable` by the clicked column (numbers by value, text alphabetically; a
/// second click reverses). Marks the page with `data-sortable` once wired, for tests.
const SCRIPT: &str = "document.addEventListener('DOMContentLoaded',function(){\
document.querySelectorAll('table.sortable').forEach(function(t){\
t.querySelectorAll('thead th').forEach(function(th,i){th.addEventListener('click',function(){\
var up=th.dataset.dir!=='up';th.dataset.dir=up?'up':'down';var b=t.tBodies[0];\
var key=function(r){var s=r.cells[i].textContent.trim(),n=parseFloat(s);return isNaN(n)?s:n};\
Array.from(b.rows).sort(function(x,y){var a=key(x),c=key(y);\
var d=(typeof a==='number'&&typeof c==='number')?a-c:String(a).localeCompare(String(c));\
return up?d:-d}).forEach(function(r){b.appendChild(r)})})})});\
document.documentElement.dataset.sortable='ready'});";

/// Bytes as a data URI, so pages need no other files.
pub(crate) fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A whole page with the shared style and script.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body>\n{body}</body></html>\n",
        escape(title)
    )
}
