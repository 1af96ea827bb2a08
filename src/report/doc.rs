//! One model of a report's content (headings, paragraphs, lists, warnings, tables, images, a
//! gallery, code) rendered both as Markdown and as HTML, so report.md and report.html always
//! show the same things, from the same values.
//!
//! Text uses a small subset of Markdown's inline markup, `**bold**` and `` `code` ``; the HTML
//! renderer turns those into tags and escapes everything else.

use std::fmt::Write as _;

use super::html::{data_uri, escape};

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table column: its title and alignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Title in the header row.
    pub title: String,
    /// Alignment of the column's cells.
    pub align: Align,
}

impl Column {
    /// A left-aligned (text) column.
    pub fn left(title: impl Into<String>) -> Column {
        Column {
            title: title.into(),
            align: Align::Left,
        }
    }

    /// A right-aligned (numeric) column.
    pub fn right(title: impl Into<String>) -> Column {
        Column {
            title: title.into(),
            align: Align::Right,
        }
    }
}

/// One table cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text, with inline markup.
    Text(String),
    /// A link to another report page, named without its extension: `svm/report` links to
    /// `svm/report.md` from Markdown and to `svm/report.html` from HTML.
    Page {
        /// The link's text.
        text: String,
        /// The page, relative to the linking page, without extension.
        page: String,
    },
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::Text(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::Text(text.to_string())
    }
}

/// A table: header, rows, alignment, and whether a reader may sort it by a click on a column.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, one cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// Sortable in HTML (by the page's inline script).
    pub sortable: bool,
}

impl Table {
    /// An empty table of these columns.
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
            sortable: false,
        }
    }

    /// The same table, sortable in HTML.
    pub fn sortable(mut self) -> Table {
        self.sortable = true;
        self
    }

    /// Adds a row (one cell per column).
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len(), "one cell per column");
        self.rows.push(row);
    }

    /// The table as Markdown (GitHub's pipe tables, right-aligned numeric columns).
    pub fn markdown(&self) -> String {
        let mut md = String::from("|");
        for c in &self.columns {
            let _ = write!(md, " {} |", md_cell(&c.title));
        }
        md.push_str("\n|");
        for c in &self.columns {
            md.push_str(match c.align {
                Align::Left => "---|",
                Align::Right => "---:|",
            });
        }
        md.push('\n');
        for row in &self.rows {
            md.push('|');
            for cell in row {
                let text = match cell {
                    Cell::Text(t) => md_cell(t),
                    Cell::Page { text, page } => format!("[{}]({page}.md)", md_cell(text)),
                };
                let _ = write!(md, " {text} |");
            }
            md.push('\n');
        }
        md
    }

    /// The table as HTML.
    pub fn html(&self) -> String {
        let class = |align: Align| match align {
            Align::Left => " class=\"l\"",
            Align::Right => "",
        };
        let mut h = String::from(if self.sortable {
            "<table class=\"sortable\"><thead><tr>"
        } else {
            "<table><thead><tr>"
        });
        for c in &self.columns {
            let _ = write!(h, "<th{}>{}</th>", class(c.align), escape(&c.title));
        }
        h.push_str("</tr></thead><tbody>\n");
        for row in &self.rows {
            h.push_str("<tr>");
            for (cell, column) in row.iter().zip(&self.columns) {
                let text = match cell {
                    Cell::Text(t) => inline(t),
                    Cell::Page { text, page } => {
                        format!("<a href=\"{}.html\">{}</a>", escape(page), inline(text))
                    }
                };
                let _ = write!(h, "<td{}>{text}</td>", class(column.align));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table>\n");
        h
    }
}

/// An image: a file of the report folder for Markdown, embedded for HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Alternative text.
    pub alt: String,
    /// File name relative to the report folder (`.png` or `.jpg`).
    pub file: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl Image {
    fn html(&self) -> String {
        let mime = if self.file.ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        format!(
            "<img alt=\"{}\" src=\"{}\">",
            escape(&self.alt),
            data_uri(mime, &self.bytes)
        )
    }
}

/// One picture of a gallery with its caption, one cell per gallery column.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The picture, if there is one.
    pub image: Option<Image>,
    /// Caption cells (inline markup), one per column of the gallery.
    pub caption: Vec<String>,
}

/// Pictures with captions: a table in Markdown, a grid of figures in HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    /// Titles of the caption cells (Markdown's header; HTML prefixes all but the first).
    pub columns: Vec<String>,
    /// The figures.
    pub figures: Vec<Figure>,
}

/// A piece of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of level 1 (the title) to 3.
    Heading(u8, String),
    /// A paragraph.
    Para(String),
    /// A bulleted list.
    List(Vec<String>),
    /// Warnings about what the numbers can be trusted for (empty: nothing is shown).
    Warnings(Vec<String>),
    /// A table.
    Table(Table),
    /// An image.
    Image(Image),
    /// A gallery.
    Gallery(Gallery),
    /// Preformatted text and its language (`json`, `sh`).
    Code(String, String),
    /// A link, alone on its line, to another report page named without extension (as
    /// [`Cell::Page`]).
    Link(String, String),
}

/// Blocks as Markdown.
pub fn markdown(blocks: &[Block]) -> String {
    let mut md = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                let _ = writeln!(md, "{} {t}\n", "#".repeat(usize::from(*level).max(1)));
            }
            Block::Para(t) => {
                let _ = writeln!(md, "{t}\n");
            }
            Block::List(items) => {
                items.iter().for_each(|i| {
                    let _ = writeln!(md, "- {i}");
                });
                md.push('\n');
            }
            Block::Warnings(items) if items.is_empty() => {}
            Block::Warnings(items) => {
                items.iter().for_each(|i| {
                    let _ = writeln!(md, "> **Warning:** {i}\n>");
                });
                md.truncate(md.len() - 2);
                md.push('\n');
            }
            Block::Table(t) => {
                let _ = writeln!(md, "{}", t.markdown());
            }
            Block::Image(i) => {
                let _ = writeln!(md, "![{}]({})\n", i.alt, i.file);
            }
            Block::Gallery(g) => {
                let _ = writeln!(md, "{}", gallery_table(g).markdown());
            }
            Block::Code(lang, t) => {
                let _ = writeln!(md, "```{lang}\n{t}\n```\n");
            }
            Block::Link(text, page) => {
                let _ = writeln!(md, "[{text}]({page}.md)\n");
            }
        }
    }
    md
}

/// A gallery as a table whose first column shows the picture.
fn gallery_table(g: &Gallery) -> Table {
    let mut columns = vec![Column::left("image")];
    columns.extend(g.columns.iter().map(Column::left));
    let mut table = Table::new(columns);
    for f in &g.figures {
        let picture = f
            .image
            .as_ref()
            .map_or(String::new(), |i| format!("![{}]({})", i.alt, i.file));
        let mut row = vec![Cell::Text(picture)];
        row.extend(f.caption.iter().map(|c| Cell::Text(c.clone())));
        table.push(row);
    }
    table
}

/// Blocks as the body of an HTML page.
pub fn html(blocks: &[Block]) -> String {
    let mut h = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                let tag = format!("h{}", level.clamp(&1, &6));
                let _ = writeln!(h, "<{tag}>{}</{tag}>", inline(t));
            }
            Block::Para(t) => {
                let _ = writeln!(h, "<p>{}</p>", inline(t));
            }
            Block::List(items) => {
                let _ = writeln!(h, "<ul>{}</ul>", list_items(items));
            }
            Block::Warnings(items) if items.is_empty() => {}
            Block::Warnings(items) => {
                let _ = writeln!(
                    h,
                    "<div class=\"warn\"><b>Warnings</b><ul>{}</ul></div>",
                    list_items(items)
                );
            }
            Block::Table(t) => h.push_str(&t.html()),
            Block::Image(i) => {
                let _ = writeln!(h, "<p>{}</p>", i.html());
            }
            Block::Gallery(g) => h.push_str(&gallery_html(g)),
            Block::Code(_, t) => {
                let _ = writeln!(h, "<pre>{}</pre>", escape(t));
            }
            Block::Link(text, page) => {
                let _ = writeln!(
                    h,
                    "<p><a href=\"{}.html\">{}</a></p>",
                    escape(page),
                    inline(text)
                );
            }
        }
    }
    h
}

fn list_items(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("<li>{}</li>", inline(i)))
        .collect()
}

fn gallery_html(g: &Gallery) -> String {
    let mut h = String::from("<div class=\"gallery\">\n");
    for f in &g.figures {
        let picture = f.image.as_ref().map_or(String::new(), Image::html);
        let caption: Vec<String> = f
            .caption
            .iter()
            .zip(&g.columns)
            .enumerate()
            .map(|(i, (text, title))| {
                if i == 0 || title.is_empty() {
                    inline(text)
                } else {
                    format!("{}: {}", escape(title), inline(text))
                }
            })
            .collect();
        let _ = writeln!(
            h,
            "<figure>{picture}<figcaption>{}</figcaption></figure>",
            caption.join("<br>")
        );
    }
    h.push_str("</div>\n");
    h
}

/// Text for a Markdown table cell: a `|` would end the cell.
fn md_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Markdown's `**bold**` and `` `code` `` as HTML tags, the rest escaped.
pub fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(text).split("**").enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<b>{part}</b>");
            continue;
        }
        for (j, piece) in part.split('`').enumerate() {
            if j % 2 == 1 {
                let _ = write!(out, "<code>{piece}</code>");
            } else {
                out.push_str(piece);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(vec![Column::left("run"), Column::right("accuracy %")]).sortable();
        t.push(vec![
            Cell::Page {
                text: "svm".into(),
                page: "svm/report".into(),
            },
            "94.80".into(),
        ]);
        t.push(vec!["a|b <x>".into(), "**1.00**".into()]);
        t
    }

    #[test]
    fn one_table_renders_as_markdown_and_html() {
        let md = table().markdown();
        assert_eq!(
            md,
            "| run | accuracy % |\n|---|---:|\n| [svm](svm/report.md) | 94.80 |\n| a\\|b <x> | **1.00** |\n"
        );
        let html = table().html();
        assert!(
            html.starts_with(
                "<table class=\"sortable\"><thead><tr><th class=\"l\">run</th><th>accuracy %</th>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"l\"><a href=\"svm/report.html\">svm</a></td><td>94.80</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"l\">a|b &lt;x&gt;</td><td><b>1.00</b></td>"),
            "{html}"
        );
    }

    #[test]
    fn warnings_show_only_when_there_are_some() {
        assert_eq!(markdown(&[Block::Warnings(vec![])]), "");
        assert_eq!(html(&[Block::Warnings(vec![])]), "");
        let md = markdown(&[Block::Warnings(vec!["a".into(), "b".into()])]);
        assert_eq!(md, "> **Warning:** a\n>\n> **Warning:** b\n\n");
        assert!(html(&[Block::Warnings(vec!["`x`".into()])]).contains("<li><code>x</code></li>"));
    }
}
