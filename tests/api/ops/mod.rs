//! Operating the server on PostgreSQL (issue 14): losing the database and getting it back.
//! These tests stop and start a PostgreSQL cluster of their own
//! ([`crate::helpers::PrivateCluster`]), never the shared test cluster.

mod crash;
mod database_loss;
