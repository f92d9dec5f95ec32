//! The polling event triggers. The S3 one lists a bucket prefix every interval and says
//! what is there (how many objects, the newest modification); the Salesforce one counts
//! an object's records changed since the last question. The service starts a run when
//! something is new, and the flow's incremental source reads just that: the trigger
//! decides when, the source's watermark what.

use crate::connectors::s3::{Access, explain, normalize_prefix};
use crate::paths::Dirs;

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
    dirs: &Dirs,
    connection: Option<&str>,
    region: Option<&str>,
    endpoint_url: Option<&str>,
    bucket: &str,
    prefix: &str,
) -> Result<Listing, String> {
    let access =
        Access::resolve(dirs, connection, region, endpoint_url).map_err(|e| e.to_string())?;
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

/// How many records of `object` changed after `since` (by `SystemModstamp`).
pub async fn salesforce(
    dirs: &crate::paths::Dirs,
    connection: &str,
    object: &str,
    since: jiff::Timestamp,
) -> Result<u64, String> {
    use crate::connectors::framework::service;
    use crate::connectors::salesforce::{Org, Salesforce, salesforce_words};
    if object.is_empty()
        || !object
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!("`{object}` is not an object's API name"));
    }
    let client = service::client(&Salesforce, dirs, connection).map_err(|e| e.to_string())?;
    let org = Org::of(&client).map_err(|e| e.to_string())?;
    let soql = format!(
        "SELECT COUNT() FROM {object} WHERE SystemModstamp > {}",
        since.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    let url = org.url("/query");
    let (answer, _) = org
        .api
        .get_json(&format!("counting changed {object} records"), |c| {
            c.get(&url).query(&[("q", &soql)])
        })
        .await
        .map_err(|e| salesforce_words(&e.message))?;
    answer["totalSize"]
        .as_u64()
        .ok_or_else(|| format!("Salesforce's count of {object} records has no totalSize"))
}
