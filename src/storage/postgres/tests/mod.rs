//! Store-level tests of the PostgreSQL stores, against a real PostgreSQL (never a mock):
//! each intent's outcomes as the sled store tests and the trait docs state them, and the
//! concurrent races several instances run into (one redemption of a code, one rotation of
//! a refresh token).
//!
//! They run when `OAUTH_MCP_TEST_DATABASE_URL` names a PostgreSQL superuser (or a role
//! allowed to create databases), each test in a database of its own, created and dropped by
//! [`TestDb`]. Without the variable each test passes with a "skipped" message, except under
//! `CI=true`, where a missing variable fails it (issue 14: CI must run them).

use tokio_postgres::NoTls;

use crate::storage::GrantId;

use super::PgStores;

mod batch;
mod changes;
mod clients;
mod codes;
mod migrations;
mod shared_state;
mod tokens;
mod transfer;

/// The variable naming the test cluster.
pub(super) const DATABASE_URL: &str = "OAUTH_MCP_TEST_DATABASE_URL";

/// A database of one test's own, dropped (forcibly) when the test ends, pass or fail.
pub(super) struct TestDb {
    admin: tokio_postgres::Config,
    name: String,
    /// The stores, connected and migrated.
    pub(super) stores: PgStores,
}

/// A fresh, migrated database for `test`, or `None` (after saying so) when no test cluster
/// is configured outside CI.
pub(super) async fn test_db(test: &str) -> Option<TestDb> {
    let db = empty_db(test).await?;
    let stores = PgStores::connect_with(db.1.clone(), 16).await.unwrap();
    Some(TestDb {
        admin: db.0,
        name: db.2,
        stores,
    })
}

/// A fresh database, not migrated: (cluster config, database config, name).
pub(super) async fn empty_db(
    test: &str,
) -> Option<(tokio_postgres::Config, tokio_postgres::Config, String)> {
    let Ok(url) = std::env::var(DATABASE_URL) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{DATABASE_URL} is not set, but CI=true: the PostgreSQL store tests must run in CI \
             (issue 14); the CI script starts a throw-away cluster and sets it"
        );
        eprintln!(
            "skipped {test}: {DATABASE_URL} is not set (a superuser URL of a throw-away \
             PostgreSQL; see docs/testing.md)"
        );
        return None;
    };
    let admin: tokio_postgres::Config = url.parse().unwrap();
    let suffix: String = GrantId::generate()
        .0
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!("oauth_mcp_test_{suffix}");
    let (client, conn) = admin.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut config = admin.clone();
    config.dbname(&name);
    Some((admin, config, name))
}

/// Drops a test database from a thread of its own (a test's runtime cannot block here).
pub(super) fn drop_db(admin: tokio_postgres::Config, name: String) {
    let dropped = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, conn) = admin.connect(NoTls).await.unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .unwrap();
        });
    })
    .join();
    if dropped.is_err() {
        eprintln!("could not drop a test database (left for the throw-away cluster)");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.stores.close();
        drop_db(self.admin.clone(), std::mem::take(&mut self.name));
    }
}

/// Opens a test: `let Some(db) = db!() else { return };`.
macro_rules! db {
    () => {
        crate::storage::postgres::tests::test_db(module_path!()).await
    };
}
pub(super) use db;
