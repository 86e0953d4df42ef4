//! A PostgreSQL database of one test's own, for the tests that run the server on PostgreSQL
//! (`--database-url`): created in the cluster named by `OAUTH_MCP_TEST_DATABASE_URL` and
//! dropped (forcibly) when the test ends, pass or fail. The same rule as the store tests
//! (`src/storage/postgres/tests/mod.rs`, whose helper is private to the library's unit
//! tests, hence these few lines again): without the variable a test is skipped with a
//! message, except under `CI=true`, where that is a failure.

use tokio_postgres::NoTls;

/// The variable naming the test cluster (a superuser URL of a throw-away PostgreSQL).
pub const TEST_DATABASE_URL: &str = "OAUTH_MCP_TEST_DATABASE_URL";

/// A fresh, empty database; [`TestDatabase::url`] is what `--database-url` is given.
pub struct TestDatabase {
    /// The URL of this test's database (the cluster's URL with the database name replaced).
    pub url: String,
    admin: tokio_postgres::Config,
    name: String,
}

/// A fresh database for `test`, or `None` (after saying so) when no test cluster is
/// configured outside CI.
pub async fn test_database(test: &str) -> Option<TestDatabase> {
    let Ok(cluster) = std::env::var(TEST_DATABASE_URL) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{TEST_DATABASE_URL} is not set, but CI=true: the PostgreSQL tests must run in CI \
             (issue 14); the CI script starts a throw-away cluster and sets it"
        );
        eprintln!(
            "skipped {test}: {TEST_DATABASE_URL} is not set (a superuser URL of a throw-away \
             PostgreSQL; see docs/testing.md)"
        );
        return None;
    };
    let admin: tokio_postgres::Config = cluster.parse().expect("a valid test cluster URL");
    let name = format!("oauth_mcp_api_{:016x}", rand::random::<u64>());
    let (client, conn) = admin
        .connect(NoTls)
        .await
        .expect("connect to the test cluster");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    let mut url = url::Url::parse(&cluster).expect("the test cluster URL is a URL");
    url.set_path(&format!("/{name}"));
    Some(TestDatabase {
        url: url.to_string(),
        admin,
        name,
    })
}

impl TestDatabase {
    /// Runs one query on this test's database and answers the first column of the first
    /// row as a count (`SELECT count(*) ...`): to see that the server really wrote here.
    pub async fn count(&self, query: &str) -> i64 {
        let row = self
            .client()
            .await
            .query_one(query, &[])
            .await
            .expect("the query runs");
        row.get(0)
    }

    /// Runs `sql` (one or more statements) on this test's database.
    pub async fn execute(&self, sql: &str) {
        self.client()
            .await
            .batch_execute(sql)
            .await
            .expect("the statements run");
    }

    /// A connection of the test's own to this database (to hold a lock, say).
    pub async fn client(&self) -> tokio_postgres::Client {
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        let (client, conn) = config.connect(NoTls).await.expect("connect to the test db");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDatabase {
    /// From a thread of its own: a test's runtime cannot block here.
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = std::mem::take(&mut self.name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let (client, conn) = admin.connect(NoTls).await.expect("connect");
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .expect("drop the test database");
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("could not drop a test database (left for the throw-away cluster)");
        }
    }
}
