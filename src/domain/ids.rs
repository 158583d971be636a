use super::Invalid;

/// Ids of EFS rows are `INT(11)` columns; EFS never hands out zero or negative ids.
pub fn parse_row_id(raw: &str) -> Result<i32, Invalid> {
    match raw.parse::<i64>() {
        Ok(v) if (1..=i32::MAX as i64).contains(&v) => Ok(v as i32),
        Ok(_) => Err(Invalid::new(format!(
            "must be an integer from 1 to {}",
            i32::MAX
        ))),
        Err(_) => Err(Invalid::new("must be a positive integer")),
    }
}

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i32);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                parse_row_id(raw).map(Self)
            }
            pub fn new(v: i32) -> Result<Self, Invalid> {
                Self::parse(&v.to_string())
            }
            pub fn get(self) -> i32 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// An EFS portal (`portal_id` columns).
    PortalId
);
int_id!(
    /// An EFS user: an EFS-Admin user (`users.uid`) or a panelist (`panelists.uid`).
    EfsUserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_int11_range_only() {
        assert_eq!(PortalId::parse("1").unwrap().get(), 1);
        assert_eq!(PortalId::parse("2147483647").unwrap().get(), i32::MAX);
        for bad in ["0", "-1", "2147483648", "abc", "", "1.5", " 1"] {
            assert!(PortalId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
