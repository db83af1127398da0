//! Just enough XML for UPnP descriptions and SOAP answers: the text of an element found by its
//! local name (any namespace prefix), and the bodies of repeated elements such as `<service>`.
//!
//! These documents are small, flat and machine-written; a full parser (a new dependency for
//! the Pi) would buy nothing the tests below do not cover: prefixes, attributes, self-closing
//! elements, comments and the five predefined entities.

/// The inner text of every element whose local name is `local`, in document order. Nested
/// elements of the same name are not expected in the documents read here.
pub fn elements<'a>(xml: &'a str, local: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some((open_end, qname, self_closing)) = next_open(xml, rest, local) {
        if self_closing {
            out.push("");
            rest = open_end;
            continue;
        }
        let close = format!("</{qname}");
        // `</service` also starts `</serviceType>`: the name must end there.
        let found = xml[open_end..].match_indices(&close).find(|(i, _)| {
            xml[open_end + i + close.len()..].starts_with(|c: char| c == '>' || c.is_whitespace())
        });
        match found {
            Some((i, _)) => {
                out.push(&xml[open_end..open_end + i]);
                rest = open_end + i + close.len();
            }
            None => break,
        }
    }
    out
}

/// The unescaped, trimmed text of the first element named `local`.
pub fn text(xml: &str, local: &str) -> Option<String> {
    elements(xml, local).first().map(|t| unescape(t.trim()))
}

/// Finds the next start tag with local name `local` at or after `from`: (index after its `>`,
/// qualified name, whether it is self-closing).
fn next_open<'a>(xml: &'a str, from: usize, local: &str) -> Option<(usize, &'a str, bool)> {
    let mut i = from;
    while let Some(lt) = xml[i..].find('<').map(|p| p + i) {
        let after = &xml[lt + 1..];
        if after.starts_with("!--") {
            i = xml[lt..].find("-->").map_or(xml.len(), |p| lt + p + 3);
            continue;
        }
        let end = after
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(after.len());
        let qname = &after[..end];
        let gt = xml[lt..].find('>').map(|p| lt + p)?;
        let is_start = !qname.is_empty() && !qname.starts_with(['/', '?', '!']);
        if is_start && qname.rsplit(':').next() == Some(local) {
            let self_closing = xml[..gt].ends_with('/');
            return Some((gt + 1, qname, self_closing));
        }
        i = gt + 1;
    }
    None
}

/// The predefined entities and numeric character references.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..semi];
        let ch = match ent {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=semi]),
        }
        rest = &tail[semi + 1..];
    }
    out.push_str(rest);
    out
}

/// Escapes text for an element body.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_by_local_name_under_any_prefix() {
        let x = r#"<?xml version="1.0"?><!-- <a>no</a> --><s:Envelope><s:Body><u:R xmlns:u="x"><NewA>1</NewA><m:NewB attr="2">  7 </m:NewB><NewC/></u:R></s:Body></s:Envelope>"#;
        assert_eq!(text(x, "NewA").as_deref(), Some("1"));
        assert_eq!(text(x, "NewB").as_deref(), Some("7"));
        assert_eq!(text(x, "NewC").as_deref(), Some(""));
        assert_eq!(text(x, "a"), None);
        assert_eq!(text(x, "New"), None);
    }

    #[test]
    fn repeated_elements_come_in_order() {
        let x = "<l><service><serviceType>a</serviceType></service><service><serviceType>b</serviceType></service ></l>";
        let got: Vec<_> = elements(x, "service")
            .into_iter()
            .filter_map(|s| text(s, "serviceType"))
            .collect();
        assert_eq!(got, ["a", "b"]);
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(unescape("a&amp;b&lt;&#65;&#x42;&bogus;"), "a&b<AB&bogus;");
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
