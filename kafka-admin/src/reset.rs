//! Offset reset for a group: to the earliest or latest offset, to a timestamp, to an
//! explicit offset, or shifted by N; always computed as a plan first ([`ResetPlan`]), which a
//! dry run returns without committing. Like Kafka's own tool, the group must have no active
//! member, and new offsets are kept within each partition's [earliest, latest] range.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::admin::Admin;
use crate::error::{AdminError, Result, TopicPartition};
use crate::offsets::{IsolationLevel, OffsetSpec};

/// Where to move the committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetTo {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// The first offset at or after this timestamp (ms); the log end when none is.
    Timestamp(i64),
    /// This offset.
    Offset(i64),
    /// The current committed offset plus N (negative: back); from the log start when
    /// nothing is committed.
    ShiftBy(i64),
}

/// One partition's planned move.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OffsetMove {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset now (`None`: nothing committed).
    pub current: Option<i64>,
    /// The new committed offset.
    pub new: i64,
}

/// A computed reset: what would be (or was) committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResetPlan {
    /// The group.
    pub group: String,
    /// Per partition.
    pub moves: Vec<OffsetMove>,
    /// Whether it was committed (false for a dry run).
    pub applied: bool,
}

impl fmt::Display for ResetPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "offset reset of group {}{}",
            self.group,
            if self.applied { "" } else { " (dry run)" }
        )?;
        for m in &self.moves {
            writeln!(
                f,
                "  {:<40} {:>12} -> {}",
                m.partition.to_string(),
                m.current.map_or("-".into(), |c| c.to_string()),
                m.new
            )?;
        }
        Ok(())
    }
}

/// Where a partition's offset goes, given its committed offset and log range.
pub fn target_offset(
    to: ResetTo,
    current: Option<i64>,
    earliest: i64,
    latest: i64,
    by_time: Option<i64>,
) -> i64 {
    let raw = match to {
        ResetTo::Earliest => earliest,
        ResetTo::Latest => latest,
        ResetTo::Timestamp(_) => by_time.filter(|o| *o >= 0).unwrap_or(latest),
        ResetTo::Offset(o) => o,
        ResetTo::ShiftBy(n) => current.unwrap_or(earliest).saturating_add(n),
    };
    raw.clamp(earliest, latest.max(earliest))
}

impl Admin {
    /// Plans (and unless `dry_run`, commits) an offset reset of `group` for `partitions`
    /// (or every partition of `topics` when `partitions` is empty).
    pub async fn reset_group_offsets(
        &self,
        group: &str,
        topics: &[&str],
        partitions: &[TopicPartition],
        to: ResetTo,
        dry_run: bool,
    ) -> Result<ResetPlan> {
        let mut parts: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        if parts.is_empty() {
            for (name, d) in self.describe_topics(topics).await?.into_result()? {
                for p in d.partitions {
                    parts.insert(TopicPartition::new(name.clone(), p.partition));
                }
            }
        }
        if parts.is_empty() {
            return Err(AdminError::invalid(
                "an offset reset needs topics or partitions",
            ));
        }
        if !dry_run {
            let d = self.describe_groups(&[group]).await?;
            if let Some(Ok(d)) = d.get(&group.to_owned()) {
                if !d.members.is_empty() {
                    return Err(AdminError::invalid(format!(
                        "group {group} has {} active member(s) (state {}): stop its consumers before resetting offsets",
                        d.members.len(),
                        d.state
                    )));
                }
            }
        }
        let current = self
            .list_group_offsets(group, Some(&parts.iter().cloned().collect::<Vec<_>>()))
            .await?;
        let spec = |s: OffsetSpec| {
            parts
                .iter()
                .map(|tp| (tp.clone(), s))
                .collect::<BTreeMap<_, _>>()
        };
        let earliest = self
            .list_offsets(&spec(OffsetSpec::Earliest), IsolationLevel::ReadUncommitted)
            .await?
            .into_result()?;
        let latest = self
            .list_offsets(&spec(OffsetSpec::Latest), IsolationLevel::ReadUncommitted)
            .await?
            .into_result()?;
        let by_time = match to {
            ResetTo::Timestamp(t) => Some(
                self.list_offsets(
                    &spec(OffsetSpec::Timestamp(t)),
                    IsolationLevel::ReadUncommitted,
                )
                .await?
                .into_result()?,
            ),
            _ => None,
        };
        let moves: Vec<OffsetMove> = parts
            .iter()
            .map(|tp| {
                let cur = current.get(tp).map(|c| c.offset);
                OffsetMove {
                    partition: tp.clone(),
                    current: cur,
                    new: target_offset(
                        to,
                        cur,
                        earliest[tp].offset,
                        latest[tp].offset,
                        by_time.as_ref().map(|m| m[tp].offset),
                    ),
                }
            })
            .collect();
        if !dry_run {
            let offsets = moves.iter().map(|m| (m.partition.clone(), m.new)).collect();
            self.alter_group_offsets(group, &offsets)
                .await?
                .into_result()?;
        }
        Ok(ResetPlan {
            group: group.to_owned(),
            moves,
            applied: !dry_run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_clamped_to_the_log() {
        assert_eq!(target_offset(ResetTo::Earliest, Some(5), 2, 10, None), 2);
        assert_eq!(target_offset(ResetTo::Latest, Some(5), 2, 10, None), 10);
        assert_eq!(
            target_offset(ResetTo::ShiftBy(-10), Some(5), 2, 10, None),
            2
        );
        assert_eq!(target_offset(ResetTo::ShiftBy(3), Some(5), 2, 10, None), 8);
        assert_eq!(target_offset(ResetTo::ShiftBy(3), None, 2, 10, None), 5);
        assert_eq!(target_offset(ResetTo::Offset(99), None, 2, 10, None), 10);
        assert_eq!(
            target_offset(ResetTo::Timestamp(1), None, 2, 10, Some(4)),
            4
        );
        assert_eq!(
            target_offset(ResetTo::Timestamp(1), None, 2, 10, Some(-1)),
            10
        );
        assert_eq!(
            target_offset(ResetTo::ShiftBy(i64::MAX), Some(5), 2, 10, None),
            10
        );
    }
}
