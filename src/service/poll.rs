//! The S3 event trigger: lists a bucket prefix every interval and says what is there (how
//! many objects, the newest modification), so the service starts a run when something
//! new arrived. The flow's incremental `source.s3` then reads just the new objects: the
//! trigger decides when, the source's watermark what.

use crate::connectors::s3::{Access, explain, normalize_prefix};

/// What a listing found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    pub objects: u64,
    /// The newest object's modification, in nanoseconds since 1970; 0 for none.
    pub newest: i64,
}

impl Listing {
    /// Whether this listing holds something the earlier one did not.
    pub fn has_news_since(&self, earlier: Listing) -> bool {
        self.newest > earlier.newest || self.objects > earlier.objects
    }
}

/// Lists `s3://bucket/prefix`.
pub async fn list(
    connection: Option<&str>,
    region: Option<&str>,
    endpoint_url: Option<&str>,
    bucket: &str,
    prefix: &str,
) -> Result<Listing, String> {
    let access = Access::resolve(connection, region, endpoint_url).map_err(|e| e.to_string())?;
    let client = access.client().await.map_err(|e| e.to_string())?;
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(normalize_prefix(prefix))
        .into_paginator()
        .send();
    let mut listing = Listing {
        objects: 0,
        newest: 0,
    };
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| explain(e, &access, bucket).to_string())?;
        for object in page.contents() {
            if object.key().is_none_or(|k| k.ends_with('/')) {
                continue;
            }
            listing.objects += 1;
            let modified = object
                .last_modified()
                .and_then(|t| t.to_millis().ok())
                .map_or(0, |ms| ms.saturating_mul(1_000_000));
            listing.newest = listing.newest.max(modified);
        }
    }
    Ok(listing)
}
