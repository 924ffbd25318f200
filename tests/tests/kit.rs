//! The test kit itself: the default cluster comes up, answers a hand-written ApiVersions v0,
//! and every broker lists every broker in its metadata.

use tests::{api_versions_v0, default_cluster, metadata_broker_ids, Listener};

#[test]
fn default_cluster_answers_api_versions_v0() {
    let cluster = default_cluster();
    assert!(!cluster.brokers().is_empty());
    for (i, broker) in cluster.brokers().iter().enumerate() {
        let addr = broker
            .addr(Listener::Plaintext)
            .expect("every broker has a PLAINTEXT listener");
        let correlation_id = 0x4b61_0000 + i as i32;
        let response = api_versions_v0(addr, correlation_id)
            .unwrap_or_else(|e| panic!("ApiVersions v0 to broker {} at {addr}: {e}", broker.id));
        assert_eq!(response.correlation_id, correlation_id);
        assert_eq!(response.error_code, 0, "ApiVersions error from {addr}");
        let produce = response.range(0).expect("Produce (0) is listed");
        let fetch = response.range(1).expect("Fetch (1) is listed");
        let api_versions = response.range(18).expect("ApiVersions (18) is listed");
        assert!(produce.min_version <= produce.max_version);
        assert!(fetch.min_version <= fetch.max_version);
        assert_eq!(
            api_versions.min_version, 0,
            "ApiVersions v0 stays supported"
        );
        eprintln!(
            "Kafka {} broker {} at {addr}: {} APIs, Produce v{}..={}, Fetch v{}..={}",
            cluster.version(),
            broker.id,
            response.apis.len(),
            produce.min_version,
            produce.max_version,
            fetch.min_version,
            fetch.max_version
        );
    }
}

#[test]
fn every_broker_lists_every_broker() {
    let cluster = default_cluster();
    let mut want: Vec<i32> = cluster.brokers().iter().map(|b| b.id).collect();
    want.sort_unstable();
    for broker in cluster.brokers() {
        let addr = broker.addr(Listener::Plaintext).unwrap();
        let mut ids = metadata_broker_ids(addr)
            .unwrap_or_else(|e| panic!("Metadata v4 to broker {} at {addr}: {e}", broker.id));
        ids.sort_unstable();
        assert_eq!(ids, want, "broker {} at {addr}", broker.id);
    }
}
