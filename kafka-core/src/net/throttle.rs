//! Client-side quota back-off (KIP-219).
//!
//! Since Kafka 2.0 a broker that throttles a client answers at once, with `throttle_time_ms`
//! set, and then mutes the channel; the client must not send more requests on that connection
//! before the throttle time has passed. Before KIP-219 the broker delayed the response itself,
//! so for the older versions of each API the client must *not* back off a second time: the
//! first version that carries the new semantics is listed below for each API (the versions
//! follow the Java client's `shouldClientThrottle`). APIs added after Kafka 2.0 throttle
//! client-side from their first version.

use std::any::Any;

use kafka_protocol::messages::*;

macro_rules! throttle_table {
    ($($key:ident => $ty:ty, $since:expr;)*) => {
        /// `throttle_time_ms` of a decoded response, when the broker expects the client to
        /// back off for it at this version.
        pub(crate) fn client_throttle_ms(api_key: i16, version: i16, resp: &dyn Any) -> Option<i32> {
            $(
                if api_key == ApiKey::$key as i16 {
                    if version < $since {
                        return None;
                    }
                    return resp.downcast_ref::<$ty>().map(|r| r.throttle_time_ms);
                }
            )*
            None
        }
    };
}

throttle_table! {
    Produce => ProduceResponse, 6;
    Fetch => FetchResponse, 8;
    ListOffsets => ListOffsetsResponse, 3;
    Metadata => MetadataResponse, 6;
    OffsetCommit => OffsetCommitResponse, 4;
    OffsetFetch => OffsetFetchResponse, 4;
    FindCoordinator => FindCoordinatorResponse, 2;
    JoinGroup => JoinGroupResponse, 3;
    Heartbeat => HeartbeatResponse, 2;
    LeaveGroup => LeaveGroupResponse, 2;
    SyncGroup => SyncGroupResponse, 2;
    DescribeGroups => DescribeGroupsResponse, 2;
    ListGroups => ListGroupsResponse, 2;
    ApiVersions => ApiVersionsResponse, 2;
    CreateTopics => CreateTopicsResponse, 3;
    DeleteTopics => DeleteTopicsResponse, 2;
    DeleteRecords => DeleteRecordsResponse, 1;
    InitProducerId => InitProducerIdResponse, 1;
    OffsetForLeaderEpoch => OffsetForLeaderEpochResponse, 2;
    AddPartitionsToTxn => AddPartitionsToTxnResponse, 1;
    AddOffsetsToTxn => AddOffsetsToTxnResponse, 1;
    EndTxn => EndTxnResponse, 1;
    TxnOffsetCommit => TxnOffsetCommitResponse, 1;
    DescribeAcls => DescribeAclsResponse, 1;
    CreateAcls => CreateAclsResponse, 1;
    DeleteAcls => DeleteAclsResponse, 1;
    DescribeConfigs => DescribeConfigsResponse, 2;
    AlterConfigs => AlterConfigsResponse, 1;
    AlterReplicaLogDirs => AlterReplicaLogDirsResponse, 1;
    DescribeLogDirs => DescribeLogDirsResponse, 1;
    CreatePartitions => CreatePartitionsResponse, 1;
    CreateDelegationToken => CreateDelegationTokenResponse, 1;
    RenewDelegationToken => RenewDelegationTokenResponse, 1;
    ExpireDelegationToken => ExpireDelegationTokenResponse, 1;
    DescribeDelegationToken => DescribeDelegationTokenResponse, 1;
    DeleteGroups => DeleteGroupsResponse, 1;
    // Added after KIP-219: client-side throttling from v0.
    ElectLeaders => ElectLeadersResponse, 0;
    IncrementalAlterConfigs => IncrementalAlterConfigsResponse, 0;
    AlterPartitionReassignments => AlterPartitionReassignmentsResponse, 0;
    ListPartitionReassignments => ListPartitionReassignmentsResponse, 0;
    OffsetDelete => OffsetDeleteResponse, 0;
    DescribeClientQuotas => DescribeClientQuotasResponse, 0;
    AlterClientQuotas => AlterClientQuotasResponse, 0;
    DescribeUserScramCredentials => DescribeUserScramCredentialsResponse, 0;
    AlterUserScramCredentials => AlterUserScramCredentialsResponse, 0;
    UpdateFeatures => UpdateFeaturesResponse, 0;
    DescribeCluster => DescribeClusterResponse, 0;
    DescribeProducers => DescribeProducersResponse, 0;
    DescribeTransactions => DescribeTransactionsResponse, 0;
    ListTransactions => ListTransactionsResponse, 0;
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse, 0;
    ConsumerGroupDescribe => ConsumerGroupDescribeResponse, 0;
    GetTelemetrySubscriptions => GetTelemetrySubscriptionsResponse, 0;
    PushTelemetry => PushTelemetryResponse, 0;
    ListConfigResources => ListConfigResourcesResponse, 0;
    DescribeTopicPartitions => DescribeTopicPartitionsResponse, 0;
    ShareGroupHeartbeat => ShareGroupHeartbeatResponse, 0;
    ShareGroupDescribe => ShareGroupDescribeResponse, 0;
    ShareFetch => ShareFetchResponse, 0;
    ShareAcknowledge => ShareAcknowledgeResponse, 0;
    DescribeShareGroupOffsets => DescribeShareGroupOffsetsResponse, 0;
    AlterShareGroupOffsets => AlterShareGroupOffsetsResponse, 0;
    DeleteShareGroupOffsets => DeleteShareGroupOffsetsResponse, 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_only_for_kip219_versions() {
        let r = ProduceResponse::default().with_throttle_time_ms(250);
        assert_eq!(client_throttle_ms(0, 5, &r), None);
        assert_eq!(client_throttle_ms(0, 6, &r), Some(250));
        let m = MetadataResponse::default().with_throttle_time_ms(7);
        assert_eq!(client_throttle_ms(3, 12, &m), Some(7));
        // Wrong type for the key: no panic, no throttle.
        assert_eq!(client_throttle_ms(0, 9, &m), None);
        // SaslAuthenticate carries no throttle.
        assert_eq!(
            client_throttle_ms(36, 2, &SaslAuthenticateResponse::default()),
            None
        );
    }
}
