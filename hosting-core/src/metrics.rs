//! Metrics storage. The monitoring issue brings the implementation and refines this trait.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::{MetricKind, NodeId, WebsiteId};

/// What a series measures and on which node or site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    /// The quantity.
    pub metric: MetricKind,
    /// The node it was measured on.
    pub node: NodeId,
    /// The site, for per-site metrics.
    pub website: Option<WebsiteId>,
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Which series.
    pub key: SeriesKey,
    /// When.
    pub at: DateTime<Utc>,
    /// The value.
    pub value: f64,
}

/// The bucket width of a query or rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// Samples as recorded.
    Raw,
    /// One point per minute.
    Minute,
    /// One point per hour.
    Hour,
    /// One point per day.
    Day,
}

/// An aggregated point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Bucket start.
    pub at: DateTime<Utc>,
    /// Minimum in the bucket.
    pub min: f64,
    /// Mean in the bucket.
    pub avg: f64,
    /// Maximum in the bucket.
    pub max: f64,
}

/// Stores samples in the panel's database, rolls them up and prunes them.
///
/// # Contract
/// - `query` returns points in time order, at the requested resolution, within `[from, to)`.
/// - `roll_up` is idempotent: running it twice for the same time gives the same rollups.
/// - `prune` removes only data older than the retention of its resolution.
#[async_trait]
pub trait MetricsStore: Debug + Send + Sync {
    /// Records samples.
    async fn record(&self, samples: &[Sample]) -> Result<()>;
    /// Reads a series.
    async fn query(
        &self,
        key: SeriesKey,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        resolution: Resolution,
    ) -> Result<Vec<Point>>;
    /// Aggregates finished buckets up to `now`.
    async fn roll_up(&self, now: DateTime<Utc>) -> Result<()>;
    /// Deletes data past retention; returns how many rows went.
    async fn prune(&self, now: DateTime<Utc>) -> Result<u64>;
}
