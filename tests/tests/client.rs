//! `kafka_core::client::Client` against a real three-node Kafka cluster (KRaft): bootstrap and
//! cluster description, topic creation through the raw escape hatch, leader changes, a
//! broker restart mid-session, and coordinator lookup.
//!
//! The tests stop and start brokers, so they run one at a time (a process-wide lock).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use kafka_core::client::{
    Client, ClientConfig, ConnectionClass, CoordinatorKind, Error, ErrorContext, Target,
};
use kafka_core::net::ConnectionConfig;
use kafka_core::KafkaCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, CreateTopicsRequest, DescribeClusterRequest,
    DescribeGroupsRequest, ElectLeadersRequest, GroupId, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tests::{cluster, unique_topic, Cluster, ClusterSpec};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn kafka() -> &'static Cluster {
    cluster(ClusterSpec::three_nodes())
}

/// Replication factor 3 where there are three brokers (one against a one-node external
/// cluster given by `KAFKA_BOOTSTRAP`).
fn replication(kafka: &Cluster) -> i16 {
    kafka.brokers().len().min(3) as i16
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config(bootstrap: &str) -> ClientConfig {
    ClientConfig::new([bootstrap])
        .unwrap()
        .with_connection(
            ConnectionConfig::default()
                .with_client_id("client-tests")
                .with_request_timeout(Duration::from_secs(20)),
        )
        .with_default_api_timeout(Duration::from_secs(90))
}

/// A bootstrapped client, once every broker of the kit is registered and unfenced (an
/// earlier test may just have restarted one).
async fn connect(kafka: &Cluster) -> Client {
    let client = Client::connect(config(kafka.bootstrap()))
        .await
        .expect("bootstrap");
    wait_for_brokers(&client, kafka).await;
    client
}

async fn wait_for_brokers(client: &Client, kafka: &Cluster) {
    let want = kafka.brokers().len();
    client
        .retry("all brokers registered", || async {
            // `include_fenced_brokers` exists from DescribeCluster v2 (Kafka 4.0); 3.9 brokers
            // list only unfenced brokers anyway.
            let (_, conn) = client
                .connection(&Target::AnyBroker, ConnectionClass::Admin)
                .await?;
            let v2 = conn.max_version(60).is_some_and(|v| v >= 2);
            let resp = conn
                .send(DescribeClusterRequest::default().with_include_fenced_brokers(v2))
                .await
                .map_err(|e| Error::net(e, ErrorContext::new().api("DescribeCluster")))?;
            client.check(resp.error_code, ErrorContext::new().api("DescribeCluster"))?;
            let live = resp.brokers.iter().filter(|b| !b.is_fenced).count();
            if live == want {
                Ok(())
            } else {
                Err(Error::kafka(
                    KafkaCode::BrokerNotAvailable,
                    ErrorContext::new(),
                ))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("the cluster never had {want} live brokers: {e}"));
}

/// Creates `topic` through CreateTopics sent to the controller (the escape hatch), then
/// waits until metadata shows every partition with a leader.
async fn create_topic(client: &Client, topic: &str, partitions: i32, replication: i16) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)])
        .with_timeout_ms(30_000);
    let resp = client
        .retry("create topic", || {
            client.send_to(Target::Controller, req.clone())
        })
        .await
        .expect("CreateTopics");
    assert_eq!(resp.topics.len(), 1);
    let result = &resp.topics[0];
    assert_eq!(result.name.0.as_str(), topic);
    client
        .check(
            result.error_code,
            ErrorContext::new().topic(topic).api("CreateTopics"),
        )
        .unwrap_or_else(|e| panic!("{e} ({:?})", result.error_message));
    wait_for_leaders(client, topic, partitions).await;
}

async fn wait_for_leaders(client: &Client, topic: &str, partitions: i32) {
    client
        .retry("wait for leaders", || async {
            let m = client.refresh_metadata(&[topic]).await?;
            let ps = m.partitions(topic);
            if ps.len() == partitions as usize && ps.iter().all(|p| p.leader.is_some()) {
                Ok(())
            } else {
                Err(Error::kafka(
                    KafkaCode::LeaderNotAvailable,
                    ErrorContext::new().topic(topic),
                ))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("topic {topic} never got leaders: {e}"));
}

/// ApiVersions with the KIP-511 software fields a broker insists on from v3.
fn api_versions() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("client-tests"))
        .with_client_software_version(StrBytes::from_static_str("1"))
}

fn list_offsets(topic: &str, partition: i32, leader_epoch: i32) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(leader_epoch)
                .with_timestamp(-1)])])
}

/// ListOffsets to the partition's leader, retried the way a consumer would: a stale-leader
/// code is reported (metadata refresh) and the request routed again.
async fn latest_offset(client: &Client, topic: &str, partition: i32) -> Result<i64, Error> {
    client
        .retry("list offsets", || async {
            let epoch = client
                .metadata()
                .leader(topic, partition)
                .and_then(|l| l.leader_epoch)
                .unwrap_or(-1);
            let resp = client
                .send_to(
                    Target::leader_of(topic, partition),
                    list_offsets(topic, partition, epoch),
                )
                .await?;
            let p = &resp.topics[0].partitions[0];
            client.check(
                p.error_code,
                ErrorContext::new()
                    .api("ListOffsets")
                    .partition(topic, partition),
            )?;
            Ok(p.offset)
        })
        .await
}

#[test]
fn bootstrap_and_describe_the_cluster() {
    let _serial = serial();
    let kafka = kafka();
    runtime().block_on(async {
        // A dead first entry and `localhost` (which may resolve to ::1 first, where nothing
        // listens): every entry and every resolved address is tried.
        let port = kafka.bootstrap().rsplit_once(':').unwrap().1;
        let client = Client::connect(config(&format!("127.0.0.1:1,localhost:{port}")))
            .await
            .expect("bootstrap through a dead entry and localhost");
        let m = client.metadata();
        let ids: BTreeSet<i32> = m.brokers().map(|b| b.node_id).collect();
        let expected: BTreeSet<i32> = kafka.brokers().iter().map(|b| b.id).collect();
        assert_eq!(ids, expected, "metadata lists the kit's brokers");
        let controller = m.controller_id().expect("a controller id");
        assert!(ids.contains(&controller));
        let cluster_id = m.cluster_id().expect("a cluster id").to_owned();
        for b in m.brokers() {
            let kit = kafka.broker(b.node_id).unwrap();
            assert_eq!(
                Some(b.address().as_str()),
                kit.addr(tests::Listener::Plaintext)
            );
            assert_eq!(b.rack, kit.rack, "rack of broker {}", b.node_id);
        }

        // The escape hatch: DescribeCluster to any broker and to each broker by id.
        let described = client
            .send_to(Target::AnyBroker, DescribeClusterRequest::default())
            .await
            .expect("DescribeCluster");
        assert_eq!(described.error_code, 0);
        assert_eq!(described.cluster_id.as_str(), cluster_id);
        let described_ids: BTreeSet<i32> =
            described.brokers.iter().map(|b| b.broker_id.0).collect();
        assert_eq!(described_ids, expected);
        for id in &expected {
            let v = client
                .send_to(Target::Broker(*id), api_versions())
                .await
                .unwrap_or_else(|e| panic!("ApiVersions to broker {id}: {e}"));
            assert_eq!(v.error_code, 0);
        }
        // Connections are reused: asking again opens nothing new.
        let open = client.open_connections();
        client
            .send_to(Target::Broker(controller), api_versions())
            .await
            .unwrap();
        assert_eq!(client.open_connections(), open);
        // One connection per workload class.
        let (_, admin) = client
            .connection(&Target::Broker(controller), ConnectionClass::Admin)
            .await
            .unwrap();
        let (_, produce) = client
            .connection(&Target::Broker(controller), ConnectionClass::Produce)
            .await
            .unwrap();
        assert!(!admin.is_closed() && !produce.is_closed());
        assert_eq!(
            client.open_connections(),
            open + 1,
            "a Produce connection was added"
        );
        drop((admin, produce));
        client.close();
    });
}

#[test]
fn unknown_bootstrap_fails_loudly() {
    let _serial = serial();
    runtime().block_on(async {
        let err = Client::connect(
            ClientConfig::new(["127.0.0.1:1"])
                .unwrap()
                .with_default_api_timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    });
}

#[test]
fn create_topic_through_the_controller_and_see_it_in_metadata() {
    let _serial = serial();
    let kafka = kafka();
    runtime().block_on(async {
        let client = connect(kafka).await;
        let topic = unique_topic("client-create");
        assert!(client.metadata().topic(&topic).is_none());
        create_topic(&client, &topic, 3, replication(kafka)).await;
        let m = client.metadata();
        let t = m.topic(&topic).expect("metadata knows the new topic");
        assert!(t.topic_id.is_some(), "Kafka 4 sends topic ids");
        assert!(!t.is_internal);
        assert_eq!(t.partitions.len(), 3);
        for p in &t.partitions {
            assert_eq!(p.replicas.len(), replication(kafka) as usize);
            assert!(p.leader_epoch.is_some());
            assert!(p.isr.contains(&p.leader.unwrap()));
        }
        for p in 0..3 {
            assert_eq!(latest_offset(&client, &topic, p).await.unwrap(), 0);
        }
        // Creating it again: the broker's code comes back typed, with context.
        let again = client
            .send_to(
                Target::Controller,
                CreateTopicsRequest::default()
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_num_partitions(3)
                        .with_replication_factor(replication(kafka))])
                    .with_timeout_ms(30_000),
            )
            .await
            .unwrap();
        let err = client
            .check(
                again.topics[0].error_code,
                ErrorContext::new().topic(&topic),
            )
            .unwrap_err();
        assert_eq!(err.kafka_code(), Some(KafkaCode::TopicAlreadyExists));
        assert!(!err.is_retriable());
        // A topic that does not exist: routing gives up at the deadline with the code.
        let short = Client::connect(
            config(kafka.bootstrap()).with_default_api_timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        let err = short
            .send_to(
                Target::leader_of("no-such-topic-xyz", 0),
                list_offsets("no-such-topic-xyz", 0, -1),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.kafka_code(),
            Some(KafkaCode::UnknownTopicOrPartition),
            "{err}"
        );
    });
}

#[test]
fn coordinator_lookup_for_a_group() {
    let _serial = serial();
    let kafka = kafka();
    runtime().block_on(async {
        let client = connect(kafka).await;
        let group = unique_topic("client-group");
        let node = client
            .coordinator(CoordinatorKind::Group, &group)
            .await
            .expect("FindCoordinator");
        assert!(client.metadata().broker(node).is_some());
        // Cached: the same answer without a request.
        assert_eq!(
            client
                .coordinator(CoordinatorKind::Group, &group)
                .await
                .unwrap(),
            node
        );

        // A request routed to the coordinator: DescribeGroups of an unknown group. The right
        // coordinator answers "Dead" (or, from Kafka 4.0 on, GROUP_ID_NOT_FOUND); a wrong one
        // would say NOT_COORDINATOR.
        // Retried as a consumer would: a NOT_COORDINATOR (the coordinator moved, say after
        // a broker restart) drops the cached coordinator and the retry looks it up again.
        let resp = client
            .retry("describe group", || async {
                let resp = client
                    .send_to(
                        Target::group(&group),
                        DescribeGroupsRequest::default()
                            .with_groups(vec![GroupId(StrBytes::from_string(group.clone()))]),
                    )
                    .await?;
                let code = KafkaCode::from_i16(resp.groups[0].error_code);
                if code.needs_coordinator_refresh() || code == KafkaCode::CoordinatorLoadInProgress
                {
                    let ctx = ErrorContext::new().coordinator(CoordinatorKind::Group, &group);
                    return Err(Error::kafka(code, ctx));
                }
                Ok(resp)
            })
            .await
            .expect("DescribeGroups");
        assert_eq!(resp.groups.len(), 1);
        match KafkaCode::from_i16(resp.groups[0].error_code) {
            KafkaCode::None => assert_eq!(resp.groups[0].group_state.as_str(), "Dead"),
            KafkaCode::GroupIdNotFound => {}
            other => panic!("DescribeGroups from the coordinator: {other}"),
        }
        let node = client
            .coordinator(CoordinatorKind::Group, &group)
            .await
            .unwrap();

        // NOT_COORDINATOR drops the cached coordinator; the next lookup asks again.
        client.report(&Error::kafka(
            KafkaCode::NotCoordinator,
            ErrorContext::new().coordinator(CoordinatorKind::Group, &group),
        ));
        assert_eq!(
            client
                .coordinator(CoordinatorKind::Group, &group)
                .await
                .unwrap(),
            node
        );

        // Batched lookup (FindCoordinator v4+, KIP-699): several groups in one request.
        let groups: Vec<String> = (0..5).map(|i| format!("{group}-{i}")).collect();
        let keys: Vec<&str> = groups.iter().map(String::as_str).collect();
        let found = client
            .retry("batched lookup", || async {
                let found = client
                    .find_coordinators(CoordinatorKind::Group, &keys)
                    .await?;
                for r in found.values() {
                    if let Err(e) = r {
                        return Err(e.clone());
                    }
                }
                Ok(found)
            })
            .await
            .expect("batched FindCoordinator");
        assert_eq!(found.len(), 5);
        for (key, r) in &found {
            let node = *r.as_ref().unwrap();
            assert!(client.metadata().broker(node).is_some(), "{key} -> {node}");
        }
        // A transactional id has its own coordinator kind.
        let txn = client
            .coordinator(CoordinatorKind::Transaction, &format!("{group}-txn"))
            .await
            .expect("transaction coordinator");
        assert!(client.metadata().broker(txn).is_some());
    });
}

#[test]
fn leader_change_is_noticed() {
    let _serial = serial();
    let kafka = kafka();
    assert!(kafka.brokers().len() >= 3, "needs three brokers");
    runtime().block_on(async {
        let client = connect(kafka).await;
        let topic = unique_topic("client-leader");
        create_topic(&client, &topic, 1, 3).await;
        let before = client.metadata().leader(&topic, 0).unwrap();
        let old_epoch = before.leader_epoch.expect("a leader epoch");
        assert_eq!(latest_offset(&client, &topic, 0).await.unwrap(), 0);

        // Controlled shutdown of the leader moves leadership to another replica.
        let old_leader = before.leader;
        tokio::task::spawn_blocking(move || kafka.stop_broker(old_leader))
            .await
            .unwrap();
        let guard = RestartOnDrop(kafka, old_leader);

        // The cached leader is gone: routing fails, the error marks metadata stale, the retry
        // refreshes it and follows the new leader.
        assert_eq!(latest_offset(&client, &topic, 0).await.unwrap(), 0);
        let after = client.metadata().leader(&topic, 0).unwrap();
        assert_ne!(after.leader, old_leader, "leadership moved");
        assert!(
            after.leader_epoch.unwrap() > old_epoch,
            "a new leader epoch"
        );

        // Bring the old leader back and elect the preferred leader again: the client sees
        // the move back, with a yet newer epoch.
        tokio::task::spawn_blocking(move || drop(guard))
            .await
            .unwrap();
        let preferred = client.metadata().partitions(&topic)[0].replicas[0];
        client
            .retry("preferred election", || async {
                let resp = client
                    .send_to(
                        Target::Controller,
                        ElectLeadersRequest::default()
                            .with_election_type(0)
                            .with_topic_partitions(Some(vec![TopicPartitions::default()
                                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                                .with_partitions(vec![0])]))
                            .with_timeout_ms(30_000),
                    )
                    .await?;
                client.check(resp.error_code, ErrorContext::new().api("ElectLeaders"))?;
                for r in &resp.replica_election_results {
                    for p in &r.partition_result {
                        match KafkaCode::from_i16(p.error_code) {
                            KafkaCode::None | KafkaCode::ElectionNotNeeded => {}
                            // The restarted broker must catch up into the ISR first.
                            code => {
                                return Err(Error::kafka(
                                    if code.is_retriable() {
                                        code
                                    } else {
                                        KafkaCode::PreferredLeaderNotAvailable
                                    },
                                    ErrorContext::new().partition(topic.clone(), 0),
                                ))
                            }
                        }
                    }
                }
                let m = client.refresh_metadata(&[topic.as_str()]).await?;
                match m.leader(&topic, 0) {
                    Some(l) if l.leader == preferred => Ok(l),
                    _ => Err(Error::kafka(
                        KafkaCode::PreferredLeaderNotAvailable,
                        ErrorContext::new().partition(topic.clone(), 0),
                    )),
                }
            })
            .await
            .expect("the preferred leader is elected again");
        let back = client.metadata().leader(&topic, 0).unwrap();
        assert!(back.leader_epoch.unwrap() > after.leader_epoch.unwrap());
        assert_eq!(latest_offset(&client, &topic, 0).await.unwrap(), 0);
    });
}

/// Starts a stopped broker again even when the test fails halfway.
struct RestartOnDrop(&'static Cluster, i32);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        self.0.start_broker(self.1);
    }
}

#[test]
fn broker_restart_mid_session() {
    let _serial = serial();
    let kafka = kafka();
    runtime().block_on(async {
        let client = connect(kafka).await;
        // A broker that is not the one we bootstrapped from, if there are several.
        let victim = kafka.brokers().last().unwrap().id;
        let before = client
            .send_to(Target::Broker(victim), api_versions())
            .await
            .expect("ApiVersions before the restart");
        assert_eq!(before.error_code, 0);
        let (_, old_conn) = client
            .connection(&Target::Broker(victim), ConnectionClass::Admin)
            .await
            .unwrap();

        tokio::task::spawn_blocking(move || kafka.kill_broker(victim))
            .await
            .unwrap();
        let guard = RestartOnDrop(kafka, victim);

        // While it is down: connecting fails, is retried with backoff, and the deadline
        // ends it with the connection error as the cause.
        let impatient = Client::connect(
            config(kafka.bootstrap()).with_default_api_timeout(Duration::from_secs(2)),
        )
        .await;
        if let Ok(impatient) = impatient {
            let err = impatient
                .send_to(Target::Broker(victim), api_versions())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Timeout { .. }), "{err}");
        }

        tokio::task::spawn_blocking(move || drop(guard))
            .await
            .unwrap();

        // The old connection died with the broker; the pool builds a new one and requests
        // succeed again.
        let after = client
            .retry("ApiVersions after restart", || {
                client.send_to(Target::Broker(victim), api_versions())
            })
            .await
            .expect("ApiVersions after the restart");
        assert_eq!(after.error_code, 0);
        assert!(old_conn.is_closed(), "the pre-restart connection is closed");
        let (_, new_conn) = client
            .connection(&Target::Broker(victim), ConnectionClass::Admin)
            .await
            .unwrap();
        assert!(!new_conn.is_closed());
        // Metadata lists the broker again once it has re-registered with the controller (it
        // answers ApiVersions a little earlier than that), and the cluster works end to end.
        wait_for_brokers(&client, kafka).await;
        // Brokers apply the metadata log at their own pace (and a refresh may join one that
        // was sent before the broker returned): poll until the answer lists it again.
        let mut listed = Vec::new();
        for _ in 0..100 {
            let m = client.refresh_all_metadata().await.unwrap();
            listed = m.brokers().map(|b| b.node_id).collect();
            if m.broker(victim).is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            listed.contains(&victim),
            "broker {victim} missing from metadata: {listed:?}"
        );
        let topic = unique_topic("client-restart");
        create_topic(&client, &topic, 3, replication(kafka)).await;
        for p in 0..3 {
            assert_eq!(latest_offset(&client, &topic, p).await.unwrap(), 0);
        }
    });
}

#[test]
fn concurrent_metadata_refreshes_coalesce() {
    let _serial = serial();
    let kafka = kafka();
    runtime().block_on(async {
        let client = connect(kafka).await;
        let topic = unique_topic("client-coalesce");
        create_topic(&client, &topic, 1, replication(kafka)).await;
        // Brokers apply the topic's creation at their own pace, and each refresh below may be
        // answered by any of them: wait until every broker reports the partition.
        for broker in kafka.brokers() {
            let mut known = false;
            for _ in 0..100 {
                let resp = client
                    .send_to(
                        Target::Broker(broker.id),
                        kafka_protocol::messages::MetadataRequest::default().with_topics(Some(
                            vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                                .with_name(Some(TopicName(topic.clone().into())))],
                        )),
                    )
                    .await
                    .unwrap();
                known = resp.topics.first().is_some_and(|t| t.partitions.len() == 1);
                if known {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(known, "broker {} never reported {topic}", broker.id);
        }
        let before = client.metadata_refreshes();
        // Five callers at once: one Metadata request goes out, the others wait for it and
        // share its answer.
        let t = [topic.as_str()];
        let (a, b, c, d, e) = tokio::join!(
            client.refresh_metadata(&t),
            client.refresh_metadata(&t),
            client.refresh_metadata(&t),
            client.refresh_metadata(&t),
            client.refresh_metadata(&t),
        );
        for r in [a, b, c, d, e] {
            assert_eq!(r.unwrap().partitions(&topic).len(), 1);
        }
        assert_eq!(client.metadata_refreshes(), before + 1);
        // A caller wanting a topic the in-flight refresh does not cover asks again.
        let other = unique_topic("client-coalesce-other");
        let o = [other.as_str()];
        let (x, y) = tokio::join!(client.refresh_metadata(&t), client.refresh_metadata(&o));
        x.unwrap();
        assert!(y.unwrap().topic(&other).is_some_and(|t| !t.error.is_ok()));
        assert_eq!(client.metadata_refreshes(), before + 3);
    });
}
