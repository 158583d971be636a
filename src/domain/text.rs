use super::Invalid;

/// The characters a legacy `TEXT` column in `utf8` (utf8mb3) always holds: 65,535
/// bytes of characters of up to three bytes.
pub const TEXT_MAX_CHARS: usize = 21_845;

/// Checks that `value` fits a legacy text column of `max_chars` characters. The legacy
/// tables use `utf8` (utf8mb3), which cannot store characters outside the Basic
/// Multilingual Plane (emoji and the like); MySQL in strict mode refuses them with an
/// error, so they are refused here with a clear message, on both backends alike.
/// (`TEXT` holds 65,535 bytes: callers pass [`TEXT_MAX_CHARS`].)
pub fn check_text(value: &str, max_chars: usize) -> Result<(), Invalid> {
    if value.chars().count() > max_chars {
        return Err(Invalid::new(format!(
            "must be at most {max_chars} characters"
        )));
    }
    if value.chars().any(|c| c as u32 > 0xFFFF) {
        return Err(Invalid::new(
            "contains a character outside the Basic Multilingual Plane (e.g. an emoji), which the utf8 column cannot store",
        ));
    }
    Ok(())
}

/// Text fit for a legacy `utf8` (utf8mb3) column, for what efs-iam writes itself
/// (error texts, reasons): characters outside the Basic Multilingual Plane replaced,
/// at most `max_chars` characters.
pub fn storable_text(text: &str, max_chars: usize) -> String {
    text.chars()
        .map(|c| if (c as u32) > 0xFFFF { '\u{FFFD}' } else { c })
        .take(max_chars)
        .collect()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "aé€😀";
        assert_eq!(truncate_bytes(s, 100), s);
        assert_eq!(truncate_bytes(s, 2), "a");
        assert_eq!(truncate_bytes(s, 3), "aé");
        assert_eq!(truncate_bytes(s, 7), "aé€");
    }

    #[test]
    fn chars_and_bmp() {
        assert!(check_text(&"ä".repeat(255), 255).is_ok());
        assert!(check_text(&"ä".repeat(256), 255).is_err());
        assert!(check_text("smile 😀", 255).is_err());
        assert!(check_text("", 0).is_ok());
    }

    #[test]
    fn text_for_legacy_columns() {
        assert_eq!(storable_text("ok 😀 ok", 100), "ok \u{FFFD} ok");
        assert_eq!(storable_text("abcdef", 3), "abc");
    }
}
