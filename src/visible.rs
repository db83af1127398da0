//! The one display rule for text that came from outside the household's own hands: DHCP host
//! names and vendor classes, mDNS names and services, SSIDs, anything a device announced.
//!
//! Control characters (C0, DEL, C1 — so ANSI escape sequences too), bidirectional embeddings,
//! overrides and isolates (U+202A–202E, U+2066–2069, U+061C, U+200E/F) and invisible or
//! zero-width characters (U+200B–200D, U+2060–2064, U+FEFF, U+00AD, fillers, tags …) are
//! shown as `\u{NNNN}`, so a name can neither reorder the text around it ("gpj.exe" shown as
//! "exe.jpg"), hide a difference between two names, nor drive a terminal. Everything else is
//! kept as is.
//!
//! It is applied at output, never at storage, so the API keeps the stored (raw, JSON-escaped)
//! string: every HTML page and HTML e-mail gets it through the askama escaper [`Html`] (HTML
//! escaping plus this rule), every text e-mail through [`Text`] (this rule alone), both set
//! for their file extensions in `askama.toml`, so no template can forget it. SSIDs (raw bytes)
//! use the same rule through [`push_char`].

use std::fmt::{self, Write};

/// Whether `c` must not reach a page, an e-mail or a terminal raw.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}'                       // soft hyphen (invisible unless at a line break)
            | '\u{034f}'                     // combining grapheme joiner
            | '\u{061c}'                     // Arabic letter mark (bidi)
            | '\u{115f}' | '\u{1160}'        // Hangul fillers (blank)
            | '\u{17b4}' | '\u{17b5}'        // Khmer inherent vowels (invisible)
            | '\u{180b}'..='\u{180f}'        // Mongolian selectors and vowel separator
            | '\u{200b}'..='\u{200f}'        // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}'        // line/paragraph separators, bidi embeddings/overrides
            | '\u{2060}'..='\u{206f}'        // word joiner, invisible operators, bidi isolates
            | '\u{3164}' | '\u{ffa0}'        // Hangul fillers (blank)
            | '\u{feff}'                     // BOM / zero-width no-break space
            | '\u{fff0}'..='\u{fffb}'        // interlinear annotation controls
            | '\u{1d173}'..='\u{1d17a}'      // musical formatting (invisible)
            | '\u{e0000}'..='\u{e007f}') // tag characters
}

/// Appends `c` in its visible form: itself, or `\u{NNNN}` when [`is_unsafe_char`].
pub fn push_char(out: &mut String, c: char) {
    // Writing to a String cannot fail.
    let _ = write_char(out, c);
}

fn write_char<W: Write>(out: &mut W, c: char) -> fmt::Result {
    if is_unsafe_char(c) {
        write!(out, "\\u{{{:04x}}}", u32::from(c))
    } else {
        out.write_char(c)
    }
}

/// `s` with every unsafe character shown as `\u{NNNN}` (for text built outside a template:
/// subjects of e-mails, log-free summaries).
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_char(&mut out, c);
    }
    out
}

/// Writes `s` with unsafe characters made visible; the runs between them go through `plain`.
fn write_visible<W: Write>(
    dest: &mut W,
    s: &str,
    plain: impl Fn(&mut W, &str) -> fmt::Result,
) -> fmt::Result {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if is_unsafe_char(c) {
            plain(dest, &s[start..i])?;
            write_char(dest, c)?;
            start = i + c.len_utf8();
        }
    }
    plain(dest, &s[start..])
}

/// The escaper of every HTML template: askama's HTML escaping plus the visible rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Html;

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: Write>(&self, mut dest: W, string: &str) -> fmt::Result {
        write_visible(&mut dest, string, |d, run| {
            askama::filters::Html.write_escaped_str(d, run)
        })
    }
}

/// The escaper of every text template (plain-text e-mails): the visible rule alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Text;

impl askama::filters::Escaper for Text {
    fn write_escaped_str<W: Write>(&self, mut dest: W, string: &str) -> fmt::Result {
        write_visible(&mut dest, string, |d, run| d.write_str(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use askama::filters::Escaper;

    #[test]
    fn bidi_invisible_and_control_characters_are_spelled_out() {
        let name = "phone\u{202e}gpj.exe\u{200b}\u{1b}[31mred\u{2066}x\u{feff}";
        assert_eq!(
            visible(name),
            "phone\\u{202e}gpj.exe\\u{200b}\\u{001b}[31mred\\u{2066}x\\u{feff}"
        );
        for c in [
            '\u{202a}', '\u{202d}', '\u{2069}', '\u{200f}', '\u{2064}', '\u{7f}', '\u{85}',
        ] {
            assert!(is_unsafe_char(c), "{:04x}", u32::from(c));
        }
        // Ordinary text, accents, CJK, emoji (with their variation selector and joiner-free
        // sequences) stay as they are.
        let fine = "Küche 📺️ 台所 <b>&\"'\\";
        assert_eq!(visible(fine), fine);
    }

    #[test]
    fn the_html_escaper_escapes_markup_and_makes_characters_visible() {
        let mut out = String::new();
        Html.write_escaped_str(&mut out, "<i>\u{202e}a&b</i>")
            .unwrap();
        assert_eq!(out, "&#60;i&#62;\\u{202e}a&#38;b&#60;/i&#62;");
        let mut out = String::new();
        Text.write_escaped_str(&mut out, "<i>\u{202e}</i>").unwrap();
        assert_eq!(out, "<i>\\u{202e}</i>");
    }

    #[derive(askama::Template)]
    #[template(source = "{{ s }}", ext = "html")]
    struct InHtml<'a> {
        s: &'a str,
    }

    #[derive(askama::Template)]
    #[template(source = "{{ s }}", ext = "txt")]
    struct InText<'a> {
        s: &'a str,
    }

    #[test]
    fn askama_toml_gives_every_template_the_rule() {
        use askama::Template;
        let s = "a\u{202e}<b>";
        assert_eq!(InHtml { s }.render().unwrap(), "a\\u{202e}&#60;b&#62;");
        assert_eq!(InText { s }.render().unwrap(), "a\\u{202e}<b>");
    }
}
