use super::Invalid;

/// The capacity of a legacy text column.
#[derive(Debug, Clone, Copy)]
pub enum TextLimit {
    /// `VARCHAR(n)`: n characters.
    Chars(usize),
    /// `TEXT`: 65,535 bytes.
    Bytes(usize),
}

pub const TEXT_BYTES: TextLimit = TextLimit::Bytes(65_535);

/// Checks that `value` fits its column. The legacy tables use `utf8` (utf8mb3), which
/// cannot store characters outside the Basic Multilingual Plane (emoji and the like);
/// MySQL in strict mode refuses them with an error, so they are refused here with a
/// clear message, on both backends alike.
pub fn check_text(value: &str, limit: TextLimit) -> Result<(), Invalid> {
    match limit {
        TextLimit::Chars(n) if value.chars().count() > n => {
            return Err(Invalid::new(format!("must be at most {n} characters")))
        }
        TextLimit::Bytes(n) if value.len() > n => {
            return Err(Invalid::new(format!("must be at most {n} bytes of UTF-8")))
        }
        _ => {}
    }
    if value.chars().any(|c| c as u32 > 0xFFFF) {
        return Err(Invalid::new(
            "contains a character outside the Basic Multilingual Plane (e.g. an emoji), which the utf8 column cannot store",
        ));
    }
    Ok(())
}

impl TextLimit {
    pub const TEXT: TextLimit = TEXT_BYTES;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chars_bytes_and_bmp() {
        assert!(check_text(&"ä".repeat(255), TextLimit::Chars(255)).is_ok());
        assert!(check_text(&"ä".repeat(256), TextLimit::Chars(255)).is_err());
        assert!(check_text(&"ä".repeat(40_000), TextLimit::TEXT).is_err());
        assert!(check_text("smile 😀", TextLimit::Chars(255)).is_err());
    }
}
