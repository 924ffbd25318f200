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

/// The range this client can encode for `api_key`, if it knows the API: the *request* type's
/// versions. (`ApiKey::valid_versions` in kafka-protocol 0.18 gives the response's range,
/// which is wider for OffsetCommit and OffsetFetch: v10 responses decode, v10 requests do not
/// encode, so negotiating v10 with a 4.x broker would fail every such request.)
pub fn client_range(api_key: i16) -> Option<(i16, i16)> {
    ApiKey::try_from(api_key).ok().map(|k| {
        let r = request_versions(k);
        (r.min, r.max)
    })
}

fn request_versions(key: ApiKey) -> kafka_protocol::protocol::VersionRange {
    use kafka_protocol::messages;
    use kafka_protocol::protocol::Message;
    match key {
        ApiKey::Produce => <messages::ProduceRequest as Message>::VERSIONS,
        ApiKey::Fetch => <messages::FetchRequest as Message>::VERSIONS,
        ApiKey::ListOffsets => <messages::ListOffsetsRequest as Message>::VERSIONS,
        ApiKey::Metadata => <messages::MetadataRequest as Message>::VERSIONS,
        ApiKey::OffsetCommit => <messages::OffsetCommitRequest as Message>::VERSIONS,
        ApiKey::OffsetFetch => <messages::OffsetFetchRequest as Message>::VERSIONS,
        ApiKey::FindCoordinator => <messages::FindCoordinatorRequest as Message>::VERSIONS,
        ApiKey::JoinGroup => <messages::JoinGroupRequest as Message>::VERSIONS,
        ApiKey::Heartbeat => <messages::HeartbeatRequest as Message>::VERSIONS,
        ApiKey::LeaveGroup => <messages::LeaveGroupRequest as Message>::VERSIONS,
        ApiKey::SyncGroup => <messages::SyncGroupRequest as Message>::VERSIONS,
        ApiKey::DescribeGroups => <messages::DescribeGroupsRequest as Message>::VERSIONS,
        ApiKey::ListGroups => <messages::ListGroupsRequest as Message>::VERSIONS,
        ApiKey::SaslHandshake => <messages::SaslHandshakeRequest as Message>::VERSIONS,
        ApiKey::ApiVersions => <messages::ApiVersionsRequest as Message>::VERSIONS,
        ApiKey::CreateTopics => <messages::CreateTopicsRequest as Message>::VERSIONS,
        ApiKey::DeleteTopics => <messages::DeleteTopicsRequest as Message>::VERSIONS,
        ApiKey::DeleteRecords => <messages::DeleteRecordsRequest as Message>::VERSIONS,
        ApiKey::InitProducerId => <messages::InitProducerIdRequest as Message>::VERSIONS,
        ApiKey::OffsetForLeaderEpoch => {
            <messages::OffsetForLeaderEpochRequest as Message>::VERSIONS
        }
        ApiKey::AddPartitionsToTxn => <messages::AddPartitionsToTxnRequest as Message>::VERSIONS,
        ApiKey::AddOffsetsToTxn => <messages::AddOffsetsToTxnRequest as Message>::VERSIONS,
        ApiKey::EndTxn => <messages::EndTxnRequest as Message>::VERSIONS,
        ApiKey::WriteTxnMarkers => <messages::WriteTxnMarkersRequest as Message>::VERSIONS,
        ApiKey::TxnOffsetCommit => <messages::TxnOffsetCommitRequest as Message>::VERSIONS,
        ApiKey::DescribeAcls => <messages::DescribeAclsRequest as Message>::VERSIONS,
        ApiKey::CreateAcls => <messages::CreateAclsRequest as Message>::VERSIONS,
        ApiKey::DeleteAcls => <messages::DeleteAclsRequest as Message>::VERSIONS,
        ApiKey::DescribeConfigs => <messages::DescribeConfigsRequest as Message>::VERSIONS,
        ApiKey::AlterConfigs => <messages::AlterConfigsRequest as Message>::VERSIONS,
        ApiKey::AlterReplicaLogDirs => <messages::AlterReplicaLogDirsRequest as Message>::VERSIONS,
        ApiKey::DescribeLogDirs => <messages::DescribeLogDirsRequest as Message>::VERSIONS,
        ApiKey::SaslAuthenticate => <messages::SaslAuthenticateRequest as Message>::VERSIONS,
        ApiKey::CreatePartitions => <messages::CreatePartitionsRequest as Message>::VERSIONS,
        ApiKey::CreateDelegationToken => {
            <messages::CreateDelegationTokenRequest as Message>::VERSIONS
        }
        ApiKey::RenewDelegationToken => {
            <messages::RenewDelegationTokenRequest as Message>::VERSIONS
        }
        ApiKey::ExpireDelegationToken => {
            <messages::ExpireDelegationTokenRequest as Message>::VERSIONS
        }
        ApiKey::DescribeDelegationToken => {
            <messages::DescribeDelegationTokenRequest as Message>::VERSIONS
        }
        ApiKey::DeleteGroups => <messages::DeleteGroupsRequest as Message>::VERSIONS,
        ApiKey::ElectLeaders => <messages::ElectLeadersRequest as Message>::VERSIONS,
        ApiKey::IncrementalAlterConfigs => {
            <messages::IncrementalAlterConfigsRequest as Message>::VERSIONS
        }
        ApiKey::AlterPartitionReassignments => {
            <messages::AlterPartitionReassignmentsRequest as Message>::VERSIONS
        }
        ApiKey::ListPartitionReassignments => {
            <messages::ListPartitionReassignmentsRequest as Message>::VERSIONS
        }
        ApiKey::OffsetDelete => <messages::OffsetDeleteRequest as Message>::VERSIONS,
        ApiKey::DescribeClientQuotas => {
            <messages::DescribeClientQuotasRequest as Message>::VERSIONS
        }
        ApiKey::AlterClientQuotas => <messages::AlterClientQuotasRequest as Message>::VERSIONS,
        ApiKey::DescribeUserScramCredentials => {
            <messages::DescribeUserScramCredentialsRequest as Message>::VERSIONS
        }
        ApiKey::AlterUserScramCredentials => {
            <messages::AlterUserScramCredentialsRequest as Message>::VERSIONS
        }
        ApiKey::Vote => <messages::VoteRequest as Message>::VERSIONS,
        ApiKey::BeginQuorumEpoch => <messages::BeginQuorumEpochRequest as Message>::VERSIONS,
        ApiKey::EndQuorumEpoch => <messages::EndQuorumEpochRequest as Message>::VERSIONS,
        ApiKey::DescribeQuorum => <messages::DescribeQuorumRequest as Message>::VERSIONS,
        ApiKey::AlterPartition => <messages::AlterPartitionRequest as Message>::VERSIONS,
        ApiKey::UpdateFeatures => <messages::UpdateFeaturesRequest as Message>::VERSIONS,
        ApiKey::Envelope => <messages::EnvelopeRequest as Message>::VERSIONS,
        ApiKey::FetchSnapshot => <messages::FetchSnapshotRequest as Message>::VERSIONS,
        ApiKey::DescribeCluster => <messages::DescribeClusterRequest as Message>::VERSIONS,
        ApiKey::DescribeProducers => <messages::DescribeProducersRequest as Message>::VERSIONS,
        ApiKey::BrokerRegistration => <messages::BrokerRegistrationRequest as Message>::VERSIONS,
        ApiKey::BrokerHeartbeat => <messages::BrokerHeartbeatRequest as Message>::VERSIONS,
        ApiKey::UnregisterBroker => <messages::UnregisterBrokerRequest as Message>::VERSIONS,
        ApiKey::DescribeTransactions => {
            <messages::DescribeTransactionsRequest as Message>::VERSIONS
        }
        ApiKey::ListTransactions => <messages::ListTransactionsRequest as Message>::VERSIONS,
        ApiKey::AllocateProducerIds => <messages::AllocateProducerIdsRequest as Message>::VERSIONS,
        ApiKey::ConsumerGroupHeartbeat => {
            <messages::ConsumerGroupHeartbeatRequest as Message>::VERSIONS
        }
        ApiKey::ConsumerGroupDescribe => {
            <messages::ConsumerGroupDescribeRequest as Message>::VERSIONS
        }
        ApiKey::ControllerRegistration => {
            <messages::ControllerRegistrationRequest as Message>::VERSIONS
        }
        ApiKey::GetTelemetrySubscriptions => {
            <messages::GetTelemetrySubscriptionsRequest as Message>::VERSIONS
        }
        ApiKey::PushTelemetry => <messages::PushTelemetryRequest as Message>::VERSIONS,
        ApiKey::AssignReplicasToDirs => {
            <messages::AssignReplicasToDirsRequest as Message>::VERSIONS
        }
        ApiKey::ListConfigResources => <messages::ListConfigResourcesRequest as Message>::VERSIONS,
        ApiKey::DescribeTopicPartitions => {
            <messages::DescribeTopicPartitionsRequest as Message>::VERSIONS
        }
        ApiKey::ShareGroupHeartbeat => <messages::ShareGroupHeartbeatRequest as Message>::VERSIONS,
        ApiKey::ShareGroupDescribe => <messages::ShareGroupDescribeRequest as Message>::VERSIONS,
        ApiKey::ShareFetch => <messages::ShareFetchRequest as Message>::VERSIONS,
        ApiKey::ShareAcknowledge => <messages::ShareAcknowledgeRequest as Message>::VERSIONS,
        ApiKey::AddRaftVoter => <messages::AddRaftVoterRequest as Message>::VERSIONS,
        ApiKey::RemoveRaftVoter => <messages::RemoveRaftVoterRequest as Message>::VERSIONS,
        ApiKey::UpdateRaftVoter => <messages::UpdateRaftVoterRequest as Message>::VERSIONS,
        ApiKey::InitializeShareGroupState => {
            <messages::InitializeShareGroupStateRequest as Message>::VERSIONS
        }
        ApiKey::ReadShareGroupState => <messages::ReadShareGroupStateRequest as Message>::VERSIONS,
        ApiKey::WriteShareGroupState => {
            <messages::WriteShareGroupStateRequest as Message>::VERSIONS
        }
        ApiKey::DeleteShareGroupState => {
            <messages::DeleteShareGroupStateRequest as Message>::VERSIONS
        }
        ApiKey::ReadShareGroupStateSummary => {
            <messages::ReadShareGroupStateSummaryRequest as Message>::VERSIONS
        }
        ApiKey::DescribeShareGroupOffsets => {
            <messages::DescribeShareGroupOffsetsRequest as Message>::VERSIONS
        }
        ApiKey::AlterShareGroupOffsets => {
            <messages::AlterShareGroupOffsetsRequest as Message>::VERSIONS
        }
        ApiKey::DeleteShareGroupOffsets => {
            <messages::DeleteShareGroupOffsetsRequest as Message>::VERSIONS
        }
    }
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

    #[test]
    fn client_range_is_what_requests_can_encode() {
        // kafka-protocol 0.18 decodes OffsetCommit/OffsetFetch v10 responses but encodes
        // requests only up to v9: negotiation must stop at v9.
        assert_eq!(client_range(8), Some((2, 9)));
        assert_eq!(client_range(9), Some((1, 9)));
        let t = ApiVersionsTable::from_ranges(4, [(8, 0, 10), (9, 0, 10)]);
        assert_eq!(t.max_version(8), Some(9));
        assert_eq!(t.max_version(9), Some(9));
    }
}
