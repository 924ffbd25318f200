//! Incremental fetch sessions (KIP-227), as a sans-IO state machine: one [`FetchSession`] per
//! broker the consumer fetches from.
//!
//! A full request (epoch 0) lists every partition wanted and asks the broker for a session;
//! later requests (epoch 1, 2, ...) list only partitions whose fetch state changed since the
//! previous request, and name those no longer wanted as forgotten. Any session error, any
//! top-level error and any transport failure fall back to a full request.
//! <https://cwiki.apache.org/confluence/display/KAFKA/KIP-227>

use std::collections::HashMap;

use kafka_core::KafkaCode;

use crate::TopicPartition;

/// What one partition asks of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionFetch {
    /// Next offset to fetch.
    pub fetch_offset: i64,
    /// The leader epoch the consumer knows (KIP-320), -1 if unknown.
    pub current_leader_epoch: i32,
    /// The epoch of the last fetched batch (KIP-320 truncation detection), -1 if none.
    pub last_fetched_epoch: i32,
    /// `max.partition.fetch.bytes`.
    pub max_bytes: i32,
}

/// One request's worth of partitions, as the session decided.
#[derive(Debug, Clone, Default)]
pub struct FetchPlan {
    /// Session id to send (0: none).
    pub session_id: i32,
    /// Session epoch to send (0: full request creating a session; -1: sessionless).
    pub epoch: i32,
    /// Partitions to list in the request.
    pub send: Vec<(TopicPartition, PartitionFetch)>,
    /// Partitions to drop from the broker's session.
    pub forget: Vec<TopicPartition>,
    /// Every partition the response may carry data for (the session's whole set).
    pub covers: Vec<TopicPartition>,
}

impl FetchPlan {
    /// Whether this is a full (non-incremental) request.
    pub fn is_full(&self) -> bool {
        self.epoch <= 0
    }
}

/// The client side of one broker's fetch session.
#[derive(Debug, Default)]
pub struct FetchSession {
    /// 0 when there is no session.
    id: i32,
    /// The epoch of the next request.
    epoch: i32,
    /// What the broker's session holds: the fetch state as last sent.
    sent: HashMap<TopicPartition, PartitionFetch>,
    /// The broker cannot do sessions (Fetch below v7) or refused to create one.
    sessionless: bool,
    /// The plan of the request in flight, applied when its response succeeds.
    pending: Option<HashMap<TopicPartition, PartitionFetch>>,
}

impl FetchSession {
    /// A session for a broker whose Fetch version is `version` (sessions need v7+).
    pub fn new(version: i16) -> Self {
        Self {
            sessionless: version < 7,
            ..Self::default()
        }
    }

    /// The session id (0: none).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The epoch the next request carries.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Plans the next request for exactly the partitions in `wanted`.
    pub fn plan(&mut self, wanted: &[(TopicPartition, PartitionFetch)]) -> FetchPlan {
        let next: HashMap<TopicPartition, PartitionFetch> = wanted.iter().cloned().collect();
        let plan = if self.sessionless {
            FetchPlan {
                session_id: 0,
                epoch: -1,
                send: wanted.to_vec(),
                forget: Vec::new(),
                covers: next.keys().cloned().collect(),
            }
        } else if self.id == 0 || self.epoch == 0 {
            // Full request: a new session (closing ours, if any, by naming it with epoch 0).
            FetchPlan {
                session_id: self.id,
                epoch: 0,
                send: wanted.to_vec(),
                forget: Vec::new(),
                covers: next.keys().cloned().collect(),
            }
        } else {
            let send = wanted
                .iter()
                .filter(|(tp, f)| self.sent.get(tp) != Some(f))
                .cloned()
                .collect();
            let forget = self
                .sent
                .keys()
                .filter(|tp| !next.contains_key(*tp))
                .cloned()
                .collect();
            FetchPlan {
                session_id: self.id,
                epoch: self.epoch,
                send,
                forget,
                covers: next.keys().cloned().collect(),
            }
        };
        self.pending = Some(next);
        plan
    }

    /// The response to the planned request arrived with this top-level `error` and
    /// `session_id`. Returns whether the partition data may be used.
    pub fn handle_response(&mut self, error: KafkaCode, session_id: i32) -> bool {
        let next = self.pending.take().unwrap_or_default();
        if error != KafkaCode::None {
            // FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH,
            // FETCH_SESSION_TOPIC_ID_ERROR and anything else: start over with a full request.
            self.reset();
            return false;
        }
        if self.sessionless {
            return true;
        }
        if session_id == 0 {
            // The broker did not create a session (its cache is full): stay with full
            // requests until it does.
            self.reset();
            return true;
        }
        self.id = session_id;
        self.epoch = if self.epoch == i32::MAX {
            1
        } else {
            self.epoch + 1
        };
        self.sent = next;
        true
    }

    /// The request failed in transport (or was abandoned): the broker may or may not have
    /// seen it, so the next request is a full one.
    pub fn handle_failure(&mut self) {
        self.pending = None;
        self.reset();
    }

    fn reset(&mut self) {
        self.epoch = 0;
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn f(offset: i64) -> PartitionFetch {
        PartitionFetch {
            fetch_offset: offset,
            current_leader_epoch: 0,
            last_fetched_epoch: -1,
            max_bytes: 1024,
        }
    }

    #[test]
    fn full_then_incremental_sends_only_changes() {
        let mut s = FetchSession::new(17);
        let p = s.plan(&[(tp(0), f(0)), (tp(1), f(0))]);
        assert!(p.is_full());
        assert_eq!((p.session_id, p.epoch, p.send.len()), (0, 0, 2));
        assert!(s.handle_response(KafkaCode::None, 77));
        // Partition 0 advanced, partition 1 did not.
        let p = s.plan(&[(tp(0), f(10)), (tp(1), f(0))]);
        assert_eq!((p.session_id, p.epoch), (77, 1));
        assert_eq!(p.send, vec![(tp(0), f(10))]);
        assert!(p.forget.is_empty());
        assert_eq!(p.covers.len(), 2);
        assert!(s.handle_response(KafkaCode::None, 77));
        // Partition 1 is dropped (paused, say).
        let p = s.plan(&[(tp(0), f(10))]);
        assert_eq!(p.epoch, 2);
        assert!(p.send.is_empty());
        assert_eq!(p.forget, vec![tp(1)]);
        assert!(s.handle_response(KafkaCode::None, 77));
        // Re-added: sent again.
        let p = s.plan(&[(tp(0), f(10)), (tp(1), f(0))]);
        assert_eq!(p.send, vec![(tp(1), f(0))]);
    }

    #[test]
    fn session_errors_fall_back_to_a_full_request_that_reuses_the_id() {
        let mut s = FetchSession::new(17);
        s.plan(&[(tp(0), f(0))]);
        s.handle_response(KafkaCode::None, 5);
        s.plan(&[(tp(0), f(3))]);
        assert!(!s.handle_response(KafkaCode::InvalidFetchSessionEpoch, 0));
        let p = s.plan(&[(tp(0), f(3))]);
        assert!(p.is_full());
        assert_eq!((p.session_id, p.send.len()), (5, 1));
        s.handle_failure();
        let p = s.plan(&[(tp(0), f(3))]);
        assert!(p.is_full());
    }

    #[test]
    fn no_session_from_the_broker_means_full_requests() {
        let mut s = FetchSession::new(17);
        s.plan(&[(tp(0), f(0))]);
        assert!(s.handle_response(KafkaCode::None, 0));
        assert!(s.plan(&[(tp(0), f(1))]).is_full());
        let mut old = FetchSession::new(6);
        let p = old.plan(&[(tp(0), f(0))]);
        assert_eq!((p.session_id, p.epoch), (0, -1));
    }
}
