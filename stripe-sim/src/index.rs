//! Lookups that keep lists fast for shops of 100,000 customers: objects by an id field (a
//! customer's PaymentIntents and charges, a charge's refunds, ...) and the events in
//! newest-first order. Without them every list request scanned and sorted every object.
//!
//! Both are built lazily, from the objects inserted since the last lookup: objects never leave
//! a collection and their position in it never changes, and no lifecycle step changes the id
//! fields indexed here (Stripe's own objects keep them too). Lookups re-check the field, so
//! answers stay exactly those of a scan. Interior mutability lets a lookup catch up while the
//! caller holds the state's lock for reading; the state is only ever used behind that lock.

use crate::Collection;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Default)]
pub(crate) struct Indexes {
    /// By (collection name, field): positions in insertion order, by the field's value.
    fields: RefCell<HashMap<(&'static str, &'static str), FieldIndex>>,
    events: RefCell<Ordered>,
}

#[derive(Default)]
struct FieldIndex {
    /// How many of the collection's objects (in insertion order) are indexed.
    indexed: usize,
    positions: HashMap<String, Vec<usize>>,
}

/// A collection's objects oldest first by (`created`, insertion position): the exact reverse
/// of [`Collection::newest_first`].
#[derive(Default)]
pub(crate) struct Ordered {
    /// Insertion positions, oldest first.
    pub(crate) oldest_first: Vec<usize>,
    /// Insertion position by id.
    position: HashMap<String, usize>,
}

/// The sort key of [`Collection::newest_first`], ascending.
fn key(collection: &Collection, position: usize) -> (Option<i64>, usize) {
    (collection.objects[&collection.order[position]]["created"].as_i64(), position)
}

impl Ordered {
    fn catch_up(&mut self, collection: &Collection) {
        for position in self.position.len()..collection.order.len() {
            self.position.insert(collection.order[position].clone(), position);
            let new = key(collection, position);
            // Objects usually arrive in clock order: an append. A clock set back inserts.
            let at = match self.oldest_first.last() {
                Some(&last) if key(collection, last) > new => {
                    self.oldest_first.partition_point(|&p| key(collection, p) < new)
                }
                _ => self.oldest_first.len(),
            };
            self.oldest_first.insert(at, position);
        }
    }

    /// Where the object `id` is in `oldest_first`, if the collection has it.
    pub(crate) fn rank(&self, collection: &Collection, id: &str) -> Option<usize> {
        let position = *self.position.get(id)?;
        let wanted = key(collection, position);
        Some(self.oldest_first.partition_point(|&p| key(collection, p) < wanted))
    }
}

impl Indexes {
    /// The objects of `collection` (called `name`) whose `field` is the string `value`, newest
    /// first, as a scan of [`Collection::newest_first`] filtered on the field would give them.
    pub(crate) fn matching<'a>(
        &self,
        name: &'static str,
        collection: &'a Collection,
        field: &'static str,
        value: &str,
    ) -> Vec<&'a Value> {
        let mut fields = self.fields.borrow_mut();
        let index = fields.entry((name, field)).or_default();
        for position in index.indexed..collection.order.len() {
            let object = &collection.objects[&collection.order[position]];
            if let Some(value) = object[field].as_str() {
                index.positions.entry(value.to_string()).or_default().push(position);
            }
        }
        index.indexed = collection.order.len();
        let mut found: Vec<(usize, &Value)> = index
            .positions
            .get(value)
            .into_iter()
            .flatten()
            .map(|&p| (p, &collection.objects[&collection.order[p]]))
            .filter(|(_, object)| object[field] == value)
            .collect();
        found.sort_by(|(pa, a), (pb, b)| {
            b["created"].as_i64().cmp(&a["created"].as_i64()).then(pb.cmp(pa))
        });
        found.into_iter().map(|(_, object)| object).collect()
    }

    /// The events collection in order, caught up with what was inserted since the last call.
    pub(crate) fn events(&self, events: &Collection) -> std::cell::Ref<'_, Ordered> {
        self.events.borrow_mut().catch_up(events);
        self.events.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collection(objects: &[(&str, i64, &str)]) -> Collection {
        let mut c = Collection::default();
        for (id, created, customer) in objects {
            c.insert(json!({ "id": id, "created": created, "customer": customer }));
        }
        c
    }

    fn ids(values: &[&Value]) -> Vec<String> {
        values.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
    }

    /// Lookups give what a scan gives, also for objects inserted after an earlier lookup,
    /// ties on `created` and a clock set back.
    #[test]
    fn lookups_agree_with_a_scan() {
        let indexes = Indexes::default();
        let mut c = collection(&[("a", 10, "x"), ("b", 10, "y"), ("c", 12, "x")]);
        let scan = |c: &Collection, who: &str| -> Vec<String> {
            ids(&c.newest_first().into_iter().filter(|o| o["customer"] == who).collect::<Vec<_>>())
        };
        assert_eq!(ids(&indexes.matching("t", &c, "customer", "x")), scan(&c, "x"));
        for (id, created, customer) in [("d", 12, "x"), ("e", 5, "x"), ("f", 11, "y")] {
            c.insert(json!({ "id": id, "created": created, "customer": customer }));
        }
        for who in ["x", "y", "z"] {
            assert_eq!(ids(&indexes.matching("t", &c, "customer", who)), scan(&c, who));
        }
        let ordered = indexes.events(&c);
        let order: Vec<String> =
            ordered.oldest_first.iter().rev().map(|&p| c.order[p].clone()).collect();
        assert_eq!(order, ids(&c.newest_first()));
        for (rank, &p) in ordered.oldest_first.iter().enumerate() {
            assert_eq!(ordered.rank(&c, &c.order[p]), Some(rank));
        }
        assert_eq!(ordered.rank(&c, "nope"), None);
    }
}
