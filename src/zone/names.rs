//! The zones' name tables: [`NodeMap`], nodes by lowercase wire name, looked up on the answer
//! path with the hash the decoder computed while lowercasing the question name
//! ([`NameHash`]), so that a lookup does not hash the name again, and compared in line
//! ([`same_bytes`]).

use std::hash::Hasher;

use super::ZoneNode;
use crate::wire::{NameHash, same_bytes};

/// Nodes by lowercase wire name, in a hash table keyed by [`NameHash::of`] the name, so that
/// the answer path looks a name up with the hash the decoder computed
/// ([`NodeMap::get_hashed`]).
#[derive(Clone, Debug, Default)]
pub struct NodeMap {
    table: hashbrown::HashTable<(Box<[u8]>, ZoneNode)>,
}

impl NodeMap {
    /// The node at `name`.
    pub fn get(&self, name: &[u8]) -> Option<&ZoneNode> {
        self.get_hashed(name, NameHash::of(name))
    }

    /// The node at `name`, whose [`NameHash::of`] is `hash`.
    #[inline]
    pub fn get_hashed(&self, name: &[u8], hash: u64) -> Option<&ZoneNode> {
        self.table
            .find(hash, |(k, _)| same_bytes(k, name))
            .map(|(_, n)| n)
    }

    /// The node at `name`, to change.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut ZoneNode> {
        let hash = NameHash::of(name);
        self.table
            .find_mut(hash, |(k, _)| **k == *name)
            .map(|(_, n)| n)
    }

    /// Whether there is a node at `name`.
    pub fn contains_key(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// The node at `name`, made empty when there is none.
    pub fn or_default(&mut self, name: &[u8]) -> &mut ZoneNode {
        let hash = NameHash::of(name);
        let entry = self
            .table
            .entry(hash, |(k, _)| **k == *name, |(k, _)| NameHash::of(k));
        &mut entry
            .or_insert_with(|| (name.into(), ZoneNode::default()))
            .into_mut()
            .1
    }

    /// Every name and its node, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &ZoneNode)> {
        self.table.iter().map(|(k, n)| (&**k, n))
    }

    /// Every name and its node, to change, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut ZoneNode)> {
        self.table.iter_mut().map(|(k, n)| (&**k, n))
    }

    /// Every node.
    pub fn values(&self) -> impl Iterator<Item = &ZoneNode> {
        self.table.iter().map(|(_, n)| n)
    }

    /// Every node, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut ZoneNode> {
        self.table.iter_mut().map(|(_, n)| n)
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there is no name.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The hasher of [`super::AnswerSigs`]: [`NameHash`] over the bytes written.
#[derive(Default, Clone, Copy)]
pub struct NameHasher(NameHash);

impl Hasher for NameHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.bytes(bytes);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.word(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_added_is_found_and_no_other() {
        let mut map = NodeMap::default();
        assert!(map.get(b"\x01a\x00").is_none());
        let names: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| {
                let label = format!("n{i}");
                let mut w = vec![label.len() as u8];
                w.extend_from_slice(label.as_bytes());
                w.extend_from_slice(b"\x04test\x00");
                w
            })
            .collect();
        for (i, n) in names.iter().enumerate() {
            map.or_default(n).service = Some(i);
            // Asked again, the same node.
            assert_eq!(map.or_default(n).service, Some(i));
        }
        assert_eq!(map.len(), names.len());
        for (i, n) in names.iter().enumerate() {
            assert_eq!(map.get(n).and_then(|n| n.service), Some(i));
            assert_eq!(
                map.get_hashed(n, NameHash::of(n)).and_then(|n| n.service),
                Some(i)
            );
        }
        assert!(map.get(b"\x05n1000\x04test\x00").is_none());
        assert!(map.get(b"\x02n1\x04tesT\x00").is_none());
    }
}
