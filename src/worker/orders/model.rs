//! The order domain, pure: what a client may POST, the rules it must pass, the order id, the states an
//! order goes through, and the events and message attributes published about it (the ones the example
//! Subscriptions filter on).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `event` attribute values.
pub mod events {
    /// An order was accepted.
    pub const PLACED: &str = "OrderPlaced";
    /// Its stock was reserved (shipment starts from this).
    pub const RESERVED: &str = "OrderReserved";
    /// An order left the warehouse.
    pub const SHIPPED: &str = "OrderShipped";
    /// An order could not be fulfilled.
    pub const CANCELLED: &str = "OrderCancelled";
}

/// Order states, in the order they are reached.
pub mod states {
    /// Recorded and acknowledged; `OrderPlaced` published.
    pub const PLACED: &str = "PLACED";
    /// Stock reserved (final for orders collected in store).
    pub const RESERVED: &str = "RESERVED";
    /// Some item was out of stock: the order is cancelled (final).
    pub const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
    /// Shipped with a tracking id (final).
    pub const SHIPPED: &str = "SHIPPED";
}

/// How an order reaches the customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Shipped, normal speed.
    Standard,
    /// Shipped, fast; published with `priority: high`.
    Express,
    /// Collected in store: never shipped.
    Pickup,
}

impl Delivery {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Express => "express",
            Self::Pickup => "pickup",
        }
    }
}

/// One line of an order. Read leniently: it is part of the events kept in the Order table and published,
/// where a field added by a newer version (a rolling upgrade) must not make this one refuse them. A
/// client's order is still checked strictly ([`OrderRequest`] reads its lines as [`StrictItem`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// Stock-keeping unit.
    pub sku: String,
    /// How many (1 to 1000).
    pub quantity: u32,
    /// Price of one, in cents.
    pub unit_price_cents: u64,
}

/// One line of a client's order, where an unknown field is a mistake to point out, not a newer version.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StrictItem {
    sku: String,
    quantity: u32,
    unit_price_cents: u64,
}

/// The lines of a client's order, each refusing unknown fields.
fn strict_items<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Item>, D::Error> {
    let lines = Vec::<StrictItem>::deserialize(deserializer)?;
    Ok(lines
        .into_iter()
        .map(|line| Item {
            sku: line.sku,
            quantity: line.quantity,
            unit_price_cents: line.unit_price_cents,
        })
        .collect())
}

/// The body of `POST /orders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderRequest {
    /// Who orders.
    pub customer_id: String,
    /// What (1 to 50 lines).
    #[serde(deserialize_with = "strict_items")]
    pub items: Vec<Item>,
    /// Sales region, e.g. `eu-west`.
    pub region: String,
    /// How it is delivered.
    pub delivery: Delivery,
    /// The client's key for retries: the same key from the same customer gives the same order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Limits of an order.
pub const MAX_ITEMS: usize = 50;
/// Most of one item.
pub const MAX_QUANTITY: u32 = 1000;

fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl OrderRequest {
    /// Checks the rules; the error names the field and the rule.
    pub fn validate(&self) -> Result<(), String> {
        if !is_token(&self.customer_id, 64) {
            return Err("customerId: 1 to 64 letters, digits, '-', '_' or '.'".into());
        }
        if !is_token(&self.region, 32) {
            return Err("region: 1 to 32 letters, digits, '-', '_' or '.'".into());
        }
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(format!("items: 1 to {MAX_ITEMS} lines"));
        }
        for (i, item) in self.items.iter().enumerate() {
            if !is_token(&item.sku, 64) {
                return Err(format!(
                    "items[{i}].sku: 1 to 64 letters, digits, '-', '_' or '.'"
                ));
            }
            if item.quantity == 0 || item.quantity > MAX_QUANTITY {
                return Err(format!("items[{i}].quantity: 1 to {MAX_QUANTITY}"));
            }
            if item.unit_price_cents > 100_000_000 {
                return Err(format!("items[{i}].unitPriceCents: at most 100000000"));
            }
        }
        if let Some(key) = &self.idempotency_key
            && !is_token(key, 128)
        {
            return Err("idempotencyKey: 1 to 128 letters, digits, '-', '_' or '.'".into());
        }
        Ok(())
    }

    /// The total in cents.
    pub fn total_cents(&self) -> u64 {
        self.items
            .iter()
            .map(|item| u64::from(item.quantity) * item.unit_price_cents)
            .sum()
    }

    /// The order id: derived from the principal, the customer and the idempotency key when there is one
    /// (so a retried POST finds the same order, and one principal's key can never name, probe or collide
    /// with another principal's order), else `fresh`.
    pub fn order_id(&self, principal: &str, fresh: impl FnOnce() -> String) -> String {
        match &self.idempotency_key {
            Some(key) => {
                let digest = Sha256::digest(format!("{principal}\n{}\n{key}", self.customer_id));
                let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
                format!("o-{hex}")
            }
            None => format!("o-{}", fresh()),
        }
    }
}

/// An order event as published (the message body), and as kept in the Order table. Fields it does not
/// know are ignored (see [`Item`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// `OrderPlaced`, `OrderShipped`, `OrderCancelled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// What.
    pub items: Vec<Item>,
    /// Total in cents.
    pub total_cents: u64,
    /// Sales region.
    pub region: String,
    /// Delivery.
    pub delivery: Delivery,
    /// Tracking id, on `OrderShipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
}

impl OrderEvent {
    /// `OrderPlaced` for a validated request.
    pub fn placed(order_id: &str, request: &OrderRequest) -> Self {
        Self {
            kind: events::PLACED.to_owned(),
            order_id: order_id.to_owned(),
            customer_id: request.customer_id.clone(),
            items: request.items.clone(),
            total_cents: request.total_cents(),
            region: request.region.clone(),
            delivery: request.delivery,
            tracking_id: None,
        }
    }

    /// The same order, another event.
    pub fn followed_by(&self, kind: &str, tracking_id: Option<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            tracking_id,
            ..self.clone()
        }
    }

    /// Parses a message body; the error says what is wrong (the message is then dead-lettered).
    pub fn parse(body: &str) -> Result<Self, String> {
        let event: Self = serde_json::from_str(body).map_err(|e| format!("not an order event: {e}"))?;
        if !event.order_id.starts_with("o-") || event.order_id.len() > 64 {
            return Err(format!("orderId {:?} is not an order id", event.order_id));
        }
        if event.items.is_empty() {
            return Err("items: an order event has at least one line".into());
        }
        Ok(event)
    }

    /// The message attributes published with it: (name, SNS data type, value). `total` is in currency
    /// units with two decimals, as the example filters compare it numerically.
    pub fn attributes(&self) -> Vec<(&'static str, &'static str, String)> {
        let priority = if self.delivery == Delivery::Express {
            "high"
        } else {
            "normal"
        };
        vec![
            ("event", "String", self.kind.clone()),
            ("region", "String", self.region.clone()),
            ("delivery", "String", self.delivery.as_str().to_owned()),
            (
                "total",
                "Number",
                format!("{}.{:02}", self.total_cents / 100, self.total_cents % 100),
            ),
            ("priority", "String", priority.to_owned()),
        ]
    }
}

/// A shipment's tracking id: derived from the order id, so a redelivered message makes the same one.
pub fn tracking_id(order_id: &str) -> String {
    let digest = Sha256::digest(format!("shipment\n{order_id}"));
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02X}")).collect();
    format!("TRB{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> OrderRequest {
        OrderRequest {
            customer_id: "c-1".into(),
            items: vec![
                Item {
                    sku: "sku-1".into(),
                    quantity: 2,
                    unit_price_cents: 1250,
                },
                Item {
                    sku: "sku-2".into(),
                    quantity: 1,
                    unit_price_cents: 5,
                },
            ],
            region: "eu-west".into(),
            delivery: Delivery::Express,
            idempotency_key: Some("k1".into()),
        }
    }

    #[test]
    fn a_valid_order_totals_and_gets_a_stable_id() {
        let order = request();
        order.validate().unwrap();
        assert_eq!(order.total_cents(), 2505);
        let id = order.order_id("p1", || unreachable!());
        assert_eq!(id, order.order_id("p1", || unreachable!()), "same key, same id");
        let other = OrderRequest {
            customer_id: "c-2".into(),
            ..request()
        };
        assert_ne!(
            id,
            other.order_id("p1", || unreachable!()),
            "keys are per customer"
        );
        assert_ne!(
            id,
            order.order_id("p2", || unreachable!()),
            "keys are per principal"
        );
        let fresh = OrderRequest {
            idempotency_key: None,
            ..request()
        };
        assert_eq!(fresh.order_id("p1", || "abc".into()), "o-abc");
    }

    #[test]
    fn invalid_orders_name_the_field() {
        type Breaker = fn(&mut OrderRequest);
        let cases: [(Breaker, &str); 5] = [
            (|o| o.customer_id.clear(), "customerId"),
            (|o| o.items.clear(), "items: 1 to 50"),
            (|o| o.items[1].quantity = 0, "items[1].quantity"),
            (|o| o.items[0].sku = "a b".into(), "items[0].sku"),
            (|o| o.region = "x".repeat(40), "region"),
        ];
        for (break_it, field) in cases {
            let mut order = request();
            break_it(&mut order);
            let error = order.validate().unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
    }

    #[test]
    fn events_carry_the_attributes_the_filters_use() {
        let event = OrderEvent::placed("o-1", &request());
        let attributes = event.attributes();
        let get = |name: &str| {
            attributes
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, t, v)| (*t, v.clone()))
        };
        assert_eq!(get("event"), Some(("String", "OrderPlaced".into())));
        assert_eq!(get("total"), Some(("Number", "25.05".into())));
        assert_eq!(get("delivery"), Some(("String", "express".into())));
        assert_eq!(get("priority"), Some(("String", "high".into())));
        let body = serde_json::to_string(&event).unwrap();
        assert_eq!(OrderEvent::parse(&body).unwrap(), event);
        let shipped = event.followed_by(events::SHIPPED, Some(tracking_id("o-1")));
        assert_eq!(shipped.tracking_id.as_deref(), Some(tracking_id("o-1").as_str()));
    }

    #[test]
    fn events_of_a_newer_version_are_read_and_orders_stay_strict() {
        let mut event = serde_json::to_value(OrderEvent::placed("o-1", &request())).unwrap();
        event["giftWrap"] = true.into();
        event["items"][0]["discountCents"] = 100.into();
        let read = OrderEvent::parse(&event.to_string()).unwrap();
        assert_eq!(
            read,
            OrderEvent::placed("o-1", &request()),
            "the extra fields are ignored"
        );
        let mut order = serde_json::to_value(request()).unwrap();
        order["items"][0]["discountCents"] = 100.into();
        let error = serde_json::from_value::<OrderRequest>(order)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `discountCents`"), "{error}");
        let mut order = serde_json::to_value(request()).unwrap();
        order["giftWrap"] = true.into();
        assert!(serde_json::from_value::<OrderRequest>(order).is_err());
    }

    #[test]
    fn malformed_events_are_refused_with_the_reason() {
        assert!(
            OrderEvent::parse("not json")
                .unwrap_err()
                .starts_with("not an order event")
        );
        let mut event = serde_json::to_value(OrderEvent::placed("o-1", &request())).unwrap();
        event["orderId"] = "x".into();
        assert!(
            OrderEvent::parse(&event.to_string())
                .unwrap_err()
                .contains("not an order id")
        );
    }
}
