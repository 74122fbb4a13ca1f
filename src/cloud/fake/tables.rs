//! DynamoDB tables in memory, as [`super::FakeAws`] keeps them: the tables ensured, their items by
//! primary key (`pk`, `sk`), and the Order table's global indexes as `cloud::aws::tables` declares them
//! (sparse: an item is in an index only if it has both of the index's key attributes as strings; read in
//! ascending order of the sort key, then of the item's own key, as DynamoDB does).

use std::collections::{BTreeMap, BTreeSet};

use crate::cloud::{
    Error, ErrorKind, Operation, Result, TableItem, TableValue,
    aws::tables::{DYNAMODB, ORDER_TABLE_INDEXES},
};

/// The primary key of an item: (`pk`, `sk`).
type Key = (String, String);

/// Every table of an account.
#[derive(Debug, Default)]
pub struct FakeTables {
    ensured: BTreeSet<String>,
    items: BTreeMap<String, BTreeMap<Key, TableItem>>,
}

fn failure(kind: ErrorKind, name: &'static str, table: &str, code: &str) -> Error {
    Error::Service {
        operation: Operation::new(DYNAMODB, name, table),
        kind,
        code: code.to_owned(),
        message: format!("{code} (fake)"),
        status: None,
    }
}

fn key_of(name: &'static str, table: &str, item: &TableItem) -> Result<Key> {
    let part = |attribute: &str| item.get(attribute).and_then(TableValue::as_s).map(str::to_owned);
    match (part("pk"), part("sk")) {
        (Some(pk), Some(sk)) => Ok((pk, sk)),
        _ => Err(failure(ErrorKind::Permanent, name, table, "ValidationException")),
    }
}

impl FakeTables {
    /// Creates the table `name` if it does not exist.
    pub fn ensure(&mut self, name: &str) {
        self.ensured.insert(name.to_owned());
        self.items.entry(name.to_owned()).or_default();
    }

    /// Whether the table `name` was ensured.
    pub fn contains(&self, name: &str) -> bool {
        self.ensured.contains(name)
    }

    fn table(&mut self, name: &'static str, table: &str) -> Result<&mut BTreeMap<Key, TableItem>> {
        self.items
            .get_mut(table)
            .ok_or_else(|| failure(ErrorKind::NotFound, name, table, "ResourceNotFoundException"))
    }

    /// The items of `index` whose partition attribute is `key.1`, sort key ascending, at most `limit`.
    pub fn query(
        &mut self,
        table: &str,
        index: &str,
        key: (&str, &str),
        limit: i32,
    ) -> Result<Vec<TableItem>> {
        let (_, partition, sort) = ORDER_TABLE_INDEXES
            .into_iter()
            .find(|(name, _, _)| *name == index)
            .ok_or_else(|| failure(ErrorKind::Permanent, "Query", table, "ValidationException"))?;
        if partition != key.0 {
            return Err(failure(
                ErrorKind::Permanent,
                "Query",
                table,
                "ValidationException",
            ));
        }
        let items = self.table("Query", table)?;
        let mut found: Vec<(&str, &Key, &TableItem)> = items
            .iter()
            .filter(|(_, item)| item.get(partition).and_then(TableValue::as_s) == Some(key.1))
            .filter_map(|(k, item)| Some((item.get(sort)?.as_s()?, k, item)))
            .collect();
        found.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let limit = usize::try_from(limit).unwrap_or(0);
        Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, _, item)| item.clone())
            .collect())
    }

    /// Sets and removes attributes of the existing item `key`; whether there was one.
    pub fn update(&mut self, table: &str, key: &TableItem, set: &TableItem, remove: &[&str]) -> Result<bool> {
        let key = key_of("UpdateItem", table, key)?;
        let Some(item) = self.table("UpdateItem", table)?.get_mut(&key) else {
            return Ok(false);
        };
        item.extend(set.iter().map(|(name, value)| (name.clone(), value.clone())));
        for name in remove {
            item.remove(*name);
        }
        Ok(true)
    }

    /// Claims the existing item `key` for `holder` until `times.1` if it has no claim, one that expired
    /// before `times.0`, or `holder`'s own (see `TableItems::claim_item`).
    pub fn claim(
        &mut self,
        table: &str,
        key: &TableItem,
        (holder_attribute, until_attribute): (&str, &str),
        holder: &str,
        (now_millis, until_millis): (i64, i64),
    ) -> Result<bool> {
        let key = key_of("UpdateItem", table, key)?;
        let Some(item) = self.table("UpdateItem", table)?.get_mut(&key) else {
            return Ok(false);
        };
        let until = item
            .get(until_attribute)
            .and_then(TableValue::as_n)
            .and_then(|n| n.parse::<i64>().ok());
        let held_by = item.get(holder_attribute).and_then(TableValue::as_s);
        let free = until.is_none_or(|until| until < now_millis) || held_by == Some(holder);
        if free {
            item.insert(holder_attribute.to_owned(), TableValue::S(holder.to_owned()));
            item.insert(
                until_attribute.to_owned(),
                TableValue::N(until_millis.to_string()),
            );
        }
        Ok(free)
    }

    /// Writes `item` whole.
    pub fn put(&mut self, table: &str, item: &TableItem) -> Result<()> {
        if item.values().any(|v| matches!(v, TableValue::Other(_))) {
            return Err(failure(
                ErrorKind::Permanent,
                "PutItem",
                table,
                "ValidationException",
            ));
        }
        let key = key_of("PutItem", table, item)?;
        self.table("PutItem", table)?.insert(key, item.clone());
        Ok(())
    }

    /// Deletes the item `key`, if there is one.
    pub fn delete(&mut self, table: &str, key: &TableItem) -> Result<()> {
        let key = key_of("DeleteItem", table, key)?;
        self.table("DeleteItem", table)?.remove(&key);
        Ok(())
    }

    /// Every item of `table`, by primary key, for tests to look at.
    pub fn items(&self, table: &str) -> Vec<TableItem> {
        self.items
            .get(table)
            .map(|items| items.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(pk: &str, pairs: &[(&str, &str)]) -> TableItem {
        let mut item = TableItem::from([
            ("pk".to_owned(), TableValue::S(pk.to_owned())),
            ("sk".to_owned(), TableValue::S("OUTBOX".to_owned())),
        ]);
        item.extend(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), TableValue::S((*v).to_owned()))),
        );
        item
    }

    #[test]
    fn an_index_is_sparse_sorted_and_limited() {
        let mut tables = FakeTables::default();
        tables.ensure("t");
        for (pk, age) in [("a", "3"), ("b", "1"), ("c", "2")] {
            tables
                .put("t", &item(pk, &[("outboxShard", "s"), ("outboxAge", age)]))
                .unwrap();
        }
        tables.put("t", &item("d", &[("outboxShard", "s")])).unwrap();
        tables
            .put("t", &item("e", &[("outboxShard", "other"), ("outboxAge", "0")]))
            .unwrap();
        let read = tables.query("t", "outboxByAge", ("outboxShard", "s"), 2).unwrap();
        let pks: Vec<_> = read.iter().map(|i| i["pk"].as_s().unwrap()).collect();
        assert_eq!(
            pks,
            ["b", "c"],
            "oldest first, d (no sort key) and e (other shard) not in it"
        );
        assert!(
            tables.query("t", "outboxByAge", ("outbox", "s"), 2).is_err(),
            "wrong key attribute"
        );
        assert!(
            tables
                .query("missing", "outboxByAge", ("outboxShard", "s"), 2)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn an_update_needs_the_item_and_can_leave_an_index() {
        let mut tables = FakeTables::default();
        tables.ensure("t");
        tables.put("t", &item("a", &[("outbox", "pending")])).unwrap();
        let set = TableItem::from([("x".to_owned(), TableValue::N("1".to_owned()))]);
        assert!(tables.update("t", &item("a", &[]), &set, &["outbox"]).unwrap());
        assert!(
            tables
                .query("t", "outbox", ("outbox", "pending"), 5)
                .unwrap()
                .is_empty()
        );
        assert_eq!(tables.items("t")[0]["x"], TableValue::N("1".to_owned()));
        assert!(
            !tables.update("t", &item("gone", &[]), &set, &[]).unwrap(),
            "no upsert"
        );
        tables.delete("t", &item("a", &[])).unwrap();
        tables.delete("t", &item("a", &[])).unwrap();
        assert!(tables.items("t").is_empty());
    }
}
