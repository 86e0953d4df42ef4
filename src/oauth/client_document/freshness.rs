//! How long a fetched client ID metadata document may be kept (draft-ietf-oauth-client-id-
//! metadata-document §4.4: the server may cache a document as its HTTP cache headers allow):
//! RFC 9111 freshness from `Cache-Control`, `Expires`, `Date` and `Age`, and how long past
//! that the last good copy may stand in when a refetch fails (RFC 9111 §4.2.4, RFC 5861
//! `stale-if-error`). Pure functions of the response headers and the operator's bounds.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Cache lifetime used when a response carries no freshness information (RFC 9111 §4.2.2
/// lets a cache pick a heuristic lifetime for a 200 response).
pub const DEFAULT_CACHE_LIFETIME: Duration = Duration::from_secs(300);

/// How a fetched document may be kept: fresh for `fresh` (served without fetching), then
/// as the last good copy for `stale` more (served only when a refetch fails for a
/// transient reason or no fetch slot is free, RFC 9111 §4.2.4 and RFC 5861 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long the document is fresh (zero: fetch again each time).
    pub fresh: Duration,
    /// How long past `fresh` it may stand in when a refetch fails.
    pub stale: Duration,
}

/// How a document fetched at `now` may be kept; `None` with `no-store` (never kept, not
/// even as a last good copy).
///
/// Freshness (RFC 9111 §4.2): zero with `no-cache`, otherwise `s-maxage`, else `max-age`,
/// else `Expires` minus `Date`, else [`DEFAULT_CACHE_LIFETIME`]; less `Age`; at most
/// `max_fresh`. An unparseable `max-age` or `Expires` counts as already stale, as RFC 9111
/// says.
///
/// Use when stale: never when the response forbids serving it stale, which is `no-cache`
/// and `must-revalidate` (RFC 9111 §5.2.2.2, §5.2.2.4) and, since this server is a cache
/// shared by all its users, `proxy-revalidate` and `s-maxage` (§5.2.2.8, §5.2.2.10);
/// otherwise `stale-if-error` (RFC 5861 §4) when the response sets it, else `max_stale`
/// (the operator's setting, the "configuration" RFC 9111 §4.2.4 allows), and never more
/// than `max_stale`.
pub fn cache_policy(
    cache_control: &[&str],
    expires: Option<&str>,
    date: Option<&str>,
    age: Option<&str>,
    now: DateTime<Utc>,
    max_fresh: Duration,
    max_stale: Duration,
) -> Option<CachePolicy> {
    let mut max_age = None;
    let mut s_maxage = None;
    let mut no_cache = false;
    let mut revalidate = false;
    let mut stale_if_error = None;
    for directive in cache_control.iter().flat_map(|v| v.split(',')) {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        let seconds = || value.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match name.to_ascii_lowercase().as_str() {
            "no-store" => return None,
            "no-cache" => no_cache = true,
            "must-revalidate" | "proxy-revalidate" => revalidate = true,
            "max-age" => max_age = Some(seconds()),
            "s-maxage" => s_maxage = Some(seconds()),
            "stale-if-error" => stale_if_error = Some(seconds()),
            _ => {}
        }
    }
    let stale = if no_cache || revalidate || s_maxage.is_some() {
        Duration::ZERO
    } else {
        stale_if_error.map_or(max_stale, |s| Duration::from_secs(s).min(max_stale))
    };
    if no_cache {
        return Some(CachePolicy {
            fresh: Duration::ZERO,
            stale,
        });
    }
    let http_date = |v: &str| {
        DateTime::parse_from_rfc2822(v)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    };
    let lifetime = match (s_maxage.or(max_age), expires) {
        (Some(secs), _) => secs,
        (None, Some(expires)) => {
            let base = date.and_then(http_date).unwrap_or(now);
            http_date(expires)
                .and_then(|e| u64::try_from((e - base).num_seconds()).ok())
                .unwrap_or(0)
        }
        (None, None) => DEFAULT_CACHE_LIFETIME.as_secs(),
    };
    let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    let fresh = Duration::from_secs(lifetime.saturating_sub(age)).min(max_fresh);
    Some(CachePolicy { fresh, stale })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(
        cc: &[&str],
        expires: Option<&str>,
        date: Option<&str>,
        age: Option<&str>,
    ) -> Option<CachePolicy> {
        let now = DateTime::parse_from_rfc2822("Fri, 27 Nov 2026 10:00:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        let (max_fresh, max_stale) = (Duration::from_secs(86_400), Duration::from_secs(3600));
        cache_policy(cc, expires, date, age, now, max_fresh, max_stale)
    }

    /// Seconds fresh, `None` when not fresh at all.
    fn lifetime(
        cc: &[&str],
        expires: Option<&str>,
        date: Option<&str>,
        age: Option<&str>,
    ) -> Option<u64> {
        policy(cc, expires, date, age)
            .map(|p| p.fresh.as_secs())
            .filter(|s| *s > 0)
    }

    /// Seconds usable past freshness when a refetch fails; `None` with `no-store`.
    fn stale(cc: &[&str]) -> Option<u64> {
        policy(cc, None, None, None).map(|p| p.stale.as_secs())
    }

    #[test]
    fn a_last_good_copy_is_kept_only_as_long_as_the_headers_allow() {
        assert_eq!(stale(&["no-store"]), None, "not kept at all");
        assert_eq!(stale(&["max-age=60, no-store"]), None);
        // Forbidden to serve stale (RFC 9111 §5.2.2): not used once expired.
        for cc in [
            "no-cache",
            "max-age=60, must-revalidate",
            "max-age=60, proxy-revalidate",
            "s-maxage=60",
            "max-age=60, stale-if-error=600, must-revalidate",
        ] {
            assert_eq!(stale(&[cc]), Some(0), "{cc}");
        }
        // stale-if-error (RFC 5861) says how long, within our bound.
        assert_eq!(stale(&["max-age=60, stale-if-error=120"]), Some(120));
        assert_eq!(stale(&["max-age=60, stale-if-error=86400"]), Some(3600));
        assert_eq!(stale(&["stale-if-error=0"]), Some(0));
        // Silent headers: the operator's bound.
        assert_eq!(stale(&["max-age=60"]), Some(3600));
        assert_eq!(stale(&[]), Some(3600));
        // An already stale response may still be the last good copy.
        assert_eq!(stale(&["max-age=0"]), Some(3600));
        assert_eq!(lifetime(&["max-age=0"], None, None, None), None);
    }

    #[test]
    fn cache_lifetime_follows_the_headers() {
        assert_eq!(lifetime(&["max-age=600"], None, None, None), Some(600));
        assert_eq!(
            lifetime(&["public, Max-Age=\"60\""], None, None, None),
            Some(60)
        );
        assert_eq!(
            lifetime(&["max-age=600, s-maxage=30"], None, None, None),
            Some(30)
        );
        assert_eq!(
            lifetime(&["max-age=600"], None, None, Some("100")),
            Some(500)
        );
        assert_eq!(lifetime(&["max-age=600"], None, None, Some("900")), None);
        assert_eq!(lifetime(&["max-age=0"], None, None, None), None);
        assert_eq!(lifetime(&["max-age=soon"], None, None, None), None);
        assert_eq!(lifetime(&["no-store"], None, None, None), None);
        assert_eq!(
            lifetime(&["max-age=600", "no-cache"], None, None, None),
            None
        );
        assert_eq!(
            lifetime(&["max-age=9999999"], None, None, None),
            Some(86_400)
        );
        // Expires counts from Date when given, from now otherwise; max-age wins over it.
        let date = Some("Fri, 27 Nov 2026 09:00:00 GMT");
        let expires = Some("Fri, 27 Nov 2026 09:10:00 GMT");
        assert_eq!(lifetime(&[], expires, date, None), Some(600));
        assert_eq!(lifetime(&[], expires, None, None), None);
        assert_eq!(lifetime(&[], Some("0"), date, None), None);
        assert_eq!(lifetime(&["max-age=5"], expires, date, None), Some(5));
        // Nothing said: the heuristic default.
        assert_eq!(lifetime(&[], None, None, None), Some(300));
        assert_eq!(lifetime(&["public"], None, None, None), Some(300));
    }
}
