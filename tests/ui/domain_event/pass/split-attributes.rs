use eventsource::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, DomainEvent)]
#[event(name = "OrderCreated")]
#[serde(rename_all = "camelCase")]
#[event(aggregate = "Order", version = 2)]
struct OrderCreated {
    customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

fn main() {}
