//! `kafka-admin` on the kit's three-node rack-aware cluster (racks rack-a/b/c, replication
//! factor 3, min.insync.replicas 2): reassignment (planned, throttled, followed to
//! completion), leader election, log dirs and the health report, with a stopped broker to
//! make the report find something.
//!
//! `KAFKA_KIT_PORT_OFFSET=1000 cargo test -p tests --test admin_cluster`

mod admin_support;

use std::collections::BTreeMap;
use std::time::Duration;

use admin_support::{
    admin, eventually, leader_and_isr, now_ms, produce, produce_sized, wait_for_leaders,
};
use kafka_admin::cluster::{ElectionType, TopicPartitionReplica};
use kafka_admin::reassign::{plan_remove_brokers, plan_replication_factor};
use kafka_admin::{ConfigResource, NewTopic, TopicPartition};
use kafka_core::KafkaCode;
use tests::{cluster, unique_topic, Cluster, ClusterSpec};

fn kafka() -> &'static Cluster {
    cluster(ClusterSpec::three_nodes())
}

/// The health test stops a broker: it runs alone, the others may share the cluster.
static BROKERS_UP: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

#[tokio::test]
async fn reassignment_planned_throttled_and_followed_to_completion() {
    let _shared = BROKERS_UP.read().await;
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-reassign");
    // Replication factor 1 everywhere on broker 1, so the plan has something to do.
    let assignment = BTreeMap::from([(0, vec![1]), (1, vec![1]), (2, vec![1])]);
    admin
        .create_topics(&[NewTopic::with_assignment(&topic, assignment)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 3).await;
    for p in 0..3 {
        produce(admin.client(), &topic, p, 50, now_ms()).await;
    }

    let racks = admin.broker_racks().await.unwrap();
    assert_eq!(racks.len(), 3);
    assert_eq!(racks[&2].as_deref(), Some("rack-b"));
    let current = admin.current_assignment(&[&topic]).await.unwrap();
    // Raise the replication factor to 3: each partition gains one replica per other rack.
    let plan = plan_replication_factor(&current, &racks, 3).unwrap();
    assert_eq!(plan.moves.len(), 3, "{plan}");
    assert_eq!(plan.replicas_copied(), 6, "{plan}");
    for m in plan.moves.values() {
        assert_eq!(m.to[0], 1, "the leader stays first: {plan}");
    }

    // Applied with a throttle: the throttle configs are set while it runs...
    admin
        .apply_reassignment(&plan, Some(10_000_000))
        .await
        .unwrap();
    eventually("broker throttle set", || async {
        let rate = admin
            .describe_config(
                &ConfigResource::Broker(2),
                "follower.replication.throttled.rate",
            )
            .await
            .unwrap()?;
        (rate.value.as_deref() == Some("10000000")).then_some(())
    })
    .await;
    eventually("topic throttle set", || async {
        let r = admin
            .describe_config(
                &ConfigResource::Topic(topic.clone()),
                "leader.replication.throttled.replicas",
            )
            .await
            .unwrap()?;
        r.value
            .as_deref()
            .unwrap_or("")
            .contains("0:1")
            .then_some(())
    })
    .await;
    // ...followed to completion, and removed after.
    let outcome = admin
        .wait_for_reassignment(&plan, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(outcome.partitions, 3);
    // Metadata comes from any broker, which may not have applied the last change yet.
    let after = eventually("three replicas everywhere", || async {
        let a = admin.current_assignment(&[&topic]).await.unwrap();
        a.values().all(|r| r.len() == 3).then_some(a)
    })
    .await;
    // (A dynamic-only broker config is not listed at all once deleted.) Broker 2 answers
    // from its own config, which follows the controller's commit.
    eventually("throttle removed", || async {
        let rate = admin
            .describe_config(
                &ConfigResource::Broker(2),
                "follower.replication.throttled.rate",
            )
            .await
            .unwrap();
        rate.as_ref().is_none_or(|r| r.is_default()).then_some(())
    })
    .await;
    assert!(admin
        .list_partition_reassignments(None)
        .await
        .unwrap()
        .keys()
        .all(|k| k.topic != topic));
    let java = kafka.tool_ok(
        "topics",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "--describe",
            "--topic",
            &topic,
        ],
    );
    assert_eq!(java.matches("Replicas: 1,").count(), 3, "{java}");

    // Back to two replicas (the last ones go), then drain broker 3: only its replicas move.
    let plan = plan_replication_factor(&after, &racks, 2).unwrap();
    assert_eq!(plan.replicas_copied(), 0, "{plan}");
    admin
        .execute_reassignment(&plan, None, Duration::from_secs(120))
        .await
        .unwrap();
    let after = eventually("two replicas everywhere", || async {
        let a = admin.current_assignment(&[&topic]).await.unwrap();
        a.values().all(|r| r.len() == 2).then_some(a)
    })
    .await;
    let plan = plan_remove_brokers(&after, &racks, &[3]).unwrap();
    assert_eq!(
        plan.moves.len(),
        after.values().filter(|r| r.contains(&3)).count(),
        "{plan}"
    );
    assert!(plan
        .moves
        .values()
        .all(|m| !m.to.contains(&3) && m.to.len() == 2));
    admin
        .execute_reassignment(&plan, Some(50_000_000), Duration::from_secs(120))
        .await
        .unwrap();
    eventually("broker 3 drained", || async {
        let a = admin.current_assignment(&[&topic]).await.unwrap();
        a.values()
            .all(|r| !r.contains(&3) && r.len() == 2)
            .then_some(())
    })
    .await;

    // Bad reassignments fail per partition: an unknown broker, an unknown partition.
    let bad = BTreeMap::from([
        (tp(&topic, 0), Some(vec![1, 99])),
        (tp(&topic, 9), Some(vec![1])),
    ]);
    let r = admin.alter_partition_reassignments(&bad).await.unwrap();
    assert!(r.get(&tp(&topic, 0)).unwrap().is_err());
    assert_eq!(
        r.get(&tp(&topic, 9)).unwrap().as_ref().unwrap_err().code,
        KafkaCode::UnknownTopicOrPartition
    );
}

#[tokio::test]
async fn preferred_leader_election_and_log_dirs() {
    let _shared = BROKERS_UP.read().await;
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-elect");
    let assignment = BTreeMap::from([(0, vec![2, 3, 1])]);
    admin
        .create_topics(&[NewTopic::with_assignment(&topic, assignment)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 1).await;
    produce(admin.client(), &topic, 0, 100, now_ms()).await;

    // Reorder the replicas: broker 3 becomes preferred, but leadership stays with 2.
    let reorder = BTreeMap::from([(tp(&topic, 0), Some(vec![3, 2, 1]))]);
    admin
        .alter_partition_reassignments(&reorder)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let d = eventually("replicas reordered", || async {
        let d = admin
            .describe_topics(&[&topic])
            .await
            .unwrap()
            .into_result()
            .unwrap();
        let p = d[&topic].partitions[0].clone();
        (p.replicas == [3, 2, 1] && p.isr.len() == 3).then_some(p)
    })
    .await;
    assert_eq!(d.leader, Some(2));
    // (Metadata reaches every broker a moment later: the report may ask another one.)
    eventually("the report names the partition", || async {
        let report = admin.health_report().await.unwrap();
        report
            .not_preferred_leader
            .iter()
            .any(|n| n.partition == tp(&topic, 0) && n.preferred == 3 && n.leader == 2)
            .then_some(())
    })
    .await;

    let r = admin
        .elect_leaders(ElectionType::Preferred, Some(&[tp(&topic, 0)]))
        .await
        .unwrap();
    r.into_result().unwrap();
    eventually("broker 3 leads", || async {
        let d = admin
            .describe_topics(&[&topic])
            .await
            .unwrap()
            .into_result()
            .unwrap();
        (d[&topic].partitions[0].leader == Some(3)).then_some(())
    })
    .await;
    // Asking again: no election needed, said per partition.
    let again = admin
        .elect_leaders(ElectionType::Preferred, Some(&[tp(&topic, 0)]))
        .await
        .unwrap();
    assert_eq!(
        again
            .get(&tp(&topic, 0))
            .unwrap()
            .as_ref()
            .unwrap_err()
            .code,
        KafkaCode::ElectionNotNeeded
    );
    let missing = admin
        .elect_leaders(ElectionType::Preferred, Some(&[tp(&topic, 5)]))
        .await
        .unwrap();
    assert_eq!(
        missing
            .get(&tp(&topic, 5))
            .unwrap()
            .as_ref()
            .unwrap_err()
            .code,
        KafkaCode::UnknownTopicOrPartition
    );

    // Log dirs: every broker has the replica, with its size (once followers caught up).
    let dirs = eventually("every replica has data", || async {
        let dirs = admin
            .describe_log_dirs(&[])
            .await
            .unwrap()
            .into_result()
            .unwrap();
        let all = dirs
            .values()
            .flatten()
            .flat_map(|d| d.replicas.get(&tp(&topic, 0)))
            .filter(|r| r.size > 0)
            .count();
        (all == 3).then_some(dirs)
    })
    .await;
    assert_eq!(dirs.len(), 3);
    for (b, ds) in &dirs {
        let data_dir = kafka.broker(*b).unwrap().data_dir.clone().unwrap();
        let d = ds
            .iter()
            .find(|d| std::path::Path::new(&d.path) == data_dir)
            .unwrap_or_else(|| panic!("broker {b}: {ds:?}"));
        assert!(d.error.is_none());
        let r = d
            .replicas
            .get(&tp(&topic, 0))
            .unwrap_or_else(|| panic!("broker {b} lacks the replica"));
        assert!(r.size > 0, "broker {b}: {r:?}");
        assert!(d.total_bytes.is_none_or(|t| t > 0));
    }
    // Moving a replica to the dir it is in is accepted; to a dir the broker lacks is not.
    let path = dirs[&1][0].path.clone();
    let same = BTreeMap::from([(
        TopicPartitionReplica {
            partition: tp(&topic, 0),
            broker: 1,
        },
        path,
    )]);
    admin
        .alter_replica_log_dirs(&same)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let nowhere = BTreeMap::from([(
        TopicPartitionReplica {
            partition: tp(&topic, 0),
            broker: 1,
        },
        "/no/such/dir".to_owned(),
    )]);
    let r = admin.alter_replica_log_dirs(&nowhere).await.unwrap();
    assert!(!r.all_ok(), "{r:?}");
}

#[tokio::test]
async fn health_report_sees_a_stopped_broker() {
    let _alone = BROKERS_UP.write().await;
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-health");
    // `topic` has three replicas; `single` one, on broker 3, below its min.insync.replicas.
    let single = unique_topic("admin-health-single");
    admin
        .create_topics(
            &[
                NewTopic::with_assignment(&topic, BTreeMap::from([(0, vec![1, 2, 3])])),
                NewTopic::with_assignment(&single, BTreeMap::from([(0, vec![3])]))
                    .config("min.insync.replicas", "2"),
            ],
            false,
        )
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 1).await;
    wait_for_leaders(admin.client(), &single, 1).await;

    let report = admin.health_report().await.unwrap();
    assert_eq!(report.brokers.len(), 3);
    assert!(report.offline.iter().all(|p| p.topic != topic), "{report}");
    // Partition 1 has one replica but min.insync.replicas 2: acks=all cannot succeed.
    assert!(
        report
            .under_min_isr
            .iter()
            .any(|u| u.partition == tp(&single, 0)),
        "{report}"
    );
    let json = report.to_json();
    assert!(
        json.contains("\"under_min_isr\"") && json.contains(&format!("\"topic\": \"{single}\"")),
        "{json}"
    );

    kafka.stop_broker(3);
    let report = eventually("the report sees broker 3 gone", || async {
        let r = admin.health_report().await.ok()?;
        (r.offline.contains(&tp(&single, 0))
            && r.under_replicated
                .iter()
                .any(|u| u.partition == tp(&topic, 0)))
        .then_some(r)
    })
    .await;
    kafka.start_broker(3);
    let text = report.to_string();
    assert!(!report.is_healthy());
    assert!(
        text.contains("ATTENTION") && text.contains(&format!("{single}-0")),
        "{text}"
    );
    eventually("broker 3 back in the ISR", || async {
        let d = admin
            .describe_topics(&[&topic, &single])
            .await
            .ok()?
            .into_result()
            .ok()?;
        (d.values()
            .flat_map(|t| &t.partitions)
            .all(|p| p.isr.len() == p.replicas.len()))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_throttled_reassignment_is_listed_while_it_runs_and_can_be_cancelled() {
    // Alone: the other reassignment test sets and clears the same broker throttles.
    let _alone = BROKERS_UP.write().await;
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-cancel");
    admin
        .create_topics(
            &[NewTopic::with_assignment(
                &topic,
                BTreeMap::from([(0, vec![1])]),
            )],
            false,
        )
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 1).await;
    // 16 MB at 10 kB/s: the follower's first fetch takes up to replica.fetch.max.bytes
    // (10 MB in the kit) before the quota bites, the rest cannot follow while we look.
    for _ in 0..16 {
        produce_sized(admin.client(), &topic, 0, 100, now_ms(), 10_000).await;
    }
    let current = admin.current_assignment(&[&topic]).await.unwrap();
    let racks = admin.broker_racks().await.unwrap();
    let plan = plan_replication_factor(&current, &racks, 2).unwrap();
    assert_eq!(plan.replicas_copied(), 1, "{plan}");
    admin.apply_reassignment(&plan, Some(10_000)).await.unwrap();
    let ongoing = eventually("the reassignment is listed", || async {
        admin
            .list_partition_reassignments(Some(&[tp(&topic, 0)]))
            .await
            .unwrap()
            .remove(&tp(&topic, 0))
    })
    .await;
    assert_eq!(ongoing.adding.len(), 1, "{ongoing:?}");
    assert!(ongoing.replicas.contains(&1));
    // Following it times out (typed), and the reassignment goes on.
    let e = admin
        .wait_for_reassignment(&plan, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, kafka_admin::AdminError::Timeout { .. }), "{e}");
    // Cancel: the partition goes back to its one replica.
    let cancel = BTreeMap::from([(tp(&topic, 0), None)]);
    admin
        .alter_partition_reassignments(&cancel)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    eventually("cancelled", || async {
        let none = admin
            .list_partition_reassignments(Some(&[tp(&topic, 0)]))
            .await
            .unwrap()
            .is_empty();
        let back = admin.current_assignment(&[&topic]).await.unwrap()[&tp(&topic, 0)] == [1];
        (none && back).then_some(())
    })
    .await;
    // Cancelling what is not moving is a per-partition error.
    let r = admin.alter_partition_reassignments(&cancel).await.unwrap();
    assert_eq!(
        r.get(&tp(&topic, 0)).unwrap().as_ref().unwrap_err().code,
        KafkaCode::NoReassignmentInProgress
    );
    // Clear the throttle the cancelled plan left.
    let clear = BTreeMap::from([(
        ConfigResource::Topic(topic.clone()),
        vec![
            kafka_admin::AlterConfigOp::delete("leader.replication.throttled.replicas"),
            kafka_admin::AlterConfigOp::delete("follower.replication.throttled.replicas"),
        ],
    )]);
    admin
        .incremental_alter_configs(&clear, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    for b in 1..=3 {
        let ops = BTreeMap::from([(
            ConfigResource::Broker(b),
            vec![
                kafka_admin::AlterConfigOp::delete("leader.replication.throttled.rate"),
                kafka_admin::AlterConfigOp::delete("follower.replication.throttled.rate"),
            ],
        )]);
        admin
            .incremental_alter_configs(&ops, false)
            .await
            .unwrap()
            .into_result()
            .unwrap();
    }
}

#[tokio::test]
async fn unclean_election_brings_an_offline_partition_back_on_an_out_of_sync_replica() {
    let _alone = BROKERS_UP.write().await;
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-unclean");
    // Replicas 2 (preferred) and 3; min.insync.replicas 1 so that broker 3 leaving the ISR
    // does not make it an eligible leader replica (KIP-966): only an unclean election can
    // pick it once broker 2 is gone too.
    admin
        .create_topics(
            &[
                NewTopic::with_assignment(&topic, BTreeMap::from([(0, vec![2, 3])]))
                    .config("min.insync.replicas", "1"),
            ],
            false,
        )
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 1).await;
    kafka.stop_broker(3);
    eventually("broker 3 out of the ISR", || async {
        let (_, isr) = leader_and_isr(&admin, &topic, 0).await?;
        (isr == vec![2]).then_some(())
    })
    .await;
    kafka.stop_broker(2);
    kafka.start_broker(3);
    eventually("the partition offline with broker 3 back", || async {
        let (leader, _) = leader_and_isr(&admin, &topic, 0).await?;
        leader.is_none().then_some(())
    })
    .await;
    // A preferred election cannot help; an unclean one elects broker 3.
    let preferred = admin
        .elect_leaders(ElectionType::Preferred, Some(&[tp(&topic, 0)]))
        .await
        .unwrap();
    assert!(
        preferred.get(&tp(&topic, 0)).unwrap().is_err(),
        "a preferred election needs broker 2"
    );
    let unclean = admin
        .elect_leaders(ElectionType::Unclean, Some(&[tp(&topic, 0)]))
        .await
        .unwrap();
    kafka.start_broker(2);
    unclean
        .into_result()
        .expect("the unclean election succeeds");
    let (leader, _) = eventually("broker 3 leads", || async {
        let (leader, isr) = leader_and_isr(&admin, &topic, 0).await?;
        (leader == Some(3)).then_some((leader, isr))
    })
    .await;
    assert_eq!(leader, Some(3));
}
