//! `kafka-admin` against a real one-node Apache Kafka with the secured listeners (SASL for
//! SCRAM logins and delegation tokens; the kit's secured config adds an authorizer so ACLs
//! can be created). Every call is checked by its effect (describe after alter...), a few
//! against Kafka's own Java tools, and bad requests must come back as clear per-item errors.
//!
//! `KAFKA_KIT_PORT_OFFSET=1000 cargo test -p tests --test admin`
//! (`KAFKA_KIT_VERSION=3.9.2` for the older broker).

mod admin_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use admin_support::{admin, admin_with, eventually, now_ms, produce, wait_for_leaders};
use kafka_admin::acls::{AclBinding, AclBindingFilter, AclOperation, ResourceType};
use kafka_admin::cluster::{FeatureUpdate, FeatureUpgradeType};
use kafka_admin::groups::ListGroupsFilter;
use kafka_admin::offsets::{IsolationLevel, OffsetSpec};
use kafka_admin::quotas::{QuotaEntity, QuotaFilter, QuotaOp};
use kafka_admin::scram::{ScramAlteration, ScramMechanism};
use kafka_admin::topics::NewPartitions;
use kafka_admin::txn::{AbortTransactionSpec, ListTransactionsFilter};
use kafka_admin::{
    AdminError, AlterConfigOp, ConfigResource, ConfigSource, NewTopic, TopicPartition,
};
use kafka_core::client::ClientConfig;
use kafka_core::net::{ConnectionConfig, SaslConfig};
use kafka_core::KafkaCode;
use tests::{cluster, unique_topic, Cluster, ClusterSpec, Listener};

fn kafka() -> &'static Cluster {
    cluster(ClusterSpec::default().secured())
}

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

#[tokio::test]
async fn topics_create_describe_grow_list_and_delete() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let name = unique_topic("admin-topic");
    let checked = unique_topic("admin-validate");

    let created = admin
        .create_topics(
            &[NewTopic::new(&name, 3, 1).config("retention.ms", "3600000")],
            false,
        )
        .await
        .unwrap();
    let c = created.get(&name).unwrap().as_ref().unwrap();
    assert_eq!((c.partitions, c.replication_factor), (3, 1));
    assert!(c.topic_id.is_some());

    // validate-only creates nothing.
    let v = admin
        .create_topics(&[NewTopic::new(&checked, 1, 1)], true)
        .await
        .unwrap();
    assert!(v.all_ok());

    wait_for_leaders(admin.client(), &name, 3).await;
    let listed = admin.list_topics(false).await.unwrap();
    assert!(listed.iter().any(|t| t.name == name));
    assert!(
        !listed.iter().any(|t| t.name == checked),
        "validate-only created {checked}"
    );
    assert!(!listed.iter().any(|t| t.internal));
    assert!(admin
        .list_topics(true)
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == "__consumer_offsets" || t.internal));

    let d = admin
        .describe_topics(&[&name])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let d = &d[&name];
    assert_eq!(d.partitions.len(), 3);
    assert!(d
        .partitions
        .iter()
        .all(|p| p.leader == Some(1) && p.replicas == [1] && p.isr == [1]));
    let ops = d
        .authorized_operations
        .as_ref()
        .expect("authorized operations (Metadata v8+)");
    assert!(
        ops.contains(&AclOperation::Read) && ops.contains(&AclOperation::Write),
        "{ops:?}"
    );

    // The Java tool sees the same topic.
    let java = kafka.tool_ok(
        "topics",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "--describe",
            "--topic",
            &name,
        ],
    );
    assert!(java.contains("PartitionCount: 3"), "{java}");
    assert!(java.contains("retention.ms=3600000"), "{java}");

    // Grow to 5 partitions.
    let grow = BTreeMap::from([(name.clone(), NewPartitions::increase_to(5))]);
    admin
        .create_partitions(&grow, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    // (The new partitions reach the broker's metadata a moment later.)
    eventually("five partitions", || async {
        let d = admin
            .describe_topics(&[&name])
            .await
            .unwrap()
            .into_result()
            .unwrap();
        (d[&name].partitions.len() == 5).then_some(())
    })
    .await;
    // Shrinking is refused with the broker's reason, for that topic.
    let shrink = BTreeMap::from([(name.clone(), NewPartitions::increase_to(2))]);
    let r = admin.create_partitions(&shrink, false).await.unwrap();
    let e = r.get(&name).unwrap().as_ref().unwrap_err();
    assert_eq!(e.code, KafkaCode::InvalidPartitions, "{e}");

    // Delete by name, then by id.
    let other = unique_topic("admin-by-id");
    let made = admin
        .create_topics(&[NewTopic::new(&other, 1, 1)], false)
        .await
        .unwrap();
    let id = made
        .get(&other)
        .unwrap()
        .as_ref()
        .unwrap()
        .topic_id
        .unwrap();
    admin
        .delete_topics(&[&name])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    admin
        .delete_topics_by_id(&[id])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    for _ in 0..50 {
        let names: Vec<String> = admin
            .list_topics(false)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        if !names.contains(&name) && !names.contains(&other) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("deleted topics are still listed");
}

#[tokio::test]
async fn bad_topic_requests_give_clear_per_item_errors() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let good = unique_topic("admin-good");
    let existing = unique_topic("admin-existing");
    admin
        .create_topics(&[NewTopic::new(&existing, 1, 1)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let too_many_replicas = unique_topic("admin-rf3");
    let bad_config = unique_topic("admin-badconf");
    let r = admin
        .create_topics(
            &[
                NewTopic::new(&good, 1, 1),
                NewTopic::new(&existing, 1, 1),
                NewTopic::new(&too_many_replicas, 1, 3),
                NewTopic::new(&bad_config, 1, 1).config("retention.ms", "not-a-number"),
                NewTopic::new("bad name!", 1, 1),
            ],
            false,
        )
        .await
        .unwrap();
    assert!(r.get(&good).unwrap().is_ok());
    let code = |t: &str| r.get(&t.to_owned()).unwrap().as_ref().unwrap_err().clone();
    assert_eq!(code(&existing).code, KafkaCode::TopicAlreadyExists);
    let rf = code(&too_many_replicas);
    assert_eq!(rf.code, KafkaCode::InvalidReplicationFactor, "{rf}");
    assert!(rf.message.as_deref().unwrap_or("").contains('3'), "{rf}");
    let conf = code(&bad_config);
    assert_eq!(conf.code, KafkaCode::InvalidConfig, "{conf}");
    assert_eq!(code("bad name!").code, KafkaCode::InvalidRequest);
    // The partial failure names each failed topic and why.
    let err = r.into_result().unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, AdminError::Partial { total: 5, ref failures, .. } if failures.len() == 4),
        "{text}"
    );
    for t in [&existing, &too_many_replicas, &bad_config] {
        assert!(text.contains(t.as_str()), "{text}");
    }

    // Unknown topics: describe and delete say so per topic.
    let missing = unique_topic("admin-missing");
    wait_for_leaders(admin.client(), &good, 1).await;
    let d = admin.describe_topics(&[&missing, &good]).await.unwrap();
    assert_eq!(
        d.get(&missing).unwrap().as_ref().unwrap_err().code,
        KafkaCode::UnknownTopicOrPartition
    );
    assert!(d.get(&good).unwrap().is_ok());
    let del = admin.delete_topics(&[&missing]).await.unwrap();
    assert_eq!(
        del.get(&missing).unwrap().as_ref().unwrap_err().code,
        KafkaCode::UnknownTopicOrPartition
    );
}

#[tokio::test]
async fn configs_describe_alter_append_delete_and_validate() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let name = unique_topic("admin-configs");
    admin
        .create_topics(&[NewTopic::new(&name, 1, 1)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    // CreateTopics answers once the controller has the topic; a broker may not have it yet
    // and would answer DescribeConfigs with UNKNOWN_TOPIC_OR_PARTITION.
    wait_for_leaders(admin.client(), &name, 1).await;
    let topic = ConfigResource::Topic(name.clone());

    let e = admin
        .describe_config(&topic, "retention.ms")
        .await
        .unwrap()
        .unwrap();
    assert!(e.is_default(), "{e:?}");

    let set = BTreeMap::from([(
        topic.clone(),
        vec![
            AlterConfigOp::set("retention.ms", "123456"),
            AlterConfigOp::Append("cleanup.policy".into(), "compact".into()),
        ],
    )]);
    // validate-only changes nothing
    admin
        .incremental_alter_configs(&set, true)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert!(admin
        .describe_config(&topic, "retention.ms")
        .await
        .unwrap()
        .unwrap()
        .is_default());
    admin
        .incremental_alter_configs(&set, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let e = eventually("retention.ms set", || async {
        admin
            .describe_config(&topic, "retention.ms")
            .await
            .unwrap()
            .filter(|e| e.value.as_deref() == Some("123456"))
    })
    .await;
    assert_eq!(e.source, ConfigSource::DynamicTopic);
    // Synonyms name where else a value comes from (the broker's log.retention.hours...).
    assert!(e
        .synonyms
        .iter()
        .any(|s| s.source == ConfigSource::DynamicTopic));
    let policy = admin
        .describe_config(&topic, "cleanup.policy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(policy.value.as_deref(), Some("delete,compact"));

    let java = kafka.tool_ok(
        "configs",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            &name,
        ],
    );
    assert!(java.contains("retention.ms=123456"), "{java}");

    // Subtract, delete.
    let undo = BTreeMap::from([(
        topic.clone(),
        vec![
            AlterConfigOp::delete("retention.ms"),
            AlterConfigOp::Subtract("cleanup.policy".into(), "compact".into()),
        ],
    )]);
    admin
        .incremental_alter_configs(&undo, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    eventually("retention.ms deleted", || async {
        admin
            .describe_config(&topic, "retention.ms")
            .await
            .unwrap()
            .filter(|e| e.is_default())
    })
    .await;
    assert_eq!(
        admin
            .describe_config(&topic, "cleanup.policy")
            .await
            .unwrap()
            .unwrap()
            .value
            .as_deref(),
        Some("delete")
    );

    // An invalid value fails that resource only, with the broker's reason; an unknown topic too.
    let other = unique_topic("admin-configs-missing");
    let bad = BTreeMap::from([
        (
            topic.clone(),
            vec![AlterConfigOp::set("retention.ms", "soon")],
        ),
        (
            ConfigResource::Topic(other.clone()),
            vec![AlterConfigOp::set("retention.ms", "1000")],
        ),
    ]);
    let r = admin.incremental_alter_configs(&bad, false).await.unwrap();
    let e = r.get(&topic).unwrap().as_ref().unwrap_err();
    assert_eq!(e.code, KafkaCode::InvalidConfig, "{e}");
    let e = r
        .get(&ConfigResource::Topic(other))
        .unwrap()
        .as_ref()
        .unwrap_err();
    assert_eq!(e.code, KafkaCode::UnknownTopicOrPartition, "{e}");

    // Broker configs (routed to the broker) and broker loggers.
    let b = ConfigResource::Broker(1);
    let rack = admin
        .describe_config(&b, "broker.rack")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rack.value.as_deref(), Some("rack-a"));
    assert_eq!(rack.source, ConfigSource::StaticBroker);
    let set = BTreeMap::from([(
        b.clone(),
        vec![AlterConfigOp::set("log.cleaner.backoff.ms", "16000")],
    )]);
    admin
        .incremental_alter_configs(&set, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let e = eventually("broker config set", || async {
        admin
            .describe_config(&b, "log.cleaner.backoff.ms")
            .await
            .unwrap()
            .filter(|e| e.value.as_deref() == Some("16000"))
    })
    .await;
    assert_eq!(e.source, ConfigSource::DynamicBroker);
    let unset = BTreeMap::from([(
        b.clone(),
        vec![AlterConfigOp::delete("log.cleaner.backoff.ms")],
    )]);
    admin
        .incremental_alter_configs(&unset, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();

    let loggers = ConfigResource::BrokerLogger(1);
    let logger = "kafka.server.ReplicaManager";
    let set = BTreeMap::from([(loggers.clone(), vec![AlterConfigOp::set(logger, "DEBUG")])]);
    admin
        .incremental_alter_configs(&set, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    eventually("logger level set", || async {
        admin
            .describe_config(&loggers, logger)
            .await
            .unwrap()
            .filter(|e| e.value.as_deref() == Some("DEBUG"))
    })
    .await;
    let reset = BTreeMap::from([(loggers.clone(), vec![AlterConfigOp::set(logger, "INFO")])]);
    admin
        .incremental_alter_configs(&reset, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
}

#[tokio::test]
async fn acls_create_describe_delete() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-acl");
    let read = AclBinding::allow(ResourceType::Topic, &topic, "User:bob", AclOperation::Read);
    let write = AclBinding::allow(ResourceType::Topic, &topic, "User:bob", AclOperation::Write);
    admin
        .create_acls(&[read.clone(), write.clone()])
        .await
        .unwrap()
        .into_result()
        .unwrap();

    let filter = AclBindingFilter::resource(ResourceType::Topic, &topic);
    let mut found = Vec::new();
    for _ in 0..50 {
        found = admin.describe_acls(&filter).await.unwrap();
        if found.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut want = vec![read.clone(), write.clone()];
    want.sort();
    assert_eq!(found, want);
    let java = kafka.tool_ok(
        "acls",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "--list",
            "--topic",
            &topic,
        ],
    );
    assert!(
        java.contains("User:bob") && java.contains("READ") && java.contains("WRITE"),
        "{java}"
    );

    // An invalid binding fails by itself.
    let mut bad = read.clone();
    bad.principal = "bob-without-type".into();
    let r = admin.create_acls(&[bad.clone()]).await.unwrap();
    assert!(r.get(&bad).unwrap().is_err());

    let deleted = admin
        .delete_acls(&[read.to_filter()])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(deleted[&read.to_filter()], vec![read.clone()]);
    for _ in 0..50 {
        found = admin.describe_acls(&filter).await.unwrap();
        if found.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, vec![write.clone()]);
    admin
        .delete_acls(&[filter])
        .await
        .unwrap()
        .into_result()
        .unwrap();
}

#[tokio::test]
async fn client_quotas_alter_and_describe() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let user = unique_topic("quota-user");
    let entity = QuotaEntity::user(&user);
    let set = BTreeMap::from([(
        entity.clone(),
        vec![
            QuotaOp::Set("producer_byte_rate".into(), 1024.0),
            QuotaOp::Set("consumer_byte_rate".into(), 2048.0),
        ],
    )]);
    admin
        .alter_client_quotas(&set, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let filter = [QuotaFilter::Exact("user".into(), user.clone())];
    let mut got = BTreeMap::new();
    for _ in 0..50 {
        got = admin.describe_client_quotas(&filter, false).await.unwrap();
        if got.get(&entity).is_some_and(|v| v.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got[&entity]["producer_byte_rate"], 1024.0);
    assert_eq!(got[&entity]["consumer_byte_rate"], 2048.0);

    // An unknown quota key fails that entity.
    let bad = BTreeMap::from([(
        entity.clone(),
        vec![QuotaOp::Set("no_such_quota".into(), 1.0)],
    )]);
    let r = admin.alter_client_quotas(&bad, false).await.unwrap();
    assert!(r.get(&entity).unwrap().is_err());

    let remove = BTreeMap::from([(
        entity.clone(),
        vec![
            QuotaOp::Remove("producer_byte_rate".into()),
            QuotaOp::Remove("consumer_byte_rate".into()),
        ],
    )]);
    admin
        .alter_client_quotas(&remove, false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    for _ in 0..50 {
        got = admin.describe_client_quotas(&filter, false).await.unwrap();
        if !got.contains_key(&entity) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("quotas still there: {got:?}");
}

fn sasl_client(
    kafka: &Cluster,
    user: &str,
    password: &str,
    mechanism: ScramMechanism,
) -> ClientConfig {
    let bootstrap = kafka
        .bootstrap_for(Listener::SaslPlaintext)
        .expect("SASL_PLAINTEXT listener");
    let sasl = match mechanism {
        ScramMechanism::Sha256 => SaslConfig::scram_sha256(user, password),
        _ => SaslConfig::scram_sha512(user, password),
    };
    ClientConfig::new([bootstrap])
        .unwrap()
        .with_connection(ConnectionConfig::default().with_sasl(sasl))
        .with_default_api_timeout(Duration::from_secs(15))
}

#[tokio::test]
async fn scram_credentials_upsert_login_describe_and_delete() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let user = unique_topic("carol");
    let up = ScramAlteration::Upsert {
        user: user.clone(),
        mechanism: ScramMechanism::Sha256,
        iterations: 8192,
        password: "carol-secret".into(),
    };
    admin
        .alter_user_scram_credentials(&[up])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let d = eventually("credential described", || async {
        admin
            .describe_user_scram_credentials(Some(&[&user]))
            .await
            .unwrap()
            .into_result()
            .ok()
    })
    .await;
    assert_eq!(d[&user].len(), 1);
    assert_eq!(
        (d[&user][0].mechanism, d[&user][0].iterations),
        (ScramMechanism::Sha256, 8192)
    );
    let java = kafka.tool_ok(
        "configs",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            &user,
        ],
    );
    assert!(java.contains("SCRAM-SHA-256=iterations=8192"), "{java}");

    // The salted password we computed is right: the broker lets carol log in with it.
    let mut logged_in = false;
    for _ in 0..50 {
        let c = sasl_client(kafka, &user, "carol-secret", ScramMechanism::Sha256);
        if let Ok(a) = kafka_admin::Admin::connect(
            kafka_admin::AdminConfig::builder()
                .client(c)
                .build()
                .unwrap(),
        )
        .await
        {
            a.describe_cluster().await.unwrap();
            logged_in = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        logged_in,
        "{user} could not log in with the credential we set"
    );
    let wrong = sasl_client(kafka, &user, "not-it", ScramMechanism::Sha256);
    assert!(kafka_admin::Admin::connect(
        kafka_admin::AdminConfig::builder()
            .client(wrong)
            .build()
            .unwrap()
    )
    .await
    .is_err());

    // Out-of-range iterations are refused before sending.
    let bad = ScramAlteration::Upsert {
        user: user.clone(),
        mechanism: ScramMechanism::Sha512,
        iterations: 10,
        password: "x".into(),
    };
    assert!(matches!(
        admin.alter_user_scram_credentials(&[bad]).await,
        Err(AdminError::InvalidRequest { .. })
    ));

    let del = ScramAlteration::Delete {
        user: user.clone(),
        mechanism: ScramMechanism::Sha256,
    };
    admin
        .alter_user_scram_credentials(&[del])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let e = eventually("credential deleted", || async {
        admin
            .describe_user_scram_credentials(Some(&[&user]))
            .await
            .unwrap()
            .get(&user)
            .unwrap()
            .clone()
            .err()
    })
    .await;
    assert_eq!(e.code, KafkaCode::ResourceNotFound);
}

#[tokio::test]
async fn delegation_tokens_create_describe_renew_expire() {
    let kafka = kafka();
    let creds = kafka.sasl().expect("SASL users");
    let admin = admin_with(sasl_client(
        kafka,
        &creds.username,
        &creds.password,
        ScramMechanism::Sha512,
    ))
    .await;
    let owner = format!("User:{}", creds.username);
    let token = admin
        .create_delegation_token(&["User:renewer"], Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(token.owner, owner);
    assert!(!token.hmac.is_empty() && !token.token_id.is_empty());
    assert!(token.expiry_timestamp_ms <= token.max_timestamp_ms);

    let t = eventually("the new token is described", || async {
        let listed = admin
            .describe_delegation_tokens(Some(&[owner.as_str()]))
            .await
            .unwrap();
        listed.into_iter().find(|t| t.token_id == token.token_id)
    })
    .await;
    assert_eq!(t.renewers, vec!["User:renewer".to_owned()]);
    assert_eq!(t.hmac, token.hmac);

    let renewed = admin
        .renew_delegation_token(&token.hmac, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    assert!(renewed > 0 && renewed <= token.max_timestamp_ms);
    let soon = admin
        .expire_delegation_token(&token.hmac, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(soon < renewed, "expiry moved earlier: {soon} vs {renewed}");
    admin
        .expire_delegation_token(&token.hmac, None)
        .await
        .unwrap();
    for _ in 0..50 {
        let listed = admin.describe_delegation_tokens(None).await.unwrap();
        if !listed.iter().any(|t| t.token_id == token.token_id) {
            // Renewing an expired token is a typed error.
            let e = admin
                .renew_delegation_token(&token.hmac, None)
                .await
                .unwrap_err();
            assert!(e.kafka_code().is_some(), "{e}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("expired token still described");
}

#[tokio::test]
async fn delegation_tokens_need_an_authenticated_connection() {
    let admin = admin(kafka()).await;
    let e = admin.create_delegation_token(&[], None).await.unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(KafkaCode::DelegationTokenRequestNotAllowed),
        "{e}"
    );
}

#[tokio::test]
async fn offsets_groups_and_records() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-offsets");
    let group = unique_topic("admin-group");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 2).await;
    // Timestamps near now: older ones would fall to time retention (7 days) at once.
    let base = now_ms();
    produce(admin.client(), &topic, 0, 10, base).await;
    produce(admin.client(), &topic, 1, 4, base + 100_000).await;

    let specs = |s: OffsetSpec| BTreeMap::from([(tp(&topic, 0), s), (tp(&topic, 1), s)]);
    let latest = admin
        .list_offsets(&specs(OffsetSpec::Latest), IsolationLevel::ReadUncommitted)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(
        (latest[&tp(&topic, 0)].offset, latest[&tp(&topic, 1)].offset),
        (10, 4)
    );
    let earliest = admin
        .list_offsets(&specs(OffsetSpec::Earliest), IsolationLevel::ReadCommitted)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(earliest[&tp(&topic, 0)].offset, 0);
    let by_time = admin
        .list_offsets(
            &specs(OffsetSpec::Timestamp(base + 5)),
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(by_time[&tp(&topic, 0)].offset, 5);
    assert_eq!(by_time[&tp(&topic, 0)].timestamp, base + 5);
    assert_eq!(by_time[&tp(&topic, 1)].offset, 0);
    let max = admin
        .list_offsets(
            &specs(OffsetSpec::MaxTimestamp),
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(max[&tp(&topic, 0)].offset, 9);
    // An unknown partition is a per-item error.
    let bad = BTreeMap::from([
        (tp(&topic, 7), OffsetSpec::Latest),
        (tp(&topic, 0), OffsetSpec::Latest),
    ]);
    let r = admin
        .list_offsets(&bad, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    assert_eq!(
        r.get(&tp(&topic, 7)).unwrap().as_ref().unwrap_err().code,
        KafkaCode::UnknownTopicOrPartition
    );
    assert!(r.get(&tp(&topic, 0)).unwrap().is_ok());

    // Delete records before offset 3 of partition 0.
    let del = admin
        .delete_records(&BTreeMap::from([(tp(&topic, 0), 3)]))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(del[&tp(&topic, 0)], 3);
    let earliest = admin
        .list_offsets(
            &specs(OffsetSpec::Earliest),
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(earliest[&tp(&topic, 0)].offset, 3);
    let beyond = admin
        .delete_records(&BTreeMap::from([(tp(&topic, 1), 99)]))
        .await
        .unwrap();
    assert_eq!(
        beyond
            .get(&tp(&topic, 1))
            .unwrap()
            .as_ref()
            .unwrap_err()
            .code,
        KafkaCode::OffsetOutOfRange
    );

    // Group offsets: alter, list, compare with the Java tool, delete one, delete the group.
    let offsets = BTreeMap::from([(tp(&topic, 0), 7), (tp(&topic, 1), 1)]);
    admin
        .alter_group_offsets(&group, &offsets)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let listed = admin.list_group_offsets(&group, None).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|(k, v)| (k.clone(), v.offset))
            .collect::<BTreeMap<_, _>>(),
        offsets
    );
    let only = admin
        .list_group_offsets(&group, Some(&[tp(&topic, 1)]))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);

    let groups = admin
        .list_groups(&ListGroupsFilter::default())
        .await
        .unwrap();
    let g = groups.iter().find(|g| g.group_id == group).expect("listed");
    assert_eq!(g.state.as_deref(), Some("Empty"));
    let empty_only = ListGroupsFilter {
        states: vec!["Empty".into()],
        types: vec![],
    };
    assert!(admin
        .list_groups(&empty_only)
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == group));
    let stable_only = ListGroupsFilter {
        states: vec!["Stable".into()],
        types: vec![],
    };
    assert!(!admin
        .list_groups(&stable_only)
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == group));
    let d = admin
        .describe_groups(&[&group])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(d[&group].state, "Empty");
    assert!(d[&group].members.is_empty());

    let java = kafka.tool_ok(
        "consumer-groups",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "--describe",
            "--group",
            &group,
        ],
    );
    let line = java
        .lines()
        .find(|l| l.contains(&topic) && l.split_whitespace().nth(2) == Some("0"))
        .unwrap_or_else(|| panic!("{java}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[3..6], ["7", "10", "3"], "{java}");
    let lag = admin.consumer_lag(&group).await.unwrap();
    let p0 = lag
        .partitions
        .iter()
        .find(|p| p.partition == tp(&topic, 0))
        .unwrap();
    assert_eq!((p0.committed, p0.log_end, p0.lag), (Some(7), 10, Some(3)));
    assert_eq!(lag.total_lag, 3 + 3);

    admin
        .delete_group_offsets(&group, &[tp(&topic, 1)])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let listed = admin.list_group_offsets(&group, None).await.unwrap();
    assert_eq!(
        listed.keys().cloned().collect::<Vec<_>>(),
        vec![tp(&topic, 0)]
    );
    admin
        .delete_groups(&[&group])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert!(admin
        .list_group_offsets(&group, None)
        .await
        .unwrap()
        .is_empty());
    let again = admin.delete_groups(&[&group]).await.unwrap();
    assert_eq!(
        again.get(&group).unwrap().as_ref().unwrap_err().code,
        KafkaCode::GroupIdNotFound
    );
}

#[tokio::test]
async fn cluster_features_and_quorum() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let c = admin.describe_cluster().await.unwrap();
    assert_eq!(c.brokers.len(), 1);
    assert_eq!(c.brokers[0].id, 1);
    assert_eq!(c.brokers[0].rack.as_deref(), Some("rack-a"));
    assert_eq!(
        Some(c.cluster_id.as_str()),
        admin.client().metadata().cluster_id()
    );
    assert!(c
        .authorized_operations
        .is_some_and(|ops| ops.contains(&AclOperation::Alter)));

    let f = admin.describe_features().await.unwrap();
    let mv = f
        .finalized
        .get("metadata.version")
        .expect("metadata.version is finalized");
    assert!(mv.max > 0);
    assert!(f.supported.contains_key("metadata.version"));
    // Asking for the level it has is valid (validate-only: nothing changes).
    let same = BTreeMap::from([(
        "metadata.version".to_owned(),
        FeatureUpdate {
            max_version_level: mv.max,
            upgrade_type: FeatureUpgradeType::Upgrade,
        },
    )]);
    admin
        .update_features(&same, true)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    // An unknown feature is refused.
    let unknown = BTreeMap::from([(
        "no.such.feature".to_owned(),
        FeatureUpdate {
            max_version_level: 1,
            upgrade_type: FeatureUpgradeType::Upgrade,
        },
    )]);
    assert!(admin
        .update_features(&unknown, true)
        .await
        .unwrap()
        .into_result()
        .is_err());

    let q = admin.describe_quorum().await.unwrap();
    assert_eq!(q.leader_id, 1);
    assert_eq!(
        q.voters.iter().map(|v| v.replica_id).collect::<Vec<_>>(),
        [1]
    );
    assert!(q.high_watermark > 0);
    let java = kafka.tool_ok(
        "metadata-quorum",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "describe",
            "--status",
        ],
    );
    assert!(
        java.contains("LeaderId:")
            && java.contains(&format!("LeaderId:               {}", q.leader_id))
            || java.contains("LeaderId: 1")
            || java.contains("LeaderId:\t1"),
        "{java}"
    );
}

#[tokio::test]
async fn producers_and_transactions() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-txn");
    let txn = unique_topic("admin-txn-id");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 1).await;
    let props = format!("bootstrap.servers={}", kafka.bootstrap());
    kafka.tool_ok(
        "producer-perf-test",
        &[
            "--topic",
            &topic,
            "--num-records",
            "20",
            "--record-size",
            "10",
            "--throughput",
            "-1",
            "--transactional-id",
            &txn,
            "--transaction-duration-ms",
            "100",
            "--producer-props",
            &props,
        ],
    );

    // EndTxn answers once the commit is prepared; the coordinator writes the markers and
    // moves to CompleteCommit a moment later, so PrepareCommit may still be seen here.
    let d = eventually("transaction completes its commit", || async {
        let d = admin
            .describe_transactions(&[&txn])
            .await
            .unwrap()
            .into_result()
            .unwrap();
        let d = d[&txn].clone();
        assert!(
            ["PrepareCommit", "CompleteCommit", "Empty"].contains(&d.state.as_str()),
            "{d:?}"
        );
        (d.state != "PrepareCommit").then_some(d)
    })
    .await;
    let d = &d;
    assert!(d.producer_id >= 0);
    let listed = admin
        .list_transactions(&ListTransactionsFilter::default())
        .await
        .unwrap();
    assert!(listed
        .iter()
        .any(|t| t.transactional_id == txn && t.producer_id == d.producer_id));
    let java = kafka.tool_ok(
        "transactions",
        &[
            "--bootstrap-server",
            kafka.bootstrap(),
            "describe",
            "--transactional-id",
            &txn,
        ],
    );
    assert!(java.contains(&d.producer_id.to_string()), "{java}");

    // The coordinator logs CompleteCommit once the partition leaders have written the
    // markers, but the leader's producer state is read separately: poll it too.
    let active = eventually(
        "the commit marker closes the partition's transaction",
        || async {
            let producers = admin
                .describe_producers(&[tp(&topic, 0)])
                .await
                .unwrap()
                .into_result()
                .unwrap();
            let active = producers[&tp(&topic, 0)].clone();
            active
                .iter()
                .all(|p| p.current_txn_start_offset.is_none())
                .then_some(active)
        },
    )
    .await;
    assert!(
        active.iter().any(|p| p.producer_id == d.producer_id),
        "{active:?}"
    );

    let fenced = admin
        .fence_producers(&[&txn])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(fenced[&txn].producer_id, d.producer_id);
    assert!(fenced[&txn].producer_epoch > d.producer_epoch);
    let after = admin
        .describe_transactions(&[&txn])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(after[&txn].producer_epoch, fenced[&txn].producer_epoch);

    let missing = unique_topic("admin-no-txn");
    let r = admin.describe_transactions(&[&missing]).await.unwrap();
    assert_eq!(
        r.get(&missing).unwrap().as_ref().unwrap_err().code,
        KafkaCode::TransactionalIdNotFound
    );
}

#[tokio::test]
async fn a_hanging_transaction_is_found_and_aborted() {
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-hanging");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 1).await;
    // Our transactional producer writes and then never ends its transaction.
    let producer = kafka_producer::Producer::new(
        kafka_producer::ProducerConfig::new([kafka.bootstrap()])
            .unwrap()
            .transactional_id(unique_topic("admin-hanging-id"))
            .transaction_timeout(std::time::Duration::from_secs(600)),
    )
    .await
    .unwrap();
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().unwrap();
    let ack = producer
        .send(kafka_producer::ProducerRecord::new(
            topic.clone(),
            "left open",
        ))
        .await
        .unwrap();
    producer.flush().await.unwrap();
    ack.await.unwrap();
    let states = admin
        .describe_producers(&[tp(&topic, 0)])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let open = states[&tp(&topic, 0)]
        .iter()
        .find(|p| p.current_txn_start_offset.is_some())
        .cloned()
        .expect("the open transaction is visible");
    admin
        .abort_transaction(&AbortTransactionSpec {
            partition: tp(&topic, 0),
            producer_id: open.producer_id,
            producer_epoch: open.producer_epoch as i16,
            coordinator_epoch: open.coordinator_epoch.max(0),
        })
        .await
        .unwrap();
    let after = admin
        .describe_producers(&[tp(&topic, 0)])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert!(
        after[&tp(&topic, 0)]
            .iter()
            .all(|p| p.current_txn_start_offset.is_none()),
        "the abort marker closed the transaction: {after:?}"
    );
    drop(producer);
}

#[tokio::test]
async fn config_from_properties_rejects_unknown_keys_with_a_suggestion() {
    let e = kafka_admin::AdminConfig::from_properties([
        ("bootstrap.servers", "127.0.0.1:1"),
        ("admin.operation.timeout", "10"),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("admin.operation.timeout.ms"), "{e}");
    let _ = (BTreeSet::<i32>::new(), kafka());
}

#[tokio::test]
async fn desired_state_plan_apply_and_apply_again_is_empty() {
    use kafka_admin::desired::{Change, DesiredState, PlanOptions};
    let kafka = kafka();
    let admin = admin(kafka).await;
    let scope = unique_topic("desired");
    let topic = format!("{scope}-orders");
    let user = format!("{scope}-user");
    let toml = |partitions: i32, retention: i64| {
        format!(
            r#"
[topics.{topic}]
partitions = {partitions}
replication_factor = 1
configs = {{ "retention.ms" = {retention}, "cleanup.policy" = "delete" }}

[[acls]]
resource_type = "topic"
resource_name = "{topic}"
principal = "User:dora"
operation = "read"

[[quotas]]
entity = {{ user = "{user}" }}
values = {{ producer_byte_rate = 1048576 }}
"#
        )
    };
    let opts = PlanOptions {
        allow_deletions: false,
        scope_prefix: Some(scope.clone()),
    };
    let spec = DesiredState::from_toml(&toml(2, 1_000_000)).unwrap();
    let plan = admin.plan(&spec, &opts).await.unwrap();
    assert_eq!(plan.changes.len(), 3, "{plan}");
    assert!(plan.errors.is_empty(), "{plan}");
    assert!(
        matches!(&plan.changes[0], Change::CreateTopic { partitions: 2, .. }),
        "{plan}"
    );
    admin.apply(&plan).await.unwrap();
    eventually("applying once is enough", || async {
        admin
            .plan(&spec, &opts)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    // The same spec in YAML is the same state.
    let yaml = format!(
        "topics:\n  {topic}:\n    partitions: 2\n    replication_factor: 1\n    configs:\n      retention.ms: 1000000\n      cleanup.policy: delete\nacls:\n  - resource_type: TOPIC\n    resource_name: {topic}\n    principal: User:dora\n    operation: READ\nquotas:\n  - entity: {{ user: {user} }}\n    values: {{ producer_byte_rate: 1048576 }}\n"
    );
    let from_yaml = DesiredState::from_yaml(&yaml).unwrap();
    assert!(admin.plan(&from_yaml, &opts).await.unwrap().is_empty());

    // Grow and reconfigure.
    let spec = DesiredState::from_toml(&toml(4, 2_000_000)).unwrap();
    let plan = admin.plan(&spec, &opts).await.unwrap();
    assert_eq!(plan.changes.len(), 2, "{plan}");
    admin.apply(&plan).await.unwrap();
    eventually("applying the change once is enough", || async {
        admin
            .plan(&spec, &opts)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    let d = admin
        .describe_topics(&[&topic])
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(d[&topic].partitions.len(), 4);

    // Impossible changes are plan errors, and apply refuses them.
    let shrink = DesiredState::from_toml(
        &toml(1, 2_000_000).replace("replication_factor = 1", "replication_factor = 3"),
    )
    .unwrap();
    let plan = admin.plan(&shrink, &opts).await.unwrap();
    assert_eq!(plan.errors.len(), 2, "{plan}");
    assert!(
        plan.errors
            .iter()
            .any(|e| e.contains("cannot remove partitions")),
        "{plan}"
    );
    assert!(
        plan.errors.iter().any(|e| e.contains("replication factor")),
        "{plan}"
    );
    assert!(matches!(
        admin.apply(&plan).await,
        Err(AdminError::Plan { .. })
    ));

    // Deletions only when allowed: an empty spec removes what the scope holds.
    let empty = DesiredState::default();
    assert!(admin.plan(&empty, &opts).await.unwrap().is_empty());
    let deleting = PlanOptions {
        allow_deletions: true,
        scope_prefix: Some(scope.clone()),
    };
    let plan = admin.plan(&empty, &deleting).await.unwrap();
    assert_eq!(plan.changes.len(), 3, "{plan}");
    admin.apply(&plan).await.unwrap();
    eventually("everything in scope deleted", || async {
        admin
            .plan(&empty, &deleting)
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn lag_owner_and_offset_reset_with_dry_run() {
    use kafka_admin::reset::ResetTo;
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-lag");
    let group = unique_topic("admin-lag-group");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 2).await;
    let base = now_ms();
    produce(admin.client(), &topic, 0, 6, base).await;
    produce(admin.client(), &topic, 1, 4, base).await;

    // A real consumer (Kafka's console consumer) joins the group and reads everything.
    let bootstrap = kafka.bootstrap().to_owned();
    let (t, g) = (topic.clone(), group.clone());
    let consumer = std::thread::spawn(move || {
        tests::cluster(ClusterSpec::default().secured()).tool(
            "console-consumer",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &t,
                "--group",
                &g,
                "--from-beginning",
                // Commits soon after reading; exits once idle for 20 s, which leaves the
                // checks below time enough on a slow machine.
                "--consumer-property",
                "auto.commit.interval.ms=500",
                "--timeout-ms",
                "20000",
            ],
        )
    });
    let lag = eventually(
        "the consumer owns both partitions and caught up",
        || async {
            let lag = admin.consumer_lag(&group).await.ok()?;
            (lag.partitions.len() == 2
                && lag
                    .partitions
                    .iter()
                    .all(|p| p.owner.is_some() && p.lag == Some(0)))
            .then_some(lag)
        },
    )
    .await;
    assert_eq!(lag.state, "Stable");
    assert!(lag.to_string().contains(&format!("{topic}-0")));
    let owner = lag.partitions[0].owner.clone().unwrap();
    assert!(owner.client_id.starts_with("console-consumer"), "{owner:?}");
    let all = admin.consumer_lag_all().await.unwrap();
    assert!(all.iter().any(|g| g.group_id == group));

    // While it is active, a reset is refused (the dry run still plans it).
    let plan = admin
        .reset_group_offsets(&group, &[&topic], &[], ResetTo::Earliest, true)
        .await
        .unwrap();
    assert!(!plan.applied);
    assert!(plan.moves.iter().all(|m| m.new == 0), "{plan}");
    let e = admin
        .reset_group_offsets(&group, &[&topic], &[], ResetTo::Earliest, false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("active member"), "{e}");
    let out = consumer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The consumer left: the reset goes through, and the dry run changed nothing before.
    let committed = admin.list_group_offsets(&group, None).await.unwrap();
    assert_eq!(committed[&tp(&topic, 0)].offset, 6);
    let back = admin
        .reset_group_offsets(&group, &[&topic], &[], ResetTo::ShiftBy(-2), false)
        .await
        .unwrap();
    assert!(back.applied);
    let committed = admin.list_group_offsets(&group, None).await.unwrap();
    assert_eq!(
        (
            committed[&tp(&topic, 0)].offset,
            committed[&tp(&topic, 1)].offset
        ),
        (4, 2)
    );
    let lag = admin.consumer_lag(&group).await.unwrap();
    assert_eq!(lag.total_lag, 4);
    admin
        .reset_group_offsets(
            &group,
            &[],
            &[tp(&topic, 1)],
            ResetTo::Timestamp(base + 3),
            false,
        )
        .await
        .unwrap();
    admin
        .reset_group_offsets(&group, &[], &[tp(&topic, 0)], ResetTo::Latest, false)
        .await
        .unwrap();
    let committed = admin.list_group_offsets(&group, None).await.unwrap();
    assert_eq!(
        (
            committed[&tp(&topic, 0)].offset,
            committed[&tp(&topic, 1)].offset
        ),
        (6, 3)
    );
}

#[tokio::test]
async fn describe_groups_of_either_protocol() {
    use kafka_admin::groups::GroupType;
    let kafka = kafka();
    let admin = admin(kafka).await;
    let topic = unique_topic("admin-848");
    let group = unique_topic("admin-848-group");
    admin
        .create_topics(&[NewTopic::new(&topic, 2, 1)], false)
        .await
        .unwrap()
        .into_result()
        .unwrap();
    wait_for_leaders(admin.client(), &topic, 2).await;
    // KIP-848 groups are on by default from Kafka 4.0; 3.9 runs the classic protocol.
    let kip848 = kafka.version_at_least(4, 0);
    let protocol = if kip848 {
        "group.protocol=consumer"
    } else {
        "group.protocol=classic"
    };
    let bootstrap = kafka.bootstrap().to_owned();
    let (t, g) = (topic.clone(), group.clone());
    let consumer = std::thread::spawn(move || {
        tests::cluster(ClusterSpec::default().secured()).tool(
            "console-consumer",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &t,
                "--group",
                &g,
                "--consumer-property",
                protocol,
                "--timeout-ms",
                "20000",
            ],
        )
    });
    let d = eventually("the group has its member and assignment", || async {
        let d = admin
            .describe_groups(&[&group])
            .await
            .ok()?
            .into_result()
            .ok()?
            .remove(&group)?;
        (d.members.len() == 1 && d.members[0].assignment.len() == 2).then_some(d)
    })
    .await;
    assert_eq!(
        d.group_type,
        if kip848 {
            GroupType::Consumer
        } else {
            GroupType::Classic
        },
        "{d:?}"
    );
    assert_eq!(d.state, "Stable");
    assert!(
        d.members[0].client_id.starts_with("console-consumer"),
        "{d:?}"
    );
    if kip848 {
        let types = ListGroupsFilter {
            states: vec![],
            types: vec!["consumer".into()],
        };
        assert!(admin
            .list_groups(&types)
            .await
            .unwrap()
            .iter()
            .any(|g| g.group_id == group));
    }
    let out = consumer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
