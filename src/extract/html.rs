//! HTML: visible text only. Scripts, styles, templates and hidden elements are
//! dropped; block elements become line breaks and headings become Markdown-style
//! `#` lines so the chunker sees the document's structure.

use scraper::{ElementRef, Html, Node};

use super::{Extracted, Format, Page, Rejection};

const SKIP: &[&str] = &[
    "script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object", "canvas",
    "button", "select", "input", "textarea",
];
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "blockquote",
    "pre",
    "br",
    "hr",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "address",
    "form",
    "fieldset",
    "details",
    "summary",
];

pub fn extract(bytes: &[u8]) -> Result<Extracted, Rejection> {
    let source = super::text::decode(bytes);
    let document = Html::parse_document(&source);
    let title = document
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "title")
        .map(|t| collapse(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    let mut out = String::new();
    walk(document.root_element(), &mut out, 0);
    Ok(Extracted {
        format: Format::Html,
        title,
        pages: vec![Page {
            number: 1,
            text: out,
            has_text_layer: true,
            ocr: None,
        }],
        warnings: Vec::new(),
    })
}

fn walk(element: ElementRef<'_>, out: &mut String, depth: usize) {
    // Deeply nested markup is a classic parser attack; text that deep is noise.
    if depth > 256 {
        return;
    }
    let name = element.value().name();
    if SKIP.contains(&name) || is_hidden(element) {
        return;
    }
    let heading_level = match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    };
    if let Some(level) = heading_level {
        let text = collapse(&element.text().collect::<String>());
        if !text.is_empty() {
            out.push_str("\n\n");
            out.push_str(&"#".repeat(level));
            out.push(' ');
            out.push_str(&text);
            out.push_str("\n\n");
        }
        return;
    }
    let block = BLOCK.contains(&name);
    if block {
        out.push_str(if name == "p" { "\n\n" } else { "\n" });
    }
    for child in element.children() {
        match child.value() {
            Node::Text(t) => {
                let collapsed = collapse_keep_edges(t);
                if !collapsed.is_empty() {
                    out.push_str(&collapsed);
                }
            }
            Node::Element(_) => {
                if let Some(el) = ElementRef::wrap(child) {
                    walk(el, out, depth + 1);
                }
            }
            _ => {}
        }
    }
    if matches!(name, "td" | "th") {
        out.push(' ');
    }
    if block {
        out.push_str(if name == "p" { "\n\n" } else { "\n" });
    }
}

fn is_hidden(element: ElementRef<'_>) -> bool {
    let v = element.value();
    if v.attr("hidden").is_some() || v.attr("aria-hidden") == Some("true") {
        return true;
    }
    v.attr("style").is_some_and(|s| {
        let s = s.to_ascii_lowercase().replace(' ', "");
        s.contains("display:none") || s.contains("visibility:hidden")
    })
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Collapse inner whitespace but keep one leading/trailing space so inline
/// elements (`a <b>bold</b> word`) do not glue words together.
fn collapse_keep_edges(s: &str) -> String {
    let inner = collapse(s);
    if inner.is_empty() {
        return if s.is_empty() {
            String::new()
        } else {
            " ".into()
        };
    }
    let lead = if s.starts_with(char::is_whitespace) {
        " "
    } else {
        ""
    };
    let trail = if s.ends_with(char::is_whitespace) {
        " "
    } else {
        ""
    };
    format!("{lead}{inner}{trail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_only_with_headings() {
        let html = br#"<!doctype html><html><head><title>T &amp; C</title>
            <style>p{color:red}</style><script>alert(1)</script></head>
            <body><h2>Scope</h2><p>Visible <b>bold</b> text.</p>
            <div style="display: none">secret</div><p hidden>also secret</p>
            <table><tr><td>a</td><td>b</td></tr></table></body></html>"#;
        let e = extract(html).unwrap();
        let text = crate::extract::normalise(&e.pages[0].text);
        assert_eq!(e.title.as_deref(), Some("T & C"));
        assert!(text.contains("## Scope"), "{text}");
        assert!(text.contains("Visible bold text."), "{text}");
        assert!(text.contains("a b"), "{text}");
        for hidden in ["alert", "color:red", "secret"] {
            assert!(!text.contains(hidden), "{hidden} leaked into {text}");
        }
    }
}
