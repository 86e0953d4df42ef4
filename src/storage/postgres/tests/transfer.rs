//! The PostgreSQL token store's export and import reads and writes (`oauth-mcp admin
//! export` / `import`), checked as the sled store's are.

use super::db;

#[tokio::test]
async fn export_pages_and_import_inserts_absent_tokens_only() {
    let Some(db) = db!() else { return };
    crate::storage::fixtures::export_and_import(&db.stores.tokens()).await;
}
