//! A small HTML scraper, enough for this server's own pages (the login and consent page, the
//! error page): start tags with their attributes, entities decoded, and a form's hidden
//! inputs, which is what a browser carries from the page into the form post.
//!
//! The one copy for the client examples (`examples/oauth_client`) and the HTTP tests
//! (`tests/api/helpers`, which include this file with `#[path]`). It is not a general HTML
//! parser: no comments, scripts or character data, which our pages do not put tags in.

/// A start tag's attributes in document order: `(lowercased name, decoded value)`; an
/// attribute without a value (`required`) has an empty one.
pub type Tag = Vec<(String, String)>;

/// Every start tag `<name ...>` in `html` (the name compared without regard to ASCII case).
pub fn find_tags(html: &str, name: &str) -> Vec<Tag> {
    // ASCII lowercasing keeps byte offsets identical, so positions map back onto `html`.
    let lower = html.to_ascii_lowercase();
    let needle = format!("<{}", name.to_ascii_lowercase());
    let mut tags = Vec::new();
    let mut from = 0;
    while let Some(found) = lower.get(from..).and_then(|rest| rest.find(&needle)) {
        let start = from + found + needle.len();
        let rest = html.get(start..).unwrap_or_default();
        let boundary = rest.chars().next();
        if !matches!(boundary, Some(c) if c.is_ascii_whitespace() || c == '>' || c == '/') {
            // `<inputs` or similar: not our tag.
            from = start;
            continue;
        }
        let (attrs, consumed) = parse_attributes(rest);
        tags.push(attrs);
        from = start + consumed;
    }
    tags
}

/// Parses attributes up to the closing `>` of a tag; returns them and the bytes consumed.
///
/// Every position it stops at is an ASCII delimiter (or the end), so the slices between
/// them fall on character boundaries.
fn parse_attributes(tag: &str) -> (Tag, usize) {
    let bytes = tag.as_bytes();
    let byte = |i: usize| bytes.get(i).copied();
    // The first position from `i` on whose byte does not satisfy `keep` (or the end).
    let skip = |mut i: usize, keep: &dyn Fn(u8) -> bool| {
        while byte(i).is_some_and(keep) {
            i += 1;
        }
        i
    };
    let text = |from: usize, to: usize| tag.get(from..to).unwrap_or_default();
    let mut attrs = Vec::new();
    let mut i = 0;
    loop {
        i = skip(i, &|b| b.is_ascii_whitespace() || b == b'/');
        match byte(i) {
            None => return (attrs, bytes.len()),
            Some(b'>') => return (attrs, i + 1),
            Some(_) => {}
        }
        let name_start = i;
        i = skip(i, &|b| {
            !b.is_ascii_whitespace() && !matches!(b, b'=' | b'>' | b'/')
        });
        let name = text(name_start, i).to_ascii_lowercase();
        i = skip(i, &|b| b.is_ascii_whitespace());
        let mut value = String::new();
        if byte(i) == Some(b'=') {
            i = skip(i + 1, &|b| b.is_ascii_whitespace());
            if let Some(quote @ (b'"' | b'\'')) = byte(i) {
                let value_start = i + 1;
                i = skip(value_start, &|b| b != quote);
                value = decode(text(value_start, i));
                i = (i + 1).min(bytes.len());
            } else {
                let value_start = i;
                i = skip(i, &|b| !b.is_ascii_whitespace() && b != b'>');
                value = decode(text(value_start, i));
            }
        }
        attrs.push((name, value));
    }
}

/// An attribute value with its character references decoded.
fn decode(raw: &str) -> String {
    html_escape::decode_html_entities(raw).into_owned()
}

/// Value of attribute `name` (lowercase) in a tag returned by [`find_tags`].
pub fn attr<'a>(tag: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tag.iter()
        .find(|(attr, _)| attr == name)
        .map(|(_, value)| value.as_str())
}

/// Every `<input type="hidden" name=.. value=..>` as `(name, value)`, in document order; a
/// hidden input without a `value` has an empty one, as a browser would post it.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    find_tags(html, "input")
        .iter()
        .filter(|tag| attr(tag, "type").is_some_and(|kind| kind.eq_ignore_ascii_case("hidden")))
        .filter_map(|tag| {
            let name = attr(tag, "name")?;
            Some((
                name.to_owned(),
                attr(tag, "value").unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}
