//! The migrations against PostgreSQL: applied once by instances starting together, and a
//! schema outside this build's range refused.

use super::{drop_db, empty_db};
use crate::storage::{
    postgres::{migrations::MAX_SCHEMA, PgStores},
    StorageError,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once_and_a_newer_contracted_schema_is_refused() {
    let Some((admin, config, name)) = empty_db(module_path!()).await else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| tokio::spawn(PgStores::connect_with(config.clone(), 2)))
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap().unwrap());
    }
    let client = stores[0].pool.get().await.unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=MAX_SCHEMA).collect::<Vec<_>>());

    // A later build's expand step: this one still runs on it.
    client
        .execute(
            "INSERT INTO schema_version (version, readers_from) VALUES ($1, $2)",
            &[&(MAX_SCHEMA + 1), &MAX_SCHEMA],
        )
        .await
        .unwrap();
    PgStores::connect_with(config.clone(), 1)
        .await
        .unwrap()
        .close();
    // Its contract step: refused with a message.
    client
        .execute(
            "INSERT INTO schema_version (version, readers_from) VALUES ($1, $1)",
            &[&(MAX_SCHEMA + 2)],
        )
        .await
        .unwrap();
    let refused = PgStores::connect_with(config.clone(), 1).await.unwrap_err();
    assert!(
        matches!(refused, StorageError::UnsupportedSchema { found, .. } if found == MAX_SCHEMA + 2),
        "{refused}"
    );
    drop(client);
    for s in stores {
        s.close();
    }
    drop_db(admin, name);
}

/// Options given in the URL are kept, and `synchronous_commit` is on whatever they say.
#[tokio::test]
async fn sessions_run_with_synchronous_commit_on() {
    let Some(db) = super::db!() else { return };
    let mut config = db.admin.clone();
    config.dbname(&db.name);
    config.options("-c synchronous_commit=off -c application_name=probe");
    let stores = PgStores::connect_with(config, 1).await.unwrap();
    let client = stores.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT current_setting('synchronous_commit'), current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("on".to_owned(), "probe".to_owned())
    );
    drop(client);
    stores.close();
}

/// Sessions cancel a statement after 5 s unless the URL says otherwise; the migrations
/// run without that limit and the pooled connection has it again afterwards.
#[tokio::test]
async fn sessions_have_a_statement_timeout_the_url_may_change() {
    let Some(db) = super::db!() else { return };
    for (options, expected) in [(None, "5s"), (Some("-c statement_timeout=750"), "750ms")] {
        let mut config = db.admin.clone();
        config.dbname(&db.name);
        if let Some(options) = options {
            config.options(options);
        }
        let stores = PgStores::connect_with(config, 1).await.unwrap();
        let client = stores.pool.get().await.unwrap();
        let row = client
            .query_one("SELECT current_setting('statement_timeout')", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), expected, "{options:?}");
        drop(client);
        stores.close();
    }
}

/// A URL naming a Unix-domain socket connects, whatever its `sslmode` (libpq ignores it
/// for sockets, and PostgreSQL offers no TLS there): the driver's empty host name once
/// made the rustls connector fail before connecting.
#[cfg(unix)]
#[tokio::test]
async fn a_unix_socket_url_connects() {
    let Some((admin, config, name)) = empty_db(module_path!()).await else {
        return;
    };
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT split_part(current_setting('unix_socket_directories'), ',', 1), \
             current_setting('port')",
            &[],
        )
        .await
        .unwrap();
    let (dir, port): (String, String) = (row.get(0), row.get(1));
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let url = format!("host={} port={port} user={user} dbname={name}", dir.trim());
    for mode in ["", " sslmode=require", " sslmode=verify-full"] {
        let stores = PgStores::connect(&format!("{url}{mode}"), 2)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(stores.schema_version() >= 1);
        stores.close();
    }
    drop_db(admin, name);
}
