//! Classic-protocol partition assignment, sans-IO: the Java client's `ConsumerProtocol`
//! wire format for subscriptions and assignments, and the range, round-robin and
//! cooperative-sticky assignors.
//!
//! The format is read by hand (not with `kafka-protocol`'s generated decoder, which
//! preallocates from counts on the wire): member metadata comes from other clients through
//! the coordinator, and a malformed one must be an error, not an allocation of gigabytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::AssignorKind;
use crate::error::{ConsumerError, Result};
use crate::TopicPartition;

/// The version we write (Java 3.5+ writes 3: owned partitions, generation, rack).
pub const SUBSCRIPTION_VERSION: i16 = 3;
/// The assignment version we write.
pub const ASSIGNMENT_VERSION: i16 = 3;

/// One member's subscription (`ConsumerProtocolSubscription`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Topics subscribed to.
    pub topics: Vec<String>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
    /// Partitions owned now (v1+; cooperative rebalancing).
    pub owned: Vec<TopicPartition>,
    /// Generation of the owned partitions (v2+; -1 unknown).
    pub generation: i32,
    /// `client.rack` (v3+).
    pub rack: Option<String>,
}

/// One member's assignment (`ConsumerProtocolAssignment`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The partitions.
    pub partitions: Vec<TopicPartition>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_bytes(b: &mut BytesMut, d: &Option<Bytes>) {
    match d {
        None => b.put_i32(-1),
        Some(d) => {
            b.put_i32(d.len() as i32);
            b.put_slice(d);
        }
    }
}

fn put_partitions(b: &mut BytesMut, parts: &[TopicPartition]) {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in parts {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    b.put_i32(by_topic.len() as i32);
    for (t, ps) in by_topic {
        put_str(b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
}

impl Subscription {
    /// Encodes as the Java client does (version header, then the body).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(SUBSCRIPTION_VERSION);
        b.put_i32(self.topics.len() as i32);
        for t in &self.topics {
            put_str(&mut b, t);
        }
        put_bytes(&mut b, &self.user_data);
        put_partitions(&mut b, &self.owned);
        b.put_i32(self.generation);
        match &self.rack {
            None => b.put_i16(-1),
            Some(r) => put_str(&mut b, r),
        }
        b.freeze()
    }

    /// Decodes any version (fields of versions above 3 are ignored, as Java does).
    pub fn decode(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data, "subscription");
        let version = r.i16()?;
        if version < 0 {
            return Err(r.err("negative version"));
        }
        let n = r.count(2)?;
        let mut topics = Vec::with_capacity(n);
        for _ in 0..n {
            topics.push(r.string()?);
        }
        let user_data = r.bytes()?;
        let mut s = Subscription {
            topics,
            user_data,
            owned: Vec::new(),
            generation: -1,
            rack: None,
        };
        if version >= 1 {
            s.owned = r.partitions()?;
        }
        if version >= 2 {
            s.generation = r.i32()?;
        }
        if version >= 3 {
            s.rack = r.nullable_string()?;
        }
        Ok(s)
    }
}

impl Assignment {
    /// Encodes as the Java client does.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(ASSIGNMENT_VERSION);
        put_partitions(&mut b, &self.partitions);
        put_bytes(&mut b, &self.user_data);
        b.freeze()
    }

    /// Decodes any version. An empty buffer is an empty assignment (what the coordinator
    /// sends a member the leader gave nothing).
    pub fn decode(data: &[u8]) -> Result<Self> {
        if data.is_empty() {
            return Ok(Assignment::default());
        }
        let mut r = Reader::new(data, "assignment");
        let version = r.i16()?;
        if version < 0 {
            return Err(r.err("negative version"));
        }
        let partitions = r.partitions()?;
        let user_data = r.bytes()?;
        Ok(Assignment {
            partitions,
            user_data,
        })
    }
}

struct Reader<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, what }
    }
    fn err(&self, reason: &str) -> ConsumerError {
        ConsumerError::Protocol {
            what: self.what,
            reason: reason.to_owned(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.data.len() {
            return Err(self.err("truncated"));
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Ok(a)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// An array count, refused if the remaining bytes cannot hold that many elements of
    /// at least `min_size` bytes.
    fn count(&mut self, min_size: usize) -> Result<usize> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_size) > self.data.len() {
            return Err(self.err("array count larger than the data"));
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String> {
        self.nullable_string()?
            .ok_or_else(|| self.err("null string"))
    }
    fn nullable_string(&mut self) -> Result<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let s = self.take(n as usize)?;
        String::from_utf8(s.to_vec())
            .map(Some)
            .map_err(|_| self.err("string is not UTF-8"))
    }
    fn bytes(&mut self) -> Result<Option<Bytes>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(Bytes::copy_from_slice(self.take(n as usize)?)))
    }
    fn partitions(&mut self) -> Result<Vec<TopicPartition>> {
        let topics = self.count(6)?;
        let mut out = Vec::new();
        for _ in 0..topics {
            let t = self.string()?;
            let n = self.count(4)?;
            for _ in 0..n {
                out.push(TopicPartition::new(&t, self.i32()?));
            }
        }
        Ok(out)
    }
}

/// A member as the group leader sees it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Its subscription.
    pub subscription: Subscription,
}

impl Member {
    /// The order the Java assignors sort members in: by instance id when both have one,
    /// then by member id.
    fn sort_key(&self) -> (Option<&str>, &str) {
        (self.instance_id.as_deref(), &self.member_id)
    }
}

/// Computes the assignment of every member (member id → partitions). `partitions` gives
/// the partition count of every topic any member subscribes to (topics missing there are
/// skipped).
pub fn assign(
    kind: AssignorKind,
    members: &[Member],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let mut out: BTreeMap<String, Vec<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    match kind {
        AssignorKind::Range => {
            for (topic, &count) in partitions {
                let subs: Vec<&&Member> = sorted
                    .iter()
                    .filter(|m| m.subscription.topics.iter().any(|t| t == topic))
                    .collect();
                if subs.is_empty() || count <= 0 {
                    continue;
                }
                let c = subs.len() as i32;
                let (per, extra) = (count / c, count % c);
                for (i, m) in subs.iter().enumerate() {
                    let i = i as i32;
                    let start = per * i + i.min(extra);
                    let len = per + i32::from(i < extra);
                    let list = out.get_mut(&m.member_id).expect("member");
                    for p in start..start + len {
                        list.push(TopicPartition::new(topic, p));
                    }
                }
            }
        }
        AssignorKind::RoundRobin => {
            let mut i = 0usize;
            for (topic, &count) in partitions {
                for p in 0..count.max(0) {
                    // The next member (cyclically) subscribed to this topic.
                    for _ in 0..sorted.len() {
                        let m = sorted[i % sorted.len()];
                        i += 1;
                        if m.subscription.topics.iter().any(|t| t == topic) {
                            out.get_mut(&m.member_id)
                                .expect("member")
                                .push(TopicPartition::new(topic, p));
                            break;
                        }
                    }
                }
            }
        }
        AssignorKind::CooperativeSticky => {
            let owners = previous_owners(&sorted, partitions, |m| {
                (m.subscription.owned.clone(), m.subscription.generation)
            });
            out = sticky_balance(&sorted, partitions, &owners);
            // The cooperative rule: a partition that changes hands is withheld this round.
            // Its owner revokes it on seeing it missing, and the rebalance it then asks
            // for hands it over.
            for (member, list) in out.iter_mut() {
                list.retain(|tp| owners.get(tp).is_none_or(|(_, o)| *o == member));
            }
        }
    }
    out
}

/// Every partition's previous owner according to the members' claims (`claims` gives a
/// member's previous partitions and the generation they were assigned in). The claim of the
/// highest generation wins; at equal generations the member first in sort order keeps it.
/// Claims on partitions that do not exist are dropped.
fn previous_owners<'m>(
    members: &[&'m Member],
    partitions: &BTreeMap<String, i32>,
    claims: impl Fn(&Member) -> (Vec<TopicPartition>, i32),
) -> HashMap<TopicPartition, (i32, &'m str)> {
    let mut owner: HashMap<TopicPartition, (i32, &'m str)> = HashMap::new();
    for m in members {
        let (owned, generation) = claims(m);
        for tp in owned {
            let exists = partitions
                .get(&*tp.topic)
                .is_some_and(|&n| (0..n).contains(&tp.partition));
            if !exists {
                continue;
            }
            match owner.get(&tp) {
                Some((g, _)) if *g >= generation => {}
                _ => {
                    owner.insert(tp, (generation, &m.member_id));
                }
            }
        }
    }
    owner
}

/// The balancing shared by the sticky assignors. `members` are in sort order.
///
/// 1. Every member keeps its previous partitions of topics it still subscribes to.
/// 2. The other partitions go, most constrained first (fewest subscribers), each to its
///    least loaded subscriber.
/// 3. While some member could take a partition from one holding at least two more, the
///    most loaded such member gives one up (one it did not own before, if it has any).
///
/// The result is balanced in the Java assignor's sense: no member can take over a partition
/// of a member holding two or more partitions more than itself (with equal subscriptions:
/// counts differ by at most one). Each move in step 3 narrows the gap between two members,
/// so the loop ends; partitions move only when balance needs it. Every choice breaks ties by
/// member order and partition order, so equal inputs give equal outputs.
fn sticky_balance(
    members: &[&Member],
    partitions: &BTreeMap<String, i32>,
    owners: &HashMap<TopicPartition, (i32, &str)>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let subscribes =
        |i: usize, topic: &str| members[i].subscription.topics.iter().any(|t| t == topic);
    // The subscribers of each topic that exists, in member order.
    let subscribers: BTreeMap<&str, Vec<usize>> = partitions
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(t, _)| {
            (
                t.as_str(),
                (0..members.len())
                    .filter(|&i| subscribes(i, t))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, subs)| !subs.is_empty())
        .collect();
    let index: HashMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.member_id.as_str(), i))
        .collect();
    let previous = |tp: &TopicPartition| owners.get(tp).and_then(|(_, o)| index.get(*o).copied());
    let mut held: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); members.len()];
    let least_loaded = |held: &[BTreeSet<TopicPartition>], subs: &[usize]| {
        *subs
            .iter()
            .min_by_key(|&&i| (held[i].len(), i))
            .expect("a topic in `subscribers` has one")
    };

    // 1. Keep.
    let mut rest: Vec<TopicPartition> = Vec::new();
    for topic in subscribers.keys() {
        for p in 0..partitions[*topic] {
            let tp = TopicPartition::new(topic, p);
            match previous(&tp) {
                Some(i) if subscribes(i, topic) => {
                    held[i].insert(tp);
                }
                _ => rest.push(tp),
            }
        }
    }
    // 2. Deal the rest, most constrained first.
    rest.sort_by_key(|tp| (subscribers[&*tp.topic].len(), tp.clone()));
    for tp in rest {
        let i = least_loaded(&held, &subscribers[&*tp.topic]);
        held[i].insert(tp);
    }
    // 3. Even out.
    loop {
        let least: BTreeMap<&str, usize> = subscribers
            .iter()
            .map(|(t, subs)| (*t, least_loaded(&held, subs)))
            .collect();
        let min = held.iter().map(BTreeSet::len).min().unwrap_or(0);
        let mut givers: Vec<usize> = (0..members.len()).collect();
        givers.sort_by_key(|&i| (std::cmp::Reverse(held[i].len()), i));
        let movable = |from: usize, tp: &TopicPartition| {
            let to = least[&*tp.topic];
            (held[to].len() + 2 <= held[from].len()).then_some(to)
        };
        let step = givers
            .into_iter()
            .take_while(|&i| held[i].len() >= min + 2)
            .find_map(|from| {
                let pick = |new: bool| {
                    held[from].iter().find_map(|tp| {
                        let owned_before = previous(tp) == Some(from);
                        if owned_before == new {
                            return None;
                        }
                        movable(from, tp).map(|to| (from, tp.clone(), to))
                    })
                };
                pick(true).or_else(|| pick(false))
            });
        let Some((from, tp, to)) = step else { break };
        held[from].remove(&tp);
        held[to].insert(tp);
    }
    members
        .iter()
        .zip(held)
        .map(|(m, h)| (m.member_id.clone(), h.into_iter().collect()))
        .collect()
}

/// Cooperative-sticky's user data: the generation, as the Java assignor writes it.
pub fn cooperative_user_data(generation: i32) -> Bytes {
    Bytes::copy_from_slice(&generation.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str], owned: &[(&str, i32)], generation: i32) -> Member {
        Member {
            member_id: id.into(),
            instance_id: None,
            subscription: Subscription {
                topics: topics.iter().map(|s| s.to_string()).collect(),
                owned: owned
                    .iter()
                    .map(|(t, p)| TopicPartition::new(t, *p))
                    .collect(),
                generation,
                ..Subscription::default()
            },
        }
    }

    fn parts(v: &[(&str, i32)]) -> BTreeMap<String, i32> {
        v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn names(v: &[TopicPartition]) -> Vec<String> {
        v.iter().map(|tp| tp.to_string()).collect()
    }

    #[test]
    fn subscription_round_trips_and_matches_javas_bytes() {
        let s = Subscription {
            topics: vec!["t".into()],
            user_data: None,
            owned: vec![TopicPartition::new("t", 1)],
            generation: 5,
            rack: Some("r".into()),
        };
        let b = s.encode();
        // version 3 | 1 topic "t" | null user data | 1 owned topic "t" [1] | gen 5 | "r"
        let want: Vec<u8> = [
            &[0, 3][..],
            &[0, 0, 0, 1, 0, 1, b't'],
            &[0xff, 0xff, 0xff, 0xff],
            &[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 1],
            &[0, 0, 0, 5],
            &[0, 1, b'r'],
        ]
        .concat();
        assert_eq!(&b[..], &want[..]);
        assert_eq!(Subscription::decode(&b).unwrap(), s);
        // Version 0 (what old clients send) has topics and user data only.
        let v0 = [&[0, 0][..], &[0, 0, 0, 1, 0, 1, b'x'], &[0, 0, 0, 0]].concat();
        let d = Subscription::decode(&v0).unwrap();
        assert_eq!((d.topics, d.generation), (vec!["x".to_string()], -1));
    }

    #[test]
    fn hostile_counts_are_errors() {
        let bad = [0u8, 0, 0x7f, 0xff, 0xff, 0xff];
        assert!(Subscription::decode(&bad).is_err());
        assert!(Assignment::decode(&bad).is_err());
        assert!(Assignment::decode(&[0, 1, 0]).is_err());
        let a = Assignment {
            partitions: vec![TopicPartition::new("a", 0), TopicPartition::new("a", 2)],
            user_data: Some(Bytes::from_static(b"u")),
        };
        assert_eq!(Assignment::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn range_matches_java() {
        let ms = [member("b", &["t"], &[], -1), member("a", &["t"], &[], -1)];
        let out = assign(AssignorKind::Range, &ms, &parts(&[("t", 5)]));
        assert_eq!(names(&out["a"]), ["t-0", "t-1", "t-2"]);
        assert_eq!(names(&out["b"]), ["t-3", "t-4"]);
    }

    #[test]
    fn round_robin_skips_unsubscribed_members() {
        let ms = [
            member("a", &["t", "u"], &[], -1),
            member("b", &["t"], &[], -1),
        ];
        let out = assign(AssignorKind::RoundRobin, &ms, &parts(&[("t", 3), ("u", 2)]));
        assert_eq!(names(&out["a"]), ["t-0", "t-2", "u-0", "u-1"]);
        assert_eq!(names(&out["b"]), ["t-1"]);
    }

    #[test]
    fn cooperative_sticky_keeps_owned_and_defers_moves() {
        // a owned everything; b joins: a keeps 3, the 3 that go to b are withheld this
        // round (a must revoke them first).
        let ms = [
            member(
                "a",
                &["t"],
                &[("t", 0), ("t", 1), ("t", 2), ("t", 3), ("t", 4), ("t", 5)],
                1,
            ),
            member("b", &["t"], &[], -1),
        ];
        let out = assign(AssignorKind::CooperativeSticky, &ms, &parts(&[("t", 6)]));
        assert_eq!(out["a"].len(), 3);
        assert!(out["b"].is_empty());
        // Next round: a owns 3, b nothing: b gets the other 3, a keeps its own.
        let kept = out["a"].clone();
        let owned: Vec<(&str, i32)> = kept.iter().map(|tp| ("t", tp.partition)).collect();
        let ms = [member("a", &["t"], &owned, 2), member("b", &["t"], &[], -1)];
        let out = assign(AssignorKind::CooperativeSticky, &ms, &parts(&[("t", 6)]));
        assert_eq!(out["a"], kept);
        assert_eq!(out["b"].len(), 3);
        let mut all: Vec<_> = out.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 6);
    }
}
