//! Reassignment planning and execution.
//!
//! [`plan_reassignment`] is a pure function: from the current assignment, the brokers to
//! use (with their racks) and optionally a new replication factor, it computes new replica
//! lists that (1) keep every replica that may stay where it is, (2) place missing replicas
//! on racks the partition does not use yet, then on the least loaded broker, and (3) move
//! replicas off overloaded brokers only until no broker has more than one replica above
//! another, never making a partition's rack spread worse. Replicas keep their positions, so
//! preferred leaders stay unless the leader's broker itself goes. Adding brokers, removing
//! brokers and changing the replication factor are all this one function
//! ([`plan_add_brokers`], [`plan_remove_brokers`], [`plan_replication_factor`]).
//!
//! [`Admin::execute_reassignment`] applies a plan with a replication throttle (the broker
//! and topic configs Kafka's own reassignment tool sets), follows it to completion, checks
//! the result and removes the throttle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::admin::Admin;
use crate::configs::{AlterConfigOp, ConfigResource};
use crate::error::{AdminError, Result, TopicPartition};

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionMove {
    /// Replicas now.
    pub from: Vec<i32>,
    /// Replicas after.
    pub to: Vec<i32>,
}

/// A reassignment plan: only the partitions that change.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReassignmentPlan {
    /// Per partition.
    pub moves: BTreeMap<TopicPartition, PartitionMove>,
}

impl ReassignmentPlan {
    /// Whether nothing moves.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// How many replicas must be copied to a new broker.
    pub fn replicas_copied(&self) -> usize {
        self.moves
            .values()
            .map(|m| m.to.iter().filter(|b| !m.from.contains(b)).count())
            .sum()
    }
}

impl fmt::Display for ReassignmentPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reassignment: {} partition(s), {} replica copy(ies)",
            self.moves.len(),
            self.replicas_copied()
        )?;
        for (tp, m) in &self.moves {
            writeln!(f, "  {:<40} {:?} -> {:?}", tp.to_string(), m.from, m.to)?;
        }
        Ok(())
    }
}

/// Plans a reassignment onto `brokers` (id → rack), optionally to a new replication factor.
pub fn plan_reassignment(
    current: &BTreeMap<TopicPartition, Vec<i32>>,
    brokers: &BTreeMap<i32, Option<String>>,
    replication_factor: Option<usize>,
) -> Result<ReassignmentPlan> {
    if brokers.is_empty() {
        return Err(AdminError::Plan {
            reason: "no broker to place replicas on".into(),
        });
    }
    if replication_factor == Some(0) {
        return Err(AdminError::Plan {
            reason: "the replication factor must be at least 1".into(),
        });
    }
    let rack = |b: i32| brokers.get(&b).cloned().flatten();
    let mut next: BTreeMap<TopicPartition, Vec<i32>> = BTreeMap::new();
    let mut load: BTreeMap<i32, usize> = brokers.keys().map(|b| (*b, 0)).collect();
    // 1. Keep what may stay; trim to the replication factor, dropping rack duplicates first.
    for (tp, replicas) in current {
        let rf = replication_factor.unwrap_or(replicas.len());
        if rf > brokers.len() {
            return Err(AdminError::Plan {
                reason: format!(
                    "{tp}: replication factor {rf} needs {rf} brokers, only {} given",
                    brokers.len()
                ),
            });
        }
        let mut keep: Vec<i32> = Vec::new();
        for b in replicas {
            if brokers.contains_key(b) && !keep.contains(b) {
                keep.push(*b);
            }
        }
        while keep.len() > rf {
            let dup = (0..keep.len()).rev().find(|&i| {
                let r = rack(keep[i]);
                r.is_some()
                    && keep
                        .iter()
                        .enumerate()
                        .any(|(j, o)| j != i && rack(*o) == r)
            });
            keep.remove(dup.unwrap_or(keep.len() - 1));
        }
        for b in &keep {
            *load.entry(*b).or_default() += 1;
        }
        next.insert(tp.clone(), keep);
    }
    // 2. Fill missing replicas: a new rack first, then the least loaded broker.
    for (tp, replicas) in current {
        let rf = replication_factor.unwrap_or(replicas.len());
        let set = next.get_mut(tp).expect("every partition was kept");
        while set.len() < rf {
            let used: BTreeSet<Option<String>> = set.iter().map(|b| rack(*b)).collect();
            let pick = brokers
                .keys()
                .filter(|b| !set.contains(b))
                .min_by_key(|b| {
                    let r = rack(**b);
                    (r.is_some() && used.contains(&r), load[b], **b)
                })
                .copied()
                .expect("rf <= brokers was checked");
            set.push(pick);
            *load.entry(pick).or_default() += 1;
        }
    }
    // 3. Even out replica counts: move from the busiest to the idlest broker while they differ
    //    by more than one, preferring replicas that move anyway, never worsening racks.
    let total: usize = load.values().sum();
    for _ in 0..=total {
        let mut by_load: Vec<(usize, i32)> = load.iter().map(|(b, n)| (*n, *b)).collect();
        by_load.sort();
        let mut moved = false;
        'pairs: for &(hi, over) in by_load.iter().rev() {
            for &(lo, under) in &by_load {
                if hi <= lo + 1 {
                    break 'pairs;
                }
                let candidates = next.iter().filter(|(_, set)| {
                    if !set.contains(&over) || set.contains(&under) {
                        return false;
                    }
                    // The new broker's rack must be new to the partition, or the same as
                    // the rack it leaves: the spread never gets worse.
                    let others: BTreeSet<Option<String>> = set
                        .iter()
                        .filter(|b| **b != over)
                        .map(|b| rack(*b))
                        .collect();
                    let ru = rack(under);
                    ru.is_none() || !others.contains(&ru) || rack(over) == ru
                });
                // Prefer a replica that is moving anyway (not in the current assignment),
                // then a follower over the leader.
                let best = candidates
                    .min_by_key(|(tp, set)| {
                        let anyway = !current[*tp].contains(&over);
                        (!anyway, set.first() == Some(&over), (*tp).clone())
                    })
                    .map(|(tp, _)| tp.clone());
                if let Some(tp) = best {
                    let set = next.get_mut(&tp).expect("found above");
                    let i = set.iter().position(|b| *b == over).expect("contains over");
                    set[i] = under;
                    *load.get_mut(&over).expect("known") -= 1;
                    *load.get_mut(&under).expect("known") += 1;
                    moved = true;
                    break 'pairs;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let moves = next
        .into_iter()
        .filter(|(tp, to)| &current[tp] != to)
        .map(|(tp, to)| {
            let from = current[&tp].clone();
            (tp, PartitionMove { from, to })
        })
        .collect();
    Ok(ReassignmentPlan { moves })
}

/// Spreads the current assignment over every broker of `brokers`, new ones included.
pub fn plan_add_brokers(
    current: &BTreeMap<TopicPartition, Vec<i32>>,
    brokers: &BTreeMap<i32, Option<String>>,
) -> Result<ReassignmentPlan> {
    plan_reassignment(current, brokers, None)
}

/// Moves every replica off `remove`.
pub fn plan_remove_brokers(
    current: &BTreeMap<TopicPartition, Vec<i32>>,
    brokers: &BTreeMap<i32, Option<String>>,
    remove: &[i32],
) -> Result<ReassignmentPlan> {
    let kept: BTreeMap<i32, Option<String>> = brokers
        .iter()
        .filter(|(b, _)| !remove.contains(b))
        .map(|(b, r)| (*b, r.clone()))
        .collect();
    plan_reassignment(current, &kept, None)
}

/// Changes the replication factor of every partition in `current`.
pub fn plan_replication_factor(
    current: &BTreeMap<TopicPartition, Vec<i32>>,
    brokers: &BTreeMap<i32, Option<String>>,
    replication_factor: usize,
) -> Result<ReassignmentPlan> {
    plan_reassignment(current, brokers, Some(replication_factor))
}

/// How a followed reassignment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReassignmentOutcome {
    /// Partitions moved.
    pub partitions: usize,
    /// How long it took.
    pub elapsed: Duration,
    /// How many times progress was checked.
    pub polls: usize,
}

impl Admin {
    /// The replica lists of every partition of `topics`.
    pub async fn current_assignment(
        &self,
        topics: &[&str],
    ) -> Result<BTreeMap<TopicPartition, Vec<i32>>> {
        let mut out = BTreeMap::new();
        for (name, d) in self.describe_topics(topics).await?.into_result()? {
            for p in d.partitions {
                out.insert(TopicPartition::new(name.clone(), p.partition), p.replicas);
            }
        }
        Ok(out)
    }

    /// Every broker and its rack.
    pub async fn broker_racks(&self) -> Result<BTreeMap<i32, Option<String>>> {
        Ok(self
            .describe_cluster()
            .await?
            .brokers
            .into_iter()
            .map(|b| (b.id, b.rack))
            .collect())
    }

    fn throttle_changes(
        plan: &ReassignmentPlan,
        rate: Option<u64>,
    ) -> BTreeMap<ConfigResource, Vec<AlterConfigOp>> {
        let mut changes: BTreeMap<ConfigResource, Vec<AlterConfigOp>> = BTreeMap::new();
        let mut brokers = BTreeSet::new();
        let mut leaders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut followers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (tp, m) in &plan.moves {
            brokers.extend(m.from.iter().chain(&m.to).copied());
            for b in &m.from {
                leaders
                    .entry(tp.topic.clone())
                    .or_default()
                    .push(format!("{}:{b}", tp.partition));
            }
            for b in m.to.iter().filter(|b| !m.from.contains(b)) {
                followers
                    .entry(tp.topic.clone())
                    .or_default()
                    .push(format!("{}:{b}", tp.partition));
            }
        }
        for b in brokers {
            let ops = match rate {
                Some(r) => vec![
                    AlterConfigOp::set("leader.replication.throttled.rate", r.to_string()),
                    AlterConfigOp::set("follower.replication.throttled.rate", r.to_string()),
                ],
                None => vec![
                    AlterConfigOp::delete("leader.replication.throttled.rate"),
                    AlterConfigOp::delete("follower.replication.throttled.rate"),
                ],
            };
            changes.insert(ConfigResource::Broker(b), ops);
        }
        let topics: BTreeSet<&String> = leaders.keys().chain(followers.keys()).collect();
        for t in topics {
            let ops = match rate {
                Some(_) => vec![
                    AlterConfigOp::set(
                        "leader.replication.throttled.replicas",
                        leaders.get(t).map(|v| v.join(",")).unwrap_or_default(),
                    ),
                    AlterConfigOp::set(
                        "follower.replication.throttled.replicas",
                        followers.get(t).map(|v| v.join(",")).unwrap_or_default(),
                    ),
                ],
                None => vec![
                    AlterConfigOp::delete("leader.replication.throttled.replicas"),
                    AlterConfigOp::delete("follower.replication.throttled.replicas"),
                ],
            };
            changes.insert(ConfigResource::Topic(t.clone()), ops);
        }
        changes
    }

    /// Starts a plan: sets the replication throttle (bytes/s per broker, on the brokers and
    /// replicas involved; `None`: unthrottled) and submits the reassignments. Existing
    /// throttle settings of those brokers and topics are replaced.
    pub async fn apply_reassignment(
        &self,
        plan: &ReassignmentPlan,
        throttle: Option<u64>,
    ) -> Result<()> {
        if plan.is_empty() {
            return Ok(());
        }
        if let Some(rate) = throttle {
            if rate == 0 {
                return Err(AdminError::invalid(
                    "a replication throttle of 0 bytes/s would never finish",
                ));
            }
            self.incremental_alter_configs(&Self::throttle_changes(plan, Some(rate)), false)
                .await?
                .into_result()?;
        }
        let changes = plan
            .moves
            .iter()
            .map(|(tp, m)| (tp.clone(), Some(m.to.clone())))
            .collect();
        self.alter_partition_reassignments(&changes)
            .await?
            .into_result()?;
        Ok(())
    }

    /// Waits until no partition of `plan` is being reassigned any more and each has the
    /// planned replicas, checking every `admin.reassignment.poll.ms`; then removes the
    /// throttle. Fails with [`AdminError::Timeout`] after `timeout` (the reassignment goes
    /// on; cancel it with `alter_partition_reassignments(.., None)`).
    pub async fn wait_for_reassignment(
        &self,
        plan: &ReassignmentPlan,
        timeout: Duration,
    ) -> Result<ReassignmentOutcome> {
        let start = Instant::now();
        let parts: Vec<TopicPartition> = plan.moves.keys().cloned().collect();
        let mut polls = 0;
        loop {
            polls += 1;
            let ongoing = if parts.is_empty() {
                BTreeMap::new()
            } else {
                self.list_partition_reassignments(Some(&parts)).await?
            };
            if ongoing.is_empty() {
                let topics: BTreeSet<&str> = parts.iter().map(|tp| tp.topic.as_str()).collect();
                let topics: Vec<&str> = topics.into_iter().collect();
                let now = if topics.is_empty() {
                    BTreeMap::new()
                } else {
                    self.current_assignment(&topics).await?
                };
                let done = plan.moves.iter().all(|(tp, m)| {
                    now.get(tp).is_some_and(|r| {
                        r.iter().collect::<BTreeSet<_>>() == m.to.iter().collect::<BTreeSet<_>>()
                    })
                });
                if done {
                    let clear = Self::throttle_changes(plan, None);
                    if !clear.is_empty() {
                        self.incremental_alter_configs(&clear, false)
                            .await?
                            .into_result()?;
                    }
                    return Ok(ReassignmentOutcome {
                        partitions: parts.len(),
                        elapsed: start.elapsed(),
                        polls,
                    });
                }
            } else {
                tracing::debug!(ongoing = ongoing.len(), "reassignment in progress");
            }
            if start.elapsed() >= timeout {
                return Err(AdminError::Timeout {
                    what: format!("reassignment of {} partition(s)", parts.len()),
                    elapsed: start.elapsed(),
                });
            }
            tokio::time::sleep(self.config().reassignment_poll).await;
        }
    }

    /// [`apply_reassignment`](Self::apply_reassignment) then
    /// [`wait_for_reassignment`](Self::wait_for_reassignment).
    pub async fn execute_reassignment(
        &self,
        plan: &ReassignmentPlan,
        throttle: Option<u64>,
        timeout: Duration,
    ) -> Result<ReassignmentOutcome> {
        self.apply_reassignment(plan, throttle).await?;
        self.wait_for_reassignment(plan, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn racks(n: i32) -> BTreeMap<i32, Option<String>> {
        (1..=n)
            .map(|b| (b, Some(format!("rack-{}", (b - 1) % 3))))
            .collect()
    }

    fn layout(parts: &[(&str, i32, &[i32])]) -> BTreeMap<TopicPartition, Vec<i32>> {
        parts
            .iter()
            .map(|(t, p, r)| (TopicPartition::new(*t, *p), r.to_vec()))
            .collect()
    }

    fn loads(a: &BTreeMap<TopicPartition, Vec<i32>>) -> BTreeMap<i32, usize> {
        let mut m = BTreeMap::new();
        for r in a.values() {
            for b in r {
                *m.entry(*b).or_default() += 1;
            }
        }
        m
    }

    fn apply(
        current: &BTreeMap<TopicPartition, Vec<i32>>,
        plan: &ReassignmentPlan,
    ) -> BTreeMap<TopicPartition, Vec<i32>> {
        let mut out = current.clone();
        for (tp, m) in &plan.moves {
            out.insert(tp.clone(), m.to.clone());
        }
        out
    }

    #[test]
    fn a_balanced_layout_needs_no_move() {
        let cur = layout(&[
            ("t", 0, &[1, 2, 3]),
            ("t", 1, &[2, 3, 1]),
            ("t", 2, &[3, 1, 2]),
        ]);
        assert!(plan_reassignment(&cur, &racks(3), None).unwrap().is_empty());
    }

    #[test]
    fn adding_brokers_moves_little_and_balances() {
        // 6 partitions, rf 2 on brokers 1-3 (4 replicas each); add brokers 4-6.
        let cur = layout(&[
            ("t", 0, &[1, 2]),
            ("t", 1, &[2, 3]),
            ("t", 2, &[3, 1]),
            ("t", 3, &[1, 2]),
            ("t", 4, &[2, 3]),
            ("t", 5, &[3, 1]),
        ]);
        let plan = plan_add_brokers(&cur, &racks(6)).unwrap();
        let after = apply(&cur, &plan);
        let l = loads(&after);
        assert!(l.values().all(|n| *n == 2), "{l:?}");
        // 12 replicas over 6 brokers: exactly the 6 that must land on the new brokers move.
        assert_eq!(plan.replicas_copied(), 6, "{plan}");
        for r in after.values() {
            let rs: BTreeSet<_> = r.iter().map(|b| (b - 1) % 3).collect();
            assert_eq!(rs.len(), 2, "replicas {r:?} share a rack");
        }
    }

    #[test]
    fn removing_a_broker_moves_only_its_replicas_to_other_racks() {
        let cur = layout(&[
            ("t", 0, &[1, 2, 3]),
            ("t", 1, &[4, 5, 6]),
            ("t", 2, &[1, 5, 3]),
        ]);
        let plan = plan_remove_brokers(&cur, &racks(6), &[1]).unwrap();
        assert_eq!(plan.moves.len(), 2, "{plan}");
        for (tp, m) in &plan.moves {
            assert!(!m.to.contains(&1));
            assert_eq!(
                m.to.iter().filter(|b| !m.from.contains(b)).count(),
                1,
                "{tp}: one copy"
            );
            // broker 1 was rack-0; its replacement must be rack-0 too (4) to keep 3 racks.
            assert!(m.to.contains(&4), "{tp}: {m:?}");
        }
    }

    #[test]
    fn replication_factor_changes_use_new_racks_and_keep_the_leader() {
        let cur = layout(&[("t", 0, &[1]), ("t", 1, &[2]), ("t", 2, &[3])]);
        let plan = plan_replication_factor(&cur, &racks(3), 3).unwrap();
        let after = apply(&cur, &plan);
        for (tp, r) in &after {
            assert_eq!(r.len(), 3);
            assert_eq!(r[0], cur[tp][0], "leader kept");
        }
        let down = plan_replication_factor(&after, &racks(3), 1).unwrap();
        let after = apply(&after, &down);
        assert!(after.iter().all(|(tp, r)| r == &cur[tp]), "{after:?}");
        let e = plan_replication_factor(&cur, &racks(3), 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs 4 brokers"), "{e}");
    }
}
