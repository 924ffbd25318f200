//! The cluster health report: offline partitions, under-replicated and under-min-ISR
//! partitions, leaders not on the preferred replica, replicas of one partition sharing a
//! rack, and leader and replica skew across brokers. Machine-readable (serde) and printable.
//!
//! [`HealthReport::build`] is a pure function of a snapshot (brokers, partitions, each
//! topic's `min.insync.replicas`), so the rules are tested without a cluster;
//! [`Admin::health_report`] takes the snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::admin::Admin;
use crate::configs::ConfigResource;
use crate::error::{Result, TopicPartition};
use crate::topics::PartitionDescription;

/// A partition with fewer in-sync replicas than replicas.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnderReplicated {
    /// The partition.
    pub partition: TopicPartition,
    /// Replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// A partition with fewer in-sync replicas than `min.insync.replicas` (acks=all produces fail).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnderMinIsr {
    /// The partition.
    pub partition: TopicPartition,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The topic's `min.insync.replicas`.
    pub min_isr: i32,
}

/// A partition led by another replica than its preferred (first) one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotPreferredLeader {
    /// The partition.
    pub partition: TopicPartition,
    /// The current leader.
    pub leader: i32,
    /// The preferred leader.
    pub preferred: i32,
}

/// Replicas of one partition in the same rack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RackCollision {
    /// The partition.
    pub partition: TopicPartition,
    /// The shared rack.
    pub rack: String,
    /// The brokers in it.
    pub brokers: Vec<i32>,
}

/// Load of one broker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokerLoad {
    /// Node id.
    pub broker: i32,
    /// Rack.
    pub rack: Option<String>,
    /// Partitions it leads.
    pub leaders: usize,
    /// Replicas it hosts.
    pub replicas: usize,
}

/// Spread of a count across brokers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skew {
    /// Lowest count.
    pub min: usize,
    /// Highest count.
    pub max: usize,
    /// Mean count.
    pub mean: f64,
    /// `max / mean - 1` (0 when perfectly even; 0.5 = the busiest broker has 50 % more).
    pub max_over_mean: f64,
}

impl Skew {
    fn of(counts: &[usize]) -> Skew {
        if counts.is_empty() {
            return Skew {
                min: 0,
                max: 0,
                mean: 0.0,
                max_over_mean: 0.0,
            };
        }
        let min = *counts.iter().min().unwrap_or(&0);
        let max = *counts.iter().max().unwrap_or(&0);
        let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
        let max_over_mean = if mean > 0.0 {
            max as f64 / mean - 1.0
        } else {
            0.0
        };
        Skew {
            min,
            max,
            mean,
            max_over_mean,
        }
    }
}

/// The health of a cluster at one moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// Brokers and their load.
    pub brokers: Vec<BrokerLoad>,
    /// Number of partitions examined.
    pub partitions: usize,
    /// Partitions without a leader.
    pub offline: Vec<TopicPartition>,
    /// Partitions missing in-sync replicas.
    pub under_replicated: Vec<UnderReplicated>,
    /// Partitions below `min.insync.replicas`.
    pub under_min_isr: Vec<UnderMinIsr>,
    /// Partitions not led by their preferred replica.
    pub not_preferred_leader: Vec<NotPreferredLeader>,
    /// Partitions with replicas sharing a rack although enough racks exist.
    pub rack_collisions: Vec<RackCollision>,
    /// Leader count spread.
    pub leader_skew: Skew,
    /// Replica count spread.
    pub replica_skew: Skew,
}

impl HealthReport {
    /// Builds the report from a snapshot: brokers (id → rack), partitions, and each topic's
    /// `min.insync.replicas` (missing: 1).
    pub fn build(
        brokers: &BTreeMap<i32, Option<String>>,
        partitions: &BTreeMap<TopicPartition, PartitionDescription>,
        min_isr: &BTreeMap<String, i32>,
    ) -> HealthReport {
        let mut leaders: BTreeMap<i32, usize> = brokers.keys().map(|b| (*b, 0)).collect();
        let mut replicas: BTreeMap<i32, usize> = leaders.clone();
        let racks: BTreeSet<&String> = brokers.values().flatten().collect();
        let mut r = HealthReport {
            brokers: Vec::new(),
            partitions: partitions.len(),
            offline: Vec::new(),
            under_replicated: Vec::new(),
            under_min_isr: Vec::new(),
            not_preferred_leader: Vec::new(),
            rack_collisions: Vec::new(),
            leader_skew: Skew::of(&[]),
            replica_skew: Skew::of(&[]),
        };
        for (tp, p) in partitions {
            for b in &p.replicas {
                *replicas.entry(*b).or_default() += 1;
            }
            match p.leader {
                None => r.offline.push(tp.clone()),
                Some(l) => {
                    *leaders.entry(l).or_default() += 1;
                    if let Some(&preferred) = p.replicas.first() {
                        if preferred != l {
                            r.not_preferred_leader.push(NotPreferredLeader {
                                partition: tp.clone(),
                                leader: l,
                                preferred,
                            });
                        }
                    }
                }
            }
            if p.isr.len() < p.replicas.len() {
                r.under_replicated.push(UnderReplicated {
                    partition: tp.clone(),
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                });
            }
            let min = min_isr.get(&tp.topic).copied().unwrap_or(1);
            // (A partition with fewer replicas than min.insync.replicas is always here:
            // acks=all produces to it fail.)
            if (p.isr.len() as i32) < min {
                r.under_min_isr.push(UnderMinIsr {
                    partition: tp.clone(),
                    isr: p.isr.clone(),
                    min_isr: min,
                });
            }
            // Rack sharing matters only when the replicas could have been spread further.
            let mut by_rack: BTreeMap<&String, Vec<i32>> = BTreeMap::new();
            for b in &p.replicas {
                if let Some(Some(rack)) = brokers.get(b) {
                    by_rack.entry(rack).or_default().push(*b);
                }
            }
            if by_rack.len() < p.replicas.len().min(racks.len()) {
                for (rack, bs) in by_rack {
                    if bs.len() > 1 {
                        r.rack_collisions.push(RackCollision {
                            partition: tp.clone(),
                            rack: rack.clone(),
                            brokers: bs,
                        });
                    }
                }
            }
        }
        r.brokers = brokers
            .iter()
            .map(|(b, rack)| BrokerLoad {
                broker: *b,
                rack: rack.clone(),
                leaders: leaders.get(b).copied().unwrap_or(0),
                replicas: replicas.get(b).copied().unwrap_or(0),
            })
            .collect();
        r.leader_skew = Skew::of(&r.brokers.iter().map(|b| b.leaders).collect::<Vec<_>>());
        r.replica_skew = Skew::of(&r.brokers.iter().map(|b| b.replicas).collect::<Vec<_>>());
        r
    }

    /// Whether nothing needs attention (skew aside).
    pub fn is_healthy(&self) -> bool {
        self.offline.is_empty()
            && self.under_replicated.is_empty()
            && self.under_min_isr.is_empty()
            && self.rack_collisions.is_empty()
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cluster health: {} ({} brokers, {} partitions)",
            if self.is_healthy() { "OK" } else { "ATTENTION" },
            self.brokers.len(),
            self.partitions
        )?;
        for b in &self.brokers {
            writeln!(
                f,
                "  broker {:>4} rack {:<10} leaders {:>6} replicas {:>6}",
                b.broker,
                b.rack.as_deref().unwrap_or("-"),
                b.leaders,
                b.replicas
            )?;
        }
        writeln!(
            f,
            "  leader skew: max {} / mean {:.1} (+{:.0} %)",
            self.leader_skew.max,
            self.leader_skew.mean,
            self.leader_skew.max_over_mean * 100.0
        )?;
        writeln!(
            f,
            "  replica skew: max {} / mean {:.1} (+{:.0} %)",
            self.replica_skew.max,
            self.replica_skew.mean,
            self.replica_skew.max_over_mean * 100.0
        )?;
        let section =
            |f: &mut fmt::Formatter<'_>, title: &str, items: Vec<String>| -> fmt::Result {
                writeln!(f, "  {title}: {}", items.len())?;
                for i in items.iter().take(20) {
                    writeln!(f, "    {i}")?;
                }
                if items.len() > 20 {
                    writeln!(f, "    ... {} more", items.len() - 20)?;
                }
                Ok(())
            };
        section(
            f,
            "offline partitions",
            self.offline.iter().map(|p| p.to_string()).collect(),
        )?;
        section(
            f,
            "under-replicated",
            self.under_replicated
                .iter()
                .map(|u| format!("{} replicas {:?} isr {:?}", u.partition, u.replicas, u.isr))
                .collect(),
        )?;
        section(
            f,
            "under min ISR",
            self.under_min_isr
                .iter()
                .map(|u| {
                    format!(
                        "{} isr {:?} < min.insync.replicas {}",
                        u.partition, u.isr, u.min_isr
                    )
                })
                .collect(),
        )?;
        section(
            f,
            "leader not preferred",
            self.not_preferred_leader
                .iter()
                .map(|u| {
                    format!(
                        "{} leader {} preferred {}",
                        u.partition, u.leader, u.preferred
                    )
                })
                .collect(),
        )?;
        section(
            f,
            "replicas sharing a rack",
            self.rack_collisions
                .iter()
                .map(|u| format!("{} rack {} brokers {:?}", u.partition, u.rack, u.brokers))
                .collect(),
        )
    }
}

impl Admin {
    /// Takes a snapshot of the cluster (every topic, internal ones included) and builds the
    /// health report.
    pub async fn health_report(&self) -> Result<HealthReport> {
        let cluster = self.describe_cluster().await?;
        let brokers: BTreeMap<i32, Option<String>> = cluster
            .brokers
            .iter()
            .map(|b| (b.id, b.rack.clone()))
            .collect();
        let names: Vec<String> = self
            .list_topics(true)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut partitions = BTreeMap::new();
        // A topic deleted between list and describe is simply left out.
        for (name, d) in self.describe_topics(&refs).await? {
            if let Ok(d) = d {
                for p in d.partitions {
                    partitions.insert(TopicPartition::new(name.clone(), p.partition), p);
                }
            }
        }
        let resources: Vec<ConfigResource> = names
            .iter()
            .map(|n| ConfigResource::Topic(n.clone()))
            .collect();
        let mut min_isr = BTreeMap::new();
        for (r, entries) in self.describe_configs(&resources).await? {
            if let (ConfigResource::Topic(t), Ok(entries)) = (r, entries) {
                if let Some(v) = entries
                    .iter()
                    .find(|e| e.name == "min.insync.replicas")
                    .and_then(|e| e.value.as_ref())
                    .and_then(|v| v.parse().ok())
                {
                    min_isr.insert(t, v);
                }
            }
        }
        Ok(HealthReport::build(&brokers, &partitions, &min_isr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(
        partition: i32,
        leader: Option<i32>,
        replicas: &[i32],
        isr: &[i32],
    ) -> PartitionDescription {
        PartitionDescription {
            partition,
            leader,
            leader_epoch: Some(0),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline_replicas: vec![],
        }
    }

    #[test]
    fn finds_every_kind_of_problem() {
        let brokers = BTreeMap::from([
            (1, Some("a".into())),
            (2, Some("b".into())),
            (3, Some("b".into())),
        ]);
        let parts = BTreeMap::from([
            (TopicPartition::new("t", 0), p(0, Some(1), &[1, 2], &[1, 2])),
            (TopicPartition::new("t", 1), p(1, None, &[2, 3], &[])),
            (TopicPartition::new("t", 2), p(2, Some(3), &[2, 3], &[3])),
            (
                TopicPartition::new("u", 0),
                p(0, Some(1), &[1, 2, 3], &[1, 2, 3]),
            ),
        ]);
        let min = BTreeMap::from([("t".to_owned(), 2)]);
        let r = HealthReport::build(&brokers, &parts, &min);
        assert_eq!(r.offline, vec![TopicPartition::new("t", 1)]);
        assert_eq!(r.under_replicated.len(), 2);
        assert_eq!(
            r.under_min_isr
                .iter()
                .map(|u| u.partition.to_string())
                .collect::<Vec<_>>(),
            ["t-1", "t-2"]
        );
        assert_eq!(r.not_preferred_leader.len(), 1);
        assert_eq!(r.not_preferred_leader[0].preferred, 2);
        // t-1 and t-2 sit on brokers 2 and 3, both rack b, while rack a exists; u-0 spans
        // both racks already (3 replicas, 2 racks).
        assert_eq!(
            r.rack_collisions
                .iter()
                .map(|c| c.partition.to_string())
                .collect::<Vec<_>>(),
            ["t-1", "t-2"]
        );
        assert_eq!(
            r.brokers.iter().map(|b| b.leaders).collect::<Vec<_>>(),
            [2, 0, 1]
        );
        assert_eq!(r.replica_skew.max, 4);
        assert!(!r.is_healthy());
        let text = r.to_string();
        assert!(text.contains("ATTENTION") && text.contains("t-1"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["offline"][0]["topic"], "t");
    }

    #[test]
    fn a_balanced_cluster_is_healthy() {
        let brokers = BTreeMap::from([(1, Some("a".into())), (2, Some("b".into()))]);
        let parts = BTreeMap::from([
            (TopicPartition::new("t", 0), p(0, Some(1), &[1, 2], &[1, 2])),
            (TopicPartition::new("t", 1), p(1, Some(2), &[2, 1], &[2, 1])),
        ]);
        let r = HealthReport::build(&brokers, &parts, &BTreeMap::new());
        assert!(r.is_healthy(), "{r}");
        assert_eq!(r.leader_skew.max_over_mean, 0.0);
    }
}
