//! The accumulator on virtual time: sequences, retries, expiry, epoch bumps.

use super::*;
use kafka_core::codec::records::BatchDecoder;

struct OneLeader(i32);

impl Leaders for OneLeader {
    fn leader(&self, _: &str, _: i32) -> Option<i32> {
        Some(self.0)
    }
}

fn cfg() -> AccumulatorConfig {
    AccumulatorConfig {
        batch_size: 200,
        linger: Duration::from_millis(5),
        max_request_size: 1 << 20,
        compression: Compression::None,
        compression_level: None,
        idempotent: true,
        transactional: false,
        max_in_flight: 5,
        delivery_timeout: Duration::from_secs(10),
        retries: u32::MAX,
        retry_backoff: BackoffConfig::default(),
        handler: None,
    }
}

fn acc() -> Accumulator {
    acc_with(cfg())
}

/// An accumulator with `cfg`, a producer id, and topic "t" of two partitions.
fn acc_with(cfg: AccumulatorConfig) -> Accumulator {
    let mut a = Accumulator::new(cfg, Compressor::new(), 42);
    a.producer = ProducerIdentity { id: 7, epoch: 3 };
    a.ensure_topic("t", 2);
    a
}

fn append(a: &mut Accumulator, p: i32, now: Instant) -> DeliveryFuture {
    a.append(
        "t",
        |_| Ok(Some(p)),
        Vec::new,
        false,
        RecordParts {
            timestamp: 1,
            key: Some(b"key"),
            value: Some(&[b'v'; 50]),
            headers: &[],
        },
        60,
        || now,
        Delivery::Future,
    )
    .unwrap()
    .future
    .unwrap()
}

/// The producer fields of a sealed batch, read back through the decoder (which checks the
/// CRC, so a bad re-stamp fails here).
fn header(bytes: &Bytes) -> (i64, i16, i32, usize) {
    let mut d = BatchDecoder::new(1 << 20);
    let b = d.batches(bytes.clone()).next().unwrap().unwrap();
    let h = *b.header();
    (
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        b.records().count(),
    )
}

fn drain(a: &mut Accumulator, now: Instant) -> Vec<ProduceJob> {
    a.drain(now, &OneLeader(1)).0
}

fn written() -> BatchResult {
    BatchResult::Written {
        base_offset: 100,
        log_append_time: -1,
    }
}

/// A broker error for a batch.
fn refused(code: KafkaCode) -> BatchResult {
    BatchResult::Code {
        code,
        message: None,
    }
}

/// Answers every batch of `job` with `result`.
fn answer(
    a: &mut Accumulator,
    job: ProduceJob,
    result: impl Fn() -> BatchResult,
    now: Instant,
) -> Followups {
    let results = job.batches.into_iter().map(|b| (b, result())).collect();
    a.complete(job.node, results, now)
}

fn poll_now(f: &mut DeliveryFuture) -> Option<Result<crate::RecordMetadata, Error>> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(f).poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }
}

use std::future::Future;

#[test]
fn sequences_are_consecutive_per_partition_and_linger_is_honoured() {
    let mut a = acc();
    let t0 = Instant::now();
    // Two records fit in one 200-byte batch, the third starts a new one.
    let mut futs: Vec<_> = (0..5).map(|_| append(&mut a, 0, t0)).collect();
    // Before linger.ms only the full batches go (one per request for one partition).
    let mut pending = drain(&mut a, t0);
    assert_eq!(pending.len(), 1);
    assert_eq!(header(&pending[0].batches[0].bytes).3, 2);
    let t1 = t0 + Duration::from_millis(6);
    let mut seqs = Vec::new();
    loop {
        let mut jobs = std::mem::take(&mut pending);
        jobs.extend(drain(&mut a, t1));
        if jobs.is_empty() {
            break;
        }
        for j in jobs {
            for b in &j.batches {
                let (pid, epoch, seq, n) = header(&b.bytes);
                assert_eq!((pid, epoch), (7, 3));
                assert_eq!(seq, b.base_seq);
                seqs.push((seq, n));
            }
            let results = j.batches.into_iter().map(|b| (b, written())).collect();
            let f = a.complete(j.node, results, t1);
            deliver(&mut a, f);
        }
    }
    let mut next = 0;
    for (seq, n) in &seqs {
        assert_eq!(*seq, next);
        next += *n as i32;
    }
    assert_eq!(next, 5);
    for (i, f) in futs.iter_mut().enumerate() {
        let meta = poll_now(f).expect("acknowledged").unwrap();
        assert_eq!(meta.partition, 0);
        assert!(meta.offset >= 100, "record {i}");
    }
    assert!(a.is_empty());
}

/// Sends one batch of two records to partition 0 and acknowledges it: the broker now has
/// sequence state for the partition, and later batches may be in flight together.
fn first_batch_acknowledged(a: &mut Accumulator, now: Instant) {
    for _ in 0..2 {
        drop(append(a, 0, now));
    }
    a.begin_flush();
    let jobs = drain(a, now);
    assert_eq!(jobs.len(), 1);
    for j in jobs {
        let f = answer(a, j, written, now);
        deliver(a, f);
    }
}

/// After [`first_batch_acknowledged`], `records` more records on partition 0, flushed (two
/// to a batch).
fn batches_after_the_first(a: &mut Accumulator, now: Instant, records: usize) {
    first_batch_acknowledged(a, now);
    for _ in 0..records {
        drop(append(a, 0, now));
    }
    a.begin_flush();
}

/// What the producer does with a completion once the lock is released: wake the records and
/// run their callbacks, then let `flush` and `close` count the batches as done.
fn deliver(a: &mut Accumulator, mut f: Followups) -> Followups {
    f.resolve();
    a.settle(&f.settled);
    f
}

#[test]
fn flush_and_close_wait_until_the_outcomes_are_delivered() {
    // The accumulator forgets a batch only when told its outcome reached the application:
    // a `flush` woken between the two must not return.
    let mut a = acc();
    let t0 = Instant::now();
    let mut fut = append(&mut a, 0, t0);
    let id = a.begin_flush();
    let j = drain(&mut a, t0).pop().unwrap();
    let f = answer(&mut a, j, written, t0);
    assert!(
        !a.flushed(id),
        "completed, but the record has not been told yet"
    );
    assert!(!a.is_empty());
    assert!(poll_now(&mut fut).is_none());
    deliver(&mut a, f);
    assert!(poll_now(&mut fut).is_some());
    assert!(a.flushed(id));
    assert!(a.is_empty());
}

#[test]
fn the_first_batch_of_a_partition_goes_alone_until_acknowledged() {
    let mut a = acc();
    let t0 = Instant::now();
    for _ in 0..6 {
        drop(append(&mut a, 0, t0));
    }
    a.begin_flush();
    let first = drain(&mut a, t0);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].batches.len(), 1);
    assert_eq!(first[0].batches[0].base_seq, 0);
    assert!(
        drain(&mut a, t0).is_empty(),
        "nothing more until the broker has our sequence state"
    );
    for j in first {
        answer(&mut a, j, written, t0);
    }
    // Then the other two together.
    let seqs: Vec<i32> = (0..2)
        .flat_map(|_| drain(&mut a, t0))
        .flat_map(|j| j.batches.into_iter().map(|b| b.base_seq))
        .collect();
    assert_eq!(seqs, [2, 4]);
}

#[test]
fn a_batch_behind_later_acknowledged_ones_bumps_the_epoch_instead_of_waiting_for_its_turn() {
    // A broker that lost our state (or never had it) took B while A was refused: A's sequence
    // is now behind the partition's, and OUT_OF_ORDER_SEQUENCE for it will never go away.
    let mut a = acc();
    let t0 = Instant::now();
    batches_after_the_first(&mut a, t0, 4);
    let ja = drain(&mut a, t0).pop().unwrap();
    let jb = drain(&mut a, t0).pop().unwrap();
    answer(&mut a, ja, || refused(KafkaCode::NotLeaderOrFollower), t0);
    answer(&mut a, jb, written, t0);
    let later = t0 + Duration::from_secs(2);
    let retry = drain(&mut a, later).pop().unwrap();
    assert_eq!(retry.batches[0].base_seq, 2);
    let f = answer(
        &mut a,
        retry,
        || refused(KafkaCode::OutOfOrderSequenceNumber),
        later,
    );
    assert!(f.bump_epoch, "behind the acknowledged sequence: bump");
    assert_eq!(f.failed, 0, "not written, so retried under the new epoch");
}

#[test]
fn a_retried_batch_keeps_its_bytes_and_goes_alone_before_later_ones() {
    let mut a = acc();
    let t0 = Instant::now();
    batches_after_the_first(&mut a, t0, 6);
    // Three batches of two records: all in flight at once (max 5 per node, one per request).
    let mut in_flight = Vec::new();
    for _ in 0..3 {
        let jobs = drain(&mut a, t0);
        assert_eq!(jobs.len(), 1);
        in_flight.extend(jobs);
    }
    let first_bytes = in_flight[0].batches[0].bytes.clone();
    // The first fails with NOT_LEADER, the later ones with OUT_OF_ORDER_SEQUENCE.
    let mut it = in_flight.into_iter();
    let j = it.next().unwrap();
    let f = answer(&mut a, j, || refused(KafkaCode::NotLeaderOrFollower), t0);
    assert!(f.refresh_metadata);
    for j in it {
        let f = answer(
            &mut a,
            j,
            || refused(KafkaCode::OutOfOrderSequenceNumber),
            t0,
        );
        assert!(
            !f.bump_epoch,
            "a too-early batch is retried, not a reason to bump"
        );
        assert_eq!(f.failed, 0);
    }
    // After the backoff, only the first batch goes, with the same bytes.
    let later = t0 + Duration::from_secs(2);
    let jobs = drain(&mut a, later);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].batches[0].bytes, first_bytes);
    assert!(
        drain(&mut a, later).is_empty(),
        "one batch at a time while retrying"
    );
    let j = jobs.into_iter().next().unwrap();
    let f = answer(&mut a, j, written, later);
    deliver(&mut a, f);
    // Then the rest, in sequence order.
    let mut seqs = Vec::new();
    for _ in 0..3 {
        for j in drain(&mut a, later) {
            for b in &j.batches {
                seqs.push(b.base_seq);
            }
            let f = answer(&mut a, j, written, later);
            deliver(&mut a, f);
        }
    }
    assert_eq!(seqs, [4, 6]);
    assert!(a.is_empty());
}

#[test]
fn an_unsent_batch_expires_as_not_persisted_and_later_ones_are_renumbered() {
    let mut a = acc();
    let t0 = Instant::now();
    let mut old = append(&mut a, 0, t0);
    drop(append(&mut a, 0, t0));
    // A new batch 5 s later (the first is full after two records).
    let t5 = t0 + Duration::from_secs(5);
    let mut young = append(&mut a, 0, t5);
    // No leader for 10 s: nothing is sent; then the first batch expires.
    let mut f = Followups::default();
    a.begin_flush();
    a.drain(t0, &NoLeader);
    let t10 = t0 + Duration::from_secs(10);
    a.expire(t10, &mut f);
    f.resolve();
    let e = poll_now(&mut old).expect("failed").unwrap_err();
    assert_eq!(e.outcome(), Outcome::NotPersisted);
    assert!(!f.bump_epoch, "nothing of it reached a broker");
    assert!(poll_now(&mut young).is_none());
    let jobs = drain(&mut a, t10);
    let b = &jobs[0].batches[0];
    assert_eq!(
        b.base_seq, 0,
        "the surviving batch takes the freed sequence"
    );
    assert_eq!(header(&b.bytes).2, 0);
}

struct NoLeader;

impl Leaders for NoLeader {
    fn leader(&self, _: &str, _: i32) -> Option<i32> {
        None
    }
}

#[test]
fn an_ambiguous_batch_is_never_restamped() {
    let mut a = acc();
    let t0 = Instant::now();
    let mut first = append(&mut a, 0, t0);
    drop(append(&mut a, 0, t0));
    let mut second = append(&mut a, 0, t0);
    a.begin_flush();
    let j = drain(&mut a, t0).into_iter().next().unwrap();
    // The request timed out: it may have been written.
    let f = a.complete(
        j.node,
        j.batches
            .into_iter()
            .map(|b| {
                (
                    b,
                    BatchResult::Transport {
                        error: "timeout".into(),
                        sent: true,
                    },
                )
            })
            .collect(),
        t0,
    );
    assert_eq!(f.retries, 1);
    // Something else forces an epoch bump before the retry.
    let mut f = a.apply_new_identity(ProducerIdentity { id: 7, epoch: 4 });
    f.resolve();
    assert_eq!(f.failed, 1);
    let e = poll_now(&mut first).expect("resolved").unwrap_err();
    assert_eq!(e.outcome(), Outcome::PossiblyPersisted);
    // The unsent batch carries the new epoch from sequence 0.
    let jobs = drain(&mut a, t0 + Duration::from_secs(1));
    let b = &jobs[0].batches[0];
    assert_eq!(header(&b.bytes), (7, 4, 0, 1));
    assert!(poll_now(&mut second).is_none());
}

#[test]
fn fencing_is_fatal_for_transactional_producers() {
    let mut c = cfg();
    c.transactional = true;
    let mut a = Accumulator::new(c, Compressor::new(), 1);
    a.producer = ProducerIdentity { id: 1, epoch: 0 };
    a.ensure_topic("t", 1);
    let t0 = Instant::now();
    let mut fut = append(&mut a, 0, t0);
    a.begin_flush();
    assert!(
        drain(&mut a, t0).is_empty(),
        "not sent before AddPartitionsToTxn"
    );
    let parts = a.partitions_to_add();
    assert_eq!(parts.len(), 1);
    a.mark_added(&parts);
    let j = drain(&mut a, t0).into_iter().next().unwrap();
    let f = a.complete(
        j.node,
        j.batches
            .into_iter()
            .map(|b| {
                (
                    b,
                    BatchResult::Code {
                        code: KafkaCode::ProducerFenced,
                        message: None,
                    },
                )
            })
            .collect(),
        t0,
    );
    let mut f = f;
    assert!(matches!(f.fatal, Some(Error::Fenced { .. })));
    f.resolve();
    assert!(poll_now(&mut fut).unwrap().is_err());
}

#[test]
fn restamp_rewrites_the_crc() {
    let mut a = acc();
    let t0 = Instant::now();
    drop(append(&mut a, 1, t0));
    a.begin_flush();
    let j = drain(&mut a, t0).into_iter().next().unwrap();
    let b = &j.batches[0];
    let again = restamp(&b.bytes, ProducerIdentity { id: 99, epoch: 9 }, 1234);
    assert_eq!(header(&again), (99, 9, 1234, 1));
}

#[test]
fn topics_follow_partition_increases() {
    let mut a = acc();
    assert_eq!(a.partition_count("t"), 2);
    a.grow_topics(|t| if t == "t" { 5 } else { 0 });
    assert_eq!(a.partition_count("t"), 5);
    // Never shrinks: partitions cannot be removed from a topic.
    a.grow_topics(|_| 1);
    assert_eq!(a.partition_count("t"), 5);
    drop(append(&mut a, 4, Instant::now()));
}

fn append_with_callback(
    a: &mut Accumulator,
    p: i32,
    now: Instant,
    callback: impl FnOnce(Result<crate::RecordMetadata, Error>) + Send + 'static,
) -> Result<Appended, AppendError> {
    a.append(
        "t",
        |_| Ok(Some(p)),
        Vec::new,
        false,
        RecordParts {
            timestamp: 9,
            key: None,
            value: Some(b"v"),
            headers: &[],
        },
        20,
        || now,
        Delivery::Callback(Box::new(callback)),
    )
}

#[test]
fn callbacks_run_once_in_offset_order_and_a_panicking_one_stops_no_other() {
    let mut a = acc();
    let t0 = Instant::now();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in 0..3 {
        let seen = seen.clone();
        let appended = append_with_callback(&mut a, 1, t0, move |r| {
            let m = r.expect("written");
            seen.lock()
                .unwrap()
                .push((i, m.partition, m.offset, m.timestamp));
            assert_ne!(i, 1, "the second callback panics");
        })
        .unwrap();
        assert!(appended.future.is_none(), "a callback record has no future");
    }
    let jobs = drain(&mut a, t0 + Duration::from_millis(6));
    assert_eq!(seen.lock().unwrap().len(), 0, "nothing before the ack");
    for j in jobs {
        let results = j.batches.into_iter().map(|b| (b, written())).collect();
        a.complete(j.node, results, t0).resolve();
    }
    let base = match written() {
        BatchResult::Written { base_offset, .. } => base_offset,
        _ => unreachable!(),
    };
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(0, 1, base, 9), (1, 1, base + 1, 9), (2, 1, base + 2, 9)]
    );
}

#[test]
fn callbacks_of_unsent_records_get_the_failure_and_closing_takes_nothing() {
    let mut a = acc();
    let t0 = Instant::now();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    append_with_callback(&mut a, 0, t0, move |r| s.lock().unwrap().push(r)).unwrap();
    a.closing = true;
    let s = seen.clone();
    assert!(matches!(
        append_with_callback(&mut a, 0, t0, move |r| s.lock().unwrap().push(r)),
        Err(AppendError::Failed(Error::Closed))
    ));
    a.fail_unsent(&Error::Closed).resolve();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "only the queued record has an outcome");
    assert!(matches!(seen[0], Err(Error::Closed)));
}

#[test]
fn topic_hasher_spreads_similar_names() {
    use std::hash::BuildHasher;
    let b = BuildHasherDefault::<TopicHasher>::default();
    let names = [
        "t",
        "t1",
        "t2",
        "events-0",
        "events-1",
        "a-much-longer-topic-name-17",
    ];
    let hashes: BTreeSet<u64> = names.iter().map(|n| b.hash_one(n)).collect();
    assert_eq!(hashes.len(), names.len());
}

#[test]
fn tokens_reach_the_handler_in_offset_order_after_the_ack_or_with_the_failure() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let handler = move |r: Result<crate::RecordMetadata, Error>, token: u64| {
        s.lock()
            .unwrap()
            .push((token, r.map(|m| m.offset).map_err(|e| e.to_string())));
    };
    let mut a = acc_with(AccumulatorConfig {
        handler: Some(Handler(Arc::new(handler))),
        ..cfg()
    });
    let t0 = Instant::now();
    let token = |a: &mut Accumulator, p: i32, token: u64| {
        a.append(
            "t",
            |_| Ok(Some(p)),
            Vec::new,
            false,
            RecordParts {
                timestamp: 5,
                key: None,
                value: Some(b"v"),
                headers: &[],
            },
            20,
            || t0,
            Delivery::Token(token),
        )
        .unwrap()
    };
    for t in [10, 11, 12] {
        assert!(token(&mut a, 0, t).future.is_none());
    }
    // Partition 1's record is still open when the producer fails what is unsent.
    token(&mut a, 1, 99);
    let jobs = drain(&mut a, t0 + Duration::from_millis(6));
    assert!(seen.lock().unwrap().is_empty(), "nothing before the ack");
    let mut mine = Vec::new();
    for j in jobs {
        for b in j.batches {
            if b.partition == 0 {
                mine.push((b, written()));
            } else {
                a.requeue(b, t0, "test".into());
            }
        }
        a.complete(j.node, std::mem::take(&mut mine), t0).resolve();
    }
    a.fail_unsent(&Error::Closed).resolve();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[..3], [(10, Ok(100)), (11, Ok(101)), (12, Ok(102))]);
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].0, 99);
    assert!(seen[3].1.is_err());
}

/// When a request holds one batch (large batches against `max.request.size`), successive
/// drains take turns among the partitions with something ready, instead of always serving the
/// first one while it keeps filling (which held the others back for seconds in a live run).
#[test]
fn drains_take_turns_among_ready_partitions() {
    let mut a = acc_with(AccumulatorConfig {
        max_request_size: 250,
        ..cfg()
    });
    let t0 = Instant::now();
    // Five full batches on each partition.
    let _futs: Vec<_> = (0..20).map(|i| append(&mut a, i % 2, t0)).collect();
    let later = t0 + Duration::from_millis(10);
    let mut served = Vec::new();
    for _ in 0..6 {
        let mut jobs = drain(&mut a, later);
        assert_eq!(jobs.len(), 1, "one request to the one broker");
        let job = jobs.pop().unwrap();
        assert_eq!(job.batches.len(), 1, "one batch fits a request");
        served.push(job.batches[0].partition);
        answer(&mut a, job, written, later);
    }
    assert_eq!(served, [0, 1, 0, 1, 0, 1], "partitions served in turn");
}
