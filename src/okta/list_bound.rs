//! [`ListBound`]: where a paged Okta listing stops, whatever the pages say.

/// How far a listing may go before efs-iam stops following its pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListBound {
    pub max_items: usize,
    pub max_pages: usize,
    pub deadline: std::time::Duration,
}

impl Default for ListBound {
    /// Far beyond any EFS portal (the largest panels hold thousands), still finite.
    fn default() -> Self {
        Self {
            max_items: 1_000_000,
            max_pages: 10_000,
            deadline: std::time::Duration::from_secs(1800),
        }
    }
}

impl ListBound {
    /// Why a listing that has read `items` in `pages` over `elapsed`, and has more,
    /// stops here.
    pub(super) fn passed(
        &self,
        items: usize,
        pages: usize,
        elapsed: std::time::Duration,
    ) -> Option<String> {
        let why = if items >= self.max_items {
            format!("{items} items")
        } else if pages >= self.max_pages {
            format!("{pages} pages")
        } else if elapsed >= self.deadline {
            format!("{:.0} s", elapsed.as_secs_f64())
        } else {
            return None;
        };
        Some(format!(
            "the listing went on past its bound ({why}; at most {} items, {} pages, {} s); stopped without using it",
            self.max_items,
            self.max_pages,
            self.deadline.as_secs()
        ))
    }
}
