//! What a broker and this client can both speak, from the ApiVersions exchange (KIP-35,
//! KIP-511).

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// One API's entry: what the broker advertised and what both sides share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    /// The API key.
    pub api_key: i16,
    /// The broker's `(min, max)`.
    pub broker: (i16, i16),
    /// This client's `(min, max)` (`kafka-protocol`'s `valid_versions`), if it knows the API.
    pub client: Option<(i16, i16)>,
    /// The intersection, if not empty.
    pub common: Option<(i16, i16)>,
}

/// The negotiated versions of one connection, sorted by API key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiVersionsTable {
    entries: Vec<ApiVersionRange>,
    api_versions_version: i16,
    /// Finalized cluster features (ApiVersions v3+, KIP-584): name and max version level.
    finalized_features: Vec<(String, i16)>,
}

/// The range this client can encode for `api_key`, if it knows the API.
pub fn client_range(api_key: i16) -> Option<(i16, i16)> {
    ApiKey::try_from(api_key).ok().map(|k| {
        let r = k.valid_versions();
        (r.min, r.max)
    })
}

impl ApiVersionsTable {
    /// Builds the table from a broker's ApiVersions response, received at `version`.
    pub fn from_response(version: i16, resp: &ApiVersionsResponse) -> Self {
        let mut table = Self::from_ranges(
            version,
            resp.api_keys
                .iter()
                .map(|k| (k.api_key, k.min_version, k.max_version)),
        );
        table.finalized_features = resp
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.max_version_level))
            .collect();
        table
    }

    /// The finalized version level of a cluster feature (`transaction.version`,
    /// `metadata.version`, `group.version`...), as the broker reported it when the connection
    /// was set up; `None` when the feature is not finalized or the broker predates KIP-584.
    pub fn finalized_feature(&self, name: &str) -> Option<i16> {
        self.finalized_features
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, level)| *level)
    }

    /// Builds the table from `(api_key, min, max)` broker ranges.
    pub fn from_ranges(version: i16, ranges: impl IntoIterator<Item = (i16, i16, i16)>) -> Self {
        let mut entries: Vec<ApiVersionRange> = ranges
            .into_iter()
            .map(|(api_key, min, max)| {
                let client = client_range(api_key);
                let common = client.and_then(|(cmin, cmax)| {
                    let lo = cmin.max(min);
                    let hi = cmax.min(max);
                    (lo <= hi).then_some((lo, hi))
                });
                ApiVersionRange {
                    api_key,
                    broker: (min, max),
                    client,
                    common,
                }
            })
            .collect();
        entries.sort_by_key(|e| e.api_key);
        entries.dedup_by_key(|e| e.api_key);
        Self {
            entries,
            api_versions_version: version,
            finalized_features: Vec::new(),
        }
    }

    /// The entry for `api_key`, if the broker advertised it.
    pub fn get(&self, api_key: i16) -> Option<&ApiVersionRange> {
        self.entries
            .binary_search_by_key(&api_key, |e| e.api_key)
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The highest version both sides support, if any.
    pub fn max_version(&self, api_key: i16) -> Option<i16> {
        self.get(api_key).and_then(|e| e.common).map(|(_, max)| max)
    }

    /// The common `(min, max)` range, if any.
    pub fn common_range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.get(api_key).and_then(|e| e.common)
    }

    /// The broker's advertised `(min, max)` range, if any.
    pub fn broker_range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.get(api_key).map(|e| e.broker)
    }

    /// Whether both sides support `version` of `api_key`.
    pub fn supports(&self, api_key: i16, version: i16) -> bool {
        self.common_range(api_key)
            .is_some_and(|(lo, hi)| lo <= version && version <= hi)
    }

    /// Every API the broker advertised, by key.
    pub fn iter(&self) -> impl Iterator<Item = &ApiVersionRange> {
        self.entries.iter()
    }

    /// The ApiVersions version the table was negotiated at (lower against old brokers).
    pub fn api_versions_version(&self) -> i16 {
        self.api_versions_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_with_client_ranges() {
        // Fetch (1): kafka-protocol knows 4..=18 (0.18); a 2.1 broker offers 0..=10.
        let t = ApiVersionsTable::from_ranges(2, [(1, 0, 10), (0, 0, 2), (9999, 0, 3)]);
        let (cmin, _) = client_range(1).unwrap();
        assert_eq!(t.common_range(1), Some((cmin, 10)));
        assert_eq!(t.max_version(1), Some(10));
        // Produce: client minimum is above the broker's maximum: nothing in common.
        let (pmin, _) = client_range(0).unwrap();
        assert!(pmin > 2);
        assert_eq!(t.max_version(0), None);
        assert_eq!(t.broker_range(0), Some((0, 2)));
        // Unknown API: recorded, nothing in common.
        assert_eq!(t.get(9999).unwrap().client, None);
        assert_eq!(t.max_version(9999), None);
        assert_eq!(t.max_version(3), None);
        assert!(t.supports(1, 10) && !t.supports(1, 11));
    }

    #[test]
    fn finalized_features_are_kept() {
        use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey};
        use kafka_protocol::protocol::StrBytes;
        let resp = ApiVersionsResponse::default()
            .with_api_keys(vec![ApiVersion::default()
                .with_api_key(0)
                .with_min_version(3)
                .with_max_version(13)])
            .with_finalized_features(vec![FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str("transaction.version"))
                .with_min_version_level(0)
                .with_max_version_level(2)]);
        let t = ApiVersionsTable::from_response(3, &resp);
        assert_eq!(t.finalized_feature("transaction.version"), Some(2));
        assert_eq!(t.finalized_feature("group.version"), None);
        assert_eq!(t.max_version(0), Some(13));
    }
}
