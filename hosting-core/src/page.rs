//! Keyset pagination: a page starts after an id and holds at most `limit` rows, so deep pages
//! cost the same as the first.

use serde::{Deserialize, Serialize};

use crate::error::InvalidValue;

/// Which page to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// Return rows whose id is greater than this; `None` starts at the beginning.
    pub after: Option<i64>,
    /// At most this many rows.
    pub limit: PageLimit,
}

impl PageRequest {
    /// The first page of `limit` rows.
    pub fn first(limit: PageLimit) -> Self {
        Self { after: None, limit }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(PageLimit::default())
    }
}

/// A page size between 1 and [`PageLimit::MAX`]; 50 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PageLimit(u32);

impl PageLimit {
    /// The largest page a store will return.
    pub const MAX: u32 = 500;

    /// The size as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(50)
    }
}

impl TryFrom<u32> for PageLimit {
    type Error = InvalidValue;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(InvalidValue::new("limit", "must be 1 to 500"))
        }
    }
}

impl From<PageLimit> for u32 {
    fn from(l: PageLimit) -> u32 {
        l.0
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows, in ascending id order.
    pub items: Vec<T>,
    /// Pass this as `after` to get the next page; `None` on the last page.
    pub next_after: Option<i64>,
}
