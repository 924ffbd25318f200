//! The broker test kit: starts a real Apache Kafka (KRaft) through `scripts/kafka`.
