//! Several real server processes on one PostgreSQL database (issue 14), with the cluster
//! harness ([`Cluster`](crate::helpers::Cluster)): one file per behaviour. `browser`: a
//! browser's sign-in and consent spread over instances, and the login throttle and the
//! registration limit counted across them.

mod browser;
