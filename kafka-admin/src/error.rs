//! The admin client's error type, and per-item outcomes of batched requests.

use std::collections::BTreeMap;
use std::fmt;

use kafka_core::KafkaCode;

/// Why one item of a batched request (a topic, a config resource, a group, a partition...)
/// failed: the broker's code and, where the response has one, its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The Kafka error code.
    pub code: KafkaCode,
    /// The broker's explanation, or ours when the check happened client-side.
    pub message: Option<String>,
}

impl ItemError {
    /// An item error from a response's code and message.
    pub fn new(code: KafkaCode, message: Option<String>) -> Self {
        ItemError { code, message }
    }

    /// From a raw code and optional message; `None` when the code is 0 (no error).
    pub fn from_code(code: i16, message: Option<&str>) -> Option<Self> {
        match KafkaCode::check(code) {
            Ok(()) => None,
            Err(code) => Some(ItemError {
                code,
                message: message.filter(|m| !m.is_empty()).map(str::to_owned),
            }),
        }
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{}: {m}", self.code),
            None => write!(f, "{}", self.code),
        }
    }
}

/// Everything an admin call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The cluster layer failed (routing, connection, a request-level Kafka error, timeout).
    #[error(transparent)]
    Client(#[from] kafka_core::client::Error),
    /// The admin configuration is invalid.
    #[error("invalid admin configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The request is invalid before anything is sent (an empty topic name, a negative
    /// partition count...).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// The broker does not support what the call needs.
    #[error("broker {broker} does not support {what}")]
    Unsupported {
        /// The API or feature.
        what: String,
        /// The broker asked.
        broker: i32,
    },
    /// Some items of a batched call failed; the others succeeded. Each failure names its
    /// item and why.
    #[error("{operation}: {} of {total} item(s) failed: {}", .failures.len(), format_failures(.failures))]
    Partial {
        /// The operation (`create topics`, ...).
        operation: &'static str,
        /// How many items the call had.
        total: usize,
        /// The failed items and why.
        failures: Vec<(String, ItemError)>,
    },
    /// A desired-state spec or reassignment plan cannot be loaded or carried out.
    #[error("{reason}")]
    Plan {
        /// What is wrong.
        reason: String,
    },
    /// Waiting for something to complete (a reassignment) took too long.
    #[error("{what} did not complete within {elapsed:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        elapsed: std::time::Duration,
    },
}

fn format_failures(failures: &[(String, ItemError)]) -> String {
    let mut s = String::new();
    for (i, (item, e)) in failures.iter().enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        if i == 10 {
            s.push_str(&format!("and {} more", failures.len() - 10));
            break;
        }
        s.push_str(&format!("{item}: {e}"));
    }
    s
}

impl AdminError {
    /// The Kafka code behind this error, when there is exactly one.
    pub fn kafka_code(&self) -> Option<KafkaCode> {
        match self {
            AdminError::Client(e) => e.kafka_code(),
            AdminError::Partial { failures, .. } if failures.len() == 1 => Some(failures[0].1.code),
            _ => None,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        AdminError::InvalidRequest {
            reason: reason.into(),
        }
    }
}

/// Result alias of the admin client.
pub type Result<T, E = AdminError> = std::result::Result<T, E>;

/// The per-item outcome of a batched admin call: every item the call named, each with its
/// value or the reason it failed. Keys are ordered.
#[derive(Debug, Clone)]
pub struct ItemResults<K: Ord, V> {
    operation: &'static str,
    items: BTreeMap<K, Result<V, ItemError>>,
}

impl<K: Ord, V> ItemResults<K, V> {
    pub(crate) fn new(operation: &'static str) -> Self {
        ItemResults {
            operation,
            items: BTreeMap::new(),
        }
    }

    pub(crate) fn insert(&mut self, key: K, value: Result<V, ItemError>) {
        self.items.insert(key, value);
    }

    pub(crate) fn insert_missing(&mut self, key: K) {
        self.items.entry(key).or_insert_with(|| {
            Err(ItemError::new(
                KafkaCode::UnknownServerError,
                Some("the broker's response did not mention this item".into()),
            ))
        });
    }

    /// The outcome of `key`.
    pub fn get(&self, key: &K) -> Option<&Result<V, ItemError>> {
        self.items.get(key)
    }

    /// Every item and its outcome, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Result<V, ItemError>)> + '_ {
        self.items.iter()
    }

    /// The items that failed, with why.
    pub fn failures(&self) -> impl Iterator<Item = (&K, &ItemError)> + '_ {
        self.items
            .iter()
            .filter_map(|(k, r)| r.as_ref().err().map(|e| (k, e)))
    }

    /// The items that succeeded.
    pub fn successes(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.items
            .iter()
            .filter_map(|(k, r)| r.as_ref().ok().map(|v| (k, v)))
    }

    /// Whether every item succeeded.
    pub fn all_ok(&self) -> bool {
        self.items.values().all(Result::is_ok)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the call named no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The values if every item succeeded, or [`AdminError::Partial`] naming each failure.
    pub fn into_result(self) -> Result<BTreeMap<K, V>>
    where
        K: fmt::Display,
    {
        let total = self.items.len();
        let mut ok = BTreeMap::new();
        let mut failures = Vec::new();
        for (k, r) in self.items {
            match r {
                Ok(v) => {
                    ok.insert(k, v);
                }
                Err(e) => failures.push((k.to_string(), e)),
            }
        }
        if failures.is_empty() {
            Ok(ok)
        } else {
            Err(AdminError::Partial {
                operation: self.operation,
                total,
                failures,
            })
        }
    }

    /// The map of outcomes.
    pub fn into_inner(self) -> BTreeMap<K, Result<V, ItemError>> {
        self.items
    }
}

impl<K: Ord, V> IntoIterator for ItemResults<K, V> {
    type Item = (K, Result<V, ItemError>);
    type IntoIter = std::collections::btree_map::IntoIter<K, Result<V, ItemError>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// A topic and partition, ordered by topic then partition; displays as `topic-partition`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_failure_names_each_failed_item() {
        let mut r: ItemResults<String, i32> = ItemResults::new("create topics");
        r.insert("a".into(), Ok(1));
        r.insert(
            "b".into(),
            Err(ItemError::new(
                KafkaCode::InvalidReplicationFactor,
                Some("too few brokers".into()),
            )),
        );
        assert!(!r.all_ok());
        assert_eq!(r.failures().count(), 1);
        let e = r.into_result().unwrap_err();
        let text = e.to_string();
        assert!(text.contains("1 of 2"), "{text}");
        assert!(text.contains("b: "), "{text}");
        assert!(text.contains("too few brokers"), "{text}");
        assert_eq!(e.kafka_code(), Some(KafkaCode::InvalidReplicationFactor));
    }

    #[test]
    fn item_error_from_zero_is_none() {
        assert!(ItemError::from_code(0, Some("x")).is_none());
        let e = ItemError::from_code(3, Some("")).unwrap();
        assert_eq!(e.code, KafkaCode::UnknownTopicOrPartition);
        assert_eq!(e.message, None);
    }
}
