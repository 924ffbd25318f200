//! Kafka protocol error codes, and the one place that decides what to do about them.
//!
//! Every `INT16 error_code` field of every response maps to a [`KafkaCode`]. The table covers
//! all codes Apache Kafka 4.x defines (`-1 UNKNOWN_SERVER_ERROR`, `0 NONE`, `1` to `133`; see
//! "Error Codes" in the protocol guide, <https://kafka.apache.org/protocol#protocol_error_codes>).
//! Codes this client does not know (a broker newer than us) decode to [`KafkaCode::Unknown`],
//! which keeps the number, so nothing is lost on the way to the user.
//!
//! Two questions are answered here and nowhere else:
//!
//! * [`KafkaCode::is_retriable`]: may the same request simply be sent again (after a backoff,
//!   perhaps to another broker once metadata is refreshed)? This follows the exception
//!   hierarchy of the Java client (`RetriableException` and its subclasses) with a few
//!   deliberate, commented differences.
//! * [`KafkaCode::needs_metadata_refresh`] / [`KafkaCode::needs_coordinator_refresh`]: does the
//!   error say our view of the cluster (partition leaders, brokers, coordinators) is stale?
//!   (KIP-320 for the leader epoch errors.)

use std::fmt;

macro_rules! kafka_codes {
    ($( $variant:ident = $code:literal, $name:literal, $desc:literal; )*) => {
        /// A Kafka protocol error code.
        ///
        /// `#[non_exhaustive]`: Kafka adds codes in most releases. A code this client does not
        /// know is kept as [`KafkaCode::Unknown`]; it is never retried.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum KafkaCode {
            $(
                #[doc = $desc]
                #[doc = ""]
                #[doc = concat!("Wire code `", stringify!($code), "`, `", $name, "`.")]
                $variant,
            )*
            /// A code this client does not know (a newer broker); the number is kept.
            Unknown(i16),
        }

        impl KafkaCode {
            /// Every known code, in wire order (for tests and documentation tables).
            pub const ALL: &'static [KafkaCode] = &[$(KafkaCode::$variant),*];

            /// Maps a wire code to its variant; unknown numbers become [`KafkaCode::Unknown`].
            pub const fn from_i16(code: i16) -> Self {
                match code {
                    $($code => KafkaCode::$variant,)*
                    other => KafkaCode::Unknown(other),
                }
            }

            /// The wire code.
            pub const fn as_i16(self) -> i16 {
                match self {
                    $(KafkaCode::$variant => $code,)*
                    KafkaCode::Unknown(code) => code,
                }
            }

            /// The name Kafka gives the code (`NOT_LEADER_OR_FOLLOWER`), or `UNKNOWN` for a
            /// code this client does not know.
            pub const fn name(self) -> &'static str {
                match self {
                    $(KafkaCode::$variant => $name,)*
                    KafkaCode::Unknown(_) => "UNKNOWN",
                }
            }

            /// A one-line explanation of the code, for logs and error messages.
            pub const fn description(self) -> &'static str {
                match self {
                    $(KafkaCode::$variant => $desc,)*
                    KafkaCode::Unknown(_) => "An error code this client does not know (the broker is newer).",
                }
            }
        }
    };
}

kafka_codes! {
    UnknownServerError = -1, "UNKNOWN_SERVER_ERROR", "The broker hit an unexpected error while handling the request.";
    None = 0, "NONE", "No error.";
    OffsetOutOfRange = 1, "OFFSET_OUT_OF_RANGE", "The offset asked for lies outside the partition's log.";
    CorruptMessage = 2, "CORRUPT_MESSAGE", "A message failed its CRC, is too large, has a null key on a compacted topic, or is otherwise corrupt.";
    UnknownTopicOrPartition = 3, "UNKNOWN_TOPIC_OR_PARTITION", "This broker does not host the topic-partition (it may not exist, or metadata lags).";
    InvalidFetchSize = 4, "INVALID_FETCH_SIZE", "The fetch size is invalid.";
    LeaderNotAvailable = 5, "LEADER_NOT_AVAILABLE", "The partition has no leader right now (an election is under way).";
    NotLeaderOrFollower = 6, "NOT_LEADER_OR_FOLLOWER", "This broker is not the leader (or not a replica) of the partition.";
    RequestTimedOut = 7, "REQUEST_TIMED_OUT", "The broker timed the request out.";
    BrokerNotAvailable = 8, "BROKER_NOT_AVAILABLE", "The broker is not available.";
    ReplicaNotAvailable = 9, "REPLICA_NOT_AVAILABLE", "A replica of the partition is not available.";
    MessageTooLarge = 10, "MESSAGE_TOO_LARGE", "A message is larger than the broker or topic accepts.";
    StaleControllerEpoch = 11, "STALE_CONTROLLER_EPOCH", "The request carried an old controller epoch.";
    OffsetMetadataTooLarge = 12, "OFFSET_METADATA_TOO_LARGE", "The metadata string of an offset commit is too long.";
    NetworkException = 13, "NETWORK_EXCEPTION", "The broker lost a connection it needed before it could answer.";
    CoordinatorLoadInProgress = 14, "COORDINATOR_LOAD_IN_PROGRESS", "The coordinator is still loading its state.";
    CoordinatorNotAvailable = 15, "COORDINATOR_NOT_AVAILABLE", "The coordinator is not available.";
    NotCoordinator = 16, "NOT_COORDINATOR", "This broker is not the coordinator for the key.";
    InvalidTopicException = 17, "INVALID_TOPIC_EXCEPTION", "The topic name is invalid, or the operation is not allowed on it.";
    RecordListTooLarge = 18, "RECORD_LIST_TOO_LARGE", "A record batch is larger than the topic's segment size.";
    NotEnoughReplicas = 19, "NOT_ENOUGH_REPLICAS", "Rejected: fewer in-sync replicas than min.insync.replicas.";
    NotEnoughReplicasAfterAppend = 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "Written to the leader's log, but to fewer in-sync replicas than required.";
    InvalidRequiredAcks = 21, "INVALID_REQUIRED_ACKS", "The acks value of a produce request is invalid.";
    IllegalGeneration = 22, "ILLEGAL_GENERATION", "The group generation id is not the current one.";
    InconsistentGroupProtocol = 23, "INCONSISTENT_GROUP_PROTOCOL", "The member's protocols do not match those of the group.";
    InvalidGroupId = 24, "INVALID_GROUP_ID", "The group id is invalid.";
    UnknownMemberId = 25, "UNKNOWN_MEMBER_ID", "The coordinator does not know this member id.";
    InvalidSessionTimeout = 26, "INVALID_SESSION_TIMEOUT", "The session timeout is outside the broker's allowed range.";
    RebalanceInProgress = 27, "REBALANCE_IN_PROGRESS", "The group is rebalancing; the member must rejoin.";
    InvalidCommitOffsetSize = 28, "INVALID_COMMIT_OFFSET_SIZE", "The offset commit is too large.";
    TopicAuthorizationFailed = 29, "TOPIC_AUTHORIZATION_FAILED", "Not authorized for the topic.";
    GroupAuthorizationFailed = 30, "GROUP_AUTHORIZATION_FAILED", "Not authorized for the group.";
    ClusterAuthorizationFailed = 31, "CLUSTER_AUTHORIZATION_FAILED", "Not authorized for the cluster.";
    InvalidTimestamp = 32, "INVALID_TIMESTAMP", "A record timestamp is outside the accepted range.";
    UnsupportedSaslMechanism = 33, "UNSUPPORTED_SASL_MECHANISM", "The broker does not offer this SASL mechanism.";
    IllegalSaslState = 34, "ILLEGAL_SASL_STATE", "The request is not allowed in the current SASL state.";
    UnsupportedVersion = 35, "UNSUPPORTED_VERSION", "The broker does not support this API version.";
    TopicAlreadyExists = 36, "TOPIC_ALREADY_EXISTS", "A topic of that name already exists.";
    InvalidPartitions = 37, "INVALID_PARTITIONS", "The partition count is invalid.";
    InvalidReplicationFactor = 38, "INVALID_REPLICATION_FACTOR", "The replication factor is invalid or exceeds the number of brokers.";
    InvalidReplicaAssignment = 39, "INVALID_REPLICA_ASSIGNMENT", "The replica assignment is invalid.";
    InvalidConfig = 40, "INVALID_CONFIG", "A configuration value is invalid.";
    NotController = 41, "NOT_CONTROLLER", "This broker is not the active controller.";
    InvalidRequest = 42, "INVALID_REQUEST", "The request is malformed or not allowed (see the broker log).";
    UnsupportedForMessageFormat = 43, "UNSUPPORTED_FOR_MESSAGE_FORMAT", "The topic's message format does not support the request.";
    PolicyViolation = 44, "POLICY_VIOLATION", "The request breaks a policy configured on the broker.";
    OutOfOrderSequenceNumber = 45, "OUT_OF_ORDER_SEQUENCE_NUMBER", "The broker received a producer sequence number out of order.";
    DuplicateSequenceNumber = 46, "DUPLICATE_SEQUENCE_NUMBER", "The broker already has a batch with this producer sequence number.";
    InvalidProducerEpoch = 47, "INVALID_PRODUCER_EPOCH", "The producer epoch is old (another producer took over).";
    InvalidTxnState = 48, "INVALID_TXN_STATE", "The transactional operation is not valid in the transaction's state.";
    InvalidProducerIdMapping = 49, "INVALID_PRODUCER_ID_MAPPING", "The producer id is not the one assigned to this transactional id.";
    InvalidTransactionTimeout = 50, "INVALID_TRANSACTION_TIMEOUT", "The transaction timeout exceeds transaction.max.timeout.ms.";
    ConcurrentTransactions = 51, "CONCURRENT_TRANSACTIONS", "The previous transaction of this transactional id is still completing.";
    TransactionCoordinatorFenced = 52, "TRANSACTION_COORDINATOR_FENCED", "A newer transaction coordinator took over.";
    TransactionalIdAuthorizationFailed = 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "Not authorized for the transactional id.";
    SecurityDisabled = 54, "SECURITY_DISABLED", "Security features are disabled on the broker.";
    OperationNotAttempted = 55, "OPERATION_NOT_ATTEMPTED", "Not attempted, because another part of the batch failed.";
    KafkaStorageError = 56, "KAFKA_STORAGE_ERROR", "The broker hit a disk error on the partition's log.";
    LogDirNotFound = 57, "LOG_DIR_NOT_FOUND", "The log directory is not in the broker's configuration.";
    SaslAuthenticationFailed = 58, "SASL_AUTHENTICATION_FAILED", "SASL authentication failed.";
    UnknownProducerId = 59, "UNKNOWN_PRODUCER_ID", "The broker has no state for this producer id (it may have expired).";
    ReassignmentInProgress = 60, "REASSIGNMENT_IN_PROGRESS", "A partition reassignment is under way.";
    DelegationTokenAuthDisabled = 61, "DELEGATION_TOKEN_AUTH_DISABLED", "Delegation tokens are disabled.";
    DelegationTokenNotFound = 62, "DELEGATION_TOKEN_NOT_FOUND", "No such delegation token.";
    DelegationTokenOwnerMismatch = 63, "DELEGATION_TOKEN_OWNER_MISMATCH", "The principal is not the token's owner or renewer.";
    DelegationTokenRequestNotAllowed = 64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", "Token requests are not allowed on this kind of connection or authentication.";
    DelegationTokenAuthorizationFailed = 65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED", "Not authorized for the delegation token.";
    DelegationTokenExpired = 66, "DELEGATION_TOKEN_EXPIRED", "The delegation token has expired.";
    InvalidPrincipalType = 67, "INVALID_PRINCIPAL_TYPE", "The principal type is not supported.";
    NonEmptyGroup = 68, "NON_EMPTY_GROUP", "The group still has members.";
    GroupIdNotFound = 69, "GROUP_ID_NOT_FOUND", "No such group.";
    FetchSessionIdNotFound = 70, "FETCH_SESSION_ID_NOT_FOUND", "The broker does not know the fetch session.";
    InvalidFetchSessionEpoch = 71, "INVALID_FETCH_SESSION_EPOCH", "The fetch session epoch is not the one expected.";
    ListenerNotFound = 72, "LISTENER_NOT_FOUND", "The leader has no listener of the name the request came in on.";
    TopicDeletionDisabled = 73, "TOPIC_DELETION_DISABLED", "Topic deletion is disabled on the cluster.";
    FencedLeaderEpoch = 74, "FENCED_LEADER_EPOCH", "The request's leader epoch is older than the broker's.";
    UnknownLeaderEpoch = 75, "UNKNOWN_LEADER_EPOCH", "The request's leader epoch is newer than the broker's.";
    UnsupportedCompressionType = 76, "UNSUPPORTED_COMPRESSION_TYPE", "The client cannot handle the partition's compression type at this version.";
    StaleBrokerEpoch = 77, "STALE_BROKER_EPOCH", "The broker epoch is old.";
    OffsetNotAvailable = 78, "OFFSET_NOT_AVAILABLE", "A new leader's high watermark has not caught up yet.";
    MemberIdRequired = 79, "MEMBER_ID_REQUIRED", "The member must rejoin with the member id the broker just assigned.";
    PreferredLeaderNotAvailable = 80, "PREFERRED_LEADER_NOT_AVAILABLE", "The preferred leader is not available.";
    GroupMaxSizeReached = 81, "GROUP_MAX_SIZE_REACHED", "The group is at its maximum size.";
    FencedInstanceId = 82, "FENCED_INSTANCE_ID", "Another member with the same group.instance.id took over.";
    EligibleLeadersNotAvailable = 83, "ELIGIBLE_LEADERS_NOT_AVAILABLE", "No eligible leader is available for the partition.";
    ElectionNotNeeded = 84, "ELECTION_NOT_NEEDED", "The partition already has the leader the election would choose.";
    NoReassignmentInProgress = 85, "NO_REASSIGNMENT_IN_PROGRESS", "There is no reassignment to cancel.";
    GroupSubscribedToTopic = 86, "GROUP_SUBSCRIBED_TO_TOPIC", "Cannot delete a topic's offsets while the group is subscribed to it.";
    InvalidRecord = 87, "INVALID_RECORD", "The broker's validation rejected a record.";
    UnstableOffsetCommit = 88, "UNSTABLE_OFFSET_COMMIT", "Offsets of pending transactions must settle first.";
    ThrottlingQuotaExceeded = 89, "THROTTLING_QUOTA_EXCEEDED", "A throttling quota was exceeded.";
    ProducerFenced = 90, "PRODUCER_FENCED", "A newer producer with the same transactional id fenced this one.";
    ResourceNotFound = 91, "RESOURCE_NOT_FOUND", "The request names a resource that does not exist.";
    DuplicateResource = 92, "DUPLICATE_RESOURCE", "The request names the same resource twice.";
    UnacceptableCredential = 93, "UNACCEPTABLE_CREDENTIAL", "The credential does not meet the broker's criteria.";
    InconsistentVoterSet = 94, "INCONSISTENT_VOTER_SET", "A KRaft voter is not in the voter set of the other side.";
    InvalidUpdateVersion = 95, "INVALID_UPDATE_VERSION", "The update version is invalid.";
    FeatureUpdateFailed = 96, "FEATURE_UPDATE_FAILED", "Updating finalized features failed on the broker.";
    PrincipalDeserializationFailure = 97, "PRINCIPAL_DESERIALIZATION_FAILURE", "A forwarded request's principal could not be deserialized.";
    SnapshotNotFound = 98, "SNAPSHOT_NOT_FOUND", "No such KRaft snapshot.";
    PositionOutOfRange = 99, "POSITION_OUT_OF_RANGE", "The position lies outside the KRaft snapshot.";
    UnknownTopicId = 100, "UNKNOWN_TOPIC_ID", "This broker does not host a topic with this id.";
    DuplicateBrokerRegistration = 101, "DUPLICATE_BROKER_REGISTRATION", "The broker id is already registered.";
    BrokerIdNotRegistered = 102, "BROKER_ID_NOT_REGISTERED", "The broker id is not registered.";
    InconsistentTopicId = 103, "INCONSISTENT_TOPIC_ID", "The topic id in the request does not match the log's.";
    InconsistentClusterId = 104, "INCONSISTENT_CLUSTER_ID", "The cluster id in the request does not match the server's.";
    TransactionalIdNotFound = 105, "TRANSACTIONAL_ID_NOT_FOUND", "No such transactional id.";
    FetchSessionTopicIdError = 106, "FETCH_SESSION_TOPIC_ID_ERROR", "The fetch session used topic ids inconsistently.";
    IneligibleReplica = 107, "INELIGIBLE_REPLICA", "A proposed ISR holds a replica that is not eligible.";
    NewLeaderElected = 108, "NEW_LEADER_ELECTED", "The partition state was updated, but a new leader was elected meanwhile.";
    OffsetMovedToTieredStorage = 109, "OFFSET_MOVED_TO_TIERED_STORAGE", "The offset now lives in tiered storage.";
    FencedMemberEpoch = 110, "FENCED_MEMBER_EPOCH", "The coordinator fenced the member epoch; give up the partitions and rejoin.";
    UnreleasedInstanceId = 111, "UNRELEASED_INSTANCE_ID", "Another member still holds this group.instance.id.";
    UnsupportedAssignor = 112, "UNSUPPORTED_ASSIGNOR", "The group does not support the assignor (or its version).";
    StaleMemberEpoch = 113, "STALE_MEMBER_EPOCH", "The member epoch is stale; heartbeat to learn the current one.";
    MismatchedEndpointType = 114, "MISMATCHED_ENDPOINT_TYPE", "The request went to the wrong kind of endpoint (broker vs controller).";
    UnsupportedEndpointType = 115, "UNSUPPORTED_ENDPOINT_TYPE", "This kind of endpoint is not supported yet.";
    UnknownControllerId = 116, "UNKNOWN_CONTROLLER_ID", "No such controller id.";
    UnknownSubscriptionId = 117, "UNKNOWN_SUBSCRIPTION_ID", "The telemetry subscription id is unknown or outdated.";
    TelemetryTooLarge = 118, "TELEMETRY_TOO_LARGE", "The telemetry push is larger than the broker accepts.";
    InvalidRegistration = 119, "INVALID_REGISTRATION", "The controller deems the broker registration invalid.";
    TransactionAbortable = 120, "TRANSACTION_ABORTABLE", "The transaction hit an error; abort it to go on with this transactional id.";
    InvalidRecordState = 121, "INVALID_RECORD_STATE", "The share-group record is not in a state that allows the acknowledgement.";
    ShareSessionNotFound = 122, "SHARE_SESSION_NOT_FOUND", "The broker does not know the share session.";
    InvalidShareSessionEpoch = 123, "INVALID_SHARE_SESSION_EPOCH", "The share session epoch is not the one expected.";
    FencedStateEpoch = 124, "FENCED_STATE_EPOCH", "The share-group state epoch does not match the share coordinator's.";
    InvalidVoterKey = 125, "INVALID_VOTER_KEY", "The voter key does not match the receiving replica's.";
    DuplicateVoter = 126, "DUPLICATE_VOTER", "The voter is already in the voter set.";
    VoterNotFound = 127, "VOTER_NOT_FOUND", "The voter is not in the voter set.";
    InvalidRegularExpression = 128, "INVALID_REGULAR_EXPRESSION", "The subscription's regular expression is invalid.";
    RebootstrapRequired = 129, "REBOOTSTRAP_REQUIRED", "The client's metadata is too stale; it must bootstrap again.";
    StreamsInvalidTopology = 130, "STREAMS_INVALID_TOPOLOGY", "The Streams topology is invalid.";
    StreamsInvalidTopologyEpoch = 131, "STREAMS_INVALID_TOPOLOGY_EPOCH", "The Streams topology epoch is invalid.";
    StreamsTopologyFenced = 132, "STREAMS_TOPOLOGY_FENCED", "The Streams topology epoch is outdated.";
    ShareSessionLimitReached = 133, "SHARE_SESSION_LIMIT_REACHED", "The broker's limit of share sessions is reached.";
}

impl KafkaCode {
    /// `Ok(())` for code 0, the error otherwise: the usual first step on a response field.
    pub const fn check(code: i16) -> Result<(), KafkaCode> {
        match KafkaCode::from_i16(code) {
            KafkaCode::None => Ok(()),
            err => Err(err),
        }
    }

    /// Whether this is code 0, no error.
    pub const fn is_ok(self) -> bool {
        matches!(self, KafkaCode::None)
    }

    /// Whether the request that got this error may simply be sent again, after a backoff
    /// (and, where [`needs_metadata_refresh`](Self::needs_metadata_refresh) says so, after
    /// refreshing metadata and re-routing).
    ///
    /// The baseline is the Java client: codes whose exception is a `RetriableException`
    /// (including every `InvalidMetadataException`) are retriable here. The differences are
    /// commented below. Note what "retriable" does *not* promise: a retried produce without
    /// idempotence may duplicate records (see `NotEnoughReplicasAfterAppend` and
    /// `RequestTimedOut`); the producer layer decides about those, not this function.
    pub const fn is_retriable(self) -> bool {
        use KafkaCode::*;
        match self {
            // Metadata lags: a topic just created is not yet known to every broker, and a
            // partition may have moved. Refresh metadata, then retry; the caller's deadline
            // turns a topic that really does not exist into an error.
            UnknownTopicOrPartition | UnknownTopicId | InconsistentTopicId => true,
            // Leadership moved or is moving (KIP-320 epochs: ours is older, or the broker's).
            LeaderNotAvailable | NotLeaderOrFollower | FencedLeaderEpoch | UnknownLeaderEpoch => {
                true
            }
            // The broker cannot reach the replica, or the disk of this log failed: another
            // replica becomes leader, and metadata tells us which.
            ReplicaNotAvailable | KafkaStorageError => true,
            // The Java client does *not* treat BROKER_NOT_AVAILABLE as retriable, but it is
            // sent by a broker that is starting or shutting down, which is exactly the
            // situation a retry after a metadata refresh resolves (franz-go retries it too).
            BrokerNotAvailable => true,
            // Brokers advertise listeners a moment before they all know each other's: a
            // transient state while brokers start.
            ListenerNotFound => true,
            // The broker timed out (waiting for replication, say). For a produce without
            // idempotence the write may still land: a retry can duplicate it. With
            // idempotence the sequence number makes the retry safe.
            RequestTimedOut => true,
            // The *broker* lost a connection it needed (to a follower, to the controller).
            NetworkException => true,
            // Corruption is usually on the wire: the same bytes sent again may arrive intact.
            // If our own encoding is at fault the deadline ends the loop.
            CorruptMessage => true,
            // Too few in-sync replicas: wait for the ISR to grow back.
            NotEnoughReplicas => true,
            // The batch IS in the leader's log, just under-replicated. Retrying is what Java
            // does, but without idempotence it writes the records twice; with idempotence the
            // broker answers the retry with the original offsets.
            NotEnoughReplicasAfterAppend => true,
            // The coordinator is loading its log after a move: it is the right broker, just
            // not ready. Retry the same broker after a backoff; no re-lookup needed.
            CoordinatorLoadInProgress => true,
            // The coordinator moved or is not yet elected: look it up again, then retry.
            CoordinatorNotAvailable | NotCoordinator => true,
            // Controller moved: refresh the controller id from metadata, then retry.
            NotController => true,
            // The previous transaction of this id is still being completed by the coordinator;
            // the Java client retries (AddPartitions, InitProducerId) after a backoff.
            ConcurrentTransactions => true,
            // Fetch/share sessions are a cache: the broker evicted ours or our epoch slipped.
            // Retrying with a fresh (full) session always works.
            FetchSessionIdNotFound
            | InvalidFetchSessionEpoch
            | FetchSessionTopicIdError
            | ShareSessionNotFound
            | InvalidShareSessionEpoch
            | ShareSessionLimitReached => true,
            // A new leader's high watermark is catching up (KIP-207): ask again shortly.
            OffsetNotAvailable => true,
            // Pending transactional offsets must settle (KIP-447) before the fetch can answer.
            UnstableOffsetCommit => true,
            // KIP-599: the request was throttled; retry after the throttle time.
            ThrottlingQuotaExceeded => true,
            // Election preconditions that come and go as brokers restart.
            PreferredLeaderNotAvailable | EligibleLeadersNotAvailable => true,
            // Java files ELECTION_NOT_NEEDED under InvalidMetadataException (so retriable),
            // but sending the same ElectLeaders again gets the same answer until the deadline:
            // the partition already has its preferred leader. Callers treat it as done.
            ElectionNotNeeded => false,
            // NOT retriable by a plain resend, although they concern producer state:
            // OUT_OF_ORDER_SEQUENCE_NUMBER means a gap in the sequence (a batch lost); only
            // the idempotent producer can recover, by resetting sequences or bumping the
            // epoch. UNKNOWN_PRODUCER_ID (a subclass in Java) means the broker dropped our
            // producer state (retention deleted the records); same recovery.
            // DUPLICATE_SEQUENCE_NUMBER is in fact success: the batch is already written.
            OutOfOrderSequenceNumber | UnknownProducerId | DuplicateSequenceNumber => false,
            // Fencing and group membership errors need a state change (rejoin, heartbeat,
            // new epoch), never the same request again.
            InvalidProducerEpoch | ProducerFenced | TransactionCoordinatorFenced => false,
            RebalanceInProgress | IllegalGeneration | UnknownMemberId | MemberIdRequired => false,
            FencedMemberEpoch | StaleMemberEpoch | FencedInstanceId => false,
            // The broker asks us to rebootstrap (KIP-1102): a plain retry against the same
            // stale view fails again. See `needs_rebootstrap`.
            RebootstrapRequired => false,
            // A code we do not know is never retried: we cannot know it is safe. Same as
            // Java's UnknownServerException for UNKNOWN_SERVER_ERROR.
            Unknown(_) | UnknownServerError => false,
            _ => false,
        }
    }

    /// Whether the error says our partition/broker metadata is stale: refresh it before the
    /// next attempt (and re-route to the new leader).
    pub const fn needs_metadata_refresh(self) -> bool {
        use KafkaCode::*;
        matches!(
            self,
            NotLeaderOrFollower
                | UnknownTopicOrPartition
                | UnknownTopicId
                | InconsistentTopicId
                | LeaderNotAvailable
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | KafkaStorageError
                | ReplicaNotAvailable
                | BrokerNotAvailable
                | ListenerNotFound
                | NotController
                | PreferredLeaderNotAvailable
                | EligibleLeadersNotAvailable
                | RebootstrapRequired
        )
    }

    /// Whether the error says the cached group/transaction coordinator is wrong: look it up
    /// again (FindCoordinator) before the next attempt.
    ///
    /// `COORDINATOR_LOAD_IN_PROGRESS` is not one: the broker *is* the coordinator.
    pub const fn needs_coordinator_refresh(self) -> bool {
        matches!(
            self,
            KafkaCode::NotCoordinator | KafkaCode::CoordinatorNotAvailable
        )
    }

    /// Whether the broker asks the client to forget its metadata and bootstrap again from the
    /// configured bootstrap servers (KIP-1102).
    pub const fn needs_rebootstrap(self) -> bool {
        matches!(self, KafkaCode::RebootstrapRequired)
    }
}

impl From<i16> for KafkaCode {
    fn from(code: i16) -> Self {
        KafkaCode::from_i16(code)
    }
}

impl From<KafkaCode> for i16 {
    fn from(code: KafkaCode) -> Self {
        code.as_i16()
    }
}

impl fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.name(),
            self.as_i16(),
            self.description()
        )
    }
}

impl std::error::Error for KafkaCode {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_round_trips() {
        let mut seen = HashSet::new();
        for &code in KafkaCode::ALL {
            let n = code.as_i16();
            assert!(seen.insert(n), "duplicate wire code {n}");
            assert_eq!(KafkaCode::from_i16(n), code);
            assert!(!matches!(code, KafkaCode::Unknown(_)));
        }
        // -1, then 0..=133 without gaps: the whole table of Kafka 4.x.
        assert_eq!(KafkaCode::ALL.len(), 135);
        for n in -1..=133 {
            assert!(seen.contains(&n), "code {n} missing");
        }
        for n in [-2, 134, 999, i16::MIN, i16::MAX] {
            assert_eq!(KafkaCode::from_i16(n), KafkaCode::Unknown(n));
            assert_eq!(KafkaCode::from_i16(n).as_i16(), n);
        }
    }

    #[test]
    fn names_are_kafkas() {
        let names: HashSet<_> = KafkaCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), KafkaCode::ALL.len(), "names are unique");
        for c in KafkaCode::ALL {
            assert!(c
                .name()
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_'));
            assert!(!c.description().is_empty());
        }
        assert_eq!(KafkaCode::from_i16(-1).name(), "UNKNOWN_SERVER_ERROR");
        assert_eq!(KafkaCode::from_i16(6).name(), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(KafkaCode::from_i16(16).name(), "NOT_COORDINATOR");
        assert_eq!(
            KafkaCode::from_i16(45).name(),
            "OUT_OF_ORDER_SEQUENCE_NUMBER"
        );
        assert_eq!(KafkaCode::from_i16(74).name(), "FENCED_LEADER_EPOCH");
        assert_eq!(KafkaCode::from_i16(90).name(), "PRODUCER_FENCED");
        assert_eq!(KafkaCode::from_i16(99).name(), "POSITION_OUT_OF_RANGE");
        assert_eq!(KafkaCode::from_i16(120).name(), "TRANSACTION_ABORTABLE");
        assert_eq!(
            KafkaCode::from_i16(133).name(),
            "SHARE_SESSION_LIMIT_REACHED"
        );
        assert_eq!(
            KafkaCode::NotLeaderOrFollower.to_string(),
            "NOT_LEADER_OR_FOLLOWER (6): This broker is not the leader (or not a replica) of the partition."
        );
    }

    #[test]
    fn retriability_spot_checks() {
        use KafkaCode::*;
        for c in [
            UnknownTopicOrPartition,
            LeaderNotAvailable,
            NotLeaderOrFollower,
            RequestTimedOut,
            NetworkException,
            CoordinatorLoadInProgress,
            CoordinatorNotAvailable,
            NotCoordinator,
            NotEnoughReplicas,
            NotEnoughReplicasAfterAppend,
            NotController,
            KafkaStorageError,
            FencedLeaderEpoch,
            UnknownLeaderEpoch,
            ConcurrentTransactions,
            ThrottlingQuotaExceeded,
            UnstableOffsetCommit,
            OffsetNotAvailable,
            FetchSessionIdNotFound,
            CorruptMessage,
        ] {
            assert!(c.is_retriable(), "{c} should be retriable");
        }
        for c in [
            None,
            UnknownServerError,
            Unknown(500),
            OffsetOutOfRange,
            MessageTooLarge,
            TopicAuthorizationFailed,
            OutOfOrderSequenceNumber,
            DuplicateSequenceNumber,
            UnknownProducerId,
            InvalidProducerEpoch,
            ProducerFenced,
            RebalanceInProgress,
            UnknownMemberId,
            FencedMemberEpoch,
            TopicAlreadyExists,
            InvalidConfig,
            UnsupportedVersion,
            TransactionAbortable,
            RebootstrapRequired,
            ElectionNotNeeded,
            SaslAuthenticationFailed,
        ] {
            assert!(!c.is_retriable(), "{c} should not be retriable");
        }
    }

    #[test]
    fn refresh_hints() {
        use KafkaCode::*;
        for c in [
            NotLeaderOrFollower,
            UnknownTopicOrPartition,
            LeaderNotAvailable,
            FencedLeaderEpoch,
            UnknownLeaderEpoch,
            KafkaStorageError,
            NotController,
        ] {
            assert!(c.needs_metadata_refresh(), "{c}");
            assert!(c.is_retriable(), "a refresh hint implies a retry: {c}");
        }
        for c in [NotCoordinator, CoordinatorNotAvailable] {
            assert!(c.needs_coordinator_refresh());
            assert!(!c.needs_metadata_refresh());
        }
        assert!(!CoordinatorLoadInProgress.needs_coordinator_refresh());
        assert!(!RequestTimedOut.needs_metadata_refresh());
        assert!(RebootstrapRequired.needs_rebootstrap());
        // Every metadata hint except the rebootstrap one is retriable.
        for &c in KafkaCode::ALL {
            if c.needs_metadata_refresh() && !c.needs_rebootstrap() {
                assert!(c.is_retriable(), "{c}");
            }
        }
    }

    #[test]
    fn check_maps_zero_to_ok() {
        assert_eq!(KafkaCode::check(0), Ok(()));
        assert_eq!(KafkaCode::check(3), Err(KafkaCode::UnknownTopicOrPartition));
        assert_eq!(KafkaCode::check(-7), Err(KafkaCode::Unknown(-7)));
    }
}
