//! Classic-protocol partition assignment, sans-IO: the Java client's `ConsumerProtocol`
//! wire format for subscriptions and assignments, and the range, round-robin, sticky and
//! cooperative-sticky assignors (the sticky assignors' user data in the Java formats too).
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

/// The eager sticky assignor's user data (Java's `StickyAssignorUserData`): the member's
/// previous assignment, and from version 1 the generation it was assigned in. There is no
/// version field: version 1 is version 0 followed by an `INT32`, and a reader takes the
/// generation when four more bytes follow the partitions, as Java's does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StickyUserData {
    /// The previous assignment.
    pub partitions: Vec<TopicPartition>,
    /// Its generation (absent in version 0).
    pub generation: Option<i32>,
}

impl StickyUserData {
    /// Encodes as version 1, or version 0 without a generation.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        put_partitions(&mut b, &self.partitions);
        if let Some(g) = self.generation {
            b.put_i32(g);
        }
        b.freeze()
    }

    /// Decodes version 0 or 1 (bytes after the generation are ignored, as Java does).
    pub fn decode(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data, "sticky assignor user data");
        let partitions = r.partitions()?;
        let generation = if r.data.len() >= 4 {
            Some(r.i32()?)
        } else {
            None
        };
        Ok(Self {
            partitions,
            generation,
        })
    }

    /// A member's previous partitions and their generation as the leader counts them: no or
    /// unreadable user data is no claim, and a missing generation is -1 (Java's rules; a
    /// member's bad user data must not fail the group's rebalance).
    fn claim(member: &Member) -> (Vec<TopicPartition>, i32) {
        let Some(data) = member.subscription.user_data.as_deref() else {
            return (Vec::new(), -1);
        };
        if data.is_empty() {
            return (Vec::new(), -1);
        }
        match Self::decode(data) {
            Ok(d) => (d.partitions, d.generation.unwrap_or(-1)),
            Err(e) => {
                tracing::warn!(member = %member.member_id, error = %e, "ignoring unreadable sticky assignor user data");
                (Vec::new(), -1)
            }
        }
    }
}

/// The user data a member sends for `kind` when it joins at `generation`: the generation
/// for cooperative-sticky, the last assignment received (`last`, with its generation) for
/// sticky, none for the others.
pub fn user_data(
    kind: AssignorKind,
    generation: i32,
    last: Option<&StickyUserData>,
) -> Option<Bytes> {
    match kind {
        AssignorKind::CooperativeSticky => Some(cooperative_user_data(generation)),
        AssignorKind::Sticky => last.map(StickyUserData::encode),
        _ => None,
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
        AssignorKind::Sticky => {
            // Eager: members own nothing while they rejoin; what they held comes from the
            // user data, never from the subscription's owned partitions.
            let owners = previous_owners(&sorted, partitions, StickyUserData::claim);
            out = sticky_balance(&sorted, partitions, &owners);
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
    let mut held: Vec<Holding> = vec![Holding::default(); members.len()];
    let least_loaded = |held: &[Holding], subs: &[usize]| {
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
            match owners.get(&tp).and_then(|(_, o)| index.get(*o).copied()) {
                Some(i) if subscribes(i, topic) => {
                    held[i].kept.insert(tp);
                }
                _ => rest.push(tp),
            }
        }
    }
    // 2. Deal the rest, most constrained first.
    rest.sort_by_key(|tp| (subscribers[&*tp.topic].len(), tp.clone()));
    for tp in rest {
        let i = least_loaded(&held, &subscribers[&*tp.topic]);
        held[i].new.insert(tp);
    }
    // 3. Even out.
    loop {
        let least: BTreeMap<&str, usize> = subscribers
            .iter()
            .map(|(t, subs)| (*t, least_loaded(&held, subs)))
            .collect();
        let min = held.iter().map(Holding::len).min().unwrap_or(0);
        let mut givers: Vec<usize> = (0..members.len()).collect();
        givers.sort_by_key(|&i| (std::cmp::Reverse(held[i].len()), i));
        let step = givers
            .into_iter()
            .take_while(|&i| held[i].len() >= min + 2)
            .find_map(|from| {
                let h = &held[from];
                h.new.iter().chain(&h.kept).find_map(|tp| {
                    let to = least[&*tp.topic];
                    (held[to].len() + 2 <= h.len()).then(|| (from, tp.clone(), to))
                })
            });
        let Some((from, tp, to)) = step else { break };
        if !held[from].new.remove(&tp) {
            held[from].kept.remove(&tp);
        }
        held[to].new.insert(tp);
    }
    members
        .iter()
        .zip(held)
        .map(|(m, h)| {
            let mut all: Vec<TopicPartition> = h.kept.into_iter().chain(h.new).collect();
            all.sort();
            (m.member_id.clone(), all)
        })
        .collect()
}

/// What one member holds while the sticky assignors balance: partitions it keeps from its
/// previous assignment, and partitions new to it (moved on first: that costs no stickiness).
#[derive(Debug, Clone, Default)]
struct Holding {
    kept: BTreeSet<TopicPartition>,
    new: BTreeSet<TopicPartition>,
}

impl Holding {
    fn len(&self) -> usize {
        self.kept.len() + self.new.len()
    }
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

    /// A member of the eager sticky assignor: `previous` (with `generation`) goes in the
    /// user data as Java's assignor writes it; `None` sends no user data.
    fn sticky(id: &str, topics: &[&str], previous: Option<(&[(&str, i32)], i32)>) -> Member {
        let mut m = member(id, topics, &[], -1);
        m.subscription.user_data = previous.map(|(ps, g)| {
            StickyUserData {
                partitions: ps.iter().map(|(t, p)| TopicPartition::new(t, *p)).collect(),
                generation: Some(g),
            }
            .encode()
        });
        m
    }

    /// `out[id]` as (topic, partition) pairs, to feed back as the previous assignment.
    fn held<'a>(out: &'a BTreeMap<String, Vec<TopicPartition>>, id: &str) -> Vec<(&'a str, i32)> {
        out[id]
            .iter()
            .map(|tp| (&*tp.topic, tp.partition))
            .collect()
    }

    /// The members `ids` (all subscribed to `topics`) rejoining after `out`, which they
    /// received in `generation`.
    fn rejoin(
        out: &BTreeMap<String, Vec<TopicPartition>>,
        ids: &[&str],
        topics: &[&str],
        generation: i32,
    ) -> Vec<Member> {
        ids.iter()
            .map(|id| sticky(id, topics, Some((&held(out, id), generation))))
            .collect()
    }

    fn set(v: &[TopicPartition]) -> BTreeSet<TopicPartition> {
        v.iter().cloned().collect()
    }

    /// Every partition with a subscriber is assigned exactly once, to a subscriber, and no
    /// member could take over a partition of a member holding two or more more (Java's
    /// definition of balanced).
    fn assert_valid_and_balanced(
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
        out: &BTreeMap<String, Vec<TopicPartition>>,
    ) {
        let subscribes = |id: &str, t: &str| {
            members
                .iter()
                .any(|m| m.member_id == id && m.subscription.topics.iter().any(|x| x == t))
        };
        let mut owner: HashMap<&TopicPartition, &str> = HashMap::new();
        for (id, list) in out {
            for tp in list {
                assert!(
                    subscribes(id, &tp.topic),
                    "{id} got {tp} unsubscribed: {out:?}"
                );
                assert!(
                    owner.insert(tp, id).is_none(),
                    "{tp} assigned twice: {out:?}"
                );
            }
        }
        for (t, &n) in partitions {
            let wanted = members.iter().any(|m| subscribes(&m.member_id, t));
            for p in 0..n {
                let tp = TopicPartition::new(t, p);
                assert_eq!(owner.contains_key(&tp), wanted, "{tp}: {out:?}");
            }
        }
        for (tp, from) in &owner {
            for m in members {
                let to = m.member_id.as_str();
                if subscribes(to, &tp.topic) {
                    assert!(
                        out[to].len() + 2 > out[*from].len(),
                        "{tp} could move from {from} to {to} for balance: {out:?}"
                    );
                }
            }
        }
    }

    /// The sticky assignment of `members`, checked valid and balanced.
    fn sticky_assign(
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let out = assign(AssignorKind::Sticky, members, partitions);
        assert_valid_and_balanced(members, partitions, &out);
        out
    }

    #[test]
    fn sticky_user_data_matches_javas_bytes() {
        // Java's StickyAssignorUserData, no version field: ARRAY(topic STRING, partitions
        // ARRAY(INT32)) then, from version 1, generation INT32.
        let v1 = StickyUserData {
            partitions: vec![
                TopicPartition::new("t", 0),
                TopicPartition::new("t", 2),
                TopicPartition::new("u", 1),
            ],
            generation: Some(7),
        };
        let topics: Vec<u8> = [
            &[0, 0, 0, 2][..],                                 // 2 topics
            &[0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2], // "t" [0, 2]
            &[0, 1, b'u', 0, 0, 0, 1, 0, 0, 0, 1],             // "u" [1]
        ]
        .concat();
        let want_v1 = [&topics[..], &[0, 0, 0, 7]].concat();
        assert_eq!(&v1.encode()[..], &want_v1[..]);
        assert_eq!(StickyUserData::decode(&want_v1).unwrap(), v1);
        // Version 0: the same without the generation.
        let v0 = StickyUserData {
            generation: None,
            ..v1.clone()
        };
        assert_eq!(&v0.encode()[..], &topics[..]);
        assert_eq!(StickyUserData::decode(&topics).unwrap(), v0);
        // Java's default generation, an empty assignment; trailing bytes are ignored.
        let empty = StickyUserData {
            partitions: vec![],
            generation: Some(-1),
        };
        assert_eq!(&empty.encode()[..], &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            StickyUserData::decode(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 9]).unwrap(),
            empty
        );
        // Truncated or hostile: errors, not allocations.
        assert!(StickyUserData::decode(&want_v1[..10]).is_err());
        assert!(StickyUserData::decode(&[0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(StickyUserData::decode(&[0, 0, 0, 1, 0, 1, b't', 0x7f, 0, 0, 0]).is_err());
    }

    #[test]
    fn user_data_per_assignor() {
        let last = StickyUserData {
            partitions: vec![TopicPartition::new("t", 1)],
            generation: Some(4),
        };
        assert_eq!(
            user_data(AssignorKind::Sticky, 5, Some(&last)),
            Some(last.encode())
        );
        assert_eq!(user_data(AssignorKind::Sticky, 5, None), None);
        assert_eq!(
            user_data(AssignorKind::CooperativeSticky, 5, Some(&last)).as_deref(),
            Some(&[0, 0, 0, 5][..])
        );
        assert_eq!(user_data(AssignorKind::Range, 5, Some(&last)), None);
    }

    #[test]
    fn sticky_moves_only_what_balance_needs_when_members_leave_and_join() {
        let t = parts(&[("t", 8)]);
        let first = [
            sticky("a", &["t"], None),
            sticky("b", &["t"], None),
            sticky("c", &["t"], None),
        ];
        let out1 = sticky_assign(&first, &t);
        // c leaves: a and b keep everything and split c's partitions.
        let second = rejoin(&out1, &["a", "b"], &["t"], 1);
        let out2 = sticky_assign(&second, &t);
        for id in ["a", "b"] {
            assert!(
                set(&out2[id]).is_superset(&set(&out1[id])),
                "{out1:?} -> {out2:?}"
            );
            assert_eq!(out2[id].len(), 4);
        }
        // d joins: a and b give up two partitions between them, nothing else moves.
        let mut third = rejoin(&out2, &["a", "b"], &["t"], 2);
        third.push(sticky("d", &["t"], None));
        let out3 = sticky_assign(&third, &t);
        for id in ["a", "b"] {
            assert!(
                set(&out3[id]).is_subset(&set(&out2[id])),
                "{out2:?} -> {out3:?}"
            );
        }
        assert_eq!(out3["d"].len(), 2);

        // Java's example 1: four topics of two partitions, C1 leaves, nothing else moves.
        let topics = ["t0", "t1", "t2", "t3"];
        let p = parts(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)]);
        let ms: Vec<Member> = ["c0", "c1", "c2"]
            .iter()
            .map(|id| sticky(id, &topics, None))
            .collect();
        let out = assign(AssignorKind::Sticky, &ms, &p);
        assert_eq!(out.values().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
        let ms = rejoin(&out, &["c0", "c2"], &topics, 1);
        let after = sticky_assign(&ms, &p);
        for id in ["c0", "c2"] {
            assert!(set(&after[id]).is_superset(&set(&out[id])));
        }
    }

    #[test]
    fn sticky_balances_unequal_subscriptions() {
        // Java's example 2: c0 reads t0, c1 t0 and t1, c2 all three topics.
        let p = parts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let ms = [
            sticky("c0", &["t0"], None),
            sticky("c1", &["t0", "t1"], None),
            sticky("c2", &["t0", "t1", "t2"], None),
        ];
        let out = assign(AssignorKind::Sticky, &ms, &p);
        assert_eq!(names(&out["c0"]), ["t0-0"]);
        assert_eq!(names(&out["c1"]), ["t1-0", "t1-1"]);
        assert_eq!(names(&out["c2"]), ["t2-0", "t2-1", "t2-2"]);
        // c0 leaves: its partition goes to c1, nothing else moves.
        let ms = [
            sticky("c1", &["t0", "t1"], Some((&held(&out, "c1"), 1))),
            sticky("c2", &["t0", "t1", "t2"], Some((&held(&out, "c2"), 1))),
        ];
        let out = assign(AssignorKind::Sticky, &ms, &p);
        assert_eq!(names(&out["c1"]), ["t0-0", "t1-0", "t1-1"]);
        assert_eq!(names(&out["c2"]), ["t2-0", "t2-1", "t2-2"]);

        // Many shapes, two rounds each (the second sticky to the first, with one member
        // gone and one new): always valid and balanced.
        let mut seed = 0x2545_f491_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let topics = ["a", "b", "c", "d"];
        for _ in 0..200 {
            let p: BTreeMap<String, i32> = topics
                .iter()
                .map(|t| (t.to_string(), next(7) as i32))
                .collect();
            let subs = |next: &mut dyn FnMut(u64) -> u64| -> Vec<&str> {
                let mask = 1 + next(15);
                topics
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, t)| *t)
                    .collect()
            };
            let n = 1 + next(5) as usize;
            let shapes: Vec<Vec<&str>> = (0..n).map(|_| subs(&mut next)).collect();
            let ms: Vec<Member> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| sticky(&format!("m{i}"), s, None))
                .collect();
            let out = sticky_assign(&ms, &p);
            // Round two: m0 leaves, "new" joins with the last shape.
            let mut ms2: Vec<Member> = shapes
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, s)| {
                    let id = format!("m{i}");
                    let prev = held(&out, &id);
                    sticky(&id, s, Some((&prev, 1)))
                })
                .collect();
            ms2.push(sticky("new", &shapes[n - 1], None));
            let out2 = sticky_assign(&ms2, &p);
            // Members with the same subscription end within one partition of each other.
            for x in &ms2 {
                for y in &ms2 {
                    if x.subscription.topics == y.subscription.topics {
                        let (a, b) = (out2[&x.member_id].len(), out2[&y.member_id].len());
                        assert!(a.abs_diff(b) <= 1, "{out2:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn sticky_resolves_conflicting_claims_by_generation() {
        let t = parts(&[("t", 4)]);
        // a's claim on t-2 is of generation 3, b's of generation 4: b keeps it.
        let a = sticky("a", &["t"], Some((&[("t", 0), ("t", 1), ("t", 2)], 3)));
        let b = sticky("b", &["t"], Some((&[("t", 2), ("t", 3)], 4)));
        for ms in [[a.clone(), b.clone()], [b.clone(), a.clone()]] {
            let out = assign(AssignorKind::Sticky, &ms, &t);
            assert_eq!(names(&out["a"]), ["t-0", "t-1"]);
            assert_eq!(names(&out["b"]), ["t-2", "t-3"]);
        }
        // Version 0 user data (no generation) counts as generation -1 and loses.
        let mut old = member("a", &["t"], &[], -1);
        old.subscription.user_data = Some(
            StickyUserData {
                partitions: vec![TopicPartition::new("t", 2), TopicPartition::new("t", 3)],
                generation: None,
            }
            .encode(),
        );
        let b = sticky("b", &["t"], Some((&[("t", 0), ("t", 3)], 0)));
        let out = assign(AssignorKind::Sticky, &[old, b], &t);
        assert_eq!(names(&out["a"]), ["t-1", "t-2"]);
        assert_eq!(names(&out["b"]), ["t-0", "t-3"]);
        // Equal generations: the member first in sort order keeps it.
        let a = sticky("a", &["t"], Some((&[("t", 1)], 5)));
        let b = sticky("b", &["t"], Some((&[("t", 1)], 5)));
        let out = assign(AssignorKind::Sticky, &[b, a], &t);
        assert!(out["a"].contains(&TopicPartition::new("t", 1)));
        // Unreadable user data is no claim (and no failure); the eager assignor ignores
        // the subscription's owned partitions.
        let mut bad = member("a", &["t"], &[("t", 0), ("t", 1)], 9);
        bad.subscription.user_data = Some(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]));
        let b = sticky("b", &["t"], Some((&[("t", 0), ("t", 1)], 2)));
        let out = assign(AssignorKind::Sticky, &[bad, b], &t);
        assert_eq!(names(&out["b"]), ["t-0", "t-1"]);
        assert_eq!(names(&out["a"]), ["t-2", "t-3"]);
    }

    #[test]
    fn sticky_is_deterministic() {
        let p = parts(&[("t", 7), ("u", 5)]);
        let ms = vec![
            sticky(
                "m3",
                &["t", "u"],
                Some((&[("t", 0), ("t", 1), ("u", 4)], 2)),
            ),
            sticky("m1", &["t"], None),
            sticky("m2", &["u"], Some((&[("u", 0), ("u", 1), ("u", 2)], 2))),
            sticky(
                "m0",
                &["t", "u"],
                Some((&[("t", 2), ("t", 3), ("t", 4), ("t", 5)], 1)),
            ),
        ];
        let want = sticky_assign(&ms, &p);
        // Any order of the members, any number of times: the same answer.
        let mut order = ms.clone();
        for i in 0..24 {
            order.rotate_left(1 + i % 3);
            if i % 4 == 0 {
                order.swap(0, 2);
            }
            assert_eq!(assign(AssignorKind::Sticky, &order, &p), want);
        }
    }
}
