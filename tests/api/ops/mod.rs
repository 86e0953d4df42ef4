//! Operating the server on PostgreSQL with several instances (issue 14): losing the database
//! and getting it back (`database_loss`), crashes under load: an instance SIGKILLed, the
//! database crashed and restarted (`crash`), and MCP sessions behind a load balancer
//! (`balancer`). The tests that stop or crash PostgreSQL use a cluster of their own
//! ([`crate::helpers::PrivateCluster`]), never the shared test cluster.

mod balancer;
mod crash;
mod database_loss;
mod database_tls;
