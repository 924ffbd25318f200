//! Consumer lag: per partition, the committed offset, the log end, the lag and the member
//! that owns the partition; for one group or every consumer group.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::admin::Admin;
use crate::error::{Result, TopicPartition};
use crate::groups::ListGroupsFilter;
use crate::offsets::{IsolationLevel, OffsetSpec};

/// The member that owns a partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LagOwner {
    /// Member id.
    pub member_id: String,
    /// `client.id`.
    pub client_id: String,
    /// Client host.
    pub host: String,
}

/// Lag of one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset (`None`: nothing committed).
    pub committed: Option<i64>,
    /// The log end offset (high watermark).
    pub log_end: i64,
    /// `log_end - committed`, at least 0 (`None` without a commit).
    pub lag: Option<i64>,
    /// The member consuming it, if any.
    pub owner: Option<LagOwner>,
}

/// Lag of a group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupLag {
    /// Group id.
    pub group_id: String,
    /// Group state.
    pub state: String,
    /// Per partition, sorted.
    pub partitions: Vec<PartitionLag>,
    /// Sum of the known lags.
    pub total_lag: i64,
}

impl fmt::Display for GroupLag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "group {} ({}), total lag {}",
            self.group_id, self.state, self.total_lag
        )?;
        writeln!(
            f,
            "{:<40} {:>12} {:>12} {:>10}  OWNER",
            "PARTITION", "COMMITTED", "LOG-END", "LAG"
        )?;
        for p in &self.partitions {
            let opt = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
            writeln!(
                f,
                "{:<40} {:>12} {:>12} {:>10}  {}",
                p.partition.to_string(),
                opt(p.committed),
                p.log_end,
                opt(p.lag),
                p.owner.as_ref().map_or("-".to_owned(), |o| format!(
                    "{} ({}, {})",
                    o.member_id, o.client_id, o.host
                ))
            )?;
        }
        Ok(())
    }
}

impl Admin {
    /// The lag of `group`: every partition it committed offsets for or has assigned.
    pub async fn consumer_lag(&self, group: &str) -> Result<GroupLag> {
        let desc = self
            .describe_groups(&[group])
            .await?
            .into_result()?
            .remove(group);
        let mut owners = BTreeMap::new();
        let mut state = "Unknown".to_owned();
        if let Some(d) = desc {
            state = d.state.clone();
            for m in d.members {
                for tp in m.assignment {
                    owners.insert(
                        tp,
                        LagOwner {
                            member_id: m.member_id.clone(),
                            client_id: m.client_id.clone(),
                            host: m.client_host.clone(),
                        },
                    );
                }
            }
        }
        let committed = self.list_group_offsets(group, None).await?;
        let parts: BTreeSet<TopicPartition> =
            committed.keys().chain(owners.keys()).cloned().collect();
        let specs: BTreeMap<TopicPartition, OffsetSpec> = parts
            .iter()
            .map(|tp| (tp.clone(), OffsetSpec::Latest))
            .collect();
        let ends = if specs.is_empty() {
            BTreeMap::new()
        } else {
            self.list_offsets(&specs, IsolationLevel::ReadUncommitted)
                .await?
                .into_inner()
        };
        let mut partitions = Vec::new();
        let mut total = 0;
        for tp in parts {
            // A partition whose end cannot be read (deleted topic) shows log end -1, no lag.
            let log_end = ends
                .get(&tp)
                .and_then(|r| r.as_ref().ok())
                .map_or(-1, |o| o.offset);
            let c = committed.get(&tp).map(|c| c.offset);
            let lag = c.filter(|_| log_end >= 0).map(|c| (log_end - c).max(0));
            total += lag.unwrap_or(0);
            partitions.push(PartitionLag {
                owner: owners.remove(&tp),
                partition: tp,
                committed: c,
                log_end,
                lag,
            });
        }
        Ok(GroupLag {
            group_id: group.to_owned(),
            state,
            partitions,
            total_lag: total,
        })
    }

    /// The lag of every consumer group (protocol type `consumer`, classic or KIP-848).
    pub async fn consumer_lag_all(&self) -> Result<Vec<GroupLag>> {
        let groups = self.list_groups(&ListGroupsFilter::default()).await?;
        let mut out = Vec::new();
        for g in groups {
            let consumer = g.protocol_type == "consumer"
                || g.group_type.as_deref() == Some("consumer")
                || g.protocol_type.is_empty();
            if consumer && g.group_type.as_deref() != Some("share") {
                out.push(self.consumer_lag(&g.group_id).await?);
            }
        }
        Ok(out)
    }
}
