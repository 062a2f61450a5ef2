//! Items written straight into the server's tables, bypassing the API: stored-record fixtures
//! (items as an earlier version wrote them) are loaded this way, then read through the API.

use crate::TestServer;
use dashboard_server::storage::item_from_json;
use serde_json::Value;

/// A table of the server's, for [`TestServer::put_stored_item`].
pub enum Table {
    UserProfiles,
    OrderSnapshots,
    /// The webhook ledger, which also holds the daily catch-up's checkpoint.
    StripeEvents,
}

impl TestServer {
    /// Puts `item` (DynamoDB JSON) into one of the server's tables.
    pub async fn put_stored_item(&self, table: Table, item: &Value) {
        let store = self.running.as_ref().expect("a running server").store();
        let table = match table {
            Table::UserProfiles => &store.tables.user_profiles,
            Table::OrderSnapshots => &store.tables.order_snapshots,
            Table::StripeEvents => &store.tables.stripe_events,
        };
        store
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item_from_json(item).expect("a DynamoDB JSON item")))
            .send()
            .await
            .expect("writing the stored item");
    }
}
