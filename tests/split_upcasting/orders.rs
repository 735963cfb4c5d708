//! The order events of the split-upcasting tests: `OrderPlaced` v1 rows split into the
//! v2 order and one `ItemAdded` per item, notes that read as nothing, and an upcaster
//! that returns a type it did not declare. Included by `split_upcasting*.rs` only (a
//! split upcaster in `support` would be registered in every test binary).
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;

use eventsource::prelude::*;
use eventsource::{split_upcaster, RawEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(name = "OrderPlaced", aggregate = "Order", version = 2)]
pub struct OrderPlaced {
    pub customer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(aggregate = "Order")]
pub struct ItemAdded {
    pub sku: String,
}

/// `OrderPlaced` v1 held its items; v2 is the order, and each item its own event.
fn split_order(v1: Value) -> Result<Vec<RawEvent>, String> {
    let customer = v1["customer"].as_str().ok_or("no customer")?.to_owned();
    let items = v1["items"].as_array().ok_or("items is not a list")?;
    let mut events = vec![RawEvent::of(&OrderPlaced { customer }).map_err(|e| e.to_string())?];
    for sku in items {
        let sku = sku.as_str().ok_or("an item is not text")?.to_owned();
        events.push(RawEvent::of(&ItemAdded { sku }).map_err(|e| e.to_string())?);
    }
    Ok(events)
}

split_upcaster!(
    name = "OrderPlaced",
    version = 1,
    produces = ["OrderPlaced", "ItemAdded"],
    split_order
);

/// Notes nobody reads any more: each row reads as nothing.
fn drop_note(_v1: Value) -> Result<Vec<RawEvent>, Infallible> {
    Ok(Vec::new())
}

split_upcaster!(name = "OrderNoted", version = 1, produces = [], drop_note);

/// Returns a type it does not declare: its rows are corrupt.
fn undeclared(_v1: Value) -> Result<Vec<RawEvent>, String> {
    Ok(vec![
        RawEvent::of(&ItemAdded { sku: "x".into() }).map_err(|e| e.to_string())?
    ])
}

split_upcaster!(
    name = "OrderAudited",
    version = 1,
    produces = ["OrderPlaced"],
    undeclared
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: String,
    pub items: Vec<String>,
}

#[aggregate(name = "Order")]
impl Order {
    #[init]
    fn new(_id: Uuid) -> Self {
        Order::default()
    }

    #[apply]
    fn placed(&mut self, e: &OrderPlaced) {
        self.customer = e.customer.clone();
    }

    #[apply]
    fn added(&mut self, e: &ItemAdded) {
        self.items.push(e.sku.clone());
    }
}

pub fn placed_v1(customer: &str, items: &[&str]) -> NewEvent {
    NewEvent::raw(
        "OrderPlaced",
        1,
        json!({"customer": customer, "items": items}),
    )
}
